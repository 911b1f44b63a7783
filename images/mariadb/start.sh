#!/bin/bash
# First start: create the system tables, the application database and the accounts (each reachable over
# TLS only, as the server requires of every connection from the network), with binary logging
# off so that none of it is replicated: both servers start identical, and the one the monitor makes a
# replica follows the writer from the writer's first GTID.
set -euo pipefail

: "${MARIADB_ROOT_PASSWORD:?}" "${MARIADB_DATABASE:?}" "${MARIADB_USER:?}" "${MARIADB_PASSWORD:?}"
: "${MARIADB_REPLICATION_USER:?}" "${MARIADB_REPLICATION_PASSWORD:?}" "${MARIADB_MONITOR_USER:?}" "${MARIADB_MONITOR_PASSWORD:?}"

sql_string() { printf "'%s'" "${1//\'/\'\'}"; }

initialised=/var/lib/mysql/.openmrs-cluster-initialised
if [ -d /var/lib/mysql/mysql ] && [ ! -f "$initialised" ]; then
  echo "/var/lib/mysql holds a first start that did not finish; remove the volume to start again" >&2
  exit 1
fi

if [ ! -f "$initialised" ]; then
  echo "initialising the data directory"
  # The mysql OS user gets a password-less socket account, for the health check and for operators.
  mariadb-install-db --skip-test-db --datadir=/var/lib/mysql \
    --auth-root-authentication-method=socket --auth-root-socket-user=mysql >/dev/null
  socket=/run/mysqld/init.sock
  mariadbd --skip-networking --skip-log-bin --skip-slave-start --socket="$socket" &
  pid=$!
  for _ in $(seq 60); do mariadb-admin --socket="$socket" ping >/dev/null 2>&1 && break; sleep 1; done

  mariadb --socket="$socket" <<SQL
ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($(sql_string "$MARIADB_ROOT_PASSWORD"));
CREATE DATABASE \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD") REQUIRE SSL;
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO $(sql_string "$MARIADB_USER")@'%';
CREATE USER $(sql_string "$MARIADB_REPLICATION_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_REPLICATION_PASSWORD") REQUIRE SSL;
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO $(sql_string "$MARIADB_REPLICATION_USER")@'%';
CREATE USER $(sql_string "$MARIADB_MONITOR_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_MONITOR_PASSWORD") REQUIRE SSL;
GRANT READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR, BINLOG MONITOR, RELOAD ON *.* TO $(sql_string "$MARIADB_MONITOR_USER")@'%';
SQL
  mariadb-admin --socket="$socket" shutdown
  wait "$pid"
  touch "$initialised"
fi

# The server runs as this shell's child, not in its place: the fence agent's SIGKILL must reach it, and
# a container's first process cannot be killed from inside. Its end ends the container, which its restart
# policy starts again: read-only, with keepalived, the role watcher and the fence agent anew.
mariadbd &
server=$!
# An account made again at every start (its password may have changed), once the server answers, on this
# server alone (not replicated), for one address only, over TLS only, with the privileges it names and nothing
# else: own_account <user> <address> <password> <privileges> [<resource options>].
own_account() {
  (
    for _ in $(seq 300); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 1; done
    account="$(sql_string "$1")@$(sql_string "$2")"
    mariadb <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS $account IDENTIFIED BY $(sql_string "$3") REQUIRE SSL;
ALTER USER $account IDENTIFIED BY $(sql_string "$3") REQUIRE SSL ${5:-};
GRANT $4 ON *.* TO $account;
SQL
  ) &
}
# With backups, the agent's: what mariabackup and reading the binary log need.
if [ -n "${MARIADB_BACKUP_PASSWORD:-}" ]; then
  own_account backup "${MARIADB_BACKUP_HOST:?}" "$MARIADB_BACKUP_PASSWORD" \
    "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, REPLICATION SLAVE"
fi
# With monitoring, the metrics exporter's: the server's status, its replication's and InnoDB's (no data), with
# at most 3 connections.
if [ -n "${MARIADB_EXPORTER_PASSWORD:-}" ]; then
  own_account exporter "${MARIADB_EXPORTER_HOST:?}" "$MARIADB_EXPORTER_PASSWORD" \
    "PROCESS, SLAVE MONITOR, BINLOG MONITOR" "WITH MAX_USER_CONNECTIONS 3"
fi
trap 'kill -TERM "$server"' TERM INT
# keepalived's track files, when the entrypoint made them: kept up to date beside the server.
if [ -f /run/mysqld/read_only ]; then mariadb-role-watch /run/mysqld/read_only /run/mysqld/lone_writer & fi
# Several monitors: a writer cut off from their majority, or deposed by it, kills itself (fence.py).
if [ -n "${FENCE_MONITORS:-}" ]; then mariadb-fence "$server" & fi
set +e
wait "$server"
status=$?
# A trapped TERM ends the first wait before the server has stopped.
while kill -0 "$server" 2>/dev/null; do wait "$server"; status=$?; done
exit "$status"
