"""The figures users choose a cluster by, from one command (`scripts/bench`): balancer overhead per
scheduling method, heartbeat detection and recovery, node loss under load, the program's own speed and
bring-up time. Writes bench/results/latest.{md,json} and timeline.png.

Load comes from Debian's `hey` in a container on the cluster's private network; every run is bounded
in requests and time, and targets only the containers this run deployed."""
import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker

from local_cluster import HEARTBEAT, deployed, wait_for
from program import PROJECT_ROOT, STACKS, run_program

RESULTS = PROJECT_ROOT / "bench" / "results"
LOAD_SECONDS = 10
CONCURRENCY = 16
HEARTBEAT_TRIALS = 5
KILL_TRIALS = 3
KILL_RATE = 100  # requests per second while a node is killed
KILL_AT = 5.0  # seconds into the load


def build_client(client: docker.DockerClient) -> str:
    image, _ = client.images.build(path=str(PROJECT_ROOT / "bench" / "client"), tag="openmrs-cluster/bench-client:latest", rm=True)
    return image.id


def hey(client, image: str, network: str, *args: str, detach: bool = False):
    return client.containers.run(image, list(args), network=network, detach=detach, remove=not detach,
                                 stdout=True, stderr=True)


def summary(output: bytes) -> dict:
    """Requests per second and p50/p99 latency from hey's summary."""
    text = output.decode()
    rps = float(text.split("Requests/sec:")[1].split()[0])
    latency = {line.split("%")[0].strip(): float(line.split(" in ")[1].split()[0]) * 1000
               for line in text.split("Latency distribution:")[1].split("Details")[0].strip().splitlines()}
    return {"requests_per_second": round(rps, 1), "p50_ms": round(latency["50"], 2), "p99_ms": round(latency["99"], 2)}


def overhead(cluster, client, image: str) -> dict:
    balancer = f"http://{cluster.address_of('lb-apache')}:8080/openmrs/whoami"
    node = f"http://{cluster.address_of('app-1')}:8080/openmrs/whoami"
    load = ["-z", f"{LOAD_SECONDS}s", "-c", str(CONCURRENCY)]
    for url in (balancer, node):  # warm the JVMs and pools, so the first method measured is not penalised
        hey(client, image, cluster.private_network, "-z", "3s", "-c", str(CONCURRENCY), url)
    through = summary(hey(client, image, cluster.private_network, *load, balancer))
    direct = summary(hey(client, image, cluster.private_network, *load, node))
    return {"through_balancer": through, "direct_to_one_node": direct,
            "throughput_ratio": round(through["requests_per_second"] / direct["requests_per_second"], 2),
            "p50_ratio": round(through["p50_ms"] / direct["p50_ms"], 2)}


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


