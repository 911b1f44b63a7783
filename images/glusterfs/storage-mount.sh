#!/bin/sh
# The client: mounts the volume through FUSE at /mnt/cluster/files, which Docker shares with the host
# (bind propagation rshared), creates the shared folders for the OpenMRS user, and stays in the foreground.
# It reaches the volume through any of the servers, and keeps working while one of them is gone.
set -eu
# TLS to glusterd too, for the volume's layout (the files' connections follow the volume's client.ssl).
mkdir -p /var/lib/glusterd && touch /var/lib/glusterd/secure-access
mountpoint=/mnt/cluster/files
# A client that was killed leaves a dead mount behind: clear it.
umount -l "$mountpoint" 2>/dev/null || true
mkdir -p "$mountpoint"
servers=""
for server in $SERVERS; do servers="$servers --volfile-server=$server"; done
glusterfs -N $servers --volfile-id="$VOLUME" --log-file=- "$mountpoint" &
client_pid=$!
trap 'umount "$mountpoint"; wait "$client_pid"' TERM INT
until grep -q " $mountpoint fuse.glusterfs " /proc/mounts; do
  kill -0 "$client_pid" || exit 1
  sleep 1
done
for folder in $FOLDERS; do
  mkdir -p "$mountpoint/$folder"
  chown "$OWNER" "$mountpoint/$folder"
done
wait "$client_pid"
