#!/bin/sh
# A storage server: glusterd with its brick at /bricks/openmrs. On the first server (VOLUME_BRICKS set) it
# also joins the peers and creates and starts the volume, once: a replica on every brick, the last one an
# arbiter (it keeps names and metadata only, and breaks ties, so that two servers always make a majority).
# Every connection is TLS: secure-access for glusterd's (peers and clients fetching the volume's layout),
# client.ssl and server.ssl for the files themselves, which only certificates named in SSL_ALLOW may reach.
set -eu
touch /var/lib/glusterd/secure-access
glusterd -N --log-file=- &
glusterd_pid=$!
trap 'kill -TERM "$glusterd_pid"' TERM INT
until gluster --mode=script pool list >/dev/null 2>&1; do sleep 1; done

if [ -n "${VOLUME_BRICKS:-}" ] && ! gluster --mode=script volume info "$VOLUME" >/dev/null 2>&1; then
  for peer in $PEERS; do
    until gluster --mode=script peer probe "$peer" >/dev/null 2>&1; do sleep 1; done
  done
  until [ "$(gluster --mode=script pool list | grep -c Connected)" -gt "$(echo $PEERS | wc -w)" ]; do sleep 1; done
  # "force": the bricks are directories of Docker volumes, not dedicated file systems. Staging runs on every
  # peer, and each must see every other one connected: a moment after the probes one may not yet ("Host …
  # not connected"), and a create refused there leaves nothing behind, so it is tried again, for a minute.
  tries=0
  until gluster --mode=script volume create "$VOLUME" replica 3 arbiter 1 $VOLUME_BRICKS force; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || exit 1
    sleep 1
  done
  # A server that stops answering is given up after PING_TIMEOUT seconds, not Gluster's default 42; and
  # the self-heal daemons look for files to heal every 10 s, not 600, so that a server that was away (hung,
  # or cut off) is healed soon after it is back, even when no reconnection told them.
  gluster --mode=script volume set "$VOLUME" network.ping-timeout "$PING_TIMEOUT"
  gluster --mode=script volume set "$VOLUME" cluster.heal-timeout 10
  gluster --mode=script volume set "$VOLUME" client.ssl on
  gluster --mode=script volume set "$VOLUME" server.ssl on
  gluster --mode=script volume set "$VOLUME" auth.ssl-allow "$SSL_ALLOW"
  gluster --mode=script volume set "$VOLUME" ssl.cipher-list "$SSL_CIPHERS"
  gluster --mode=script volume start "$VOLUME"
fi
# With monitoring on, the volume's state for the machine's node exporter (storage-metrics).
[ -z "${METRICS_FILE:-}" ] || /usr/local/bin/storage-metrics &
wait "$glusterd_pid"
