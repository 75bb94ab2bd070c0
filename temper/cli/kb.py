"""``temper kb create|list|add|status|search|ask|retry|delete``: knowledge bases on a running server."""
from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from temper.cli.client import Client
from temper.cli.common import clean_errors, console, err, table
from temper.config import get_settings
from temper.errors import InvalidRequest
from temper.plugins import parser_registry, plugin_manager

app = typer.Typer(no_args_is_help=True)
UPLOAD_BATCH_FILES = 32
UPLOAD_BATCH_BYTES = 32 * 1024 * 1024
URL = typer.Option(None, "--server", help="Server base URL (default TEMPER_URL or http://TEMPER_HOST:TEMPER_PORT).")


def _kb(client: Client, name_or_id: str) -> dict[str, Any]:
    """A knowledge base by name or id."""
    named = client.request("GET", "/api/v1/knowledge-bases", params={"name": name_or_id})["data"]
    for kb in named:
        if kb["name"] == name_or_id:
            return kb
    if name_or_id.startswith("kb_"):
        return client.request("GET", f"/api/v1/knowledge-bases/{name_or_id}")
    raise InvalidRequest(f"No knowledge base named or with id {name_or_id!r}; see `temper kb list`.")


def _metadata(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values that read as JSON numbers or booleans become those."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise InvalidRequest(f"--meta takes key=value, not {pair!r}.")
        try:
            value = json.loads(v)
            out[k.strip()] = value if isinstance(value, (int, float, bool)) else v
        except ValueError:
            out[k.strip()] = v
    return out


@app.command()
@clean_errors
def create(name: str = typer.Argument(..., help="Any script: 客服知识库, product-docs, ..."),
           description: str = typer.Option("", help="What it holds."),
           embedding_model: str = typer.Option("multilingual-e5-small", help="An embedding model of the plaza."),
           strategy: str = typer.Option("structure", help="Chunking: structure, fixed or parent_child."),
           chunk_tokens: int = typer.Option(350, help="Target tokens of a searched chunk (at most 480)."),
           answer_model: str = typer.Option(None, help="The chat model that writes answers."),
           server: str = URL) -> None:
    """Create a knowledge base."""
    config: dict[str, Any] = {"chunking": {"strategy": strategy, "chunk_tokens": chunk_tokens}}
    if answer_model:
        config["answer"] = {"model": answer_model}
    kb = Client(server).request("POST", "/api/v1/knowledge-bases", json={
        "name": name, "description": description, "embedding_model": embedding_model, "config": config})
    console.print(f"created [bold]{escape(kb['name'])}[/bold] ({kb['id']})")


@app.command("list")
@clean_errors
def list_(server: str = URL) -> None:
    """Knowledge bases with their documents and chunks."""
    t = table("id", "name", "documents", "indexed", "failed", "chunks", "embedding model")
    for kb in Client(server).pages("/api/v1/knowledge-bases"):
        d = kb["documents"]
        t.add_row(kb["id"], escape(kb["name"]), str(d["total"]), str(d["indexed"]),
                  f"[red]{d['failed']}[/red]" if d["failed"] else "0", str(kb["chunks"]), kb["embedding_model"])
    console.print(t)


def _files(paths: list[Path], extensions: set[str]) -> list[tuple[Path, str]]:
    """(file, name kept in the knowledge base): folders are walked, unsupported files skipped."""
    out: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in extensions and not f.name.startswith("."):
                    out.append((f, f"{p.name}/{f.relative_to(p).as_posix()}"))
        elif p.is_file():
            out.append((p, p.name))
        else:
            raise InvalidRequest(f"{p}: no such file or folder.")
    return out


def _batches(files: list[tuple[Path, str]]) -> list[list[tuple[Path, str]]]:
    batches: list[list[tuple[Path, str]]] = [[]]
    size = 0
    for f in files:
        n = f[0].stat().st_size
        if batches[-1] and (len(batches[-1]) >= UPLOAD_BATCH_FILES or size + n > UPLOAD_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(f)
        size += n
    return batches


@app.command()
@clean_errors
def add(kb: str = typer.Argument(..., help="Knowledge base name or id."),
        paths: list[Path] = typer.Argument(None, help="Files and folders (walked for supported files)."),
        url: list[str] = typer.Option(None, "--url", help="A web page to fetch (repeatable; the server's "
                                      "TEMPER_KB_URL_ALLOW must allow its host)."),
        meta: list[str] = typer.Option(None, "--meta", help="key=value metadata for every document (repeatable)."),
        db_url: str = typer.Option(None, "--db-url", help="A database to sync rows from (SQLAlchemy URL); with "
                                   "--query and --key-column."),
        query: str = typer.Option(None, "--query", help="The SELECT whose rows become documents."),
        key_column: str = typer.Option(None, "--key-column", help="Unique, increasing column (the sync cursor)."),
        title_column: str = typer.Option(None, "--title-column", help="Column used as each document's title."),
        group_by: str = typer.Option(None, "--group-by", help="One document per value of this column."),
        name: str = typer.Option(None, "--name", help="Name of the database source (default: the table's)."),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow ingestion with a progress bar."),
        server: str = URL) -> None:
    """Add files, folders and web pages; unchanged files are skipped. Shows ingestion progress."""
    client = Client(server)
    target = _kb(client, kb)
    metadata = _metadata(meta)
    files = _files(paths or [], set(parser_registry(plugin_manager(), get_settings()).extensions()))
    if not files and not url and not db_url:
        raise InvalidRequest("Nothing to add: give files, folders, --url or --db-url.")
    jobs, queued, skipped = [], 0, 0
    with Progress(TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task("upload", total=len(files))
        for batch in _batches(files) if files else []:
            handles = [("files", (name, path.read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream"))
                       for path, name in batch]
            got = client.request("POST", f"/api/v1/knowledge-bases/{target['id']}/documents", files=handles,
                                 data={"metadata": orjson.dumps(metadata).decode()})
            jobs.append(got["job"])
            queued, skipped = queued + len(got["documents"]), skipped + len(got["skipped"])
            bar.advance(task, len(batch))
    if url:
        got = client.request("POST", f"/api/v1/knowledge-bases/{target['id']}/documents/urls",
                             json={"urls": url, "metadata": metadata})
        jobs.append(got["job"])
        queued += len(got["documents"])
    if db_url:
        if not (query and key_column):
            raise InvalidRequest("--db-url needs --query and --key-column.")
        got = client.request("POST", f"/api/v1/knowledge-bases/{target['id']}/sources", json={
            "name": name or _table_name(query), "url": db_url, "query": query, "key_column": key_column,
            "title_column": title_column, "group_by": group_by, "metadata": metadata})
        jobs.append(got["job"])
        console.print(f"database source {escape(got['name'])} ({got['id']}): syncing")
    console.print(f"{queued} queued, {skipped} unchanged (skipped)")
    jobs = [j for j in jobs if j]
    if wait and jobs:
        _follow(client, [j["id"] for j in jobs])
        _failures(client, target["id"])


def _table_name(query: str) -> str:
    words = query.replace(",", " ").split()
    lowered = [w.lower() for w in words]
    return words[lowered.index("from") + 1].strip('"`[]') if "from" in lowered[:-1] else "database"


@app.command()
@clean_errors
def sync(kb: str = typer.Argument(..., help="Knowledge base name or id."),
         source: str = typer.Argument(..., help="Database source name or id (see `temper kb status`)."),
         wait: bool = typer.Option(True, "--wait/--no-wait"), server: str = URL) -> None:
    """Sync a database source again: only rows with a key above the last one synced are read."""
    client = Client(server)
    target = _kb(client, kb)
    found = [s for s in client.request("GET", f"/api/v1/knowledge-bases/{target['id']}/sources")["data"]
             if source in (s["id"], s["name"])]
    if not found:
        raise InvalidRequest(f"No source named or with id {source!r} in {target['name']}.")
    got = client.request("POST", f"/api/v1/knowledge-bases/{target['id']}/sources/{found[0]['id']}/sync")
    if wait:
        _follow(client, [got["job"]["id"]])
        _failures(client, target["id"])


def _follow(client: Client, job_ids: list[str]) -> None:
    """Progress bars until every job has finished."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=err) as bar:
        tasks = {j: bar.add_task(f"ingest {i + 1}/{len(job_ids)}", total=None, note="queued")
                 for i, j in enumerate(job_ids)}
        pending = set(job_ids)
        while pending:
            for job_id in sorted(pending):
                job = client.request("GET", f"/api/v1/jobs/{job_id}")
                bar.update(tasks[job_id], completed=job["done"], total=job["total"] or None,
                           note=escape(job["error"] or job["message"] or ""))
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    pending.discard(job_id)
                    if job["status"] != "succeeded":
                        err.print(f"[red]{job['status']}:[/red] {escape(job['error'] or job['message'] or '')}")
            time.sleep(0.3)


def _failures(client: Client, kb_id: str) -> None:
    failed = client.request("GET", f"/api/v1/knowledge-bases/{kb_id}/documents", params={"status": "failed"})["data"]
    if failed:
        t = table("document", "source", "error", title=f"{len(failed)} failed (retry with `temper kb retry`)")
        for d in failed:
            t.add_row(d["id"], escape(d["source"]), f"[red]{escape(d['error'] or '')}[/red]")
        console.print(t)


@app.command()
@clean_errors
def status(kb: str = typer.Argument(..., help="Knowledge base name or id."),
           failed: bool = typer.Option(False, "--failed", help="Only failed documents."),
           limit: int = typer.Option(50, min=1, max=1000, help="Documents to list."),
           server: str = URL) -> None:
    """Documents with their status, chunks and errors, and the latest ingestion jobs."""
    client = Client(server)
    target = client.request("GET", f"/api/v1/knowledge-bases/{_kb(client, kb)['id']}")
    d = target["documents"]
    console.print(f"[bold]{escape(target['name'])}[/bold] ({target['id']}): {d['total']} documents — {d['indexed']} "
                  f"indexed, {d['queued'] + d['processing']} in progress, {d['failed']} failed; "
                  f"{target['chunks']} chunks ({target['indexed_chunks']} in the index)")
    for src in client.request("GET", f"/api/v1/knowledge-bases/{target['id']}/sources")["data"]:
        console.print(f"  source {escape(src['name'])} ({src['id']}, {src['kind']}): {src['documents']} documents, "
                      f"synced up to {src['cursor']!r} at {src['synced_at'] or 'never'}")
    for job in target["jobs"]:
        console.print(f"  job {job['id']}: {job['status']} {job['percent']}% — {escape(job['error'] or job['message'])}")
    docs = client.request("GET", f"/api/v1/knowledge-bases/{target['id']}/documents",
                          params={"limit": limit, **({"status": "failed"} if failed else {})})["data"]
    t = table("document", "source", "title", "status", "chunks", "tokens", "error")
    colour = {"indexed": "green", "failed": "red", "processing": "yellow", "queued": "dim"}
    for doc in docs:
        t.add_row(doc["id"], escape(doc["source"]), escape(doc["title"]),
                  f"[{colour[doc['status']]}]{doc['status']}[/]", str(doc["chunks"]), str(doc["tokens"]),
                  escape(doc["error"] or ""))
    console.print(t)


def _where(hit: dict[str, Any]) -> str:
    where = " › ".join([hit["source"], *hit["section"]])
    return where + (f" p.{hit['page']}" if hit["page"] is not None else "")


@app.command()
@clean_errors
def search(kb: str = typer.Argument(..., help="Knowledge base name or id."),
           query: str = typer.Argument(...),
           top_k: int = typer.Option(5, min=1, max=100),
           mode: str = typer.Option(None, help="hybrid, dense or keyword (default: the knowledge base's)."),
           rerank: bool = typer.Option(None, "--rerank/--no-rerank", help="Default: the knowledge base's."),
           filter: str = typer.Option(None, "--filter", help='Metadata filter as JSON: {"dept": "sales"}.'),
           server: str = URL) -> None:
    """Retrieve chunks: which retrievers found each one, at what rank, and the final score."""
    client = Client(server)
    retrieval: dict[str, Any] = {k: v for k, v in (("mode", mode), ("rerank", rerank)) if v is not None}
    body: dict[str, Any] = {"query": query, "top_k": top_k, "retrieval": retrieval or None}
    if filter:
        try:
            body["filter"] = json.loads(filter)
        except ValueError:
            raise InvalidRequest("--filter must be a JSON object.") from None
    got = client.request("POST", f"/api/v1/knowledge-bases/{_kb(client, kb)['id']}/retrieve", json=body)
    t = table("#", "relevance", "found by", "where", "text")
    for n, h in enumerate(got["data"], 1):
        found = " ".join(f"{name}#{r['rank']}" for name, r in h["retrievers"].items())
        t.add_row(str(n), f"{h['relevance']:.3f}", found, escape(_where(h)), escape(" ".join(h["text"].split())[:160]))
    console.print(t)


@app.command()
@clean_errors
def ask(kb: str = typer.Argument(..., help="Knowledge base name or id."),
        question: str = typer.Argument(...),
        model: str = typer.Option(None, help="The chat model (default: the knowledge base's)."),
        server: str = URL) -> None:
    """Ask a question: the answer streams in, then the sources it cites; refuses when the documents don't say."""
    client = Client(server)
    body: dict[str, Any] = {"question": question, "stream": True, "answer": {"model": model} if model else None}
    final: dict[str, Any] = {}
    with client.stream("POST", f"/api/v1/knowledge-bases/{_kb(client, kb)['id']}/answer", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                raise InvalidRequest(event["error"]["message"])
            if event["type"] == "delta":
                console.print(event["text"], end="", highlight=False, markup=False)
            elif event["type"] == "answer":
                final = event
    if final.get("refused"):
        console.print(final["answer"], highlight=False, markup=False)
        err.print(f"[dim]refused: {final['refusal_reason']}[/dim]")
        return
    console.print()
    for s in final.get("citations") or final.get("sources") or []:
        console.print(f"[dim][{s['n']}] {escape(_where(s))} (chunk {s['chunk_id']})[/dim]")


@app.command()
@clean_errors
def retry(kb: str = typer.Argument(..., help="Knowledge base name or id."),
          wait: bool = typer.Option(True, "--wait/--no-wait"), server: str = URL) -> None:
    """Ingest the failed documents again."""
    client = Client(server)
    target = _kb(client, kb)
    got = client.request("POST", f"/api/v1/knowledge-bases/{target['id']}/documents/retry", json={})
    console.print(f"{len(got['documents'])} queued again")
    if wait and got["job"]:
        _follow(client, [got["job"]["id"]])
        _failures(client, target["id"])


@app.command()
@clean_errors
def delete(kb: str = typer.Argument(..., help="Knowledge base name or id."),
           document: str = typer.Argument(None, help="Only this document (id); else the whole knowledge base."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
           server: str = URL) -> None:
    """Delete a document, or a whole knowledge base, from the database and every index."""
    client = Client(server)
    target = _kb(client, kb)
    what = f"document {document}" if document else f"knowledge base {target['name']} and its documents"
    if not yes and not typer.confirm(f"Delete {what}?"):
        raise typer.Exit(1)
    path = f"/api/v1/knowledge-bases/{target['id']}" + (f"/documents/{document}" if document else "")
    client.request("DELETE", path)
    console.print(f"deleted {escape(what)}")


def _chunks_by_file(client: Client, kb_id: str) -> dict[str, list[str]]:
    """Every searchable chunk's text, by its document's file base name (what relevance is judged on)."""
    out: dict[str, list[str]] = {}
    offset = 0
    while True:
        page = client.request("GET", f"/api/v1/knowledge-bases/{kb_id}/documents", params={"limit": 500, "offset": offset})
        for doc in page["data"]:
            chunks = client.request("GET", f"/api/v1/knowledge-bases/{kb_id}/documents/{doc['id']}/chunks",
                                    params={"limit": 2000})["data"]
            out.setdefault(doc["source"].rsplit("/", 1)[-1], []).extend(c["text"] for c in chunks if c["role"] == "chunk")
        if not page["has_more"]:
            return out
        offset += len(page["data"])


@app.command("eval")
@clean_errors
def eval_(kb: str = typer.Argument(..., help="Knowledge base name or id."),
          questions: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL: {question, answerable, "
                                           "gold: [{file, evidence}]} per line (see docs/knowledge.md)."),
          k: int = typer.Option(10, min=1, max=100, help="Results judged per question."),
          output: Path = typer.Option(None, "--json", help="Also write every figure (and per-question scores) here."),
          server: str = URL) -> None:
    """Retrieval quality over labelled questions: recall@1/5/k, MRR and nDCG for keyword, dense, hybrid and
    hybrid + rerank in one table, and how the refusal floor splits answerable from unanswerable questions."""
    from statistics import median

    from temper.knowledge.answer import floor
    from temper.knowledge.config import parse
    from temper.knowledge.evaluation import CONFIGS, Judged, aggregate, is_relevant, refusal_table

    client = Client(server)
    target = _kb(client, kb)
    items = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = [q for q in items if q.get("answerable", True)]
    if not answerable:
        raise InvalidRequest(f"{questions} has no answerable questions.")
    chunks = _chunks_by_file(client, target["id"])
    judged: dict[str, list[Judged]] = {name: [] for name in CONFIGS}
    latency: dict[str, list[float]] = {name: [] for name in CONFIGS}
    top: dict[str, float] = {}
    path = f"/api/v1/knowledge-bases/{target['id']}/retrieve"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("evaluating", total=len(items) * len(CONFIGS))
        for q in items:
            n_relevant = sum(is_relevant(f, text, q["gold"]) for f, texts in chunks.items() for text in texts)
            for name, config in CONFIGS.items():
                t0 = time.perf_counter()
                hits = client.request("POST", path, json={"query": q["question"], "top_k": k, "retrieval": config})["data"]
                latency[name].append((time.perf_counter() - t0) * 1000)
                if name == "hybrid + rerank":
                    top[q["id"]] = max((h["relevance"] for h in hits), default=float("-inf"))
                if q.get("answerable", True):
                    relevance = [is_relevant(h["source"].rsplit("/", 1)[-1], h["text"], q["gold"]) for h in hits]
                    judged[name].append(Judged(relevance, max(n_relevant, sum(relevance))))
                bar.advance(task)
    results = {name: {**aggregate(j, (1, 5, k), k), "p50_ms": median(latency[name])} for name, j in judged.items()}
    t = table("configuration", "recall@1", "recall@5", f"recall@{k}", f"MRR@{k}", f"nDCG@{k}", "p50 ms",
              title=f"{escape(target['name'])}: {len(answerable)} answerable questions")
    for name, m in results.items():
        t.add_row(name, *(f"{m[c]:.3f}" for c in ("recall@1", "recall@5", f"recall@{k}", f"mrr@{k}", f"ndcg@{k}")),
                  f"{m['p50_ms']:.1f}")
    console.print(t)
    report: dict[str, Any] = {"kb": target["name"], "questions": len(items), "answerable": len(answerable),
                              "k": k, "configurations": results, "top_scores": top}
    unanswerable = [q for q in items if not q.get("answerable", True)]
    if unanswerable:
        cfg = parse(target["config"])
        current = floor(cfg.retrieval.model_copy(update={"rerank": True}), cfg.answer)
        rows = refusal_table([top[q["id"]] for q in answerable], [top[q["id"]] for q in unanswerable])
        t = table("refusal floor", "unanswerable refused", "answerable refused",
                  title=f"refusals over {len(unanswerable)} unanswerable questions (current floor: {current})")
        for r in rows:
            mark = " ←" if current is not None and abs(r["floor"] - current) < 1e-9 else ""
            t.add_row(f"{r['floor']}{mark}", f"{r['refused_unanswerable']:.0%}", f"{r['refused_answerable']:.0%}")
        console.print(t)
        report["refusals"] = rows
    if output:
        output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
