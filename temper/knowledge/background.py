"""What "unrelated" looks like for a query: the baseline the local reranker measures relevance against.

For a query vector q, the background is q's cosine similarity to (a) a sample of the knowledge base's own
chunks and (b) a fixed set of reference passages on everyday topics in the query's language (Chinese or
English: e5 scores pairs in one language higher than across languages), embedded once per model. A chunk's relevance is how many standard deviations its similarity stands above the
background's mean. The reference set keeps the baseline honest for a small or single-topic knowledge base,
where the sample alone would hold mostly related chunks.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from temper.knowledge import store
from temper.knowledge.lang import language
from temper.knowledge.types import KnowledgeIndex

if TYPE_CHECKING:
    from temper.models.client import ModelClient

SAMPLE = 256
SAMPLE_TTL_S = 60.0  # how stale a sample may get through another replica's ingestion

REFERENCE = [
    "The train to the airport leaves every fifteen minutes from platform four.",
    "Add the flour slowly and stir until the dough no longer sticks to the bowl.",
    "The museum is closed on Mondays and on public holidays.",
    "Our football team won the regional championship after a penalty shoot-out.",
    "Water the tomato plants in the early morning during hot weather.",
    "The quarterly report shows revenue grew by eight percent.",
    "Please turn off your phone before the concert begins.",
    "The hotel room has a balcony with a view of the harbour.",
    "Regular exercise lowers the risk of heart disease.",
    "The novel follows three generations of a fishing family.",
    "Snow is expected in the mountains over the weekend.",
    "The city council approved a new bicycle lane on Main Street.",
    "Dogs need to be vaccinated against rabies every year.",
    "The printer on the second floor is out of toner.",
    "She studied violin at the conservatory for six years.",
    "Mix two parts cement with three parts sand.",
    "The library lends e-books for up to three weeks.",
    "Volcanic eruptions can disrupt air travel for days.",
    "He paid the electricity bill online last night.",
    "The wedding reception will be held in the garden.",
    "Photosynthesis converts light energy into chemical energy.",
    "The bakery sells fresh bread until noon.",
    "Interest rates were left unchanged this month.",
    "The children built a sandcastle at the beach.",
    "Keep the medicine in a cool, dry place away from sunlight.",
    "The marathon route passes through the old town.",
    "A new species of frog was discovered in the rainforest.",
    "The meeting has been moved to Thursday afternoon.",
    "Jazz musicians often improvise during live performances.",
    "Change the car's engine oil every ten thousand kilometres.",
    "The ancient temple was restored after the earthquake.",
    "Students must submit their essays before Friday.",
    "火车每十五分钟从四号站台发往机场。",
    "慢慢加入面粉，搅拌到面团不再粘碗为止。",
    "博物馆周一和法定节假日闭馆。",
    "我们的足球队在点球大战后赢得了地区冠军。",
    "天气炎热时，请在清晨给番茄浇水。",
    "季度报告显示营业收入增长了百分之八。",
    "音乐会开始前请关闭手机。",
    "酒店房间有一个可以看到港口的阳台。",
    "经常锻炼可以降低患心脏病的风险。",
    "这部小说讲述了一个渔民家庭三代人的故事。",
    "预计周末山区会下雪。",
    "市议会批准在主街新建一条自行车道。",
    "狗每年都需要接种狂犬病疫苗。",
    "二楼的打印机没有墨粉了。",
    "她在音乐学院学了六年小提琴。",
    "水泥和沙子按二比三的比例混合。",
    "图书馆的电子书最长可以借三周。",
    "火山喷发可能导致航班中断好几天。",
    "他昨晚在网上交了电费。",
    "婚宴将在花园里举行。",
    "光合作用把光能转化为化学能。",
    "面包店的新鲜面包只卖到中午。",
    "本月利率保持不变。",
    "孩子们在海滩上堆了一座沙堡。",
    "请将药品存放在阴凉干燥处，避免阳光直射。",
    "马拉松路线经过老城区。",
    "科学家在雨林中发现了一种新的青蛙。",
    "会议改到了周四下午。",
    "爵士乐手在现场演出时经常即兴演奏。",
    "汽车每行驶一万公里应更换一次机油。",
    "这座古庙在地震后得到了修复。",
    "学生必须在周五之前提交论文。",
]


_ROWS = {lang: [i for i, text in enumerate(REFERENCE) if language(text) == lang] for lang in ("zh", "en")}


class Background:
    """Background vectors per knowledge base: its sample plus the reference passages (embedded once per
    embedding model). A sample is taken again when this process changed the base (``forget``) or after
    ``SAMPLE_TTL_S`` — not by counting its chunks on every search."""

    def __init__(self) -> None:
        self._samples: dict[str, tuple[float, np.ndarray]] = {}  # kb id → (taken at, vectors)
        self._references: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    async def vectors(self, models: ModelClient, db: str, kb: dict, index: KnowledgeIndex, lang: str
                      ) -> np.ndarray:
        model = kb["embedding_model"]
        references = self._references.get(model)
        if references is None:
            with models.acting_for(None):  # the server's own cost, not the first caller's
                references = (await models.embed(model, REFERENCE, "passage")).vectors
            self._references[model] = references
        reference = references[_ROWS[lang]]
        sample = await asyncio.to_thread(self._sample, db, kb, index)
        return np.vstack([sample, reference]) if len(sample) else reference

    def _sample(self, db: str, kb: dict, index: KnowledgeIndex) -> np.ndarray:
        with self._lock:
            cached = self._samples.get(kb["id"])
        now = time.monotonic()
        if cached is not None and now - cached[0] < SAMPLE_TTL_S:
            return cached[1]
        found = index.vectors(store.sample_chunk_ids(db, kb["id"], SAMPLE))
        matrix = np.asarray(list(found.values()), dtype=np.float32)
        with self._lock:
            self._samples[kb["id"]] = (now, matrix)
        return matrix

    def forget(self, kb_id: str) -> None:
        with self._lock:
            self._samples.pop(kb_id, None)
