#!/bin/sh
# Runs Apache as www-data with no capabilities, and the program's heartbeat-watch (the heartbeats' own
# timeout) beside it; when Apache ends the container stops, with its status. In a balancer pair the program
# uploads start-keepalived, which starts keepalived (as root) first.
# Stopping (SIGWINCH, the image's stop signal) hands the virtual address over before Apache stops: keepalived
# leaves first, which tells the peer to take the address at once, then Apache stops gracefully, finishing
# the requests it has. (A killed balancer's address moves only after the peer misses three adverts, and
# meanwhile the stopping Apache refuses connections.) This shell has no CAP_KILL: it signals Apache as
# www-data, and watches it through /proc.
set -eu
KEEPALIVED_PID=/run/keepalived/keepalived.pid
[ ! -x /usr/local/bin/start-keepalived ] || /usr/local/bin/start-keepalived
# Apache reopens /dev/stdout and /dev/stderr by name: let www-data write to the container's log pipes.
chmod a+w /proc/self/fd/1 /proc/self/fd/2
AS_WWW_DATA="setpriv --reuid=www-data --regid=www-data --init-groups --inh-caps=-all"
[ ! -x /usr/local/bin/heartbeat-watch ] || $AS_WWW_DATA /usr/local/bin/heartbeat-watch &
$AS_WWW_DATA /usr/sbin/apache2 -DFOREGROUND -f /etc/apache2/openmrs-balancer.conf &
apache=$!

hand_over_and_stop() {
  if [ -f "$KEEPALIVED_PID" ]; then
    kill -TERM "$(cat "$KEEPALIVED_PID")" 2>/dev/null || true
    sleep 1  # the peer's gratuitous ARP reaches the clients
  fi
  $AS_WWW_DATA sh -c 'kill -WINCH "$1"' stop "$apache" || true
}
trap hand_over_and_stop WINCH
# `wait` also returns when the trapped signal arrives: wait again while Apache runs.
status=0
while [ -d "/proc/$apache" ]; do
  wait "$apache" && status=0 || status=$?
done
echo "balancer-entrypoint: Apache ended (status $status)" >&2
exit "$status"
