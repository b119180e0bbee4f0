#!/usr/bin/env bash
# Start the local PostgreSQL and Redis that the distributed mode and its tests use, if they are down.
# Loopback only. Prints what it found and what it did; exits 1 if a service could not be reached.
set -u
status=0

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "postgresql: up on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
  echo "postgresql: down, starting"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 20); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 -q && echo "postgresql: started" || { echo "postgresql: could not start"; status=1; }
else
  echo "postgresql: not installed here (apt-get install postgresql) — distributed tests will be skipped"
  status=1
fi

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "redis: up on 127.0.0.1:6379"
elif command -v redis-server >/dev/null 2>&1; then
  echo "redis: down, starting"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && echo "redis: started" || { echo "redis: could not start"; status=1; }
else
  echo "redis: not installed here (apt-get install redis-server) — distributed tests will be skipped"
  status=1
fi
exit $status
