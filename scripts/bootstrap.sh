# Sourced by scripts/serve and scripts/test: a virtualenv with requirements.txt installed
# (scripts/test sets REQUIREMENTS=requirements-test.txt first: the same, and the test tools).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
REQUIREMENTS="${REQUIREMENTS:-requirements.txt}"
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)  # (test's file includes the other)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
