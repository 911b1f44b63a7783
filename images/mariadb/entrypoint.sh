#!/bin/sh
# As root: start keepalived when the program uploaded its start script; then MariaDB as mysql, with no
# capabilities, as PID 1.
set -eu
[ ! -x /usr/local/bin/start-keepalived ] || /usr/local/bin/start-keepalived
exec setpriv --reuid=mysql --regid=mysql --init-groups --inh-caps=-all /usr/local/bin/mariadb-start
