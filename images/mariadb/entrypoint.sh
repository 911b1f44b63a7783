#!/bin/bash
# First start: create the system tables, the application database and the accounts, with binary logging
# off so that none of it is replicated; a replica then follows the primary from the primary's first GTID.
set -euo pipefail

: "${MARIADB_ROLE:?primary or replica}" "${MARIADB_ROOT_PASSWORD:?}" "${MARIADB_DATABASE:?}"
: "${MARIADB_USER:?}" "${MARIADB_PASSWORD:?}" "${MARIADB_REPLICATION_USER:?}" "${MARIADB_REPLICATION_PASSWORD:?}"

sql_string() { printf "'%s'" "${1//\'/\'\'}"; }

initialised=/var/lib/mysql/.openmrs-cluster-initialised
if [ -d /var/lib/mysql/mysql ] && [ ! -f "$initialised" ]; then
  echo "/var/lib/mysql holds a first start that did not finish; remove the volume to start again" >&2
  exit 1
fi

if [ ! -f "$initialised" ]; then
  echo "initialising the data directory as $MARIADB_ROLE"
  # The mysql OS user gets a password-less socket account, for the health check and for operators.
  mariadb-install-db --skip-test-db --datadir=/var/lib/mysql \
    --auth-root-authentication-method=socket --auth-root-socket-user=mysql >/dev/null
  socket=/run/mysqld/init.sock
  mariadbd --skip-networking --skip-log-bin --skip-slave-start --socket="$socket" &
  pid=$!
  for _ in $(seq 60); do mariadb-admin --socket="$socket" ping >/dev/null 2>&1 && break; sleep 1; done

  replication=""
  if [ "$MARIADB_ROLE" = replica ]; then
    : "${MARIADB_PRIMARY_HOST:?}"
    replication="CHANGE MASTER TO MASTER_HOST=$(sql_string "$MARIADB_PRIMARY_HOST"), MASTER_PORT=3306,
      MASTER_USER=$(sql_string "$MARIADB_REPLICATION_USER"), MASTER_PASSWORD=$(sql_string "$MARIADB_REPLICATION_PASSWORD"),
      MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;"
  fi
  mariadb --socket="$socket" <<SQL
ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($(sql_string "$MARIADB_ROOT_PASSWORD"));
CREATE DATABASE \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO $(sql_string "$MARIADB_USER")@'%';
CREATE USER $(sql_string "$MARIADB_REPLICATION_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_REPLICATION_PASSWORD");
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO $(sql_string "$MARIADB_REPLICATION_USER")@'%';
$replication
SQL
  mariadb-admin --socket="$socket" shutdown
  wait "$pid"
  touch "$initialised"
fi

exec mariadbd
