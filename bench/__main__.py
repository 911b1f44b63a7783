"""The figures users choose a cluster by, from one command (`scripts/bench`): balancer overhead per
scheduling method, heartbeat detection and recovery, each failover under load (a node, the balancer
holding the virtual address, the database writer, a storage server), the program's own speed and
bring-up time, the O3 application's files and login page (bench/o3.py). Writes bench/results/latest.{md,json}
and timeline.png. With --o3: those of the O3 application only (bench/results/o3.{md,json}). With --backups: the
backups' recovery point and restore rate (bench/backups.py, bench/results/backups.{md,json}). With --hosts: the
cluster across three simulated machines, each machine's loss (bench/results/hosts.{md,json}). With --engines:
Apache and HAProxy in front of the same nodes, one after the other (bench/results/engines.{md,json}).

Load comes from Debian's `hey` in a container on the cluster's private network; every run is bounded
in requests and time, and targets only the containers this run deployed."""
import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker

from bench import backups, monitoring, o3
from components.config.app import AppConfig
from hosts_cluster import HOLD_SECONDS, away, deployed_across
from local_cluster import deployed, docker_time, wait_for
from machines import simulated_machines
from program import PROJECT_ROOT, STACKS, run_program

RESULTS = PROJECT_ROOT / "bench" / "results"
LOAD_SECONDS = 10
CONCURRENCY = 16
HEARTBEAT_TRIALS = 5
# The fastest heartbeat the local platform takes: the bench runs one deployment alone on the machine (the
# integration tests, beside others, use 2 s).
HEARTBEAT = {"path": "/openmrs/health/started", "interval_seconds": 1, "fails": 2, "passes": 2, "timeout_seconds": 1}
KILL_TRIALS = 3
KILL_RATE = 100  # requests per second while a node or a balancer is killed
WRITE_RATE = 40  # database or file writes per second while the database writer or a storage server is killed
FAULT_LOAD_SECONDS = 20
HEAL_TIMEOUT = 300  # seconds a restarted storage server gets to catch up before the bench says it did not
KILL_AT = 5.0  # seconds into the load
MODERATE_RATE = 200  # requests per second: the nodes far from busy, so what is measured is the balancer's own cost


def build_client(client: docker.DockerClient) -> str:
    image, _ = client.images.build(path=str(PROJECT_ROOT / "bench" / "client"), tag="openmrs-cluster/bench-client:latest", rm=True)
    return image.id


def hey(client, image: str, network: str, *args: str, detach: bool = False):
    """hey on `network`, or in a container's own network namespace (network "container:<name>")."""
    where = {"network_mode": network} if network.startswith("container:") else {"network": network}
    return client.containers.run(image, list(args), detach=detach, remove=not detach, stdout=True, stderr=True,
                                 **where)


def one_node_directly(cluster) -> tuple[str, str]:
    """Where hey reaches the first node with no balancer: inside its namespace, on Tomcat's plain connector,
    as Go's TLS client and the JVM's agree on no handshake (the JVM answers hey's with "illegal parameter")."""
    return f"container:{cluster.nodes['node1']}", f"http://127.0.0.1:{AppConfig().port}/openmrs/whoami"


def summary(output: bytes) -> dict:
    """Requests per second and p50/p99 latency from hey's summary."""
    text = output.decode()
    if "Latency distribution:" not in text:
        raise RuntimeError(f"hey measured no answer:\n{text[-3000:]}")
    rps = float(text.split("Requests/sec:")[1].split()[0])
    latency = {line.split("%")[0].strip(): float(line.split(" in ")[1].split()[0]) * 1000
               for line in text.split("Latency distribution:")[1].split("Details")[0].strip().splitlines()}
    return {"requests_per_second": round(rps, 1), "p50_ms": round(latency["50"], 2), "p99_ms": round(latency["99"], 2)}


