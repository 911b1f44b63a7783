#!/usr/bin/python3
"""The fence agent of a database server watched by several monitors: a writer cut off from the monitors'
majority, or deposed by it, kills its own server before it can acknowledge anything more.

Every POLL_SECONDS it asks every monitor (FENCE_MONITORS, `address:port`, all of them) for its view
(GET /view, over TLS both ways with the server's own certificate from FENCE_TLS, read again when it
changes), and this server for its read_only and server_id. While this server is the writer (read_only
off) it kills mariadbd (SIGKILL, no shutdown that could commit anything) when
- no majority of monitors answered with a fresh view for FENCE_SECONDS: it may be on the minority side of
  a partition, where the majority promotes the replica once the writer has been unanswered for
  FENCE_SECONDS and a margin;
- more than FENCE_SECONDS passed since the last majority, measured on the monotonic clock before anything
  else is asked: the host was frozen (its processes stopped, then continued), and the monitors may have
  promoted the replica meanwhile;
- a majority of fresh views names another server as the writer (deposed).
The server starts again read-only (the container's restart policy, as after a crash), init_rpl_role=SLAVE
cuts the transactions no replica acknowledged, and the monitors make it a replica of the new writer.
Semi-synchronous replication with no timeout (the writer's my.cnf with several monitors) is what keeps a
cut-off writer from acknowledging anything before the kill; the kill ends its clients' waits and lets it
rejoin.

Run by mariadb-start as mysql beside the server, with the server's process id as its argument.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

POLL_SECONDS = 0.2
ASK_TIMEOUT_SECONDS = 0.5  # a monitor's view, and the server's own answer


@dataclass(frozen=True)
class Heard:
    """The fresh views of one poll."""
    monitors: int  # how many answered with a fresh view
    writer_ids: list[int]  # the server_id of the writer each names (0: none)


def deposed(heard: Heard, total: int, own_id: int) -> bool:
    """A majority of all monitors names another server as the writer."""
    return sum(1 for writer in heard.writer_ids if writer and writer != own_id) * 2 > total


def majority(heard: Heard, total: int) -> bool:
    return heard.monitors * 2 > total


def fence_reason(now: float, last_majority: float, fence_seconds: float) -> str:
    """Why a writer must die now ("" if it may live): its last majority is older than FENCE_SECONDS."""
    if now - last_majority > fence_seconds:
        return f"no majority of monitors for {now - last_majority:.1f} s (limit {fence_seconds} s)"
    return ""


def fresh(view: dict) -> bool:
    """A view from a monitor that checked the servers lately (its own measure, no shared clock)."""
    return view["age"] <= view["stale_after"]


class Server:
    """This server's read_only and server_id, through one client session on its socket (as mysql)."""

    def __init__(self):
        self.session = None
        self.read_only, self.server_id = True, 0  # until it answers: it starts read-only

    def ask(self) -> None:
        try:
            if self.session is None:
                self.session = subprocess.Popen(
                    ["mariadb", "--batch", "--skip-column-names", "--unbuffered"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.session.stdin.write("SELECT @@global.read_only, @@global.server_id;\n")
            ready, _, _ = select.select([self.session.stdout], [], [], ASK_TIMEOUT_SECONDS)
            line = self.session.stdout.readline() if ready else ""
            read_only, server_id = line.split()
            self.read_only, self.server_id = read_only != "0", int(server_id)
        except (OSError, ValueError):  # not answering yet, or the session ended: a new one next time
            if self.session is not None:
                self.session.kill()
                self.session = None


def tls_context(directory: str) -> ssl.SSLContext:
    """The server's own certificate, presented to the monitors, which check it as it checks theirs: the files
    the certificate rollout keeps current, read again at every poll."""
    context = ssl.create_default_context(cafile=f"{directory}/authority.pem")
    context.load_cert_chain(f"{directory}/certificate.pem", f"{directory}/private-key.pem")
    return context


def ask_monitors(monitors: list[str], context: ssl.SSLContext) -> Heard:
    def view(monitor: str):
        try:
            with urllib.request.urlopen(f"https://{monitor}/view", timeout=ASK_TIMEOUT_SECONDS,
                                        context=context) as answer:
                return json.load(answer)
        except (OSError, ValueError):
            return None

    with ThreadPoolExecutor(len(monitors)) as ask:
        views = [v for v in ask.map(view, monitors) if v is not None and fresh(v)]
    return Heard(len(views), [v.get("writer_id", 0) for v in views])


def files_stamp(directory: str) -> tuple[int, ...]:
    return tuple(os.stat(f"{directory}/{name}").st_mtime_ns
                 for name in ("certificate.pem", "private-key.pem", "authority.pem"))


def run(server_pid: int, monitors: list[str], fence_seconds: float, tls_directory: str) -> None:
    server = Server()
    context, stamp = tls_context(tls_directory), files_stamp(tls_directory)
    last_majority = time.monotonic()  # a server is never the writer before the monitors made it one
    while True:
        # Kill first, ask later: a thawed writer must not live through the questions.
        reason = fence_reason(time.monotonic(), last_majority, fence_seconds)
        if not (reason and not server.read_only):
            polled_at = time.monotonic()
            server.ask()
            with contextlib.suppress(OSError, ssl.SSLError):  # half written by a renewal: the last one serves
                if files_stamp(tls_directory) != stamp:
                    context, stamp = tls_context(tls_directory), files_stamp(tls_directory)
            heard = ask_monitors(monitors, context)
            if majority(heard, len(monitors)):
                last_majority = polled_at
            reason = fence_reason(time.monotonic(), last_majority, fence_seconds)
            if deposed(heard, len(monitors), server.server_id):
                reason = f"{heard.monitors} of {len(monitors)} monitors name another server as the writer"
        if reason and not server.read_only:
            os.kill(server_pid, signal.SIGKILL)
            print(f"fence: killed the writer (process {server_pid}): {reason}", flush=True)
            return
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    run(int(sys.argv[1]), os.environ["FENCE_MONITORS"].split(","), float(os.environ["FENCE_SECONDS"]),
        os.environ["FENCE_TLS"])
