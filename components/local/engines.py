"""Reaching a host's Docker engine from the deploying machine's own steps (image shipping, rolling updates),
the way the Docker provider reaches it: unix://, tcp:// with TLS, or ssh:// with the stack's ssh options.

The Docker SDK's own ssh support takes no ssh options, so an ssh engine is reached as the Docker CLI does
it: `ssh … docker system dial-stdio` per connection, here behind a private unix socket that the SDK uses.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import docker
import docker.tls

# The deploying machine's own steps (pulumi-command) run modules of this package with this program's own
# Python (the project's .venv). Moving the checkout changes the command, which re-runs each step once: harmless.
STEP_INTERPRETER = [sys.executable, "-m"]


@dataclass(frozen=True)
class EngineAddress:
    """How to reach one engine; an empty url is the environment's own engine (DOCKER_HOST or the default)."""

    url: str = ""
    ssh_options: list[str] = field(default_factory=list)
    tls: dict[str, str] | None = None  # ca_pem, cert_pem, key_pem

    @classmethod
    def of_host(cls, host) -> "EngineAddress":
        """How the stack's `hosts` entry `host` (components/config/hosts.py's Host) says its engine is reached."""
        return cls(url=host.docker_url, ssh_options=list(host.ssh_options),
                   tls=host.tls.model_dump() if host.tls else None)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "EngineAddress":
        return cls(**json.loads(text))


class _DialStdioRelay:
    """A unix socket whose every connection is piped through its own `ssh … docker system dial-stdio`."""

    def __init__(self, url: str, ssh_options: list[str]):
        target = urlsplit(url)
        self.command = ["ssh", *ssh_options, *(["-p", str(target.port)] if target.port else []),
                        f"{target.username}@{target.hostname}" if target.username else target.hostname,
                        "docker", "system", "dial-stdio"]
        self.directory = tempfile.mkdtemp(prefix="openmrs-cluster-ssh-")
        self.path = os.path.join(self.directory, "docker.sock")
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._pipe, args=(connection,), daemon=True).start()

    def _pipe(self, connection: socket.socket) -> None:
        process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def upstream():
            with contextlib.suppress(OSError):  # either side closed
                while data := connection.recv(65536):
                    process.stdin.write(data)
                    process.stdin.flush()
                process.stdin.close()

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while data := process.stdout.read1(65536):
                connection.sendall(data)
        except OSError:
            pass
        finally:
            connection.close()
            process.kill()
            process.wait()

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class Engine:
    """A Docker SDK client on one engine; close() ends its ssh relay or removes its TLS files."""

    def __init__(self, address: EngineAddress, timeout: int = 120):
        self._cleanup = []
        url = address.url
        tls = None
        if url.startswith("ssh://"):
            relay = _DialStdioRelay(url, address.ssh_options)
            self._cleanup.append(relay.close)
            url = f"unix://{relay.path}"
        elif url.startswith("tcp://"):
            tls = self._tls(address.tls or {})
        self.client = docker.DockerClient(base_url=url, tls=tls, timeout=timeout) if url else docker.from_env(timeout=timeout)

    def _tls(self, material: dict[str, str]) -> docker.tls.TLSConfig:
        directory = Path(tempfile.mkdtemp(prefix="openmrs-cluster-tls-"))
        self._cleanup.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        for name in ("ca_pem", "cert_pem", "key_pem"):
            path = directory / name
            path.touch(mode=0o600)
            path.write_text(material[name])
        return docker.tls.TLSConfig(client_cert=(str(directory / "cert_pem"), str(directory / "key_pem")),
                                    ca_cert=str(directory / "ca_pem"), verify=True)

    def close(self) -> None:
        self.client.close()
        for cleanup in self._cleanup:
            cleanup()

    def __enter__(self) -> docker.DockerClient:
        return self.client

    def __exit__(self, *_) -> None:
        self.close()
