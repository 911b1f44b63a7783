#!/bin/sh
# Rendered by openmrs-cluster and run by the image's entrypoint as root: names the interface that holds
# {{ own_address }} for keepalived (Docker does not fix interface names), then starts keepalived in the background.
set -eu
interface=$(ip -o -4 addr show | awk 'index($4, "{{ own_address }}/") == 1 {print $2}')
[ -n "$interface" ] || { echo "no interface holds {{ own_address }}" >&2; exit 1; }
mkdir -p "$(dirname {{ interface_file }})" {{ pid_directory }}
echo "interface $interface" > {{ interface_file }}
# A restarted container keeps its files: pid files of the last run would make keepalived believe it runs.
rm -f {{ pid_directory }}/*.pid
exec keepalived --use-file {{ config_file }} --vrrp --log-console --log-detail \
  --pid {{ pid_directory }}/keepalived.pid --vrrp_pid {{ pid_directory }}/vrrp.pid
