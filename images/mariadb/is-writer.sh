#!/bin/sh
# keepalived's check on a database server: passes only on the writer (read_only off), so the pair's
# virtual address follows the server the monitor promoted. Runs as mysql through its socket account.
[ "$(mariadb --connect-timeout=1 -NBe 'SELECT @@global.read_only')" = 0 ]
