#!/bin/sh
# Runs HAProxy (master and worker) as haproxy with no capabilities; when it ends the container stops, with its
# status. In a balancer pair the program uploads start-keepalived, which starts keepalived (as root) first.
# Stopping (SIGUSR1, the image's stop signal) hands the virtual address over before HAProxy stops: keepalived
# leaves first, which tells the peer to take the address at once, then HAProxy stops softly, finishing the
# requests it has. HAProxy reads the certificate and key as one file, which haproxy-site-pem assembles from the
# volume's two (here and at every reload: components/local/certificate_rollout.py).
set -eu
KEEPALIVED_PID=/run/keepalived/keepalived.pid
[ ! -x /usr/local/bin/start-keepalived ] || /usr/local/bin/start-keepalived
chmod a+w /proc/self/fd/1 /proc/self/fd/2
AS_HAPROXY="setpriv --reuid=haproxy --regid=haproxy --init-groups --inh-caps=-all"
$AS_HAPROXY /usr/local/bin/haproxy-site-pem
$AS_HAPROXY /usr/sbin/haproxy -W -db -f /etc/haproxy/openmrs-balancer.cfg -p /run/haproxy/haproxy.pid &
haproxy=$!

hand_over_and_stop() {
  if [ -f "$KEEPALIVED_PID" ]; then
    kill -TERM "$(cat "$KEEPALIVED_PID")" 2>/dev/null || true
    sleep 1  # the peer's gratuitous ARP reaches the clients
  fi
  $AS_HAPROXY sh -c 'kill -USR1 "$1"' stop "$haproxy" || true
}
trap hand_over_and_stop USR1
# `wait` also returns when the trapped signal arrives: wait again while HAProxy runs.
status=0
while [ -d "/proc/$haproxy" ]; do
  wait "$haproxy" && status=0 || status=$?
done
echo "balancer-entrypoint: HAProxy ended (status $status)" >&2
exit "$status"