def kill_trial(cluster, client, image: str, route: str = "node2") -> dict:
    """Session-less load at KILL_RATE/s; a node is killed (SIGKILL) KILL_AT seconds in."""
    total = KILL_RATE * 3 * int(KILL_AT)
    url = f"http://{cluster.address_of('lb-apache')}:8080/openmrs/whoami"
    load = hey(client, image, cluster.private_network, "-n", str(total), "-c", "4", "-q", str(KILL_RATE // 4),
               "-o", "csv", url, detach=True)
    started = time.monotonic()
    time.sleep(KILL_AT)
    killed_at = time.monotonic() - started
    cluster.client.containers.get(cluster.nodes[route]).kill()
    load.wait(timeout=120)
    rows = [(float(r["offset"]), int(r["status-code"])) for r in csv.DictReader(io.StringIO(load.logs(stderr=False).decode()))]
    load.remove()
    failed = [offset for offset, status in rows if status != 200]
    cluster.client.containers.get(cluster.nodes[route]).start()
    assert wait_for(cluster.all_members_in, timeout=90, poll=0.2), "the killed node never came back"
    return {"rows": rows, "killed_at": killed_at, "sent": total, "answered": len(rows),
            "failed": len(failed) + (total - len(rows)),
            "outage_seconds": round(max(failed) - min(failed), 3) if failed else 0.0}


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


def timeline_png(trial: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = int(max(offset for offset, _ in trial["rows"]) * 10) + 1
    ok, bad = [0] * buckets, [0] * buckets
    for offset, status in trial["rows"]:
        (ok if status == 200 else bad)[int(offset * 10)] += 1
    seconds = [b / 10 for b in range(buckets)]
    figure, axis = plt.subplots(figsize=(10, 3.5))
    axis.bar(seconds, ok, width=0.1, align="edge", color="#2a9d8f", label="answered 200")
    axis.bar(seconds, bad, width=0.1, align="edge", bottom=ok, color="#e63946", label="failed")
    axis.axvline(trial["killed_at"], color="black", linestyle="--", label="node killed (SIGKILL)")
    axis.set_xlabel("seconds into the load")
    axis.set_ylabel("requests per 100 ms")
    axis.set_title(f"One node killed under {KILL_RATE} requests/s through the balancer "
                   f"({trial['failed']} of {trial['sent']} failed)")
    axis.set_ylim(0, max(a + b for a, b in zip(ok, bad)) * 1.5)
    axis.legend(loc="upper right", ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def markdown(results: dict) -> str:
    hb = results["heartbeat"]
    lines = [
        f"Measured {results['measured_at']} on {results['machine']}; 3 stand-in nodes, heartbeat "
        f"{hb['interval_seconds']} s / {hb['fails']} fails / {hb['passes']} passes.",
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
    lines += [
        f"| heartbeat detection, median of {HEARTBEAT_TRIALS} (no traffic) | {hb['detection_median_s']} s "
        f"(bound 2 × interval × fails + 1 = {hb['detection_bound_s']} s) |",
        f"| heartbeat recovery from node healthy, median of {HEARTBEAT_TRIALS} | {hb['recovery_median_s']} s "
        f"(bound 2 × interval × passes + 1 = {hb['recovery_bound_s']} s) |",
        f"| node killed under {KILL_RATE} req/s, median of {KILL_TRIALS}: failed requests | {results['node_loss']['failed_median']} "
        f"of {results['node_loss']['sent']} |",
        f"| node killed: outage window, median | {results['node_loss']['outage_median_s']} s |",
        "| balancer takeover, database failover, storage failover | not built yet (issue 5) |",
    ]
    for kind, seconds in results["bring_up_seconds"].items():
        lines.append(f"| bring-up ({kind}) until every member serves | {seconds} s |")
    for stack, seconds in results["program"]["mocked_graph_seconds"].items():
        lines.append(f"| building the {stack} graph under mocks, median of 5 | {seconds} s |")
    lines.append(f"| unit suite | {results['program']['unit_suite_seconds']} s |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true",
                        help="remove the project's images and Docker's build cache first, to measure a cold bring-up")
    options = parser.parse_args()
    client = docker.from_env()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if options.cold:
        for image in client.images.list("openmrs-cluster/*"):
            client.images.remove(image.id, force=True)
        client.api.prune_builds()
    image = build_client(client)
    results = {"measured_at": time.strftime("%Y-%m-%d"), "machine": f"{subprocess.getoutput('nproc')} cores",
               "heartbeat": dict(HEARTBEAT), "balancer_overhead": {}, "bring_up_seconds": {}}
    for scheduling in ("round_robin", "by_busyness"):
        with deployed(client, stack="bench", subnet="10.213.91.0/24", scheduling=scheduling) as cluster:
            kind = "cold" if cluster.built_images else "warm"
            results["bring_up_seconds"].setdefault(kind, round(cluster.timings["serving"], 1))
            results["balancer_overhead"][scheduling] = overhead(cluster, client, image)
            if scheduling != "round_robin":
                continue
            trials = [heartbeat_trial(cluster) for _ in range(HEARTBEAT_TRIALS)]
            interval, fails, passes = HEARTBEAT["interval_seconds"], HEARTBEAT["fails"], HEARTBEAT["passes"]
            results["heartbeat"].update(
                detection_median_s=round(statistics.median(t[0] for t in trials), 2),
                recovery_median_s=round(statistics.median(t[1] for t in trials), 2),
                detection_bound_s=2 * interval * fails + 1, recovery_bound_s=2 * interval * passes + 1)
            kills = [kill_trial(cluster, client, image) for _ in range(KILL_TRIALS)]
            timeline_png(kills[0], RESULTS / "timeline.png")
            results["node_loss"] = {"sent": kills[0]["sent"],
                                    "failed_median": statistics.median(k["failed"] for k in kills),
                                    "outage_median_s": statistics.median(k["outage_seconds"] for k in kills),
                                    "failed_per_trial": [k["failed"] for k in kills]}
    results["program"] = program_figures()
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
