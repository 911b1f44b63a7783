#!/bin/sh
# As root: start keepalived when the program uploaded its start script, with the role watcher's files
# saying "not the writer" and "no bonus" until the server answers; then mariadb-start as mysql, with no capabilities, as
# PID 1 (it runs MariaDB and its helpers).
set -eu
if [ -x /usr/local/bin/start-keepalived ]; then
  setpriv --reuid=mysql --regid=mysql --init-groups sh -c 'echo 1 > /run/mysqld/read_only; echo 0 > /run/mysqld/lone_writer'
  /usr/local/bin/start-keepalived
fi
exec setpriv --reuid=mysql --regid=mysql --init-groups --inh-caps=-all /usr/local/bin/mariadb-start
