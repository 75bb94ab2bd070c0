"""Chunking: section paths, whole and split tables/code/lists/records, sentence splitting (Chinese, English,
mixed), fixed windows with overlap, parent–child, and the embedding cap, checked with the model's own
tokenizer."""
from __future__ import annotations

import random
import re

import pytest

from temper.knowledge.chunking import (
    ChunkingConfig,
    chunk_document,
    count_tokens,
    embed_text,
    embedding_tokens,
    split_sentences,
)
from temper.knowledge.types import Block, Chunk, ParsedDocument

ZH_SENTENCES = [
    "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
    "深度学习使用多层神经网络来提取特征！",
    "他问道：“这个模型的准确率是多少？”",
    "答案是百分之九十二点五；这个结果令人满意。",
    "我们在2023年发布了第3.14版……",
    "「请先安装依赖。」",
]
EN_SENTENCES = [
    "The quick brown fox jumps over the lazy dog. ",
    "Dr. Smith measured a value of 3.14 in the lab. ",
    "Retrieval works better with contextual headers, e.g. the section path. ",
    "Is this the right answer? ",
    "It depends on the data! ",
]


def fits(chunk: Chunk, title: str | None, max_tokens: int = 512) -> bool:
    return embedding_tokens(embed_text(chunk, title)) <= max_tokens


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def zh_paragraph(n: int, seed: int = 0, numbered: bool = False) -> str:
    rng = random.Random(seed)
    return "".join((f"第{i}句：" if numbered else "") + rng.choice(ZH_SENTENCES) for i in range(n))


def en_paragraph(n: int, seed: int = 0, numbered: bool = False) -> str:
    rng = random.Random(seed)
    return "".join((f"Number {i}: " if numbered else "") + rng.choice(EN_SENTENCES) for i in range(n)).strip()


def big_table(rows: int) -> str:
    lines = ["| 名称 | 价格 | 说明 |", "| --- | --- | --- |"]
    lines += [f"| 商品{i} | {i * 3.5} | 这是第{i}个商品的详细说明文字 |" for i in range(rows)]
    return "\n".join(lines)


# -- tokens and sentences -------------------------------------------------------------------------------

def test_count_tokens_is_the_model_tokenizer_without_specials() -> None:
    assert count_tokens("") == count_tokens("  \n") == 0
    assert count_tokens("a") == 1
    assert count_tokens("Hello world.") == 3  # ▁Hello ▁world .
    text = zh_paragraph(5)
    assert embedding_tokens(text) == count_tokens(text) + embedding_tokens("a") - 1


def test_split_sentences_chinese_with_quotes_and_ellipsis() -> None:
    text = "他说：“走吧！”然后呢？好的。「注意安全。」我们等了很久……终于到了；大家都很高兴！"
    assert split_sentences(text) == ["他说：“走吧！”", "然后呢？", "好的。", "「注意安全。」", "我们等了很久……",
                                     "终于到了；", "大家都很高兴！"]


def test_split_sentences_english_decimals_and_abbreviations() -> None:
    text = "Pi is about 3.14159 in value. Dr. Smith agrees, e.g. in his paper (see Fig. 2). Really? Yes!"
    assert split_sentences(text) == ["Pi is about 3.14159 in value. ", "Dr. Smith agrees, e.g. in his paper (see Fig. 2). ",
                                     "Really? ", "Yes!"]


def test_split_sentences_mixed_without_spaces() -> None:
    text = "我们用Python 3.11写代码.然后运行pytest!结果全部通过。The end."
    parts = split_sentences(text)
    assert parts == ["我们用Python 3.11写代码.", "然后运行pytest!", "结果全部通过。", "The end."]
    assert "".join(parts) == text


# -- structure ------------------------------------------------------------------------------------------

def test_nested_headings_give_section_paths_and_no_chunk_spans_sections() -> None:
    blocks = [Block("Intro text before any heading.")]
    expected: dict[str, tuple[str, ...]] = {"Intro": ()}
    layout = [(1, "安装"), (2, "Linux"), (3, "Ubuntu"), (2, "Windows"), (1, "使用"), (2, "命令行")]
    stack: list[tuple[int, str]] = []
    for level, title in layout:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        blocks.append(Block(title, "heading", level=level))
        for i in range(3):
            tag = f"{title}{i}"
            blocks.append(Block(f"[{tag}] " + zh_paragraph(4, seed=i)))
            expected[tag] = tuple(t for _, t in stack)
    blocks.append(Block("Orphan", "heading", level=1))  # nothing under it: a chunk of its own
    chunks = chunk_document(ParsedDocument("手册", blocks), ChunkingConfig(chunk_tokens=200))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    seen = set()
    for chunk in chunks:
        tags = re.findall(r"\[([^\]]+)\]", chunk.text) or (["Intro"] if chunk.text.startswith("Intro") else [])
        for tag in tags:
            assert tuple(chunk.section) == expected[tag], (tag, chunk.section)
            seen.add(tag)
        assert chunk.tokens <= 200
        assert fits(chunk, "手册")
    assert seen == set(expected)
    assert chunks[-1].text == "Orphan" and chunks[-1].section == ["Orphan"]
    assert not any("安装" == c.text or "Linux" == c.text for c in chunks)  # headings live in section, not text


