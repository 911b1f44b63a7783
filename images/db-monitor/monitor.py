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
everything it needs it reads from the servers. A replica that stopped on an error (diverged) is left out
and reported: an operator rebuilds it from the writer.

Several monitors (MONITOR_PEERS: the others, on other hosts; 3 or more in all) make one monitor that no
single host or link can stop, or split. Each checks both servers and serves its view (GET /view on
MONITOR_PORT: what it sees, and which monitors it hears); each asks the others' views every check. Views
travel over mutual TLS (MutualTls): a forged view could depose a writer, so only a holder of a certificate
from the stack's authority is answered or believed. Only a
monitor that hears a majority of all monitors (itself included) acts, and only the leader among them: the
lowest MONITOR_INDEX that it or any monitor it hears hears. Then, in addition to the rules above:

- a promotion needs every unanswered server unanswered by a majority of views, for FAILS checks and for
  FENCE_SECONDS and a margin: a writer cut off from the monitors' majority has killed itself by then (the
  fence agent in its container, images/mariadb/fence.py), so there is never a second writer;
- the replica is promoted only if the writer, when last seen, waited for it (semi-sync on): then it has
  every acknowledged commit;
- semi-sync has no timeout (the servers' my.cnf), so a cut-off or frozen writer acknowledges nothing; the
  leader switches the writer to asynchronous only when a majority sees the replica unanswered (or own
  checks see it not replicating) for FAILS checks while the writer answers, and back once it replicates;
- a second writer is left to its fence agent, which kills it (a deposed writer may hold commits that no
  replica acknowledged: only its restart, init_rpl_role=SLAVE, cuts them).

GET /metrics on the same port (the same mutual TLS: the monitoring's Prometheus holds such a certificate)
gives what it sees in Prometheus' text format: each server answering, the writer, replication and its lag,
semi-sync waiting, and the writer changes it made, which the monitoring's alerts watch.

`monitor.py --check` is its container's health check: a fresh status with a writer, and the virtual
address answering as that writer; with peers also a majority, so a monitor cut off from the others is
unhealthy.
"""
from __future__ import annotations

import json
import logging
import os
import ssl
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    server_id: int = 0
    semi_sync: bool = True  # rpl_semi_sync_master_enabled: a writer waits for its replica's acknowledgement
    waits_for_replica: bool = True  # Rpl_semi_sync_master_status: it does wait now (not gone asynchronous)
    lag_seconds: int | None = None  # Seconds_Behind_Master, while it replicates


@dataclass
class Memory:
    """What the monitor learnt from earlier checks: the writer it last saw, and unanswered checks."""

    writer: str = ""
    misses: dict[str, int] = field(default_factory=dict)
    unanswered_since: dict[str, float] = field(default_factory=dict)  # monotonic, the first miss in a row
    lagging: dict[str, int] = field(default_factory=dict)  # checks in a row a replica did not replicate
    writer_waited: bool = True  # the writer waited for its replica when last seen: the replica has it all
    majority_since: float | None = None  # monotonic, since when its checks in a row had a majority
    checked_at: float | None = None


@dataclass(frozen=True)
class View:
    """What one other monitor sees, from its GET /view."""

    index: int
    unanswered: frozenset[str]  # the servers it cannot reach
    writer: str
    heard: frozenset[int]  # the monitors (indexes) whose fresh views it has, itself included


@dataclass(frozen=True)
class Quorum:
    """This monitor among several: the others' fresh views, and what acting needs."""

    index: int
    monitors: int  # all of them, this one included
    views: list[View]
    now: float  # monotonic
    fence_seconds: float
    margin_seconds: float
    settle_seconds: float  # how long a view stays fresh: every monitor hears of a new majority by then

    def majority(self) -> bool:
        return (len(self.views) + 1) * 2 > self.monitors

    def leader(self) -> bool:
        """No lower index among the monitors it hears, nor among those they hear: two monitors that do
        not hear each other but hear a third never both lead."""
        known = {view.index for view in self.views}.union(*(view.heard for view in self.views))
        return all(index >= self.index for index in known)

    def unanswered_by_majority(self, address: str) -> bool:
        return (1 + sum(address in view.unanswered for view in self.views)) * 2 > self.monitors


@dataclass(frozen=True)
class Action:
    kind: str  # promote | replicate | fence | asynchronous | semi-sync | report (log only)
    address: str
    writer: str = ""  # the writer it replicates from; asynchronous, semi-sync: the writer that changes
    reason: str = ""


def plan(states: list[ServerState], memory: Memory, fails: int, quorum: Quorum | None = None) -> list[Action]:
    """What to do about the servers as they answered now; `states` is in order of preference. With a
    quorum, only the leader with a majority acts; every monitor still updates its memory, for its view."""
    now = quorum.now if quorum else time.monotonic()
    for state in states:
        memory.misses[state.address] = 0 if state.reachable else memory.misses.get(state.address, 0) + 1
        if state.reachable:
            memory.unanswered_since.pop(state.address, None)
        else:
            memory.unanswered_since.setdefault(state.address, now)
    actions = _decide(states, memory, fails, quorum)
    if quorum and not _leads(memory, quorum):
        return [action for action in actions if action.kind == "report"]
    return actions


def _leads(memory: Memory, quorum: Quorum) -> bool:
    """The leader, with a majority for long enough that the monitor that led before has heard of it (a
    monitor back from a partition or a freeze waits, where the other still acts)."""
    continuous = memory.checked_at is not None and quorum.now - memory.checked_at <= quorum.settle_seconds
    if not quorum.majority():
        memory.majority_since = None
    elif memory.majority_since is None or not continuous:
        memory.majority_since = quorum.now
    memory.checked_at = quorum.now
    return (memory.majority_since is not None and quorum.now - memory.majority_since >= quorum.settle_seconds
            and quorum.leader())


def _decide(states: list[ServerState], memory: Memory, fails: int, quorum: Quorum | None) -> list[Action]:
    reachable = [state for state in states if state.reachable]
    writers = [state for state in reachable if not state.read_only]
    # Beside a live writer a replication error is a divergence (beside a dead one, a connection error).
    reports = [Action("report", state.address, reason=(
                   f"{state.address} stopped replicating ({state.replication_error}): it has diverged or lost its "
                   "writer's binary log; rebuild it from the writer (remove its data volume and start it again), "
                   "the monitor leaves it out until then"))
               for state in reachable if writers and state.replication_error and state.read_only]
    if writers:
        if quorum and len(writers) > 1 and memory.writer not in {w.address for w in writers}:
            return reports + [Action("report", "", reason="two writers and none known: their fence agents decide")]
        chosen = next((w for w in writers if w.address == memory.writer), max(writers, key=_advancement(states)))
        memory.writer = chosen.address
        memory.writer_waited = chosen.semi_sync and chosen.waits_for_replica
        if quorum:  # its fence agent kills a second writer: only a restart cuts what it did not replicate
            actions = [Action("report", w.address, chosen.address, f"a second writer beside {chosen.address}")
                       for w in writers if w is not chosen]
        else:
            actions = [Action("fence", w.address, chosen.address, "a second writer")
                       for w in writers if w is not chosen]
        for state in reachable:
            if state is chosen or state.replication_error or state.replicating_from == chosen.address:
                continue
            if quorum and not state.read_only:
                continue
            actions.append(Action("replicate", state.address, chosen.address, "not replicating from the writer"))
        if quorum:
            actions += _semi_sync(states, chosen, memory, fails, quorum)
        return reports + actions

    unanswered = [state for state in states if not state.reachable]
    if quorum and not all(_gone(state.address, memory, fails, quorum) for state in unanswered):
        return reports
    if memory.writer:
        previous = next(state for state in states if state.address == memory.writer)
        if not previous.reachable and memory.misses[previous.address] < fails:
            return reports  # not yet: it may only be slow
        others = [state for state in reachable if state.address != previous.address]
        if others and quorum and not memory.writer_waited and previous.reachable:
            # Back read-only (its fence agent restarted it) after commits its replica may lack: both answer,
            # so the more advanced one has every acknowledged commit, and promoting it loses none.
            return reports + [Action("promote", max(reachable, key=_advancement(states)).address, reason=(
                f"writer {previous.address} back read-only after commits without its replica"))]
        if others and quorum and not memory.writer_waited:
            return reports + [Action("report", previous.address, reason=(
                f"writer {previous.address} lost, but it acknowledged commits without its replica when last "
                "seen: no promotion, which would lose them; bring it back, or promote the replica by hand"))]
        if others:
            reason = (f"writer {previous.address} unanswered {memory.misses[previous.address]} times"
                      if not previous.reachable else f"writer {previous.address} restarted read-only")
            return reports + [Action("promote", max(others, key=_advancement(states)).address, reason=reason)]
        if previous.reachable and all(memory.misses[state.address] >= fails for state in unanswered):
            return reports + [Action("promote", previous.address, reason="the only server left")]
        return reports

    # The first start, or the monitor restarted while no server was the writer.
    if unanswered and not all(memory.misses[state.address] >= fails for state in unanswered):
        return reports
    if not reachable:
        return reports
    return reports + [Action("promote", max(reachable, key=_advancement(states)).address, reason="no writer yet")]


def _gone(address: str, memory: Memory, fails: int, quorum: Quorum) -> bool:
    """Unanswered long enough, and widely enough, that it has fenced itself if it was a writer."""
    return (memory.misses[address] >= fails and quorum.unanswered_by_majority(address)
            and quorum.now - memory.unanswered_since[address] >= quorum.fence_seconds + quorum.margin_seconds)


def _semi_sync(states: list[ServerState], writer: ServerState, memory: Memory, fails: int,
               quorum: Quorum) -> list[Action]:
    """Asynchronous only while a majority cannot reach the replica, or it does not replicate, for FAILS
    checks: the writer does not wait for a replica that is gone; semi-sync again once it replicates."""
    actions = []
    for replica in (state for state in states if state is not writer):
        replicating = replica.reachable and replica.replicating_from == writer.address
        memory.lagging[replica.address] = 0 if replicating else memory.lagging.get(replica.address, 0) + 1
        lost = memory.lagging[replica.address] >= fails and (
            replica.reachable or quorum.unanswered_by_majority(replica.address))
        if writer.semi_sync and lost:
            why = "unanswered" if not replica.reachable else "not replicating"
            actions.append(Action("asynchronous", replica.address, writer.address,
                                  f"replica {replica.address} {why} {memory.lagging[replica.address]} checks"))
        elif not writer.semi_sync and replicating and replica.transactions >= writer.transactions:
            actions.append(Action("semi-sync", replica.address, writer.address, f"replica {replica.address} caught up"))
    return actions


def _advancement(states: list[ServerState]):
    """More transactions first; on a tie, the earlier in the list of preference."""
    order = {state.address: index for index, state in enumerate(states)}
    return lambda state: (state.transactions, -order[state.address])


class Pair:
    """The two servers, through the monitor account."""

    def __init__(self, settings: dict[str, str]):
        self.addresses = settings["DB_SERVERS"].split(",")
        self.settings = settings
        # With several monitors semi-sync is on on the writer only, by the leader (the servers' my.cnf):
        # a replica's own commits would wait for a replica of their own, with no timeout.
        self.writer_only_semi_sync = bool(settings.get("MONITOR_PEERS"))

    def connect(self, address: str, timeout: float = 10, answer_timeout: float = 10):
        """`answer_timeout` bounds every answer: a frozen host accepts the connection but never answers."""
        import pymysql  # only in the monitor's image; the decisions above are tested without it

        # TLS, checking that the server's certificate comes from the stack's authority and names `address`.
        return pymysql.connect(
            host=address, port=PORT, user=self.settings["MONITOR_USER"], password=self.settings["MONITOR_PASSWORD"],
            ssl_ca=self.settings["TLS_AUTHORITY"], ssl_verify_cert=True, ssl_verify_identity=True,
            connect_timeout=timeout, read_timeout=answer_timeout, write_timeout=answer_timeout, autocommit=True,
            cursorclass=pymysql.cursors.DictCursor)

    def states(self, timeout: float) -> list[ServerState]:
        """Every server asked at once, each given `timeout` to answer: a dead one costs no more than a check."""
        with ThreadPoolExecutor(len(self.addresses)) as ask:
            return list(ask.map(lambda address: self.state(address, timeout), self.addresses))

    def state(self, address: str, timeout: float) -> ServerState:
        try:
            with self.connect(address, timeout, timeout) as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT @@global.read_only AS read_only, @@global.gtid_current_pos AS position, "
                    "@@global.server_id AS server_id, @@global.rpl_semi_sync_master_enabled AS semi_sync, "
                    "(SELECT variable_value FROM information_schema.global_status "
                    " WHERE variable_name = 'RPL_SEMI_SYNC_MASTER_STATUS') AS waits")
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
            transactions=_last_sequence(row["position"]), server_id=row["server_id"], semi_sync=bool(row["semi_sync"]),
            waits_for_replica=row["waits"] == "ON",
            lag_seconds=replica.get("Seconds_Behind_Master") if running else None)

    def promote(self, address: str) -> None:
        apply_timeout = float(self.settings.get("APPLY_TIMEOUT_SECONDS", "60"))
        with self.connect(address, answer_timeout=apply_timeout + 10) as connection, connection.cursor() as cursor:
            # Receive nothing more first: what it received and acknowledged must all be applied below.
            cursor.execute("STOP SLAVE IO_THREAD")
            cursor.execute("SHOW SLAVE STATUS")
            replica = cursor.fetchone()
            if replica:
                # Everything the replica received was acknowledged to clients: apply it all first.
                cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS waited",
                               (replica["Gtid_IO_Pos"], apply_timeout))
                if cursor.fetchone()["waited"] != 0:
                    raise RuntimeError(f"{address} did not apply its relay log in time")
                cursor.execute("STOP SLAVE")
                cursor.execute("RESET SLAVE ALL")
            cursor.execute("SET GLOBAL read_only = OFF")

    def replicate(self, address: str, writer: str) -> None:
        with self.connect(address) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")
            if self.writer_only_semi_sync:
                cursor.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
            cursor.execute("STOP SLAVE")
            # MASTER_DEMOTE_TO_SLAVE: a former writer continues from its own last transaction. Over TLS, the
            # writer's certificate checked against the authority in the replica's own certificate volume.
            cursor.execute(
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
                "MASTER_SSL = 1, MASTER_SSL_CA = %s, MASTER_SSL_VERIFY_SERVER_CERT = 1, "
                "MASTER_USE_GTID = slave_pos, MASTER_DEMOTE_TO_SLAVE = 1, MASTER_CONNECT_RETRY = 1",
                (writer, PORT, self.settings["REPLICATION_USER"], self.settings["REPLICATION_PASSWORD"],
                 self.settings["SERVER_TLS_AUTHORITY"]))
            cursor.execute("START SLAVE")

    def fence(self, address: str) -> None:
        with self.connect(address) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL read_only = ON")

    def asynchronous(self, writer: str) -> None:
        """Also ends the waits of commits in flight: they are acknowledged without the replica."""
        with self.connect(writer) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")

    def semi_sync(self, replica: str, writer: str) -> None:
        """The writer counts only replicas that connected while it was semi-synchronous: its replica
        connects again."""
        with self.connect(writer) as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
        with self.connect(replica) as connection, connection.cursor() as cursor:
            cursor.execute("STOP SLAVE IO_THREAD")
            cursor.execute("START SLAVE IO_THREAD")


