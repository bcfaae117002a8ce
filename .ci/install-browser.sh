#!/bin/sh
# Install Debian's Chromium for the browser tests (pytest -m browser; Playwright drives
# /usr/bin/chromium via executable_path). Idempotent: does nothing when it is already there.
# Never run `playwright install`: no browser downloads outside the distribution's packages.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
/usr/bin/chromium --version
