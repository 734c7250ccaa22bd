#!/usr/bin/env bash
# Run the portal under gunicorn with portal/gunicorn_conf.py (README: "Running the portal").
# Extra arguments go to gunicorn, e.g. `scripts/serve.sh -b 127.0.0.1:8001`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/gunicorn -c python:portal.gunicorn_conf "$@" portal.wsgi