class MutualTls:
    """TLS both ways between the monitors, and with the servers' fence agents: each side presents its own
    certificate from the stack's authority and checks the other's against it (an asked monitor's for its
    address). The files (MONITOR_TLS, which the certificate rollout fills) are read again whenever they change,
    so a renewed certificate or authority needs no restart; while a renewal is half written, the last good
    pair of contexts stays."""

    FILES = ("certificate.pem", "private-key.pem", "authority.pem")

    def __init__(self, directory: str):
        self.paths = [Path(directory) / name for name in self.FILES]
        self.lock = threading.Lock()
        self.stamp: tuple[int, ...] = ()
        self.contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = None

    def _current(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        with self.lock:
            stamp = tuple(path.stat().st_mtime_ns for path in self.paths)
            if stamp != self.stamp or self.contexts is None:
                try:
                    self.contexts = self._load()
                    self.stamp = stamp
                except (OSError, ssl.SSLError) as error:
                    if self.contexts is None:
                        raise
                    log.info("keeping the last certificate while its files change: %s", error)
            return self.contexts

    def _load(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        server, client = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        server.verify_mode = ssl.CERT_REQUIRED
        for context in (server, client):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.paths[0], self.paths[1])
            context.load_verify_locations(self.paths[2])
        return server, client

    def server(self) -> ssl.SSLContext:
        return self._current()[0]

    def client(self) -> ssl.SSLContext:
        return self._current()[1]


class Peers:
    """The other monitors, and this one's own view for them."""

    def __init__(self, settings: dict[str, str], interval: float):
        self.tls = MutualTls(settings["MONITOR_TLS"])
        self.addresses = [peer for peer in settings.get("MONITOR_PEERS", "").split(",") if peer]
        self.index = int(settings.get("MONITOR_INDEX", "0"))
        self.interval = interval
        self.stale_after = 3 * interval + 1  # a view older than this is no longer a monitor's opinion
        self.view = {}
        self.view_made = time.monotonic()
        self.metrics = ""

    def views(self) -> list[View]:
        """The others' fresh views, all asked at once, each given a check interval to answer."""
        if not self.addresses:
            return []
        with ThreadPoolExecutor(len(self.addresses)) as ask:
            answers = list(ask.map(self.ask, self.addresses))
        return [View(a["index"], frozenset(a["unanswered"]), a["writer"], frozenset(a["heard"]))
                for a in answers if a and a["age"] <= a["stale_after"]]

    def ask(self, peer: str) -> dict | None:
        try:
            with urllib.request.urlopen(f"https://{peer}/view", timeout=self.interval,
                                        context=self.tls.client()) as answer:
                return json.load(answer)
        except (OSError, ValueError) as error:
            log.debug("monitor %s did not answer: %s", peer, error)
            return None

    def publish(self, view: dict) -> None:
        self.view, self.view_made = view, time.monotonic()

    def serve(self, port: int) -> None:
        peers = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # for the handshake too: a peer that stops answering holds a thread no longer

            def setup(self):
                self.request.settimeout(self.timeout)
                self.request.do_handshake()  # in this request's thread, not the one that accepts
                super().setup()

            def do_GET(self):
                if self.path == "/metrics" and peers.metrics:
                    body, content_type = peers.metrics.encode(), "text/plain; version=0.0.4"
                elif self.path == "/view" and peers.view:  # none before its first check
                    body = json.dumps({**peers.view, "age": time.monotonic() - peers.view_made,
                                       "stale_after": peers.stale_after}).encode()
                    content_type = "application/json"
                else:
                    self.send_error(503 if self.path in ("/view", "/metrics") else 404)
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except ConnectionError:  # the asker gave up (its timeout is a check interval)
                    pass

            def log_message(self, *args):
                pass

        tls = self.tls

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                connection, address = super().get_request()
                return tls.server().wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

            def handle_error(self, request, client_address):
                log.debug("a view's request from %s failed: %s", client_address, sys.exc_info()[1])

        server = Server(("0.0.0.0", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()


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
    peers = Peers(settings, interval)
    # The fence agent kills at most a poll and an unanswered question after FENCE_SECONDS; a monitor saw
    # the writer's last answer at most a check before the agent's last majority.
    margin = 1 + 2 * interval
    if settings.get("MONITOR_PORT"):
        peers.serve(int(settings["MONITOR_PORT"]))
    STATUS_FILE.parent.mkdir(parents=True, exist_ok=True)
    reported: set[str] = set()
    writer_changes = 0
    while True:
        started = time.monotonic()
        with ThreadPoolExecutor(2) as ask:
            asked_states, asked_views = ask.submit(pair.states, interval), ask.submit(peers.views)
            states, views = asked_states.result(), asked_views.result()
        quorum = None if not peers.addresses else Quorum(
            peers.index, len(peers.addresses) + 1, views, time.monotonic(), float(settings["FENCE_SECONDS"]), margin,
            peers.stale_after)
        actions = plan(states, memory, fails, quorum)
        if time.monotonic() - started > 2 * interval + 1:
            actions = []  # this monitor was stopped (its host frozen): what it saw is old, check again
        for action in actions:
            try:
                if action.kind == "promote":
                    promoting = time.monotonic()
                    pair.promote(action.address)
                    writer_changes += bool(memory.writer)  # not the first start's choice
                    memory.writer = action.address
                    log.warning("promoted %s to writer in %.3f s: %s",
                                action.address, time.monotonic() - promoting, action.reason)
                elif action.kind == "replicate":
                    pair.replicate(action.address, action.writer)
                    log.warning("%s now replicates from %s: %s", action.address, action.writer, action.reason)
                elif action.kind == "fence":
                    pair.fence(action.address)
                    log.warning("set %s read-only: %s", action.address, action.reason)
                elif action.kind == "asynchronous":
                    pair.asynchronous(action.writer)
                    log.warning("%s now acknowledges commits without its replica: %s", action.writer, action.reason)
                elif action.kind == "semi-sync":
                    pair.semi_sync(action.address, action.writer)
                    log.warning("%s now waits for its replica again: %s", action.writer, action.reason)
            except Exception as error:
                log.error("%s %s failed: %s", action.kind, action.address, error)
        reports = [action.reason for action in actions if action.kind == "report"]
        for reason in set(reports) - reported:
            log.error("%s", reason)
        reported = set(reports)
        majority = quorum.majority() if quorum else True
        writer = memory.writer if _is_writer(states, memory.writer) else ""
        status = {"at": time.time(), "writer": writer, "majority": majority,
                  "leader": bool(quorum and quorum.leader()) or not quorum, "reports": reports,
                  "servers": [asdict(state) for state in states]}
        peers.publish({
            "time": status["at"], "index": peers.index, "servers": status["servers"], "writer": writer,
            "writer_id": next((s.server_id for s in states if s.address == writer), 0),
            "unanswered": [state.address for state in states if not state.reachable], "misses": memory.misses,
            "heard": [peers.index, *(view.index for view in views)], "majority": majority})
        peers.metrics = metrics(status, writer_changes)
        temporary = STATUS_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(status))
        temporary.replace(STATUS_FILE)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


METRICS = {
    "openmrs_database_server_up": "The server answered this monitor's last check.",
    "openmrs_database_writer": "The server is the pair's writer.",
    "openmrs_database_replicating": "The server replicates from the writer, both threads running.",
    "openmrs_database_replication_error": "The server's replication stopped on an error: it diverged.",
    "openmrs_database_waits_for_replica": "The writer waits for its replica's acknowledgement (semi-sync on).",
    "openmrs_database_replica_lag_seconds": "How far behind the writer the replica applies (Seconds_Behind_Master).",
}


def metrics(status: dict, writer_changes: int) -> str:
    """The monitor's last check in Prometheus' text format, one series per server (by its address)."""
    values: dict[str, list[tuple[str, float]]] = {name: [] for name in METRICS}
    for server in status["servers"]:
        address, writer = server["address"], server["address"] == status["writer"]
        values["openmrs_database_server_up"].append((address, server["reachable"]))
        values["openmrs_database_writer"].append((address, writer))
        if not server["reachable"]:
            continue
        values["openmrs_database_replicating"].append((address, bool(server["replicating_from"])))
        values["openmrs_database_replication_error"].append((address, bool(server["replication_error"])))
        if writer:
            waiting = server["semi_sync"] and server["waits_for_replica"]
            values["openmrs_database_waits_for_replica"].append((address, waiting))
        if server["lag_seconds"] is not None:
            values["openmrs_database_replica_lag_seconds"].append((address, server["lag_seconds"]))
    lines = []
    for name, help_text in METRICS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [f'{name}{{server="{address}"}} {float(value)}' for address, value in values[name]]
    lines += ["# HELP openmrs_database_writer_changes_total Writers this monitor chose after the first.",
              "# TYPE openmrs_database_writer_changes_total counter",
              f"openmrs_database_writer_changes_total {writer_changes}",
              "# HELP openmrs_database_monitor_majority The monitor hears a majority of the monitors.",
              "# TYPE openmrs_database_monitor_majority gauge",
              f"openmrs_database_monitor_majority {float(status['majority'])}"]
    return "\n".join(lines) + "\n"


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
    if not status["majority"]:
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
