#!/usr/bin/env python3
"""The cluster's backup agent, into one encrypted restic repository (a volume or an S3-compatible bucket).

Beside each database server (`run`, BACKUP_KIND=database): its binary log streamed without a pause into a
spool (mariadb-binlog, as a replica would read it) and the spool shipped every SHIP_EVERY_SECONDS; a full
physical backup (mariabackup) every FULL_EVERY_HOURS, taken only while this server is the replica, so the
writer never carries its load. Both servers log every transaction (log_slave_updates, one GTID domain), so
whichever is the writer at a moment, the changes of that moment reach the repository.
Beside the shared files (`run`, BACKUP_KIND=files): a snapshot every FILES_EVERY_MINUTES.

`check` is the container's health (a failed or overdue backup makes it unhealthy), `status` prints what an
operator asks (the last success of each kind, its size and duration, the recoverable window), and
`restore-database` / `restore-files` restore to a moment, run by scripts/restore in one-shot containers."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STATE = Path(os.environ.get("BACKUP_STATE", "/var/lib/openmrs-backup"))
SPOOL = STATE / "binlogs"
STATUS = STATE / "status.json"
DATA = Path("/var/lib/mysql")
MARKER = DATA / ".openmrs-cluster-initialised"  # images/mariadb/start.sh: a data directory that is complete
FULL_FILE = "database.mbstream"
COMPLETED = "completed="  # tag of a full backup whose stream ended well, with its end (UTC, ISO)
TIMELINE = "timeline="  # tag of the database's backups: the history they belong to (timeline_at)
RESTORED = "restored"  # tag of the snapshot that marks a restore of the database: a new timeline from then
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LOCK_WAIT_SECONDS = 300
# A transaction's row events are replayed as one statement: a bulk change is larger than the default packet.
REPLAY_PACKET = "1G"
STOPPING = threading.Event()  # set by docker stop (SIGTERM): `run` ends once its commands have ended


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"backup-agent: {name} is not set")
    return value


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    """restic's RFC 3339 times (nanoseconds included) and the operator's 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    text = text.strip().replace("T", " ").removesuffix("Z")
    if "+" in text[10:]:
        text = text[:10] + text[10:].split("+")[0]
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
        return dt.datetime.strptime(text, TIME_FORMAT + ".%f").replace(tzinfo=dt.timezone.utc)
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)


def log(message: str) -> None:
    print(f"{stamp(now())} {message}", flush=True)


# -- restic ---------------------------------------------------------------------------------------------------