def overhead(cluster, client, image: str) -> dict:
    balancer = cluster.private_network, f"https://{cluster.balancer_address()}/openmrs/whoami"
    node = one_node_directly(cluster)
    load = ["-z", f"{LOAD_SECONDS}s", "-c", str(CONCURRENCY)]
    for network, url in (balancer, node):  # warm the JVMs and pools, so the first method measured is not penalised
        hey(client, image, network, "-z", "3s", "-c", str(CONCURRENCY), url)
    through = summary(hey(client, image, balancer[0], *load, balancer[1]))
    direct = summary(hey(client, image, node[0], *load, node[1]))
    return {"through_balancer": through, "direct_to_one_node": direct,
            "throughput_ratio": round(through["requests_per_second"] / direct["requests_per_second"], 2),
            "p50_ratio": round(through["p50_ms"] / direct["p50_ms"], 2)}


def tls_cost(cluster, client, image: str) -> dict:
    """HTTPS through the first balancer against plain HTTP through its twin: the same image, configuration and
    members, its HTTPS host with TLS off, on the same network, in the same run (hey keeps its connections,
    as browsers do)."""
    balancer = cluster.client.containers.get(cluster.balancer)
    config = next(upload["content"] for upload in cluster.graph.named("lb-apache").plain("uploads")
                  if upload["file"] == "/etc/apache2/openmrs-balancer.conf")
    twin = client.containers.create(
        balancer.image.id, name=f"{cluster.balancer}-plain-twin", network=cluster.private_network,
        cap_drop=["ALL"], cap_add=["SETUID", "SETGID"], sysctls={"net.ipv4.ip_unprivileged_port_start": "80"},
        volumes={balancer.attrs["Mounts"][0]["Name"]: {"bind": "/etc/apache2/tls", "mode": "ro"}})
    try:
        twin.put_archive("/", _tar({"/etc/apache2/openmrs-balancer.conf": config.replace("SSLEngine on", "SSLEngine off")}))
        twin.start()
        twin.reload()
        address = twin.attrs["NetworkSettings"]["Networks"][cluster.private_network]["IPAddress"]
        urls = {"https": f"https://{cluster.balancer_address()}/openmrs/whoami",
                "plain": f"http://{address}:443/openmrs/whoami"}
        assert wait_for(lambda: twin.exec_run(["curl", "-fsS", "-o", "/dev/null", urls["plain"]]).exit_code == 0,
                        timeout=30), "the plain twin never answered"
        load = ["-z", f"{LOAD_SECONDS}s", "-c", str(CONCURRENCY)]
        for url in urls.values():
            hey(client, image, cluster.private_network, "-z", "3s", "-c", str(CONCURRENCY), url)
        measured = {kind: summary(hey(client, image, cluster.private_network, *load, url)) for kind, url in urls.items()}
    finally:
        twin.remove(force=True)
    https, plain = measured["https"], measured["plain"]
    return {"https": https, "plain_http": plain,
            "throughput_ratio": round(https["requests_per_second"] / plain["requests_per_second"], 2),
            "added_p50_ms": round(https["p50_ms"] - plain["p50_ms"], 2)}


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, text in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(path.lstrip("/"))
            entry.size, entry.mode = len(data), 0o644
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def heartbeat_trial(cluster, route: str = "node2") -> tuple[float, float]:
    """Without traffic, so only heartbeats act: stop -> out of the balancer; node healthy -> back in."""
    container = cluster.client.containers.get(cluster.nodes[route])
    stopped = time.monotonic()
    container.kill(signal="SIGTERM")  # what `docker stop` sends, without blocking until the exit
    assert wait_for(lambda: not cluster.member_in(route), timeout=30), "never taken out"
    detection = time.monotonic() - stopped
    container.wait(timeout=60)
    container.start()
    assert wait_for(lambda: cluster.node_started(route), timeout=60, poll=0.05)
    healthy = time.monotonic()
    assert wait_for(lambda: cluster.member_in(route), timeout=30), "never put back"
    return detection, time.monotonic() - healthy


