"""The database monitor: keeps exactly one writer in the MariaDB pair and the other server its replica.

Debian ships no maintained failover manager for MariaDB (no MaxScale, orchestrator or replication-manager
in bookworm), so this is a small one, in the manner of MaxScale's mariadbmon. Every CHECK_INTERVAL_SECONDS
it asks both servers for their state at once, each given that interval to answer, then:

- one writer (read_only off): the other server is made its replica if it is not already (a server that
  was the writer comes back read-only, and rejoins here, through MASTER_DEMOTE_TO_SLAVE);
- no writer, because the writer did not answer FAILS checks in a row or came back read-only after a
  crash: the replica applies what it received (semi-sync AFTER_SYNC: every acknowledged commit), stops
  replicating and becomes the writer; keepalived then moves the virtual address to it;
- no writer at the first start: the server with the most transactions becomes the writer (the first
  listed on a tie);
- two writers (it never makes one, but an operator could): the one it did not choose is set read-only.

Servers always start read-only and not replicating (their my.cnf), so a restarted server can never be a
second writer. The monitor writes nothing else, and keeps no state that a restart of it would lose:
everything it needs it reads from the servers.

`monitor.py --check` is its container's health check: a fresh status with a writer, and the virtual
address answering as that writer.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATUS_FILE = Path("/tmp/db-monitor/status.json")
PORT = 3306

log = logging.getLogger("db-monitor")


@dataclass(frozen=True)
class ServerState:
    address: str
    reachable: bool
    read_only: bool = True
    replicating_from: str = ""  # the writer it reads from, when both replication threads run
    replication_error: str = ""  # why replication stopped (not while it only retries a connection)
    transactions: int = 0  # the sequence number of its last GTID: who has more is more advanced


@dataclass
class Memory:
    """What the monitor learnt from earlier checks: the writer it last saw, and unanswered checks."""

    writer: str = ""
    misses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    kind: str  # promote | replicate | fence
    address: str
    writer: str = ""
    reason: str = ""


def plan(states: list[ServerState], memory: Memory, fails: int) -> list[Action]:
    """What to do about the servers as they answered now; `states` is in order of preference."""
    for state in states:
        memory.misses[state.address] = 0 if state.reachable else memory.misses.get(state.address, 0) + 1
    reachable = [state for state in states if state.reachable]
    writers = [state for state in reachable if not state.read_only]
    if writers:
        chosen = next((w for w in writers if w.address == memory.writer), max(writers, key=_advancement(states)))
        memory.writer = chosen.address
        actions = [Action("fence", w.address, chosen.address, "a second writer") for w in writers if w is not chosen]
        for state in reachable:
            if state is chosen or state.replication_error or state.replicating_from == chosen.address:
                continue
            actions.append(Action("replicate", state.address, chosen.address, "not replicating from the writer"))
        return actions

    unanswered = [state for state in states if not state.reachable]
    if memory.writer:
        previous = next(state for state in states if state.address == memory.writer)
        if not previous.reachable and memory.misses[previous.address] < fails:
            return []  # not yet: it may only be slow
        others = [state for state in reachable if state.address != previous.address]
        if others:
            reason = (f"writer {previous.address} unanswered {memory.misses[previous.address]} times"
                      if not previous.reachable else f"writer {previous.address} restarted read-only")
            return [Action("promote", max(others, key=_advancement(states)).address, reason=reason)]
        if previous.reachable and all(memory.misses[state.address] >= fails for state in unanswered):
            return [Action("promote", previous.address, reason="the only server left")]
        return []

    # The first start, or the monitor restarted while no server was the writer.
    if unanswered and not all(memory.misses[state.address] >= fails for state in unanswered):
        return []
    if not reachable:
        return []
    return [Action("promote", max(reachable, key=_advancement(states)).address, reason="no writer yet")]


def _advancement(states: list[ServerState]):
    """More transactions first; on a tie, the earlier in the list of preference."""
    order = {state.address: index for index, state in enumerate(states)}
    return lambda state: (state.transactions, -order[state.address])


class Pair:
    """The two servers, through the monitor account."""

    def __init__(self, settings: dict[str, str]):
        self.addresses = settings["DB_SERVERS"].split(",")
        self.settings = settings

    def connect(self, address: str, timeout: float = 10):
        import pymysql  # only in the monitor's image; the decisions above are tested without it

        return pymysql.connect(
            host=address, port=PORT, user=self.settings["MONITOR_USER"], password=self.settings["MONITOR_PASSWORD"],
            connect_timeout=timeout, read_timeout=10, write_timeout=10, autocommit=True,
            cursorclass=pymysql.cursors.DictCursor)

    def states(self, timeout: float) -> list[ServerState]:
        """Every server asked at once, each given `timeout` to answer: a dead one costs no more than a check."""
        with ThreadPoolExecutor(len(self.addresses)) as ask:
            return list(ask.map(lambda address: self.state(address, timeout), self.addresses))

    def state(self, address: str, timeout: float) -> ServerState:
        try:
            with self.connect(address, timeout) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT @@global.read_only AS read_only, @@global.gtid_current_pos AS position")
                row = cursor.fetchone()
                cursor.execute("SHOW SLAVE STATUS")
                replica = cursor.fetchone() or {}
        except Exception as error:  # any failure to answer counts as an unanswered check
            log.debug("%s did not answer: %s", address, error)
            return ServerState(address, reachable=False)
        running = replica.get("Slave_IO_Running") == "Yes" and replica.get("Slave_SQL_Running") == "Yes"
        stopped = "No" in (replica.get("Slave_IO_Running"), replica.get("Slave_SQL_Running"))
        return ServerState(
            address, reachable=True, read_only=bool(row["read_only"]),
            replicating_from=replica.get("Master_Host", "") if running else "",
            replication_error=(replica.get("Last_IO_Error") or replica.get("Last_SQL_Error") or "") if stopped else "",
            transactions=_last_sequence(row["position"]))

    def promote(self, address: str) -> None:
        with self.connect(address) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW SLAVE STATUS")
            replica = cursor.fetchone()
            if replica:
                # Everything the replica received was acknowledged to clients: apply it all first.
                cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS waited",
                               (replica["Gtid_IO_Pos"], float(self.settings.get("APPLY_TIMEOUT_SECONDS", "60"))))
                if cursor.fetchone()["waited"] != 0:
                    raise RuntimeError(f"{address} did not apply its relay log in time")
                cursor.execute("STOP SLAVE")
                cursor.execute("RESET SLAVE ALL")
            cursor.execute("SET GLOBAL read_only = OFF")

    def replicate(self, address: str, writer: str) -> None:
        with self.connect(address) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")
            cursor.execute("STOP SLAVE")
            # MASTER_DEMOTE_TO_SLAVE: a former writer continues from its own last transaction.
            cursor.execute(
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
                "MASTER_USE_GTID = slave_pos, MASTER_DEMOTE_TO_SLAVE = 1, MASTER_CONNECT_RETRY = 1",
                (writer, PORT, self.settings["REPLICATION_USER"], self.settings["REPLICATION_PASSWORD"]))
            cursor.execute("START SLAVE")

    def fence(self, address: str) -> None:
        with self.connect(address) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")


def _last_sequence(gtid_position: str) -> int:
    """The sequence number of domain 0's last GTID ("0-1-42" -> 42); 0 before any transaction."""
    for gtid in filter(None, gtid_position.split(",")):
        domain, _server, sequence = gtid.split("-")
        if domain == "0":
            return int(sequence)
    return 0


