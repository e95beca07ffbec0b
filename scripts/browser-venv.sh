#!/usr/bin/env bash
# Ensures a Python venv with Selenium for the browser suite (idempotent: pip runs only when
# Selenium 4.20+ is missing). Uses Debian's python3 (python3-venv); PyPI is the only download.
# Usage: scripts/browser-venv.sh [VENV_DIR]   (default .build/browser-venv)
set -euo pipefail
venv="${1:-.build/browser-venv}"
have_selenium() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
import sys
import selenium
major, minor = (int(part) for part in selenium.__version__.split(".")[:2])
sys.exit(0 if (4, 20) <= (major, minor) < (5, 0) else 1)
PY
}
[ -x "$venv/bin/python" ] && have_selenium && exit 0
echo "Preparing $venv with Selenium from PyPI"
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'selenium>=4.20,<5'
have_selenium || { echo "Selenium 4.20+ still missing in $venv" >&2; exit 1; }