def under_load(cluster, client, image: str, url: str, rate: int, fault, post: bool = False) -> dict:
    """hey at `rate` requests/s for FAULT_LOAD_SECONDS; `fault()` runs KILL_AT seconds in. Each request's
    offset and status, the fault's offset, and the failed requests (errors and non-200 answers)."""
    total = rate * FAULT_LOAD_SECONDS
    method = ["-m", "POST"] if post else []
    load = hey(client, image, cluster.private_network, "-n", str(total), "-c", "4", "-q", str(rate / 4), *method,
               "-o", "csv", url, detach=True)
    time.sleep(KILL_AT)
    fault_epoch = time.time()
    detail = fault()
    load.wait(timeout=FAULT_LOAD_SECONDS * 4 + 60)
    load.reload()  # hey's offsets count from its own start, which is its container's
    fault_at = fault_epoch - docker_time(load.attrs["State"]["StartedAt"])
    records = list(csv.DictReader(io.StringIO(load.logs(stderr=False).decode())))
    load.remove()
    rows = [(float(r["offset"]), int(r["status-code"])) for r in records]
    answered_at = [(offset, offset + float(r["response-time"]), status) for (offset, status), r in zip(rows, records)]
    failed = [offset for offset, status in rows if status != 200]
    return {"rows": rows, "fault_at": fault_at, "sent": total, "answered": len(rows),
            "slowest_s": round(max(float(r["response-time"]) for r in records), 2),
            "failed": len(failed) + (total - len(rows)),
            # requests already sent and not yet answered when the fault struck
            "in_flight_at_fault": sum(1 for sent, done, _ in answered_at if sent <= fault_at < done),
            "outage_seconds": round(max(failed) - min(failed), 3) if failed else 0.0,
            # the first answer (200) to a request sent after the fault
            "resumed_after_s": round(min((done for sent, done, status in answered_at
                                          if sent > fault_at and status == 200), default=fault_at) - fault_at, 2),
            **(detail or {})}


def node_kill_trial(cluster, client, image: str, route: str = "node2") -> dict:
    url = f"https://{cluster.balancer_address()}/openmrs/whoami"
    node = cluster.client.containers.get(cluster.nodes[route])
    trial = under_load(cluster, client, image, url, KILL_RATE, node.kill)
    node.start()
    assert wait_for(cluster.all_members_in, timeout=90, poll=0.2), "the killed node never came back"
    return trial


def balancer_takeover_trial(cluster, client, image: str) -> dict:
    """The balancer holding the virtual address is killed under load sent to that address."""
    holder = wait_for(lambda: (h := cluster.holders_of_the_virtual_address()) and len(h) == 1 and next(iter(h)), timeout=30)
    (standby,) = set(cluster.balancers) - {holder}

    def kill_holder() -> dict:
        killed = time.monotonic()
        cluster.client.containers.get(holder).kill()
        assert wait_for(lambda: cluster.holders_of_the_virtual_address() == {standby}, timeout=30, poll=0.05)
        return {"takeover_s": round(time.monotonic() - killed, 2)}

    trial = under_load(cluster, client, image, f"https://{cluster.virtual_address}/openmrs/whoami", KILL_RATE, kill_holder)
    cluster.client.containers.get(holder).start()
    assert wait_for(lambda: cluster.deployer.health(holder) == "healthy", timeout=60, poll=0.5)
    return trial


def database_failover_trial(cluster, client, image: str) -> dict:
    """The database writer is killed under writes through the application; it then rejoins as a replica."""
    (writer,) = wait_for(lambda: (w := cluster.writers()) and len(w) == 1 and w, timeout=60, poll=0.2)
    (replica,) = set(cluster.databases) - {writer}
    assert wait_for(lambda: cluster.semi_sync_with_a_replica(writer), timeout=60, poll=0.2)
    url = f"https://{cluster.balancer_address()}/openmrs/rows"
    killed_at = []

    def kill_writer() -> dict:
        killed_at.append(time.time())
        cluster.client.containers.get(writer).kill()
        return {"address_moved_at": cluster.address_moved_to(replica)}

    trial = under_load(cluster, client, image, url, WRITE_RATE, kill_writer, post=True)
    (decided_at, promoted_at), address_moved_at = cluster.promotion(killed_at[0], replica), trial.pop("address_moved_at")
    trial.update(detected_s=round(decided_at - killed_at[0], 2), promoted_s=round(promoted_at - decided_at, 2),
                 address_moved_s=round(address_moved_at - promoted_at, 2),
                 pool_reconnected_s=round(trial["resumed_after_s"] - (address_moved_at - killed_at[0]), 2))
    cluster.client.containers.get(writer).start()
    assert wait_for(lambda: cluster.caught_up_replica(writer, replica), timeout=120, poll=0.5)
    return trial


