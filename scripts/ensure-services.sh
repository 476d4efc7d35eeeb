#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis the test suite needs are up, and that the test
# database exists. Safe to run repeatedly. Connection settings: TEST_PG_* / TEST_REDIS_URL.
set -euo pipefail
PGHOST=${TEST_PG_HOST:-127.0.0.1}
PGPORT=${TEST_PG_PORT:-5432}
PGUSER=${TEST_PG_USER:-postgres}
PGDB=${TEST_PG_DB:-visiongate_test}
REDIS_PORT=${TEST_REDIS_PORT:-6379}

if ! pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
fi
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 1; done
fi
if ! psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -tAc "SELECT 1 FROM pg_database WHERE datname='$PGDB'" postgres | grep -q 1; then
  psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -qc "CREATE DATABASE $PGDB" postgres
fi
echo "PostgreSQL ($PGDB) and Redis are up"

# --------------------------------------------------------------------------- headless browser
# Browser-facing pages are tested in a real headless Chromium (tests/e2e/test_docs_page.py):
# Debian's chromium package, installed here when missing (CI runs as root).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium (headless browser for the page tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed and only root can install it: the page tests will be skipped"
  fi
fi
