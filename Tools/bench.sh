#!/usr/bin/env bash
# Runs the benchmark suite (release build): durable appends beside the disk's own ceiling.
# Extra arguments go to wal-bench (--help lists them), e.g. --json bench.json or --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/ensure-dependencies.sh
swift run -c release wal-bench "$@"
