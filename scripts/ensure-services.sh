#!/usr/bin/env bash
# Under CI, make sure the PostgreSQL server the store tests use is up (it is on this machine
# kind, but may have stopped). Outside CI the PostgreSQL tests skip with a stated reason.
set -u
[ -n "${CI:-}" ] || exit 0
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
else
  (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null 2>&1 || true
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
