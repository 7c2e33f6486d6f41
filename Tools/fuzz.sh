#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz, a package of its own so the main build needs no fuzzer runtime)
# with -sanitize=fuzzer,address and runs each for SECONDS (default 60), starting from the committed corpus.
# A crash leaves its input as crash-* in the current directory; turn it into a unit test.
#   bash Tools/fuzz.sh [SECONDS] [TARGET...]      targets: fuzz-frame fuzz-recovery
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/ensure-dependencies.sh
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz-frame fuzz-recovery)
root=$(pwd)
(cd Tests/Fuzz && swift build -c release --scratch-path "$root/.build-fuzz" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld)
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    seeds="Tests/Fuzz/Corpus/${target#fuzz-}"
    echo "== $target for ${seconds}s (seed corpus $seeds)"
    SWIFT_BACKTRACE=enable=no ".build-fuzz/release/$target" -max_total_time="$seconds" -rss_limit_mb=4096 \
        -max_len=61440 -print_final_stats=1 "$corpus" "$seeds" 2>&1 | grep -E "^Done|stat::number_of_executed_units|ERROR|SUMMARY|crash-" || true
    rm -rf "$corpus"
done