def storage_failover_trial(cluster, client, image: str) -> dict:
    """A storage server is killed under file writes through the application; then it returns and heals."""
    server = cluster.client.containers.get(cluster.graph.named("files-1").plain("name"))
    trial = under_load(cluster, client, image, f"https://{cluster.balancer_address()}/openmrs/files",
                       WRITE_RATE, server.kill, post=True)
    restarted = time.monotonic()
    server.start()
    healed = wait_for(cluster.storage_healed, timeout=HEAL_TIMEOUT, poll=1)
    trial["healed_after_restart_s"] = round(time.monotonic() - restarted, 1) if healed else None
    if not healed:  # a figure to report, with what Gluster says, rather than a reason to lose every other one
        peer = cluster.graph.named("files-2").plain("name")
        trial["not_healed"] = (cluster.exec(peer, "gluster", "--mode=script", "volume", "heal", "openmrs", "info")
                               + cluster.exec(peer, "gluster", "--mode=script", "volume", "status", "openmrs"))
    return trial


def program_figures() -> dict:
    graphs = {}
    for stack in STACKS:
        times = []
        for _ in range(5):
            started = time.monotonic()
            run_program(stack)
            times.append(time.monotonic() - started)
        graphs[stack] = round(statistics.median(times), 3)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/unit"], cwd=PROJECT_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return {"mocked_graph_seconds": graphs, "unit_suite_seconds": round(time.monotonic() - started, 1)}


def timeline_png(panels: list[tuple[str, str, dict]], path: Path) -> None:
    """One panel per (title, fault label, trial): answered and failed requests per 100 ms."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)))
    for axis, (title, fault, trial) in zip(axes, panels):
        buckets = int(max(offset for offset, _ in trial["rows"]) * 10) + 1
        ok, bad = [0] * buckets, [0] * buckets
        for offset, status in trial["rows"]:
            (ok if status == 200 else bad)[int(offset * 10)] += 1
        seconds = [b / 10 for b in range(buckets)]
        axis.bar(seconds, ok, width=0.1, align="edge", color="#2a9d8f", label="answered 200")
        axis.bar(seconds, bad, width=0.1, align="edge", bottom=ok, color="#e63946", label="failed")
        axis.axvline(trial["fault_at"], color="black", linestyle="--", label=fault)
        axis.set_xlabel("seconds into the load")
        axis.set_ylabel("requests per 100 ms")
        axis.set_title(f"{title} ({trial['failed']} of {trial['sent']} failed)")
        axis.set_ylim(0, max(a + b for a, b in zip(ok, bad)) * 1.5)
        axis.legend(loc="upper right", ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def median_of(trials: list[dict], key: str):
    return statistics.median(trial[key] for trial in trials)


def failover_summary(trials: list[dict], *keys: str) -> dict:
    """Medians over the trials, and each trial's figures, without the per-request rows."""
    summary = {"sent_per_trial": trials[0]["sent"], "failed_median": median_of(trials, "failed"),
               "failed_per_trial": [t["failed"] for t in trials], "slowest_s_median": median_of(trials, "slowest_s")}
    for key in keys:
        measured = [t[key] for t in trials if t[key] is not None]  # None: it did not happen in the time given
        summary[f"{key}_median"] = statistics.median(measured) if measured else None
        summary[f"{key}_per_trial"] = [t[key] for t in trials]
    if any("not_healed" in t for t in trials):
        summary["not_healed"] = [t["not_healed"] for t in trials if "not_healed" in t]
    return summary


