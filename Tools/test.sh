#!/usr/bin/env bash
# Runs the whole default test suite (unit, recovery, failure-injection and kill -9 crash tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/ensure-dependencies.sh --test-tools
swift test "$@"
