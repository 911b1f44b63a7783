"""Puts one image onto a host's engine: the deploying machine builds (or pulls) every image once, and each
host loads that same image, same ID, over the Docker API, so no host needs a registry or the internet.

Pulumi runs it as a pulumi-command step per image and host (`python -m components.local.ship`, settings in
SHIP_* variables) whose trigger is the image's digest tag: it runs once per digest, and does nothing when the
host already has the image.
"""
from __future__ import annotations

import os
import sys
import time

import docker
import docker.errors

from .engines import Engine, EngineAddress


def ship(image: str, source: docker.DockerClient, target: docker.DockerClient) -> str:
    """Loads `image` (a tag or an ID) from `source` into `target` unless it is there; says what it did."""
    found = source.images.get(image)
    try:
        if image in target.images.get(found.id).tags or image.startswith("sha256:"):
            return "already there"
    except docker.errors.ImageNotFound:
        pass
    target.images.load(found.save(named=image if image in found.tags else False))
    return f"loaded {found.attrs['Size'] / 1e6:.0f} MB"


def main() -> int:
    image = os.environ["SHIP_IMAGE"]
    started = time.monotonic()
    with Engine(EngineAddress.from_json(os.environ["SHIP_ENGINE"]), timeout=900) as target:
        outcome = ship(image, docker.from_env(timeout=900), target)
    print(f"{image} on {os.environ['SHIP_HOST']}: {outcome} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
