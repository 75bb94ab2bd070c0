"""Annotation queues: traces picked by a filter, annotated one by one with the queue's score configs, and
exported as a JSONL dataset (chat-format ``messages`` ready for fine-tuning, plus the scores for evaluation)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import func, select

from temper.errors import InvalidRequest, NotFound
from temper.ids import new_id
from temper.ops.scores import DATA_TYPES, add_score, normalise, score_dict
from temper.ops.traces import TraceFilter, get_trace, readable
from temper.store.db import session
from temper.store.tables import DEFAULT_WORKSPACE, AnnotationItem, AnnotationQueue, ScoreRow, TraceRow, iso_utc

MAX_ITEMS = 10_000
ITEM_STATUSES = ("done", "skipped")
_UNSAFE_IN_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def _check_configs(configs: list[dict]) -> list[dict]:
    if not configs:
        raise InvalidRequest("A queue needs at least one score config ({name, data_type}).", param="score_configs",
                             code="no_score_configs")
    names = set()
    out = []
    for c in configs:
        name, data_type = c.get("name"), c.get("data_type")
        if not isinstance(name, str) or not 0 < len(name) <= 100 or name in names:
            raise InvalidRequest("Each score config needs a unique name of 1 to 100 characters.",
                                 param="score_configs", code="invalid_score_config_name")
        if data_type not in DATA_TYPES:
            raise InvalidRequest(f"Score config `{name}`: data_type must be one of {', '.join(DATA_TYPES)}.",
                                 param="score_configs",
                                 code="invalid_score_type", params={"name": name, "allowed": ", ".join(DATA_TYPES)})
        categories = c.get("categories")
        if data_type == "categorical" and (not isinstance(categories, list) or not categories
                                           or not all(isinstance(x, str) and x for x in categories)):
            raise InvalidRequest(f"Score config `{name}` is categorical: give its categories.", param="score_configs",
                                 code="missing_categories", params={"name": name})
        names.add(name)
        out.append({k: c[k] for k in ("name", "data_type", "categories", "min", "max", "description") if k in c})
    return out


def _counts(s: Any, queue_id: str) -> dict[str, int]:
    rows = dict(s.execute(select(AnnotationItem.status, func.count()).where(AnnotationItem.queue_id == queue_id)
                          .group_by(AnnotationItem.status)).all())
    return {"total": sum(rows.values()), "pending": rows.get("pending", 0), "done": rows.get("done", 0),
            "skipped": rows.get("skipped", 0)}


def _queue_dict(s: Any, q: AnnotationQueue) -> dict[str, Any]:
    return {"id": q.id, "object": "annotation_queue", "name": q.name, "description": q.description,
            "filters": q.filters, "score_configs": q.score_configs, "counts": _counts(s, q.id),
            "created_at": iso_utc(q.created_at)}


def _get(s: Any, queue_id: str, workspace_id: str) -> AnnotationQueue:
    q = s.get(AnnotationQueue, queue_id)
    if q is None or q.workspace_id != workspace_id:
        raise NotFound(f"No annotation queue with id {queue_id!r}.", param="queue_id", code="queue_not_found",
                       params={"queue_id": queue_id})
    return q


def create_queue(db: str, name: str, f: TraceFilter, score_configs: list[dict], *, description: str = "",
                 limit: int = 100, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """Snapshot the newest ``limit`` traces matching ``f`` into a queue, to be annotated oldest first."""
    if not name.strip():
        raise InvalidRequest("A queue needs a name.", param="name", code="missing_name")
    if not 0 < limit <= MAX_ITEMS:
        raise InvalidRequest(f"limit must be between 1 and {MAX_ITEMS}.", param="limit",
                             code="integer_out_of_range", params={"min": 1, "max": MAX_ITEMS})
    configs = _check_configs(score_configs)
    f.workspace_id = workspace_id
    with session(db) as s:
        ids = list(s.scalars(f.apply(select(TraceRow.trace_id)).order_by(TraceRow.start_us.desc()).limit(limit)))
        if not ids:
            raise InvalidRequest("No trace matches these filters: nothing to annotate.", param="filters",
                                 code="no_traces")
        q = AnnotationQueue(id=new_id("aq"), workspace_id=workspace_id, name=name.strip(), description=description,
                            filters=f.as_dict(), score_configs=configs)
        s.add(q)
        s.flush()
        s.add_all(AnnotationItem(id=new_id("aqi"), queue_id=q.id, trace_id=t, position=i)
                  for i, t in enumerate(reversed(ids)))
        s.flush()
        return _queue_dict(s, q)


def list_queues(db: str, workspace_id: str = DEFAULT_WORKSPACE) -> list[dict[str, Any]]:
    with session(db) as s:
        rows = s.scalars(select(AnnotationQueue).where(AnnotationQueue.workspace_id == workspace_id)
                         .order_by(AnnotationQueue.created_at.desc()))
        return [_queue_dict(s, q) for q in rows]


def get_queue(db: str, queue_id: str, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    with session(db) as s:
        return _queue_dict(s, _get(s, queue_id, workspace_id))


def delete_queue(db: str, queue_id: str, workspace_id: str = DEFAULT_WORKSPACE) -> None:
    """Delete the queue and its items; scores given through it stay on their traces."""
    with session(db) as s:
        q = _get(s, queue_id, workspace_id)
        s.query(AnnotationItem).filter(AnnotationItem.queue_id == q.id).delete()
        s.delete(q)


def _item_dict(i: AnnotationItem) -> dict[str, Any]:
    return {"id": i.id, "trace_id": i.trace_id, "position": i.position, "status": i.status,
            "annotated_by": i.annotated_by}


def next_item(db: str, queue_id: str, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """The first pending item with its trace, or ``item: None`` when the queue is finished."""
    with session(db) as s:
        _get(s, queue_id, workspace_id)
        item = s.scalars(select(AnnotationItem).where(AnnotationItem.queue_id == queue_id,
                                                      AnnotationItem.status == "pending")
                         .order_by(AnnotationItem.position).limit(1)).first()
        counts = _counts(s, queue_id)
    if item is None:
        return {"item": None, "trace": None, "counts": counts}
    return {"item": _item_dict(item), "trace": get_trace(db, item.trace_id), "counts": counts}


def submit(db: str, queue_id: str, item_id: str, status: str, scores: dict[str, Any], *, comment: str | None = None,
           author: str | None = None, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """Record the annotator's scores for one item (``done``) or pass over it (``skipped``)."""
    if status not in ITEM_STATUSES:
        raise InvalidRequest("status must be `done` or `skipped`.", param="status",
                             code="not_one_of", params={"allowed": "done, skipped"})
    with session(db) as s:
        q = _get(s, queue_id, workspace_id)
        item = s.get(AnnotationItem, item_id)
        if item is None or item.queue_id != queue_id:
            raise NotFound(f"Queue {queue_id} has no item {item_id!r}.", param="item_id", code="item_not_found",
                           params={"queue_id": queue_id, "item_id": item_id})
        configs = {c["name"]: c for c in q.score_configs}
        unknown = set(scores) - set(configs)
        if unknown:
            raise InvalidRequest(f"This queue does not score {', '.join(sorted(unknown))}; it scores "
                                 f"{', '.join(configs)}.", param="scores", code="unknown_scores",
                                 params={"unknown": ", ".join(sorted(unknown)), "scored": ", ".join(configs)})
        if status == "done" and not scores:
            raise InvalidRequest("Give at least one score, or skip the item.", param="scores", code="no_scores")
        for name, value in scores.items():  # check all before writing any
            normalise(name, value, configs[name]["data_type"], configs[name])
    for name, value in scores.items():
        add_score(db, item.trace_id, name, value, data_type=configs[name]["data_type"], source="human",
                  author=author, comment=comment, queue_id=queue_id, workspace_id=workspace_id, config=configs[name])
    with session(db) as s:
        item = s.get(AnnotationItem, item_id)
        item.status, item.annotated_by, item.done_at = status, author, datetime.now(timezone.utc)
        s.flush()
        return {"item": _item_dict(item), "counts": _counts(s, queue_id)}


