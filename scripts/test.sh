#!/usr/bin/env bash
# Set up everything the test suite needs, then run it (lint, format check, pytest on PostgreSQL).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/agent -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[test] %s\033[0m\n' "$*" >&2; }

# Debian packages the tests drive for real. Installed only when missing, and only as root.
DEB_PACKAGES=(postgresql postgresql-client redis-server openssh-server openssh-client
              qemu-utils qemu-system-x86 e2fsprogs dosfstools mtools ntfs-3g
              restic borgbackup time chromium fdisk gdisk exfatprogs exfat-fuse)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The virtualenv, with the package and its test extra.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then log "creating .venv"; "$PY" -m venv .venv; fi
if ! .venv/bin/python -c "import pytest_django, factory, django" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  log "installing the package with its test extra"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.installed
fi
export PATH="$PWD/.venv/bin:$PATH"

# PostgreSQL: DATABASE_URL when set, else a server on 127.0.0.1:5432, else install and start one.
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if [ -z "${DATABASE_URL:-}" ]; then
  if ! pg_up && command -v pg_ctlcluster >/dev/null; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    if [ -z "$version" ]; then
      version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
      pg_createcluster "$version" main >/dev/null
    fi
    log "starting PostgreSQL $version"
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql 2>/dev/null || true
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2; exit 1; }
  for u in postgres root; do
    if psql -h 127.0.0.1 -U "$u" -d postgres -Atc 'select 1' >/dev/null 2>&1; then
      export DATABASE_URL="postgres://$u@127.0.0.1:5432/postgres"; break
    fi
  done
  if [ -z "${DATABASE_URL:-}" ] && [ "$(id -u)" = 0 ]; then
    # A fresh Debian cluster wants a password on TCP: give the postgres role one.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  fi
  [ -n "${DATABASE_URL:-}" ] || { echo "cannot sign in to PostgreSQL on 127.0.0.1:5432" >&2; exit 1; }
fi

# Redis, the Celery broker of the end-to-end tests.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && command -v redis-server >/dev/null; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/test.log
  for _ in $(seq 20); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
export TEST_CELERY_BROKER_URL=${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}
mkdir -p /run/sshd 2>/dev/null || true

log "ruff check and format"
ruff check .
ruff format --check .

# TEST_CLOCK=HH:MM runs the suite as if the wall clock read HH:MM UTC today: every Python process
# of the run (pytest, the agents, the agent behind sshd, the Celery worker) moves its clock by
# the same offset through tests/support/wall_clock.py and keeps ticking. `TEST_CLOCK=00:30
# scripts/test.sh` proves nothing depends on the hour the suite runs at.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "import os; exec(open('$PWD/tests/support/wall_clock.py').read()) if os.environ.get('BDR_TEST_CLOCK_OFFSET') else None" \
  > "$site/bdr_test_clock.pth"
if [ -n "${TEST_CLOCK:-}" ]; then
  export BDR_TEST_CLOCK_OFFSET=$(( $(date -u -d "today ${TEST_CLOCK}" +%s) - $(date -u +%s) ))
  log "wall clock set to $(.venv/bin/python -c 'import datetime as d; print(f"{d.datetime.now(d.UTC):%F %H:%M}")') UTC"
fi

log "pytest on ${DATABASE_URL%%@*}@… "
set +e
pytest "$@"
status=$?
set -e
exit $status
