#!/usr/bin/env bash
# Gateway overhead, side by side with the shared harness (../shared/bench_gateway): Temper, the
# FastAPI+httpx yardstick and the stdlib floor, each against the same mock upstream with an
# interleaved direct baseline. Extra arguments go to bench.py (e.g. --rounds 1 --n-c32 500).
# BEFORE=<git revision> also runs that revision of Temper (a worktree in /tmp, this venv) in the same run.
# Results: benchmarks/results/gateway-<date>/summary.md
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="${BENCH_GATEWAY_DIR:-$root/../shared/bench_gateway}"
out="$root/benchmarks/results/gateway-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cat > "$out/temper.json" <<JSON
{"name": "temper", "base_url": "http://127.0.0.1:8700/v1", "start_cmd": "exec $root/benchmarks/gateways/temper.sh",
 "api_key": "sk-bench-1234567890", "model": "mock-model", "ready_path": "/health"}
JSON
specs=(--gateway-file "$out/temper.json")
if [ -n "${BEFORE:-}" ]; then
  before="/tmp/temper-before-$BEFORE"
  [ -d "$before" ] || git -C "$root" worktree add --detach "$before" "$BEFORE" >/dev/null
  cat > "$out/temper-before.json" <<JSON
{"name": "temper-$BEFORE", "base_url": "http://127.0.0.1:8700/v1",
 "start_cmd": "TEMPER_SRC=$before exec $root/benchmarks/gateways/temper.sh",
 "api_key": "sk-bench-1234567890", "model": "mock-model", "ready_path": "/health"}
JSON
  specs+=(--gateway-file "$out/temper-before.json")
fi
if [ -z "${TEMPER_ONLY:-}" ]; then
  specs+=(--gateway-file "$harness/gateways/ref_asgi.json" --gateway-file "$harness/gateways/ref.json")
fi
cd "$harness"
python3 bench.py "${specs[@]}" --out "$out" "$@"
echo "summary: $out/summary.md"
