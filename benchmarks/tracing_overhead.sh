#!/usr/bin/env bash
# Tracing overhead: the same Temper gateway with tracing off and on (span store, default settings), run one
# after the other in one invocation of the shared harness (../shared/bench_gateway), each with its own
# interleaved direct baseline. Extra arguments go to bench.py (e.g. --rounds 1 --n-c32 500).
# Results: benchmarks/results/tracing-<date>/summary.md
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="${BENCH_GATEWAY_DIR:-$root/../shared/bench_gateway}"
out="$root/benchmarks/results/tracing-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
for mode in off on; do
  flag=$([ "$mode" = on ] && echo true || echo false)
  cat > "$out/temper-$mode.json" <<JSON
{"name": "tracing-$mode", "base_url": "http://127.0.0.1:8700/v1", "start_cmd": "exec $root/benchmarks/gateways/temper.sh",
 "api_key": "sk-bench-1234567890", "model": "mock-model", "ready_path": "/health", "env": {"TEMPER_TRACING": "$flag"}}
JSON
done
cd "$harness"
python3 bench.py --gateway-file "$out/temper-off.json" --gateway-file "$out/temper-on.json" --out "$out" "$@"
python3 - "$out" <<'PY'
import json, sys
rows = json.load(open(f"{sys.argv[1]}/results.json"))
print(json.dumps(rows, indent=1)[:3000])
PY
echo "summary: $out/summary.md"