def export_disposition(queue: dict[str, Any]) -> str:
    """The Content-Disposition of a queue's export: a file named after the queue (``Refusals 2.jsonl``), in
    RFC 6266 form: an ASCII ``filename`` for old clients and a UTF-8 ``filename*`` for names in any script."""
    name = _UNSAFE_IN_FILENAME.sub("_", queue["name"]).strip(" ._")[:120] or queue["id"]
    plain = re.sub(r"[^A-Za-z0-9 ._()-]+", "_", name).strip(" ._") or queue["id"]
    return f'attachment; filename="{plain}.jsonl"; filename*=UTF-8\'\'{quote(name + ".jsonl", safe="")}'


def _messages(raw_input: str | None, output: str | None) -> list[dict] | None:
    """The request's chat messages plus the answer: one fine-tuning example in the OpenAI chat format."""
    try:
        req = orjson.loads(raw_input) if raw_input else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(req, dict) or not isinstance(req.get("messages"), list):
        return None
    return [*req["messages"], {"role": "assistant", "content": output or ""}]


def export_dataset(db: str, queue_id: str, workspace_id: str = DEFAULT_WORKSPACE) -> Iterator[bytes]:
    """JSONL: one line per annotated (done) item, in queue order."""
    with session(db) as s:
        _get(s, queue_id, workspace_id)
        rows = s.execute(select(AnnotationItem, TraceRow).join(TraceRow, TraceRow.trace_id == AnnotationItem.trace_id)
                         .where(AnnotationItem.queue_id == queue_id, AnnotationItem.status == "done")
                         .order_by(AnnotationItem.position)).all()
        scores: dict[str, list[ScoreRow]] = {}
        for sc in s.scalars(select(ScoreRow).where(ScoreRow.queue_id == queue_id).order_by(ScoreRow.created_at)):
            scores.setdefault(sc.trace_id, []).append(sc)
    for item, trace in rows:
        given = [score_dict(x) for x in scores.get(trace.trace_id, [])]
        text_in, text_out = readable(trace)
        yield orjson.dumps({
            "trace_id": trace.trace_id, "model": trace.model, "input": text_in, "output": text_out,
            "messages": _messages(trace.raw_input, text_out),
            "scores": {x["name"]: x["value"] for x in given},
            "comment": next((x["comment"] for x in reversed(given) if x["comment"]), None),
            "annotated_by": item.annotated_by,
            "annotated_at": iso_utc(item.done_at) if item.done_at else None}) + b"\n"
