#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain: the system's LZ4 (Debian: liblz4-dev), the
# system's SQLite (libsqlite3-dev; the benchmark runs it side by side) and pkg-config, which SwiftPM uses to
# find both. With --test-tools, also python3 (Tools/doc-coverage.py, run by Tools/docs.sh) and tries fiu-utils (fiu-run) for one
# black-box fault-injection test, which is skipped where fiu-run is missing, and etcd (Debian: etcd-server), which
# CoordinationTests start privately on loopback (they fail without it; the system's etcd service is never used).
# Does nothing when all are present.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
updated=0
install() {
    [ $updated -eq 1 ] || { $SUDO apt-get update -qq; updated=1; }
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists liblz4 || ! pkg-config --exists sqlite3; then
    echo "installing liblz4-dev, libsqlite3-dev and pkg-config" >&2
    install liblz4-dev libsqlite3-dev pkg-config
    pkg-config --exists liblz4
    pkg-config --exists sqlite3
fi
if [ "${1:-}" = "--test-tools" ] && ! command -v python3 >/dev/null 2>&1; then
    echo "installing python3" >&2
    install python3
fi
if [ "${1:-}" = "--test-tools" ] && ! command -v etcd >/dev/null 2>&1; then
    echo "installing etcd-server" >&2
    install etcd-server
    command -v etcd >/dev/null
fi
if [ "${1:-}" = "--test-tools" ] && ! command -v fiu-run >/dev/null 2>&1; then
    echo "installing fiu-utils (optional)" >&2
    install fiu-utils || echo "fiu-utils not installed: its test will be skipped" >&2
fi
