#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain: the system's LZ4 (Debian: liblz4-dev) and
# pkg-config, which SwiftPM uses to find it. Does nothing when both are present.
set -euo pipefail
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists liblz4; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing liblz4-dev and pkg-config" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblz4-dev pkg-config >/dev/null
pkg-config --exists liblz4
