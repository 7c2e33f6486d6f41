#!/usr/bin/env bash
# Builds the DocC documentation of every library product (the catalogs are Sources/*/*.docc) and fails on any
# warning: a broken symbol link, an undocumented parameter of a documented function.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0
for target in DurableQueue DurableQueueService DurableLog LogFormat; do
    out=$(swift package generate-documentation --target "$target" 2>&1) || { echo "$out"; exit 1; }
    if grep -qE "(^|: )warning" <<<"$out"; then
        echo "$out" | grep -A8 -E "(^|: )warning"
        echo "docs: $target has warnings"
        failed=1
    else
        echo "docs: $target built with no warnings"
    fi
done
exit $failed
