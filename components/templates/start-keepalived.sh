#!/bin/sh
# Rendered by openmrs-cluster and run by the image's entrypoint as root: names the interface that holds
# {{ own_address }} for keepalived (Docker does not fix interface names), then starts keepalived in the background.
set -eu
interface_of() {
  found=$(ip -o -4 addr show | awk -v own="$1/" 'index($4, own) == 1 {print $2}')
  [ -n "$found" ] || { echo "no interface holds $1" >&2; exit 1; }
  echo "$found"
}
mkdir -p "$(dirname {{ interface_file }})" {{ pid_directory }}
echo "interface $(interface_of {{ own_address }})" > {{ interface_file }}
{% if front_file %}
echo "{{ front_virtual_address }} dev $(interface_of {{ front_own_address }})" > {{ front_file }}
{% endif %}
# A restarted container keeps its files: pid files of the last run would make keepalived believe it runs.
rm -f {{ pid_directory }}/*.pid
# In the background but not daemonised: a daemon's console is /dev/null, and its state changes (which member
# took the address, when, and why) belong in the container's log.
keepalived --dont-fork --use-file {{ config_file }} --vrrp --log-console --log-detail \
  --pid {{ pid_directory }}/keepalived.pid --vrrp_pid {{ pid_directory }}/vrrp.pid &
