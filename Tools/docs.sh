#!/usr/bin/env bash
# Builds the DocC documentation of every library product (the catalogs are Sources/*/*.docc) and fails on any
# warning (a broken symbol link, an undocumented parameter of a documented function) or on a public symbol with
# no doc comment (Tools/doc-coverage.py over the symbol graphs: DocC itself does not warn about those).
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0
libraries=(DurableQueue DurableQueueService DurableLog LogFormat Coordination ReplicatedQueue)
for target in "${libraries[@]}"; do
    out=$(swift package generate-documentation --target "$target" 2>&1) || { echo "$out"; exit 1; }
    # SwiftPM's warning about files a dependency's own manifest leaves unhandled (swift-distributed-tracing, under
    # async-http-client, ships CMakeLists.txt files) is that package's to fix, not a documentation warning.
    out=$(grep -vE "^warning: '[^']+': found [0-9]+ file\(s\) which are unhandled" <<<"$out" || true)
    if grep -qE "(^|: )warning" <<<"$out"; then
        echo "$out" | grep -A8 -E "(^|: )warning"
        echo "docs: $target has warnings"
        failed=1
    else
        echo "docs: $target built with no warnings"
    fi
done
# The symbol graphs are dumped for every module, tests included, which must be built first.
swift build --build-tests >/dev/null
swift package dump-symbol-graph --minimum-access-level public >/dev/null
graphs=$(swift build --show-bin-path)/../symbolgraph
python3 Tools/doc-coverage.py "$graphs" "${libraries[@]}" || failed=1
exit $failed
