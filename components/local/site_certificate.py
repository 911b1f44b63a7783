"""The step that puts the site's certificate on the balancers, and renews it without a failed request.

Pulumi runs it (`python -m components.local.site_certificate install`, settings in SITE_* variables) before
the balancers exist, and again whenever the certificate changes: a renewal, or a certificate the site gives.
Each balancer reads the files from a volume of its own, mounted read-only; the step writes them there
through a short-lived container of the balancer's image, then has each running balancer, one at a time,
reload gracefully (Apache finishes the requests it has, keeps its sockets and member states) and checks that
it serves the new certificate before it goes on to the next. A balancer container replaced later finds the
current files in its volume.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass

import docker
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .engines import Engine, EngineAddress

DIRECTORY = "/etc/apache2/tls"  # where each balancer mounts its volume
CERTIFICATE, PRIVATE_KEY = "site.pem", "site.key"
APACHE_CONFIG = "/etc/apache2/openmrs-balancer.conf"
WWW_DATA_GID = 33  # Debian's www-data: Apache runs as it and reads the key through its group
SERVED_WITHIN_SECONDS = 30


class InstallFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    engine: EngineAddress
    volume: str
    container: str  # the balancer that reads the volume
    image: str  # the balancer's image, present on its engine

    @classmethod
    def from_json(cls, entry: dict) -> "Target":
        """An entry of SITE_TARGETS, its engine as EngineAddress.to_json() wrote it."""
        return cls(EngineAddress.from_json(entry["engine"]), entry["volume"], entry["container"], entry["image"])


def fingerprint(certificate_pem: str) -> str:
    """The SHA-256 fingerprint of the chain's first certificate, as `openssl x509 -fingerprint` prints it."""
    leaf = x509.load_pem_x509_certificates(certificate_pem.encode())[0]
    return ":".join(f"{byte:02X}" for byte in leaf.fingerprint(hashes.SHA256()))


def _archive(certificate_pem: str, key_pem: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text, mode in ((CERTIFICATE, certificate_pem, 0o644), (PRIVATE_KEY, key_pem, 0o640)):
            data = text.encode()
            entry = tarfile.TarInfo(f".new/{name}")
            entry.size, entry.mode, entry.uid, entry.gid, entry.mtime = len(data), mode, 0, WWW_DATA_GID, time.time()
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def write_files(client: docker.DockerClient, target: Target, certificate_pem: str, key_pem: str) -> None:
    """Into the volume: each file written beside the old one, then renamed over it."""
    writer = client.containers.create(
        target.image, entrypoint=["sh", "-c"], network_disabled=True, user="0",
        command=[f"chmod 0750 /tls/.new && chgrp {WWW_DATA_GID} /tls/.new && mv /tls/.new/{PRIVATE_KEY} /tls/ "
                 f"&& mv /tls/.new/{CERTIFICATE} /tls/ && rmdir /tls/.new"],
        volumes={target.volume: {"bind": "/tls", "mode": "rw"}})
    try:
        writer.put_archive("/tls", _archive(certificate_pem, key_pem))
        writer.start()
        status = writer.wait(timeout=60)["StatusCode"]
        if status != 0:
            raise InstallFailed(f"writing into {target.volume} exited {status}: {writer.logs().decode()}")
    finally:
        writer.remove(force=True)


def served(balancer) -> str:
    """The fingerprint of the certificate the balancer presents right now."""
    result = balancer.exec_run(["sh", "-c", "openssl s_client -connect 127.0.0.1:443 </dev/null 2>/dev/null "
                                            "| openssl x509 -noout -fingerprint -sha256"])
    return result.output.decode().strip().rsplit("=", 1)[-1]


def reload(balancer, expected: str) -> None:
    """Apache checks its configuration, reloads gracefully (USR1, sent as www-data, which it runs as) and
    presents the new certificate within SERVED_WITHIN_SECONDS."""
    result = balancer.exec_run(["sh", "-c", f"apache2 -t -f {APACHE_CONFIG} && kill -USR1 $(cat /run/apache2/httpd.pid)"],
                               user="www-data")
    if result.exit_code != 0:
        raise InstallFailed(f"{balancer.name} refused the new certificate: {result.output.decode()}")
    deadline = time.monotonic() + SERVED_WITHIN_SECONDS
    while served(balancer) != expected:
        if time.monotonic() > deadline:
            raise InstallFailed(f"{balancer.name} still serves another certificate {SERVED_WITHIN_SECONDS} s after its reload")
        time.sleep(0.2)


def install(targets: list[Target], certificate_pem: str, key_pem: str) -> None:
    expected = fingerprint(certificate_pem)
    for target in targets:
        with Engine(target.engine) as client:
            write_files(client, target, certificate_pem, key_pem)
            try:
                balancer = client.containers.get(target.container)
            except docker.errors.NotFound:
                continue  # not made yet: it reads the files when it starts
            if balancer.status == "running" and served(balancer) != expected:
                reload(balancer, expected)
                print(f"{target.container}: serves the certificate {expected}", flush=True)


def main(arguments: list[str]) -> int:
    if arguments != ["install"]:
        print("usage: python -m components.local.site_certificate install", file=sys.stderr)
        return 2
    targets = [Target.from_json(entry) for entry in json.loads(os.environ["SITE_TARGETS"])]
    try:
        install(targets, os.environ["SITE_CERTIFICATE"], os.environ["SITE_PRIVATE_KEY"])
    except InstallFailed as failed:
        print(f"site certificate: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