def restic(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    """restic, tried again for up to LOCK_WAIT_SECONDS while another agent of the repository holds a lock that
    excludes this command (tag, forget and prune lock it exclusively; restic 0.14 cannot wait by itself)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        done = subprocess.run(["restic", "--no-cache", *arguments], capture_output=True, text=True)
        if done.returncode == 0 or "already locked" not in done.stderr or time.monotonic() > deadline \
                or STOPPING.is_set():
            break
        time.sleep(2)
    if check:
        done.check_returncode()
    return done


def ensure_repository() -> None:
    """The agent given MAKE_REPOSITORY makes the repository if it is new (restic's init takes no lock: two agents
    making it at once would each write a config); the others wait for it."""
    for _ in range(150):
        opened = restic("cat", "config", check=False)
        if opened.returncode == 0:
            return
        if os.environ.get("MAKE_REPOSITORY") == "1" and restic("init", check=False).returncode == 0:
            log("made the backup repository")
            return
        time.sleep(2)
    raise RuntimeError(f"the backup repository cannot be opened: {opened.stderr.strip()[-300:]}")


def release_stale_locks() -> None:
    """Removes the locks of this agent's host name whose process is gone, left when it was killed rather than
    stopped (a crash, an engine's restart, docker stop's timeout), and any older than restic's 30 minutes. An
    exclusive one would hold every other agent of the repository off, and restic never removes one by itself."""
    def held() -> set[str]:
        return set(restic("list", "locks", "--no-lock", check=False).stdout.split())

    before = held()
    restic("unlock", check=False)
    if released := len(before - held()):
        log(f"released {released} lock(s) left by this agent's killed commands")


def stop_gracefully(signum: int, frame) -> None:
    """docker stop: each command this agent runs is interrupted (SIGINT), as restic expects to be, so that it
    removes its lock from the repository before it ends; killed at the stop's timeout, it would leave it there."""
    STOPPING.set()
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:  # the parent, after the command's (name)
                os.kill(int(stat.parent.name), signal.SIGINT)
        except (OSError, IndexError):
            continue  # ended meanwhile


def snapshots(tag: str, timeline: str | None = None) -> list[dict]:
    """`tag`'s snapshots, oldest first; of one timeline of the database, if given."""
    tags = f"{tag},{TIMELINE}{timeline}" if timeline else tag
    listed = restic("snapshots", "--json", "--tag", tags)
    return sorted(json.loads(listed.stdout) or [], key=lambda snapshot: snapshot["time"])


def timeline_at(moment: dt.datetime) -> str:
    """A restore starts a new history of the database (the transactions after its moment are gone, and new ones
    take their GTIDs): the database's backups are grouped by the restore that began their history, if any."""
    markers = [snapshot for snapshot in snapshots(RESTORED) if parse_time(snapshot["time"]) <= moment]
    return markers[-1]["short_id"] if markers else "origin"


def completed_fulls(timeline: str) -> list[tuple[dt.datetime, dict]]:
    """Full backups whose stream ended well, oldest first, each with the moment it is consistent at."""
    fulls = []
    for snapshot in snapshots("full", timeline):
        ends = [tag.removeprefix(COMPLETED) for tag in snapshot.get("tags", []) if tag.startswith(COMPLETED)]
        if ends:
            fulls.append((parse_time(ends[0]), snapshot))
    return sorted(fulls, key=lambda item: item[0])


def forget(tag: str, retention_days: int) -> None:
    """Keeps `tag`'s snapshots of the retention window and, whatever their age, the newest one of each host."""
    restic("forget", "--tag", tag, "--group-by", "host", "--keep-within", f"{retention_days}d", "--keep-last", "1")


# -- status ---------------------------------------------------------------------------------------------------

def load_status() -> dict:
    try:
        return json.loads(STATUS.read_text())
    except (OSError, ValueError):
        return {}


def save_status(**changes) -> None:
    write_status({**load_status(), **changes})


def write_status(status: dict) -> None:
    temporary = STATUS.with_suffix(".tmp")
    temporary.write_text(json.dumps({**status, "updated": stamp(now())}, indent=2, sort_keys=True))
    temporary.replace(STATUS)
    write_metrics(status)


def write_metrics(status: dict) -> None:
    """The same view as `check`, for the machine's node exporter (its textfile collector, METRICS_FILE): the
    monitoring's BackupOverdue and BackupFailed alerts read it. A stopped agent leaves its last figures, which
    then grow old as its backups do."""
    path = os.environ.get("METRICS_FILE")
    if not path:
        return
    agent = os.environ.get("SERVER_NAME", "files")
    lines = ["# HELP openmrs_backup_last_success_timestamp_seconds The kind's last success (the agent's start "
             "before the first).",
             "# TYPE openmrs_backup_last_success_timestamp_seconds gauge",
             "# HELP openmrs_backup_allowed_age_seconds How old the last success may grow before it is overdue.",
             "# TYPE openmrs_backup_allowed_age_seconds gauge",
             "# HELP openmrs_backup_last_attempt_failed Whether the kind's last attempt failed.",
             "# TYPE openmrs_backup_last_attempt_failed gauge"]
    for name, moment, allowed in deadlines(status):
        kind = name.removesuffix("_any")
        labels = f'tier="backups",member="{agent}",kind="{kind}"'
        lines += [f"openmrs_backup_last_success_timestamp_seconds{{{labels}}} {moment.timestamp():.0f}",
                  f"openmrs_backup_allowed_age_seconds{{{labels}}} {allowed}",
                  f"openmrs_backup_last_attempt_failed{{{labels}}} {int(kind + '_error' in status)}"]
    try:
        temporary = Path(f"{path}.tmp")  # the collector reads *.prom only: never a half-written file
        temporary.write_text("\n".join(lines) + "\n")
        temporary.replace(path)
    except OSError as error:
        log(f"metrics not written to {path}: {error}")


def record(kind: str, started: float, size: int | None = None, error: str | None = None) -> None:
    """The last attempt of `kind`, and its last success."""
    if error is not None and STOPPING.is_set():
        return  # interrupted by docker stop: no failure of the backup
    status = load_status()
    attempt = {"at": stamp(now()), "seconds": round(time.monotonic() - started, 1)}
    if error is None:
        status[kind] = {**attempt, **({"bytes": size} if size is not None else {})}
        status.pop(f"{kind}_error", None)
        if kind == "full":
            status["full_any"] = status[kind]["at"]  # this agent's view of the repository's newest full
    else:
        status[f"{kind}_error"] = {**attempt, "error": error[-500:]}
    write_status(status)  # whole: a success removes the kind's last error


# -- the database server ------------------------------------------------------------------------------------

def tls_options() -> list[str]:
    return [f"--host={env('DB_HOST')}", "--port=3306", f"--user={env('DB_USER')}",
            f"--ssl-ca={env('DB_TLS_CA')}", "--ssl-verify-server-cert"]


def sql(query: str) -> list[list[str]]:
    answer = subprocess.run(["mariadb", *tls_options(), "--batch", "--skip-column-names", "-e", query],
                            capture_output=True, text=True, check=True, timeout=30)
    return [line.split("\t") for line in answer.stdout.splitlines()]


def is_replica() -> bool:
    """A replica that replicates: read-only, with both threads running. Never the writer."""
    (read_only,) = sql("SELECT @@global.read_only")[0]
    if read_only != "1":
        return False
    status = subprocess.run(["mariadb", *tls_options(), "--vertical", "-e", "SHOW SLAVE STATUS"],
                            capture_output=True, text=True, timeout=30).stdout
    return "Slave_IO_Running: Yes" in status and "Slave_SQL_Running: Yes" in status


def stream_binlogs(stop: threading.Event) -> None:
    """Reads this server's binary log as a replica does, into SPOOL, and reconnects when the server restarts."""
    SPOOL.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        try:
            spooled = sorted(SPOOL.glob("mariadb-bin.[0-9]*"))
            first = spooled[-1].name if spooled else sql("SHOW BINARY LOGS")[0][0]
            # The last file again from its start: it may have grown since the connection ended.
            subprocess.run(["mariadb-binlog", "--read-from-remote-server", *tls_options(), "--raw", "--stop-never",
                            f"--stop-never-slave-server-id={env('STREAM_SERVER_ID')}", f"--result-file={SPOOL}/",
                            first], capture_output=True, text=True)
        except (subprocess.SubprocessError, IndexError, OSError) as error:
            log(f"binary log stream: {error}")
        stop.wait(2)


def spool_signature() -> list[tuple[str, int]]:
    return [(path.name, path.stat().st_size) for path in sorted(SPOOL.glob("mariadb-bin.[0-9]*"))]


def ship(server: str, timeline: str, retention_days: int, full_every_hours: int) -> None:
    """The spool into the repository (only what changed), then files older than the window out of the spool."""
    started = time.monotonic()
    signature = spool_signature()
    try:
        if signature and signature != load_status().get("shipped_signature"):
            restic("backup", "--quiet", "--host", server, "--tag", f"binlog,{TIMELINE}{timeline}", str(SPOOL))
        # What the repository holds is this server's log up to now: the recovery point.
        record("ship", started, size=sum(size for _, size in signature))
        save_status(shipped_signature=signature)
    except subprocess.CalledProcessError as error:
        record("ship", started, error=error.stderr or str(error))
        return
    horizon = time.time() - (retention_days * 86400 + full_every_hours * 3600 * 2)
    for path in sorted(SPOOL.glob("mariadb-bin.[0-9]*"))[:-1]:
        if path.stat().st_mtime < horizon:
            path.unlink()


def full_backup(server: str, timeline: str, full_every_hours: int, retention_days: int) -> None:
    """A full backup when the repository's newest is due, taken only while this server is a replica."""
    fulls = completed_fulls(timeline)
    if fulls:
        save_status(full_any=stamp(fulls[-1][0]))
    if fulls and now() - fulls[-1][0] < dt.timedelta(hours=full_every_hours):
        return
    if not is_replica():
        return
    started = time.monotonic()
    log("full backup: started")
    backup = subprocess.Popen(["mariabackup", "--backup", "--stream=mbstream", "--slave-info", f"--datadir={DATA}",
                               f"--target-dir={tempfile.mkdtemp()}", *tls_options()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = subprocess.run(["restic", "--no-cache", "backup", "--json", "--host", server,
                             "--tag", f"full,{TIMELINE}{timeline}",
                             "--stdin", "--stdin-filename", FULL_FILE], stdin=backup.stdout, capture_output=True,
                            text=True)
    backup.stdout.close()
    backup_errors = backup.stderr.read().decode(errors="replace")
    backup.wait()
    summary = next((json.loads(line) for line in stored.stdout.splitlines()
                    if line.startswith("{") and '"summary"' in line), {})
    snapshot = summary.get("snapshot_id")
    if backup.returncode != 0 or stored.returncode != 0 or not snapshot:
        if snapshot:  # a stream cut short is no backup
            restic("forget", snapshot, check=False)
        record("full", started, error=backup_errors if backup.returncode else stored.stderr)
        log(f"full backup failed: {(backup_errors or stored.stderr)[-300:]}")
        return
    restic("tag", "--add", COMPLETED + now().strftime("%Y-%m-%dT%H:%M:%SZ"), snapshot)
    record("full", started, size=summary.get("total_bytes_processed"))
    log(f"full backup: {summary.get('total_bytes_processed')} bytes in {time.monotonic() - started:.1f} s")
    forget("full", retention_days)
    # Each shipment holds the whole spool, which reaches back past the oldest full backup kept.
    restic("forget", "--tag", "binlog", "--group-by", "host,tags", "--keep-last", "3")
    restic("prune", check=False)


def run_database() -> None:
    server = env("SERVER_NAME")
    full_every_hours, retention_days = int(env("FULL_EVERY_HOURS")), int(env("RETENTION_DAYS"))
    ship_every = int(env("SHIP_EVERY_SECONDS"))
    ensure_repository()
    release_stale_locks()
    timeline = timeline_at(now())
    if load_status().get("timeline") != timeline:
        # Restored since this agent last ran: the server's binary log starts again, and so does the spool.
        shutil.rmtree(SPOOL, ignore_errors=True)
        STATUS.unlink(missing_ok=True)
        save_status(started=stamp(now()), timeline=timeline)
    threading.Thread(target=stream_binlogs, args=(STOPPING,), daemon=True).start()
    while not STOPPING.is_set():
        ship(server, timeline, retention_days, full_every_hours)
        if STOPPING.is_set():
            break
        try:
            full_backup(server, timeline, full_every_hours, retention_days)
        except (subprocess.SubprocessError, OSError, IndexError) as error:
            record("full", time.monotonic(), error=str(error))
        STOPPING.wait(ship_every)


# -- the shared files --------------------------------------------------------------------------------------------

def run_files() -> None:
    every = int(env("FILES_EVERY_MINUTES")) * 60
    retention_days = int(env("RETENTION_DAYS"))
    folders = [str(Path(env("FILES_ROOT")) / folder) for folder in env("FOLDERS").split(",")]
    ensure_repository()
    release_stale_locks()
    while not STOPPING.is_set():
        started = time.monotonic()
        try:
            restic("backup", "--quiet", "--host", "files", "--tag", "files", *folders)
            record("files", started)
            forget("files", retention_days)
        except subprocess.CalledProcessError as error:
            record("files", started, error=error.stderr or str(error))
        STOPPING.wait(every)


# -- health and status ------------------------------------------------------------------------------------------

def deadlines(status: dict) -> list[tuple[str, dt.datetime, int]]:
    """Each kind this agent keeps, its last success (the agent's start before the first), and how old that may
    grow: twice its interval (three shipments), and a grace."""
    due = {"database": [("ship", int(env("SHIP_EVERY_SECONDS", "60")) * 3 + 60),
                        ("full_any", int(env("FULL_EVERY_HOURS", "24")) * 3600 * 2 + 3600)],
           "files": [("files", int(env("FILES_EVERY_MINUTES", "15")) * 120 + 300)]}[env("BACKUP_KIND")]
    started = parse_time(status.get("started", stamp(now())))
    moments = []
    for name, seconds in due:
        last = status.get(name)
        moments.append((name, parse_time(last["at"] if isinstance(last, dict) else last) if last else started,
                        seconds))
    return moments


def check() -> int:
    """Unhealthy when the last attempt of a kind failed, or a kind is overdue."""
    status = load_status()
    problems = [f"{name}: {status[name + '_error']['error'][-200:]}" for name in ("ship", "full", "files")
                if name + "_error" in status]
    for name, moment, seconds in deadlines(status):
        if (now() - moment).total_seconds() > seconds:
            problems.append(f"{name}: none since {stamp(moment)} UTC")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def status() -> int:
    """What the repository holds and what this agent last did: for `docker exec <agent> backup-agent status`."""
    if env("BACKUP_KIND") == "files":
        taken = [stamp(parse_time(snapshot["time"])) for snapshot in snapshots("files")]
        report = {"agent": load_status(), "files_snapshots": len(taken),
                  "recoverable_window_utc": {"from": taken[0], "to": taken[-1]} if taken else None}
    else:
        timeline = timeline_at(now())
        fulls = completed_fulls(timeline)
        shipped = snapshots("binlog", timeline)
        window = None
        if fulls:
            latest = max([fulls[-1][0], *[parse_time(snapshot["time"]) for snapshot in shipped]])
            window = {"from": stamp(fulls[0][0]), "to": stamp(latest)}
        report = {"agent": load_status(), "full_backups": [stamp(moment) for moment, _ in fulls],
                  "binlog_snapshots": len(shipped), "recoverable_window_utc": window}
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


# -- restore ------------------------------------------------------------------------------------------------------

def refuse(message: str) -> int:
    print(f"backup-agent: {message}", file=sys.stderr)
    return 2


def restore_database(target: dt.datetime) -> int:
    """Into the (stopped) server's data directory, mounted at /var/lib/mysql: the newest full backup consistent
    before `target`, then every shipped transaction after it up to `target`. Run as mysql."""
    timeline = timeline_at(target)
    fulls = completed_fulls(timeline)
    shipped = snapshots("binlog", timeline)
    if not fulls:
        return refuse("the repository holds no full backup of the database yet")
    latest = max(parse_time(snapshot["time"]) for snapshot in shipped) if shipped else fulls[-1][0]
    if not fulls[0][0] <= target <= latest:
        return refuse(f"{stamp(target)} UTC is outside the recoverable window, {stamp(fulls[0][0])} to "
                      f"{stamp(latest)} UTC; choose a time inside it")
    consistent, full = [item for item in fulls if item[0] <= target][-1]
    log(f"restoring the full backup of {stamp(consistent)} UTC ({full['short_id']})")
    for entry in DATA.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    dump = subprocess.Popen(["restic", "--no-cache", "dump", full["id"], f"/{FULL_FILE}"], stdout=subprocess.PIPE)
    subprocess.run(["mbstream", "-x", "-C", str(DATA)], stdin=dump.stdout, check=True)
    if dump.wait() != 0:
        return refuse("the full backup could not be read from the repository")
    subprocess.run(["mariabackup", "--prepare", f"--target-dir={DATA}"], check=True, capture_output=True)
    # The GTID of the backup's last transaction; none when the database had none yet (then every one shipped).
    fields = (DATA / "xtrabackup_binlog_info").read_text().split()
    position = fields[2] if len(fields) > 2 else None
    with tempfile.TemporaryDirectory() as binlogs:
        sets = []
        for host in sorted({snapshot["hostname"] for snapshot in shipped}):
            newest = [snapshot for snapshot in shipped if snapshot["hostname"] == host][-1]
            restic("restore", newest["id"], "--target", f"{binlogs}/{host}")
            files = sorted(str(path) for path in Path(binlogs, host).rglob("mariadb-bin.[0-9]*"))
            events = replay(files, position, target)
            sets.append((len(re.findall(r"^#.*\sGTID \d+-\d+-\d+", events, re.MULTILINE)), files, events))
        socket = f"{binlogs}/restore.sock"
        server = subprocess.Popen(["mariadbd", f"--datadir={DATA}", f"--socket={socket}", "--skip-networking",
                                   "--skip-slave-start", "--read-only=OFF", "--log-bin=mariadb-bin",
                                   "--require-secure-transport=OFF", f"--max-allowed-packet={REPLAY_PACKET}"])
        try:
            for _ in range(120):
                if subprocess.run(["mariadb-admin", f"--socket={socket}", "ping"], capture_output=True).returncode == 0:
                    break
                time.sleep(1)
            if sets:
                count, files, events = max(sets, key=lambda item: item[0])
                log(f"replaying {count} transactions after GTID {position} up to {stamp(target)} UTC")
                subprocess.run(["mariadb", f"--socket={socket}", "--binary-mode", f"--max-allowed-packet={REPLAY_PACKET}"],
                               input=events.encode(), check=True)
            # Both servers end with the same data and the same GTID state, in an empty binary log: whichever the
            # monitor makes the writer, the other replicates from that position on (the backup's replication
            # position, and the replayed transactions' in the new binary log, are both left behind).
            restored = subprocess.run(["mariadb", f"--socket={socket}", "--batch", "--skip-column-names", "-e",
                                       "SELECT @@global.gtid_binlog_pos"], capture_output=True, text=True,
                                      check=True).stdout.strip() or position or ""
            if not re.fullmatch(r"[0-9,-]*", restored):
                raise RuntimeError(f"unexpected GTID position {restored!r}")
            subprocess.run(["mariadb", f"--socket={socket}", "-e", "STOP ALL SLAVES; RESET SLAVE ALL; RESET MASTER; "
                            + (f"SET GLOBAL gtid_binlog_state = '{restored}'; SET GLOBAL gtid_slave_pos = '{restored}';"
                               if restored else "SET GLOBAL gtid_slave_pos = '';")], check=True)
            log(f"the database is at GTID {restored or '(none)'}")
        finally:
            subprocess.run(["mariadb-admin", f"--socket={socket}", "shutdown"], check=False)
            server.wait(timeout=300)
    MARKER.touch()
    log("the database is restored")
    return 0


def replay(files: list[str], position: str | None, target: dt.datetime) -> str:
    """The SQL of every transaction after GTID `position` up to `target`, as mariadb-binlog prints it."""
    if not files:
        return ""
    start = [f"--start-position={position}"] if position else []
    return subprocess.run(["mariadb-binlog", *start, f"--stop-datetime={stamp(target)}",
                           *files], capture_output=True, text=True, check=True,
                          env={**os.environ, "TZ": "UTC"}).stdout


def restore_files(target: dt.datetime) -> int:
    """The newest snapshot of the shared files taken before `target`, in place of what the folders hold."""
    taken = [snapshot for snapshot in snapshots("files") if parse_time(snapshot["time"]) <= target]
    if not taken:
        return refuse(f"no snapshot of the shared files was taken before {stamp(target)} UTC")
    snapshot = taken[-1]
    for folder in snapshot["paths"]:
        for entry in Path(folder).iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    restic("restore", snapshot["id"], "--target", "/")
    log(f"the shared files are restored from the snapshot of {stamp(parse_time(snapshot['time']))} UTC")
    return 0


def mark_restored(target: dt.datetime) -> int:
    """After both servers are restored: from now on the database has a new history (timeline_at)."""
    subprocess.run(["restic", "--no-cache", "backup", "--quiet", "--host", "restore", "--tag", RESTORED, "--stdin",
                    "--stdin-filename", "restored-to"], input=f"{stamp(target)} UTC\n", text=True, check=True)
    return 0


def main(arguments: list[str]) -> int:
    command = arguments[0] if arguments else "run"
    if command == "run":
        STATE.mkdir(parents=True, exist_ok=True)
        save_status(started=stamp(now()))
        signal.signal(signal.SIGTERM, stop_gracefully)
        run_database() if env("BACKUP_KIND") == "database" else run_files()
        return 0
    if command == "check":
        return check()
    if command == "status":
        return status()
    restores = {"restore-database": restore_database, "restore-files": restore_files, "mark-restored": mark_restored}
    if command in restores and len(arguments) == 2:
        return restores[command](parse_time(arguments[1]))
    return refuse("usage: backup-agent run | check | status | restore-database | restore-files | mark-restored "
                  "'YYYY-MM-DD HH:MM:SS' (UTC)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
