#!/usr/bin/env bash
# Services and system packages the tests need, on a fresh machine: headless Chromium
# (explanation page, query page) and Virtuoso (external store test, 127.0.0.1 only).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v virtuoso-t >/dev/null || need+=(virtuoso-opensource)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# A database folder of this checkout's own, so no lock or data from an earlier run is reused.
VIRTUOSO_DIR="$PWD/.cache/virtuoso" scripts/virtuoso.sh   # 127.0.0.1:8891
