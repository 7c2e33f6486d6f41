#!/usr/bin/env bash
# Shows that the test harness catches real durability bugs: builds the log with each deliberately broken
# behaviour switched on (compile-time flags; a normal build has none of them) and runs the tests that must
# then fail. Prints one line per broken build; exits 1 if any broken build passed its tests.
# Takes several minutes (one rebuild per flag, in .build-broken/).
set -uo pipefail
cd "$(dirname "$0")/.."
bash Tools/ensure-dependencies.sh
declare -A suites=(
    [WAL_BROKEN_NO_FDATASYNC]="PowerLossTests"
    [WAL_BROKEN_CONFIRM_BEFORE_SYNC]="PowerLossTests"
    [WAL_BROKEN_NO_DIRECTORY_SYNC]="PowerLossTests"
    [WAL_BROKEN_CUT_AT_FIRST_BAD_FRAME]="RecoveryTests|CorruptionSweepTests"
    [WAL_BROKEN_RETRY_FAILED_SYNC]="FailureTests"
    [WAL_BROKEN_CONFIRM_OUT_OF_ORDER]="CommitLedgerTests"
    [WAL_BROKEN_ASYNC_COMMITS_ON_CALLER]="CooperativePoolTests"
)
escaped=0
for flag in WAL_BROKEN_NO_FDATASYNC WAL_BROKEN_CONFIRM_BEFORE_SYNC WAL_BROKEN_NO_DIRECTORY_SYNC \
            WAL_BROKEN_CUT_AT_FIRST_BAD_FRAME WAL_BROKEN_RETRY_FAILED_SYNC WAL_BROKEN_CONFIRM_OUT_OF_ORDER \
            WAL_BROKEN_ASYNC_COMMITS_ON_CALLER; do
    log=".build-broken/$flag.log"
    mkdir -p .build-broken
    if swift test --scratch-path .build-broken -Xswiftc "-D$flag" --filter "${suites[$flag]}" > "$log" 2>&1; then
        echo "ESCAPED  $flag: ${suites[$flag]} passed (see $log)"
        escaped=1
    else
        issues=$(grep -c "recorded an issue" "$log")
        echo "caught   $flag: ${suites[$flag]} failed with $issues recorded issue(s)"
    fi
done
exit $escaped
