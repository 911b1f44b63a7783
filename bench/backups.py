"""The backups' figures (`scripts/bench --backups`), on the local cluster with the stack's own schedule
(backup.ship_every_seconds 60) except the files', every minute so that the bench waits minutes, not a
quarter of an hour: the recovery point under writes through the application (how far the repository is behind
the database, sampled every few seconds), and the restore of a database and shared files of a known size in
place (scripts/restore's code), with its rate per GB."""
import datetime as dt
import statistics
import time

from launch.restore import restore
from local_cluster import wait_for

SAMPLE_SECONDS = 120
WRITES_PER_SECOND = 40
DATABASE_MB = 128  # rows of 1 000 bytes, inserted on the writer
FILES = 64  # of 1 MB each, in complex_obs
STACK = "bench"  # bench/__main__.py deploys it
BACKUP = {"files_every_minutes": 1}


def recovery_point(cluster, client, image: str) -> dict:
    """Seconds between now and the newest change the repository holds (the start of the last shipment),
    sampled while `hey` writes rows through the application."""
    load = client.containers.run(
        image, ["-m", "POST", "-z", f"{SAMPLE_SECONDS}s", "-c", "4", "-q", str(WRITES_PER_SECOND // 4),
                f"https://{cluster.balancer_address()}/openmrs/rows"],
        network=cluster.private_network, detach=True)
    lags = []
    try:
        deadline = time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < deadline:
            shipped = cluster.backup_status("backups-db-1")["agent"].get("ship")
            if shipped:
                held_until = dt.datetime.strptime(shipped["at"], "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=dt.timezone.utc).timestamp() - shipped["seconds"]
                lags.append(time.time() - held_until)
            time.sleep(3)
    finally:
        load.wait(timeout=SAMPLE_SECONDS + 60)
        load.remove(force=True)
    return {"writes_per_second": WRITES_PER_SECOND, "samples": len(lags),
            "median_s": round(statistics.median(lags), 1), "max_s": round(max(lags), 1),
            "ship_every_seconds": cluster.config["openmrs-cluster:backup"].get("ship_every_seconds", 60)}


def restore_rate(cluster) -> dict:
    """DATABASE_MB of rows and FILES files written, then restored to a moment after them."""
    (writer,) = cluster.writers()
    doublings = (DATABASE_MB * 1024).bit_length() - 1  # 2^n rows of 1 KB
    cluster.database_query(writer, (
        "CREATE TABLE openmrs.bench_rows (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(1000)); "
        "INSERT INTO openmrs.bench_rows (body) VALUES (REPEAT('x', 1000)); "
        + "INSERT INTO openmrs.bench_rows (body) SELECT body FROM openmrs.bench_rows; " * doublings))
    cluster.exec(cluster.nodes["node1"], "sh", "-c", f"for i in $(seq {FILES}); do head -c 1048576 /dev/urandom "
                 f"> /openmrs/data/complex_obs/bench-$i.bin; done", user="1001")
    written = time.time()
    assert wait_for(lambda: cluster.backed_up_at("backups-files", "files") > written + 1, timeout=180, poll=3)
    moment = dt.datetime.fromtimestamp(int(time.time()) + 2, dt.timezone.utc)
    assert wait_for(lambda: all(cluster.backed_up_at(agent, "ship") > moment.timestamp() + 2
                                for agent in ("backups-db-1", "backups-db-2")), timeout=240, poll=3)
    timings = restore([cluster.client], STACK, moment, say=lambda _: None)
    (writer,) = wait_for(lambda: (found := cluster.writers()) and len(found) == 1 and found, timeout=60, poll=1)
    # On disk (information_schema's sizes are statistics, stale right after a restore).
    database_bytes = int(cluster.exec(writer, "du", "-sb", "/var/lib/mysql/openmrs", user="mysql").split()[0])
    rows = int(cluster.database_query(writer, "SELECT COUNT(*) FROM openmrs.bench_rows"))
    files_bytes = int(cluster.exec(cluster.nodes["node1"], "sh", "-c", "du -sb /openmrs/data | cut -f1"))
    database_s = timings["database restored"] - timings["stopped"]
    files_s = timings["files restored"] - timings["database restored"]
    return {"rows": rows, "database_mb": round(database_bytes / 2**20), "files_mb": round(files_bytes / 2**20),
            "stopped_s": round(timings["stopped"], 1), "database_s": round(database_s, 1),
            "files_s": round(files_s, 1), "serving_again_s": round(timings["serving"], 1),
            "database_s_per_gb": round(database_s / (database_bytes / 2**30), 1),
            "files_s_per_gb": round(files_s / (files_bytes / 2**30), 1)}


def markdown(results: dict) -> str:
    point, rate = results["recovery_point"], results["restore"]
    return "\n".join([
        f"| backups: recovery point of the database under {point['writes_per_second']} writes/s "
        f"(ship_every_seconds {point['ship_every_seconds']}), median / worst of {point['samples']} samples "
        f"| {point['median_s']} s / {point['max_s']} s |",
        f"| backups: restore in place of {rate['database_mb']} MB of database ({rate['rows']} rows) and "
        f"{rate['files_mb']} MB of files: stopping / database (both servers) / files / serving again "
        f"| {rate['stopped_s']} / {rate['database_s']} / {rate['files_s']} / {rate['serving_again_s']} s |",
        f"| backups: restore rate, database / files "
        f"| {rate['database_s_per_gb']} / {rate['files_s_per_gb']} s per GB |",
    ]) + "\n"
