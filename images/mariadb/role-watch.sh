#!/bin/sh
# keepalived's track file on a database server ($1): this server's read_only, 0 on the writer, written
# when it changes. One client session asks every 0.2 s, so the pair's virtual address follows a promotion
# within a fraction of a second (a keepalived script runs at most once a second). A server that does not
# answer is not the writer. Runs as mysql through its socket account, beside the server.
set -u
file=$1
while :; do
  last=""
  while sleep 0.2; do echo 'SELECT @@global.read_only;'; done \
    | mariadb --batch --skip-column-names --unbuffered 2>/dev/null \
    | while read -r read_only; do
        [ "$read_only" = "$last" ] || { echo "$read_only" > "$file"; last=$read_only; }
      done
  echo 1 > "$file"
  sleep 1
done