def test_table_over_the_cap_is_split_by_rows_with_the_header_repeated() -> None:
    table = big_table(200)
    assert count_tokens(table) > 2000
    doc = ParsedDocument("价目表", [Block("价格", "heading", level=1), Block(table, "table", page=4)])
    chunks = chunk_document(doc)
    assert len(chunks) > 5
    header = "| 名称 | 价格 | 说明 |\n| --- | --- | --- |\n"
    rows: list[str] = []
    for chunk in chunks:
        assert chunk.text.startswith(header)
        assert fits(chunk, doc.title)
        assert chunk.tokens <= 350 and chunk.page == 4 and chunk.section == ["价格"]
        rows += chunk.text[len(header):].split("\n")
    assert rows == table.split("\n")[2:]  # every row once, in order, none cut


def test_table_code_and_list_are_kept_whole_when_under_the_cap() -> None:
    code = "\n".join(f"def handler_{i}(request):\n    return respond(request, status={200 + i})\n" for i in range(22))
    table = big_table(16)
    items = "\n".join(f"- 第{i}项：{ZH_SENTENCES[i % 6]}" for i in range(24))
    for text, kind in ((code, "code"), (table, "table"), (items, "list")):
        assert 350 < count_tokens(text) < 480, kind
        doc = ParsedDocument("doc", [Block("short intro.", "text"), Block(text, kind), Block("short outro.")])
        chunks = chunk_document(doc)
        assert [c.text for c in chunks] == ["short intro.", text.strip(), "short outro."]
        assert all(fits(c, "doc") for c in chunks)


def test_list_and_code_over_the_cap_split_between_items_and_lines() -> None:
    items = [f"- 第{i}项：{ZH_SENTENCES[i % 6]}\n  补充说明{i}" for i in range(60)]
    code = "\n".join(f"x_{i} = compute({i}, 'value')" for i in range(300))
    chunks = chunk_document(ParsedDocument(None, [Block("\n".join(items), "list"), Block(code, "code")]))
    pieces = [part for c in chunks for part in c.text.split("\n\n")]  # a chunk may hold both blocks
    listed = [line for p in pieces if p.startswith("- ") for line in re.split(r"\n(?=- )", p)]
    assert listed == items  # no item was cut from its continuation line
    code_lines = [line for p in pieces if p.startswith("x_") for line in p.split("\n")]
    assert code_lines == code.split("\n")
    assert all(c.tokens <= 350 for c in chunks)


def test_long_chinese_paragraph_is_split_at_sentence_ends() -> None:
    text = zh_paragraph(120, seed=3)
    chunks = chunk_document(ParsedDocument("中文", [Block(text)]))
    assert len(chunks) > 4
    assert squash("".join(c.text for c in chunks)) == squash(text)
    for chunk in chunks:
        assert chunk.tokens <= 350 and fits(chunk, "中文")
        assert chunk.text[-1] in "。！？；…”」", chunk.text[-10:]


def test_chinese_without_any_punctuation_is_cut_between_characters() -> None:
    text = "无标点的长文本" * 600
    chunks = chunk_document(ParsedDocument("t", [Block(text)]))
    assert "".join(c.text for c in chunks) == text
    assert all(c.tokens <= 350 and fits(c, "t") for c in chunks)


def test_mixed_chinese_english_is_never_cut_inside_a_word() -> None:
    rng = random.Random(7)
    text = "".join(rng.choice(ZH_SENTENCES + [s.strip() for s in EN_SENTENCES]) for _ in range(150))
    words = set(re.findall(r"[A-Za-z]+", text))
    for strategy in ("structure", "fixed"):
        chunks = chunk_document(ParsedDocument("mixed", [Block(text)]), ChunkingConfig(strategy=strategy))
        for chunk in chunks:
            assert set(re.findall(r"[A-Za-z]+", chunk.text)) <= words
            assert fits(chunk, "mixed")


def test_decimals_and_abbreviations_stay_inside_chunks() -> None:
    text = " ".join(f"Item {i} costs {i}.{i:02d} dollars, e.g. at Dr. Who's shop." for i in range(150))
    chunks = chunk_document(ParsedDocument(None, [Block(text)]), ChunkingConfig(chunk_tokens=64))
    for chunk in chunks:
        assert not re.search(r"\d\.$", chunk.text) and not re.match(r"\d", chunk.text)
        assert not chunk.text.endswith(("e.g.", "Dr."))
    prices = [m for c in chunks for m in re.findall(r"\d+\.\d+", c.text)]
    assert prices == re.findall(r"\d+\.\d+", text)


