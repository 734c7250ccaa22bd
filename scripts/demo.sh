#!/usr/bin/env bash
# Set up and run the portal with demo data on the embedded defaults (SQLite, eager Celery).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
if ! .venv/bin/python -c "import django, rest_framework" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
  touch .venv/.installed
fi
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py demo
exec .venv/bin/python manage.py runserver "${PORT:-127.0.0.1:8000}"
