#!/usr/bin/env bash
# tests/test_proxy_browser.py serves the studio through Debian's nginx under a PAI-DSW-like sub-path (the test starts
# and stops its own nginx on a free loopback port; nothing here starts a service). Without nginx that test is skipped.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "[proxy] nginx is missing and we are not root: 'sudo apt-get install -y nginx' (the proxy test is skipped)" >&2
  exit 0
fi
echo "[proxy] installing Debian's nginx"
export DEBIAN_FRONTEND=noninteractive
# The package would start nginx on port 80 where services may start: a policy-rc.d saying no, unless one is there.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx >/dev/null
