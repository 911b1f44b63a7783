#!/bin/bash
# Healthy: the server answers on its socket (the first-start server uses another one) and, on a replica,
# both replication threads run. Runs as the mysql OS user, whose unix_socket account needs no password.
set -euo pipefail
mariadb-admin ping >/dev/null
[ "${MARIADB_ROLE:-primary}" = replica ] || exit 0
status=$(mariadb -e 'SHOW REPLICA STATUS\G')
grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