def run(settings: dict[str, str]) -> None:
    pair = Pair(settings)
    memory = Memory()
    interval = float(settings["CHECK_INTERVAL_SECONDS"])
    fails = int(settings["FAILS"])
    STATUS_FILE.parent.mkdir(parents=True, exist_ok=True)
    while True:
        started = time.monotonic()
        states = pair.states(timeout=interval)
        for action in plan(states, memory, fails):
            try:
                if action.kind == "promote":
                    promoting = time.monotonic()
                    pair.promote(action.address)
                    memory.writer = action.address
                    log.warning("promoted %s to writer in %.3f s: %s",
                                action.address, time.monotonic() - promoting, action.reason)
                elif action.kind == "replicate":
                    pair.replicate(action.address, action.writer)
                    log.warning("%s now replicates from %s: %s", action.address, action.writer, action.reason)
                else:
                    pair.fence(action.address)
                    log.warning("set %s read-only: %s", action.address, action.reason)
            except Exception as error:
                log.error("%s %s failed: %s", action.kind, action.address, error)
        for state in states:
            if state.replication_error:
                log.error("%s stopped replicating: %s", state.address, state.replication_error)
        status = {"at": time.time(), "writer": memory.writer if _is_writer(states, memory.writer) else "",
                  "servers": [asdict(state) for state in states]}
        temporary = STATUS_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(status))
        temporary.replace(STATUS_FILE)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def _is_writer(states: list[ServerState], address: str) -> bool:
    return any(state.address == address and state.reachable and not state.read_only for state in states)


def check(settings: dict[str, str]) -> int:
    """Healthy: a status from the last few checks names a writer, and the virtual address reaches it."""
    try:
        status = json.loads(STATUS_FILE.read_text())
    except (OSError, ValueError):
        return 1
    if not status["writer"] or time.time() - status["at"] > 3 * float(settings["CHECK_INTERVAL_SECONDS"]) + 5:
        return 1
    try:
        with Pair(settings).connect(settings["DB_VIRTUAL_ADDRESS"]) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@global.read_only AS read_only")
            return 0 if cursor.fetchone()["read_only"] == 0 else 1
    except Exception:
        return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S", stream=sys.stdout)
    environment = dict(os.environ)
    sys.exit(check(environment) if sys.argv[1:] == ["--check"] else run(environment))
