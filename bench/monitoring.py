"""What the monitoring costs the cluster (`scripts/bench --monitoring`): the CPU and memory of its containers at
rest and while hey loads the balancers, from Docker's own statistics."""
import statistics
import threading
import time

SAMPLES = 5


def usage(client, names: list[str]) -> dict:
    """Each container's CPU (% of one core) and memory (MiB), the median of SAMPLES of Docker's statistics."""
    figures = {}
    for name in names:
        cpu, memory = [], []
        container = client.containers.get(name)
        for _ in range(SAMPLES):
            stats = container.stats(stream=False)  # Docker spends about a second between its two readings
            used = stats["cpu_stats"]["cpu_usage"]["total_usage"] - stats["precpu_stats"]["cpu_usage"]["total_usage"]
            system = stats["cpu_stats"]["system_cpu_usage"] - stats["precpu_stats"].get("system_cpu_usage", 0)
            cores = stats["cpu_stats"].get("online_cpus", 1)
            cpu.append(100 * cores * used / system if system else 0.0)
            memory.append(stats["memory_stats"]["usage"] / 2 ** 20)
        figures[name] = {"cpu_percent": round(statistics.median(cpu), 1),
                         "memory_mib": round(statistics.median(memory), 1)}
    return figures


def monitoring_load(cluster, client, hey, image: str, load_seconds: int, concurrency: int) -> dict:
    names = sorted(r.plain("name") for r in cluster.graph.of_type("docker:index/container:Container")
                   if r.name.startswith("monitoring-"))
    at_rest = usage(client, names)
    url = f"https://{cluster.balancer_address()}/openmrs/whoami"
    load = threading.Thread(target=hey, args=(client, image, cluster.private_network, "-z",
                                             f"{max(load_seconds, 3 * SAMPLES)}s", "-c", str(concurrency), url))
    load.start()
    time.sleep(2)
    loaded = usage(client, names)
    load.join()
    return {"at_rest": at_rest, "under_load": loaded, "concurrency": concurrency}


def markdown(results: dict) -> str:
    figures = results["monitoring"]
    lines = []
    for name in figures["at_rest"]:
        rest, loaded = figures["at_rest"][name], figures["under_load"][name]
        lines.append(f"| {name.split('-', 2)[-1]}: CPU % of a core / memory MiB, at rest and under hey "
                     f"({figures['concurrency']} clients) | {rest['cpu_percent']} / {rest['memory_mib']}; "
                     f"{loaded['cpu_percent']} / {loaded['memory_mib']} |")
    total = {kind: (round(sum(f["cpu_percent"] for f in figures[kind].values()), 1),
                    round(sum(f["memory_mib"] for f in figures[kind].values()), 1))
             for kind in ("at_rest", "under_load")}
    (rest_cpu, rest_memory), (load_cpu, load_memory) = total["at_rest"], total["under_load"]
    lines.append(f"| all of the monitoring, at rest / under load | {rest_cpu} % and {rest_memory} MiB "
                 f"/ {load_cpu} % and {load_memory} MiB |")
    return "\n".join(lines) + "\n"
