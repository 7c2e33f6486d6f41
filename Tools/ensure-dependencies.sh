#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain: the system's LZ4 (Debian: liblz4-dev) and
# pkg-config, which SwiftPM uses to find it. With --test-tools, also fiu-utils (fiu-run), which one
# black-box fault-injection test uses (it is skipped where fiu-run is missing). Does nothing when all are present.
set -euo pipefail
packages=()
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists liblz4; then packages+=(liblz4-dev pkg-config); fi
if [ "${1:-}" = "--test-tools" ] && ! command -v fiu-run >/dev/null 2>&1; then packages+=(fiu-utils); fi
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing ${packages[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
pkg-config --exists liblz4
