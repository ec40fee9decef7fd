#!/usr/bin/env bash
# Installs CAMscope into ./.venv (Python 3.11) and starts the app on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/streamlit ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/streamlit run app.py "$@"
