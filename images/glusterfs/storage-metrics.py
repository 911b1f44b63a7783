#!/usr/bin/env python3
"""The volume as this storage server sees it, for the machine's node exporter (its textfile collector): each
brick connected or not, and the files it lists as needing a heal. Asked of Gluster's own heal report
(`volume heal … info summary`), which reaches every brick as a client does and takes no cluster-wide lock
(`volume status` would, and could refuse a `volume set` of the certificate rollout meanwhile).

Every server writes its own file: a brick is down when a server that still answers sees it down, and one that
stopped leaves its last view, which the others' outweigh (the alert takes the worst)."""
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

EVERY_SECONDS = 10
TIMEOUT_SECONDS = 30


def brick_names() -> dict[str, str]:
    """Each brick's server's address, by the stack's name for it (STORAGE_SERVERS: "files1=10.0.0.41 …")."""
    return {address: name for name, address in (pair.split("=") for pair in os.environ["STORAGE_SERVERS"].split())}


def report(volume: str) -> ElementTree.Element:
    answer = subprocess.run(["gluster", "--mode=script", "--xml", "volume", "heal", volume, "info", "summary"],
                            capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=True)
    return ElementTree.fromstring(answer.stdout)


def metrics(tree: ElementTree.Element, names: dict[str, str], seen_by: str) -> str:
    lines = ["# HELP openmrs_storage_brick_connected Whether this server reaches the brick.",
             "# TYPE openmrs_storage_brick_connected gauge",
             "# HELP openmrs_storage_heal_pending_entries Files the brick lists as needing a heal: changed while "
             "a copy of them was away (-1: unknown).",
             "# TYPE openmrs_storage_heal_pending_entries gauge"]
    for brick in tree.iter("brick"):
        address = brick.findtext("name", "").split(":", 1)[0]
        labels = f'tier="storage",member="{names.get(address, address)}",seen_by="{seen_by}"'
        connected = brick.findtext("status", "") == "Connected"
        pending = brick.findtext("totalNumberOfEntries", "-")
        lines += [f"openmrs_storage_brick_connected{{{labels}}} {int(connected)}",
                  f"openmrs_storage_heal_pending_entries{{{labels}}} {pending if pending.isdigit() else -1}"]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")  # the collector reads *.prom only
    temporary.write_text(text)
    temporary.replace(path)


def main() -> int:
    path, volume, seen_by = Path(os.environ["METRICS_FILE"]), os.environ["VOLUME"], os.environ["SERVER"]
    names = brick_names()
    while True:
        try:
            write(path, metrics(report(volume), names, seen_by))
        except (subprocess.SubprocessError, ElementTree.ParseError, OSError) as error:
            # No volume yet (the first start), or glusterd busy: the last figures stay, and grow no older.
            print(f"storage-metrics: {error}", file=sys.stderr, flush=True)
        time.sleep(EVERY_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
