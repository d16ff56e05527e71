#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Python playwright (`playwright install` cannot download here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "[browser] /usr/bin/chromium is missing and we are not root: install it with 'sudo apt-get install -y chromium'" >&2
  exit 1
fi
echo "[browser] installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
