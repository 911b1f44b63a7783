#!/bin/sh
# keepalived's track files on a database server, written when they change:
# - $1: this server's read_only, 0 on the writer (the writer alone may hold the pair's address);
# - $2: 1 while this server is the writer and no replica reads its binary log (the backup agent's reading does
#   not count), else 0. keepalived raises
#   such a lone writer's priority, so that a writer promoted while the old one hung outranks the old one
#   when it comes back still claiming the address, in the moment before its fence agent stops it.
# One client session asks every 0.2 s, so the address follows a promotion within a fraction of a second
# (a keepalived script runs at most once a second). A server that does not answer is neither. Runs as
# mysql through its socket account, beside the server.
set -u
role=$1 lone=$2 replication_user=${MARIADB_REPLICATION_USER:?}
while :; do
  while sleep 0.2; do
    echo "SELECT @@global.read_only, @@global.read_only = 0 AND NOT EXISTS (
            SELECT 1 FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = '$replication_user');"
  done \
    | mariadb --batch --skip-column-names --unbuffered 2>/dev/null \
    | { last_role="" last_lone=""
        while read -r read_only alone; do
          [ "$alone" = "$last_lone" ] || { echo "$alone" > "$lone"; last_lone=$alone; }
          [ "$read_only" = "$last_role" ] || { echo "$read_only" > "$role"; last_role=$read_only; }
        done; }
  echo 1 > "$role"
  echo 0 > "$lone"
  sleep 1
done
