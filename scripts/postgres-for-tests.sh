#!/usr/bin/env bash
# Start a local PostgreSQL server with user/password sola and database sola_test, for the storage
# test (root on Debian/Ubuntu; CI uses it). Exits non-zero if it cannot.
set -euo pipefail
command -v pg_ctlcluster >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
for _ in $(seq 30); do su postgres -c "pg_isready -q" && break; sleep 1; done
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='sola'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE USER sola WITH PASSWORD 'sola'\""
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='sola_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O sola sola_test"
