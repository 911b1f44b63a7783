#!/bin/sh
# Apache runs as www-data with no capabilities, and is PID 1: when it dies the container stops. In a
# balancer pair the program uploads start-keepalived, which starts keepalived (as root) first, so the
# peer takes the virtual address over when this container stops. The program's heartbeat-watch (the
# heartbeats' own timeout) runs beside Apache as www-data.
set -eu
[ ! -x /usr/local/bin/start-keepalived ] || /usr/local/bin/start-keepalived
# Apache reopens /dev/stdout and /dev/stderr by name: let www-data write to the container's log pipes.
chmod a+w /proc/self/fd/1 /proc/self/fd/2
AS_WWW_DATA="setpriv --reuid=www-data --regid=www-data --init-groups --inh-caps=-all"
[ ! -x /usr/local/bin/heartbeat-watch ] || $AS_WWW_DATA /usr/local/bin/heartbeat-watch &
exec $AS_WWW_DATA /usr/sbin/apache2 -DFOREGROUND -f /etc/apache2/openmrs-balancer.conf
