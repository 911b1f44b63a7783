"""The step that puts a certificate on servers and has them load it in turn, without a failed request.

Pulumi runs it (`python -m components.local.certificate_rollout install`, settings in TLS_* variables) before
the servers exist, and again whenever the certificate changes: a renewal, a new authority, or a certificate
the site gives. Each server reads its files from a volume of its own, mounted read-only; the step writes them
there through a short-lived container of the server's image, then has each running server, one at a time,
load them the way it does without dropping a connection (Apache's graceful reload, HAProxy's, MariaDB's FLUSH LOCAL SSL;
GlusterFS reads them for every new connection) and checks that it presents the new certificate before it
goes on to the next. A server container replaced later
finds the current files in its volume.
"""
from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tarfile
import time
from dataclasses import dataclass

import docker
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .engines import Engine, EngineAddress

# What every volume holds: the server's certificate chain, its key, and the authority its peers present.
CERTIFICATE, PRIVATE_KEY, AUTHORITY = "certificate.pem", "private-key.pem", "authority.pem"
APACHE_CONFIG = "/etc/apache2/openmrs-balancer.conf"
HAPROXY_CONFIG = "/etc/haproxy/openmrs-balancer.cfg"
SERVED_WITHIN_SECONDS = 30


@dataclass(frozen=True)
class ServerKind:
    directory: str  # where the server mounts its volume
    user: str  # the server runs as it, and reads the key through its group
    # A shell command, run as `user`, that makes the running server load the files; None: it reads them
    # for every new connection by itself.
    reload: str | None
    address: str | None  # where it answers TLS, for `openssl s_client`; None: a client, it answers nothing
    starttls: str = ""  # the protocol's own upgrade, for s_client's -starttls
    # s_client presents the server's own certificate, for servers that ask every peer for one.
    mutual: bool = False
    group: str | None = None  # the group that reads the key, when not the user's own

    @property
    def key_group(self) -> str:
        return self.group or self.user


KINDS = {
    # A graceful reload (USR1) finishes the requests in flight and keeps the sockets and the members' states.
    "apache": ServerKind("/etc/apache2/tls", "www-data",
                         f"apache2 -t -f {APACHE_CONFIG} && kill -USR1 $(cat /run/apache2/httpd.pid)", "127.0.0.1:443"),
    # A reload (USR2 to the master) starts new workers on the same sockets; the old ones finish their connections.
    # The members' states are saved first, and the new workers read them (server-state-file).
    "haproxy": ServerKind("/etc/haproxy/tls", "haproxy",
                          f"haproxy-site-pem && haproxy -c -q -f {HAPROXY_CONFIG} && echo 'show servers state' | "
                          "socat stdio UNIX-CONNECT:/run/haproxy/admin.sock > /run/haproxy/server-state && "
                          "kill -USR2 $(cat /run/haproxy/haproxy.pid)", "127.0.0.1:443"),
    # FLUSH SSL: new connections get the new certificate; open ones and replication go on. LOCAL: a FLUSH is
    # written to the binary log by default, and on a replica that is a transaction of its own (a GTID of its
    # server id) that breaks replication at the writer's next one (gtid_strict_mode).
    "mariadb": ServerKind("/etc/mysql/tls", "mysql", "mariadb -e 'FLUSH LOCAL SSL'", "127.0.0.1:3306",
                          starttls="mysql"),
    # GlusterFS opens a new TLS context, reading the files, for every connection it makes or accepts
    # (rpc/rpc-transport/socket/src/socket.c, ssl_setup_connection_params): open ones go on, new ones use the
    # new certificate. glusterd answers on 24007; the brick processes on their own ports do the same.
    "glusterfs": ServerKind("/etc/glusterfs/tls", "root", None, "127.0.0.1:24007", mutual=True),
    "glusterfs-client": ServerKind("/etc/glusterfs/tls", "root", None, None),
    # The database monitor reads them for every view it serves or asks for once they changed (MutualTls).
    "monitor": ServerKind("/etc/db-monitor/tls", "nobody", None, "127.0.0.1:8700", mutual=True, group="nogroup"),
}


class InstallFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    engine: EngineAddress
    volume: str
    container: str  # the server that reads the volume
    image: str  # the server's image, present on its engine
    kind: str  # a key of KINDS

    @classmethod
    def from_json(cls, entry: dict) -> "Target":
        """An entry of TLS_TARGETS, its engine as EngineAddress.to_json() wrote it."""
        return cls(EngineAddress.from_json(entry["engine"]), entry["volume"], entry["container"], entry["image"],
                   entry["kind"])