def test_records_are_grouped_and_keep_their_rows() -> None:
    blocks = [Block(f"姓名: 员工{i}\n部门: 研发\n城市: 上海\n备注: {ZH_SENTENCES[i % 6]}", "record",
                    metadata={"row": i + 2, "sheet": "员工"}) for i in range(40)]
    chunks = chunk_document(ParsedDocument("员工表", blocks), ChunkingConfig(chunk_tokens=200))
    assert 1 < len(chunks) < 40
    seen = []
    for chunk in chunks:
        records = chunk.text.split("\n\n")
        assert all(r.startswith("姓名:") and r.count("\n") == 3 for r in records)  # never cut
        rows = chunk.metadata.get("rows", [chunk.metadata["row"]])
        assert len(rows) == len(records) and chunk.metadata["row"] == rows[0]
        assert chunk.metadata["sheet"] == "员工" and chunk.tokens <= 200
        seen += rows
    assert seen == list(range(2, 42))


def test_page_is_the_first_blocks_and_page_end_is_recorded() -> None:
    blocks = [Block(f"Paragraph {i} on page {i // 2 + 1}.", page=i // 2 + 1) for i in range(6)]
    [chunk] = chunk_document(ParsedDocument(None, blocks))
    assert chunk.page == 1 and chunk.metadata["page_end"] == 3


# -- fixed ----------------------------------------------------------------------------------------------

def overlap_text(a: str, b: str) -> str:
    for size in range(len(b), 0, -1):
        if a.endswith(b[:size].rstrip()):
            return b[:size]
    return ""


@pytest.mark.parametrize("text", [en_paragraph(150, 1, numbered=True), zh_paragraph(150, 2, numbered=True)], ids=["en", "zh"])
def test_fixed_windows_overlap_by_about_overlap_tokens(text: str) -> None:
    config = ChunkingConfig(strategy="fixed", chunk_tokens=120, overlap_tokens=30)
    chunks = chunk_document(ParsedDocument("f", [Block("Heading", "heading", level=1), Block(text)]), config)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        shared = count_tokens(overlap_text(a.text, b.text))
        assert 20 <= shared <= 32, (shared, a.text[-80:], b.text[:80])
    for chunk in chunks:
        assert chunk.tokens <= 120 and fits(chunk, "f") and chunk.section == ["Heading"]
    assert squash(text).startswith(squash(chunks[0].text)) and squash(text).endswith(squash(chunks[-1].text))


def test_fixed_windows_end_at_sentence_boundaries() -> None:
    text = en_paragraph(200, seed=4)
    chunks = chunk_document(ParsedDocument(None, [Block(text)]), ChunkingConfig(strategy="fixed"))
    assert all(c.text[-1] in ".?!" for c in chunks)


# -- parent_child ---------------------------------------------------------------------------------------

def test_parent_child() -> None:
    blocks = [Block("指南", "heading", level=1), Block(zh_paragraph(200, seed=5), page=1),
              Block(big_table(150), "table", page=2), Block("English", "heading", level=2),
              Block(en_paragraph(80, seed=6), page=3), Block("def f():\n    return 1", "code", page=3)]
    config = ChunkingConfig(strategy="parent_child", chunk_tokens=150, overlap_tokens=20, parent_tokens=600)
    chunks = chunk_document(ParsedDocument("手册", blocks), config)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    parents = {c.ordinal: c for c in chunks if c.role == "parent"}
    children = [c for c in chunks if c.role == "chunk"]
    assert len(parents) > 3 and len(children) > 2 * len(parents)
    assert all(p.parent is None and p.tokens <= 600 for p in parents.values())
    for child in children:
        parent = parents[child.parent]
        assert parent.ordinal < child.ordinal and child.section == parent.section
        if child.text.startswith("| 名称"):  # table pieces repeat the header: every line is the parent's
            assert all(line in parent.text.split("\n") for line in child.text.split("\n"))
        else:
            assert child.text in parent.text
        assert child.tokens <= 150 and fits(child, "手册")
    covered = {p: squash("".join(c.text for c in children if c.parent == p)) for p in parents}
    for ordinal, parent in parents.items():  # children cover their parent (overlaps only add)
        assert len(covered[ordinal]) >= len(squash(parent.text))


def test_empty_document() -> None:
    assert chunk_document(ParsedDocument("empty", [])) == []
    assert chunk_document(ParsedDocument("blank", [Block("  "), Block("\n", "code")])) == []
    for strategy in ("fixed", "parent_child"):
        assert chunk_document(ParsedDocument(None, []), ChunkingConfig(strategy=strategy)) == []


# -- header and cap -------------------------------------------------------------------------------------

def test_embed_text_puts_a_header_above_the_text() -> None:
    chunk = Chunk(text="正文。", ordinal=0, section=["安装", "Linux"])
    assert embed_text(chunk, "指南") == "指南 › 安装 › Linux\n\n正文。"
    assert embed_text(chunk, "安装") == "安装 › Linux\n\n正文。"  # a title repeated as the top heading: once
    assert embed_text(Chunk(text="正文。", ordinal=0), None) == "正文。"
    long = Chunk(text="x", ordinal=0, section=["很长的标题" * 40, "B"])
    assert count_tokens(embed_text(long, "T" * 500)) < 80


def test_small_cap_and_long_title_still_fit() -> None:
    config = ChunkingConfig(chunk_tokens=100, overlap_tokens=10, parent_tokens=300, max_tokens=128)
    title = "一个非常非常长的文档标题" * 20
    blocks = [Block("章节" * 30, "heading", level=1), Block(zh_paragraph(40)), Block(big_table(30), "table")]
    for strategy in ("structure", "fixed", "parent_child"):
        chunks = chunk_document(ParsedDocument(title, blocks), ChunkingConfig(**{**config.__dict__, "strategy": strategy}))
        assert chunks and all(fits(c, title, 128) for c in chunks if c.role == "chunk")


@pytest.mark.parametrize("kwargs", [{"strategy": "semantic"}, {"max_tokens": 64}, {"chunk_tokens": 8},
                                    {"overlap_tokens": 350}, {"parent_tokens": 100}])
def test_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(**kwargs)


def random_document(rng: random.Random) -> ParsedDocument:
    blocks = []
    for _ in range(rng.randint(0, 14)):
        roll = rng.random()
        if roll < 0.2:
            blocks.append(Block(rng.choice(["安装", "Usage", "配置 Config", "FAQ"]), "heading", level=rng.randint(1, 4)))
        elif roll < 0.55:
            text = "".join(rng.choice(ZH_SENTENCES + EN_SENTENCES) for _ in range(rng.randint(1, 60)))
            blocks.append(Block(text, page=rng.randint(1, 9)))
        elif roll < 0.65:
            blocks.append(Block(big_table(rng.randint(1, 120)), "table"))
        elif roll < 0.75:
            blocks.append(Block("\n".join(f"print({i}, 'x' * {i})" for i in range(rng.randint(1, 200))), "code"))
        elif roll < 0.85:
            blocks.append(Block("\n".join(f"- {rng.choice(ZH_SENTENCES)}" for _ in range(rng.randint(1, 60))), "list"))
        elif roll < 0.95:
            blocks.append(Block(f"id: {rng.randint(1, 99)}\nnote: " + zh_paragraph(rng.randint(1, 40)), "record",
                                metadata={"row": rng.randint(1, 500)}))
        else:
            blocks.append(Block("https://example.com/" + "a1b2c3" * rng.randint(1, 400)))  # one huge "word"
    return ParsedDocument(rng.choice([None, "Doc", "很长的标题" * rng.randint(1, 30)]), blocks)


def test_no_embedded_chunk_ever_exceeds_the_cap() -> None:
    rng = random.Random(1234)
    for _ in range(24):
        doc = random_document(rng)
        config = ChunkingConfig(strategy=rng.choice(["structure", "fixed", "parent_child"]),
                                chunk_tokens=rng.choice([64, 200, 350, 480]), overlap_tokens=rng.choice([0, 10, 50]),
                                parent_tokens=rng.choice([600, 1200]), max_tokens=rng.choice([256, 512]))
        chunks = chunk_document(doc, config)
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert chunk.text.strip() and chunk.tokens == count_tokens(chunk.text)
            if chunk.role == "chunk":
                assert fits(chunk, doc.title, config.max_tokens), (config, chunk.tokens)
                assert chunk.parent is None or chunks[chunk.parent].role == "parent"
            else:
                assert chunk.tokens <= config.parent_tokens


def test_a_cancel_stops_chunking_between_pieces() -> None:
    from temper.knowledge.limits import Limits, Stopped, guarded

    doc = ParsedDocument("Long", [Block(" ".join(f"Sentence {i} of many." for i in range(j * 50, j * 50 + 50)))
                                  for j in range(40)])
    calls = 0

    def stopped() -> bool:
        nonlocal calls
        calls += 1
        return calls > 5

    with guarded(Limits(), stopped), pytest.raises(Stopped):
        chunk_document(doc)
    assert calls == 6  # stopped at the first checkpoint after the cancel, not at the end
    assert chunk_document(doc)  # outside a job: no guard
