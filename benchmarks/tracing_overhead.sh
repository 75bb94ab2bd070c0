#!/usr/bin/env bash
# Tracing overhead: the same Temper gateway with tracing off and on (span store, default settings) in one
# invocation of the shared harness (../shared/bench_gateway), alternating off, on, off, on, ... (ALTERNATIONS
# pairs, default 3) so that drift in the VM's speed hits both alike; each run has its own interleaved direct
# baseline. Extra arguments go to bench.py (e.g. --scenarios ns32 --n-c32 3000).
# Results: benchmarks/results/tracing-<date>/{summary.md,overhead.md}
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="${BENCH_GATEWAY_DIR:-$root/../shared/bench_gateway}"
out="$root/benchmarks/results/tracing-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
specs=()
for i in $(seq 1 "${ALTERNATIONS:-3}"); do
  for mode in off on; do
    flag=$([ "$mode" = on ] && echo true || echo false)
    cat > "$out/$mode-$i.json" <<JSON
{"name": "tracing-$mode-$i", "base_url": "http://127.0.0.1:8700/v1",
 "start_cmd": "exec $root/benchmarks/gateways/temper.sh", "api_key": "sk-bench-1234567890",
 "model": "mock-model", "ready_path": "/health", "env": {"TEMPER_TRACING": "$flag"}}
JSON
    specs+=(--gateway-file "$out/$mode-$i.json")
  done
done
cd "$harness"
python3 bench.py "${specs[@]}" --rounds 1 --out "$out" "$@"
python3 - "$out" <<'PY' | tee "$out/overhead.md"
"""Medians per mode over the alternations; overhead = on vs off (RPS also as a ratio to direct)."""
import json, statistics, sys
gateways = json.load(open(f"{sys.argv[1]}/results.json"))["gateways"]
rows: dict = {}
for name, g in gateways.items():
    mode = name.split("-")[1]
    for s in g["summary"]:
        key = (s["scenario"], s["concurrency"])
        r = rows.setdefault(key, {"off": [], "on": []})[mode]
        r.append((s["gw_rps"], s["gw_rps"] / s["direct_rps"], s["gw_cpu_ms_per_req"]))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print("| scenario | c | rps off | rps on | rps on/off | (rps/direct) on/off | CPU ms/req off | CPU ms/req on | CPU on/off |")
print("|---|---|---|---|---|---|---|---|---|")
for (scenario, c), r in sorted(rows.items()):
    off, on = r["off"], r["on"]
    print(f"| {scenario} | {c} | {med(off, 0):,.0f} | {med(on, 0):,.0f} | {med(on, 0) / med(off, 0):.3f} | "
          f"{med(on, 1) / med(off, 1):.3f} | {med(off, 2):.3f} | {med(on, 2):.3f} | {med(on, 2) / med(off, 2):.3f} |")
PY
echo "summary: $out/summary.md"
