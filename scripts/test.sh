#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine (Python 3.11), then runs them:
# Debian's chromium for the browser test, a fresh virtual environment, the requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
    $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
fi
PYTHON=$(command -v python3.11 || command -v python3)
rm -rf .venv
"$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
exec .venv/bin/python -m pytest "$@"
