#!/bin/sh
# With a keepalived configuration uploaded, keepalived (root, NET_ADMIN and NET_RAW only) holds the pair's
# virtual address while Apache answers. Apache itself always runs as www-data with no capabilities, and is
# PID 1: when it dies the container stops, and keepalived with it, so the peer takes the address over.
set -eu
KEEPALIVED_CONF=/etc/keepalived/keepalived.conf
if [ -f "$KEEPALIVED_CONF" ]; then
  own_address=$(awk '$1 == "unicast_src_ip" {print $2}' "$KEEPALIVED_CONF")
  interface=$(ip -o -4 addr show | awk -v address="$own_address" 'index($4, address "/") == 1 {print $2}')
  [ -n "$interface" ] || { echo "no interface holds $own_address" >&2; exit 1; }
  mkdir -p /run/keepalived
  echo "interface $interface" > /run/keepalived/interface.conf
  keepalived --use-file "$KEEPALIVED_CONF" --vrrp --log-console --log-detail --pid /run/keepalived/keepalived.pid \
    --vrrp_pid /run/keepalived/vrrp.pid
fi
# Apache reopens /dev/stdout and /dev/stderr by name: let www-data write to the container's log pipes.
chmod a+w /proc/self/fd/1 /proc/self/fd/2
exec setpriv --reuid=www-data --regid=www-data --init-groups --inh-caps=-all \
  /usr/sbin/apache2 -DFOREGROUND -f /etc/apache2/openmrs-balancer.conf
