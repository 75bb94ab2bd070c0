#!/usr/bin/env bash
# Start Temper for ../shared/bench_gateway: a fresh data dir, the mock as a remote model, a key with
# limits on (high enough not to trip), metering on. Run by bench.py with GATEWAY_PORT, MOCK_BASE_URL,
# BENCH_WORKDIR, BENCH_API_KEY and BENCH_MODEL exported. TEMPER_SRC runs another source tree (an older
# commit checked out elsewhere) with this checkout's virtual environment.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
src="${TEMPER_SRC:-$here}"
export TEMPER_HOME="$BENCH_WORKDIR/temper-home" TEMPER_PORT="$GATEWAY_PORT" TEMPER_LOG_LEVEL=warning
export PYTHONPATH="$src"
rm -rf "$TEMPER_HOME"
temper=("$here/.venv/bin/python" -m temper.cli.main)
"${temper[@]}" models add "$BENCH_MODEL" --base-url "$MOCK_BASE_URL" --input-price 0.5 --output-price 1.5 >/dev/null
"${temper[@]}" keys create --name bench --key "$BENCH_API_KEY" --rpm 10000000 --tpm 1000000000 >/dev/null
exec "${temper[@]}" serve