def fingerprint(certificate_pem: str) -> str:
    """The SHA-256 fingerprint of the chain's first certificate, as `openssl x509 -fingerprint` prints it."""
    leaf = x509.load_pem_x509_certificates(certificate_pem.encode())[0]
    return ":".join(f"{byte:02X}" for byte in leaf.fingerprint(hashes.SHA256()))


def _archive(certificate_pem: str, key_pem: str, authority_pem: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text, mode in ((CERTIFICATE, certificate_pem, 0o644), (PRIVATE_KEY, key_pem, 0o640),
                                 (AUTHORITY, authority_pem, 0o644)):
            data = text.encode()
            entry = tarfile.TarInfo(f".new/{name}")
            entry.size, entry.mode, entry.mtime = len(data), mode, time.time()
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def write_files(client: docker.DockerClient, target: Target, certificate_pem: str, key_pem: str,
                authority_pem: str) -> None:
    """Into the volume, readable by the server's group only: each file written beside the old one, then renamed
    over it (the key first, so that a server never pairs a new certificate with the old key)."""
    group = KINDS[target.kind].key_group
    moves = " && ".join(f"mv /tls/.new/{name} /tls/" for name in (PRIVATE_KEY, CERTIFICATE, AUTHORITY))
    writer = client.containers.create(
        target.image, entrypoint=["sh", "-c"], network_disabled=True, user="0",
        command=[f"chgrp -R {group} /tls/.new && chmod 0750 /tls && chgrp {group} /tls && {moves} && rmdir /tls/.new"],
        volumes={target.volume: {"bind": "/tls", "mode": "rw"}})
    try:
        writer.put_archive("/tls", _archive(certificate_pem, key_pem, authority_pem))
        writer.start()
        status = writer.wait(timeout=60)["StatusCode"]
        if status != 0:
            raise InstallFailed(f"writing into {target.volume} exited {status}: {writer.logs().decode()}")
    finally:
        writer.remove(force=True)


def served(server, kind: ServerKind) -> str:
    """The fingerprint of the certificate the server presents right now."""
    starttls = f"-starttls {kind.starttls} " if kind.starttls else ""
    own = f"-cert {kind.directory}/{CERTIFICATE} -key {kind.directory}/{PRIVATE_KEY} " if kind.mutual else ""
    result = server.exec_run(["sh", "-c", f"openssl s_client {starttls}{own}-connect {kind.address} </dev/null "
                                          "2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
    return result.output.decode().strip().rsplit("=", 1)[-1]


def reload(server, kind: ServerKind, expected: str) -> None:
    """The server loads the files, and presents the new certificate within SERVED_WITHIN_SECONDS."""
    if kind.reload is not None:
        result = server.exec_run(["sh", "-c", kind.reload], user=kind.user)
        if result.exit_code != 0:
            raise InstallFailed(f"{server.name} refused the new certificate: {result.output.decode()}")
    deadline = time.monotonic() + SERVED_WITHIN_SECONDS
    while served(server, kind) != expected:
        if time.monotonic() > deadline:
            raise InstallFailed(f"{server.name} still presents another certificate {SERVED_WITHIN_SECONDS} s after "
                                f"{shlex.quote(kind.reload or 'its files changed')}")
        time.sleep(0.2)


def install(targets: list[Target], certificate_pem: str, key_pem: str, authority_pem: str) -> None:
    expected = fingerprint(certificate_pem)
    for target in targets:
        kind = KINDS[target.kind]
        with Engine(target.engine) as client:
            write_files(client, target, certificate_pem, key_pem, authority_pem)
            try:
                server = client.containers.get(target.container)
            except docker.errors.NotFound:
                continue  # not made yet: it reads the files when it starts
            if kind.address is not None and server.status == "running" and served(server, kind) != expected:
                reload(server, kind, expected)
                print(f"{target.container}: presents the certificate {expected}", flush=True)


def main(arguments: list[str]) -> int:
    if arguments != ["install"]:
        print("usage: python -m components.local.certificate_rollout install", file=sys.stderr)
        return 2
    targets = [Target.from_json(entry) for entry in json.loads(os.environ["TLS_TARGETS"])]
    try:
        install(targets, os.environ["TLS_CERTIFICATE"], os.environ["TLS_PRIVATE_KEY"], os.environ["TLS_AUTHORITY"])
    except InstallFailed as failed:
        print(f"certificate rollout: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