def markdown(results: dict) -> str:
    hb, failovers = results["heartbeat"], results["failovers"]
    lines = [
        f"Measured {results['measured_at']} on {results['machine']}; 3 stand-in nodes, heartbeat "
        f"{hb['interval_seconds']} s / {hb['fails']} fails / {hb['passes']} passes; each failover under load "
        f"from `hey`, {KILL_TRIALS} trials, the fault {KILL_AT:.0f} s into {FAULT_LOAD_SECONDS} s of load.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for method, figures in results["balancer_overhead"].items():
        through, direct = figures["through_balancer"], figures["direct_to_one_node"]
        lines.append(f"| {method}: through the balancer / direct to one node, req/s | "
                     f"{through['requests_per_second']} / {direct['requests_per_second']} (ratio {figures['throughput_ratio']}) |")
        lines.append(f"| {method}: p50 / p99 latency, through vs direct | {through['p50_ms']} / {through['p99_ms']} ms vs "
                     f"{direct['p50_ms']} / {direct['p99_ms']} ms |")
    tls = results["tls_cost"]
    lines.append(f"| HTTPS at the balancer against plain HTTP through its twin (same run, same members): req/s; p50 | "
                 f"{tls['https']['requests_per_second']} / {tls['plain_http']['requests_per_second']} (ratio "
                 f"{tls['throughput_ratio']}); {tls['https']['p50_ms']} vs {tls['plain_http']['p50_ms']} ms "
                 f"({tls['added_p50_ms']:+} ms) |")
    node, pair, database, storage = (failovers[k] for k in ("node_killed", "balancer_killed", "database_writer_killed",
                                                            "storage_server_killed"))
    lines += [
        f"| heartbeat detection, median of {HEARTBEAT_TRIALS} (no traffic) | {hb['detection_median_s']} s "
        f"(bound 2 × interval × fails + 1 = {hb['detection_bound_s']} s) |",
        f"| heartbeat recovery from node healthy, median of {HEARTBEAT_TRIALS} | {hb['recovery_median_s']} s "
        f"(bound 2 × interval × passes + 1 = {hb['recovery_bound_s']} s) |",
        f"| node killed (SIGKILL) under {KILL_RATE} req/s: failed requests, median (per trial) | "
        f"{node['failed_median']} of {node['sent_per_trial']} ({', '.join(map(str, node['failed_per_trial']))}) |",
        f"| balancer holding the virtual address killed under {KILL_RATE} req/s to that address: the standby holds it "
        f"after, median | {pair['takeover_s_median']} s ({', '.join(map(str, pair['takeover_s_per_trial']))}) |",
        f"| balancer killed: failed requests, median (per trial); slowest request, median | {pair['failed_median']} of "
        f"{pair['sent_per_trial']} ({', '.join(map(str, pair['failed_per_trial']))}); {pair['slowest_s_median']} s |",
        f"| database writer killed under {WRITE_RATE} writes/s through the application: the first write sent after "
        f"the kill answered after, median | {database['resumed_after_s_median']} s "
        f"({', '.join(map(str, database['resumed_after_s_per_trial']))}) |",
        f"| database writer killed, breakdown, median (per trial): detected / promoted / virtual address moved / "
        f"first write answered through a new pooled connection | {database['detected_s_median']} / "
        f"{database['promoted_s_median']} / {database['address_moved_s_median']} / "
        f"{database['pool_reconnected_s_median']} s ("
        + "; ".join(" / ".join(map(str, parts)) for parts in zip(
            *(database[f"{key}_per_trial"] for key in ("detected_s", "promoted_s", "address_moved_s",
                                                      "pool_reconnected_s")))) + ") |",
        f"| database writer killed: failed writes, median (per trial); writes in flight at the kill (per trial) | "
        f"{database['failed_median']} of {database['sent_per_trial']} ({', '.join(map(str, database['failed_per_trial']))}); "
        f"{', '.join(map(str, database['in_flight_at_fault_per_trial']))} |",
        f"| storage server killed under {WRITE_RATE} file writes/s through the application: failed writes, median "
        f"(per trial); slowest write, median | {storage['failed_median']} of {storage['sent_per_trial']} "
        f"({', '.join(map(str, storage['failed_per_trial']))}); {storage['slowest_s_median']} s |",
        f"| storage server restarted: healed, every file on its brick, after, median | "
        f"{storage['healed_after_restart_s_median']} s ("
        + ", ".join(f"{value}" if value is not None else f"not within {HEAL_TIMEOUT} s"
                    for value in storage["healed_after_restart_s_per_trial"]) + ") |",
        "| node loss with replicated sessions | not built: sessions are sticky, in Tomcat memory |",
    ]
    lines += o3.markdown(results).splitlines()
    for kind, seconds in results["bring_up_seconds"].items():
        lines.append(f"| bring-up ({kind}) until every member serves | {seconds} s |")
    for stack, seconds in results["program"]["mocked_graph_seconds"].items():
        lines.append(f"| building the {stack} graph under mocks, median of 5 | {seconds} s |")
    lines.append(f"| unit suite | {results['program']['unit_suite_seconds']} s |")
    return "\n".join(lines) + "\n"


# The machines taken away in turn, as the integration test does: which one, found at the time, and how.
MACHINE_LOSSES = (
    (lambda cluster: cluster.host_of(next(iter(cluster.holders_of_the_clients_address()))), "freeze"),
    (lambda cluster: cluster.host_of(cluster.writers()[0]), "cut"),
    (lambda cluster: cluster.host_of(cluster.writers()[0]), "freeze"),
    (lambda cluster: "a", "cut"),  # the acting monitor's
)


def across_machines(client: docker.DockerClient) -> dict:
    """The cluster on three simulated machines (tests/machines.py): each machine's loss under load."""
    results = {"measured_at": time.strftime("%Y-%m-%d"), "machine": f"{subprocess.getoutput('nproc')} cores",
               "hold_seconds": HOLD_SECONDS, "losses": []}
    with simulated_machines(("a", "b", "c"), ssh_machine="c") as lab, deployed_across(lab, client) as cluster:
        results["bring_up_seconds"] = round(cluster.timings["serving"], 1)
        results["images_shipped_seconds"] = round(cluster.timings["images shipped"], 1)
        for machine_of, how in MACHINE_LOSSES:
            host = machine_of(cluster)
            held = cluster.roles_on(host)
            outage = away(cluster, host, how)
            results["losses"].append({"machine": host, "how": how, "held": held, "failed": outage.failed,
                                      "longest_gap_s": {k: round(v, 2) for k, v in outage.longest_gap.items()},
                                      "whole_after_s": round(outage.whole_after, 1)})
    return results


def across_machines_markdown(results: dict) -> str:
    lines = [f"Measured {results['measured_at']} on {results['machine']}: 3 simulated machines (network namespaces, "
             f"each its own Docker engine), each taken away for {results['hold_seconds']} s under a stream of reads, "
             "one of row writes and one of file writes through the clients' address (one request at a time each; "
             "a client gives up after 10 s, a file writer after 30 s).",
             "", f"Bring-up across the machines until every member serves: {results['bring_up_seconds']} s, of which "
             f"{results['images_shipped_seconds']} s until every image was on every machine (loaded over the Docker "
             "API, one of them over SSH; the images were already built here)", "",
             "| machine taken away | it held | failed: reads / rows / files | longest wait for an answer: reads / "
             "rows / files | whole again after its return |", "|---|---|---|---|---|"]
    for loss in results["losses"]:
        failed = loss["failed"]
        # inf: the stream's one request in flight waited on the lost machine until the stream ended
        gap = {stream: "no answer" if seconds == float("inf") else f"{seconds} s"
               for stream, seconds in loss["longest_gap_s"].items()}
        lines.append(f"| {loss['machine']}, {'frozen' if loss['how'] == 'freeze' else 'cut off'} | {loss['held']} | "
                     f"{failed['reads']} / {failed['row writes']} / {failed['file writes']} | "
                     f"{gap['reads']} / {gap['row writes']} / {gap['file writes']} | {loss['whole_after_s']} s |")
    return "\n".join(lines) + "\n"


def at_moderate_load(client, image: str, network: str, url: str) -> dict:
    """hey at MODERATE_RATE requests/s (4 workers, each at a quarter) for LOAD_SECONDS."""
    return summary(hey(client, image, network, "-z", f"{LOAD_SECONDS}s", "-c", "4", "-q", str(MODERATE_RATE / 4), url))


def engine_figures(cluster, client, image: str) -> dict:
    """One engine's cost (at saturation and at a moderate load, against one node served directly) and failovers."""
    balancer = f"https://{cluster.balancer_address()}/openmrs/whoami"
    saturated = overhead(cluster, client, image)
    moderate = {"through_balancer": at_moderate_load(client, image, cluster.private_network, balancer),
                "direct_to_one_node": at_moderate_load(client, image, *one_node_directly(cluster))}
    through, direct = moderate["through_balancer"], moderate["direct_to_one_node"]
    moderate.update(added_p50_ms=round(through["p50_ms"] - direct["p50_ms"], 2),
                    added_p99_ms=round(through["p99_ms"] - direct["p99_ms"], 2))
    return {"saturation": saturated, "moderate": moderate, "failovers": {
        "node_killed": failover_summary([node_kill_trial(cluster, client, image) for _ in range(KILL_TRIALS)],
                                        "outage_seconds"),
        "balancer_killed": failover_summary([balancer_takeover_trial(cluster, client, image)
                                             for _ in range(KILL_TRIALS)], "takeover_s")}}


def engines_markdown(results: dict) -> str:
    lines = []
    for engine, figures in results["engines"].items():
        saturated, moderate, failovers = figures["saturation"], figures["moderate"], figures["failovers"]
        lines += [
            f"| {engine}: at saturation ({CONCURRENCY} clients), share of one node's own rate | "
            f"{saturated['throughput_ratio']} ({saturated['through_balancer']['requests_per_second']} of "
            f"{saturated['direct_to_one_node']['requests_per_second']} requests/s) |",
            f"| {engine}: at {MODERATE_RATE} requests/s, p50 / p99 added to one node's own | "
            f"{moderate['added_p50_ms']} / {moderate['added_p99_ms']} ms ({moderate['through_balancer']['p50_ms']} / "
            f"{moderate['through_balancer']['p99_ms']} ms against {moderate['direct_to_one_node']['p50_ms']} / "
            f"{moderate['direct_to_one_node']['p99_ms']} ms) |",
            f"| {engine}: a node killed under {KILL_RATE} requests/s, failed requests per trial | "
            f"{failovers['node_killed']['failed_per_trial']} of {failovers['node_killed']['sent_per_trial']} |",
            f"| {engine}: the balancer holding the virtual address killed, takeover and failed requests per trial | "
            f"{failovers['balancer_killed']['takeover_s_per_trial']} s; {failovers['balancer_killed']['failed_per_trial']} "
            f"of {failovers['balancer_killed']['sent_per_trial']} |",
        ]
    return "\n".join(lines) + "\n"


def one_part(client: docker.DockerClient, part: str, markdown_of, figures, **deployment) -> None:
    """One part's figures on a deployment of its own: bench/results/<part>.json and .md."""
    with deployed(client, stack="bench", subnet="10.213.93.0/24", heartbeat=HEARTBEAT, **deployment) as cluster:
        write_part(part, figures(cluster), markdown_of)


def write_part(part: str, figures: dict, markdown_of) -> None:
    results = {"measured_at": time.strftime("%Y-%m-%d"), "machine": f"{subprocess.getoutput('nproc')} cores",
               **figures}
    (RESULTS / f"{part}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = (f"Measured {results['measured_at']} on {results['machine']}.\n\n| figure | value |\n|---|---|\n"
             + markdown_of(results))
    (RESULTS / f"{part}.md").write_text(table)
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true",
                        help="remove the project's images and Docker's build cache first, to measure a cold bring-up")
    parser.add_argument("--o3", action="store_true",
                        help="instead: only the O3 application's figures (bench/results/o3.md and .json)")
    parser.add_argument("--backups", action="store_true",
                        help="instead: the backups' recovery point under writes and the restore's time and rate per "
                             "GB (bench/results/backups.md and .json)")
    parser.add_argument("--engines", action="store_true",
                        help="instead: Apache and HAProxy in front of the same nodes, their cost and failovers "
                             "(bench/results/engines.md and .json)")
    parser.add_argument("--monitoring", action="store_true",
                        help="instead: the CPU and memory of the monitoring's containers at rest and under load "
                             "(bench/results/monitoring.md and .json)")
    parser.add_argument("--hosts", action="store_true",
                        help="instead: the cluster across three simulated machines, each machine's loss "
                             "(bench/results/hosts.md and .json)")
    options = parser.parse_args()
    client = docker.from_env()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if options.hosts:
        results = across_machines(client)
        (RESULTS / "hosts.json").write_text(json.dumps(results, indent=2) + "\n")
        table = across_machines_markdown(results)
        (RESULTS / "hosts.md").write_text(table)
        print(table)
        return
    if options.engines:
        image, engines = build_client(client), {}
        for engine in ("apache", "haproxy"):  # one after the other, on the same machine and the same nodes' image
            with deployed(client, stack="bench", subnet="10.213.93.0/24", heartbeat=HEARTBEAT,
                          engine=engine) as cluster:
                engines[engine] = engine_figures(cluster, client, image)
        return write_part("engines", {"engines": engines}, engines_markdown)
    if options.backups:
        return one_part(client, "backups", backups.markdown, backup=backups.BACKUP, figures=lambda cluster: {
            "recovery_point": backups.recovery_point(cluster, client, build_client(client)),
            "restore": backups.restore_rate(cluster)})
    if options.monitoring:
        return one_part(client, "monitoring", monitoring.markdown, monitoring={"enabled": True}, figures=lambda cluster: {
            "monitoring": monitoring.monitoring_load(cluster, client, hey, build_client(client), LOAD_SECONDS,
                                                     CONCURRENCY)})
    if options.o3:
        return one_part(client, "o3", o3.markdown, figures=lambda cluster: {
            "o3": o3.o3_figures(cluster, hey, summary, build_client(client), LOAD_SECONDS, CONCURRENCY)})
    if options.cold:
        for image in client.images.list("openmrs-cluster/*"):
            client.images.remove(image.id, force=True)
        client.api.prune_builds()
    image = build_client(client)
    results = {"measured_at": time.strftime("%Y-%m-%d"), "machine": f"{subprocess.getoutput('nproc')} cores",
               "heartbeat": dict(HEARTBEAT), "balancer_overhead": {}, "bring_up_seconds": {}}
    for scheduling in ("round_robin", "by_busyness"):
        with deployed(client, stack="bench", subnet="10.213.93.0/24", heartbeat=HEARTBEAT,
                      scheduling=scheduling) as cluster:
            kind = ("cold" if options.cold else "warm" if not cluster.built_images
                    else "after building " + ", ".join(cluster.built_images))
            results["bring_up_seconds"].setdefault(kind, round(cluster.timings["serving"], 1))
            results["balancer_overhead"][scheduling] = overhead(cluster, client, image)
            if scheduling != "round_robin":
                continue
            results["tls_cost"] = tls_cost(cluster, client, image)
            results["o3"] = o3.o3_figures(cluster, hey, summary, image, LOAD_SECONDS, CONCURRENCY)
            trials = [heartbeat_trial(cluster) for _ in range(HEARTBEAT_TRIALS)]
            interval, fails, passes = HEARTBEAT["interval_seconds"], HEARTBEAT["fails"], HEARTBEAT["passes"]
            results["heartbeat"].update(
                detection_median_s=round(statistics.median(t[0] for t in trials), 2),
                recovery_median_s=round(statistics.median(t[1] for t in trials), 2),
                detection_bound_s=2 * interval * fails + 1, recovery_bound_s=2 * interval * passes + 1)
            trials = {name: [trial(cluster, client, image) for _ in range(KILL_TRIALS)] for name, trial in (
                ("node_killed", node_kill_trial), ("balancer_killed", balancer_takeover_trial),
                ("database_writer_killed", database_failover_trial), ("storage_server_killed", storage_failover_trial))}
            timeline_png([
                (f"One node killed under {KILL_RATE} requests/s through the balancer", "node killed (SIGKILL)",
                 trials["node_killed"][0]),
                (f"The database writer killed under {WRITE_RATE} writes/s through the application",
                 "writer killed (SIGKILL)", trials["database_writer_killed"][0]),
            ], RESULTS / "timeline.png")
            results["failovers"] = {
                "node_killed": failover_summary(trials["node_killed"], "outage_seconds"),
                "balancer_killed": failover_summary(trials["balancer_killed"], "takeover_s"),
                "database_writer_killed": failover_summary(
                    trials["database_writer_killed"], "resumed_after_s", "detected_s", "promoted_s",
                    "address_moved_s", "pool_reconnected_s", "in_flight_at_fault"),
                "storage_server_killed": failover_summary(trials["storage_server_killed"], "healed_after_restart_s"),
            }
    results["program"] = program_figures()
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
