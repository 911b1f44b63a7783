"""The balancer pair: a client inside the private network sends a steady request stream to the virtual
address, the balancer holding it is killed, and the other takes over, never with both holding it."""
import time

import pytest

from local_cluster import BoundedLoop, wait_for

pytestmark = pytest.mark.docker

# A client as a browser is one: a new connection per request, and a connection attempt may take a few
# seconds (the kernel resends its SYN) before the request counts as failed. Bounded in count and time.
CLIENT_LOOP = r"""
printf '%s' "$AUTHORITY" > /tmp/authority.pem
end=$(( $(date +%s) + 120 ))
while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  sent=$(date +%s.%N)
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert /tmp/authority.pem "$TARGET")
  echo "$sent $(date +%s.%N) $status"
  sleep 0.05
done
"""


class HolderSampler(BoundedLoop):
    """Every 0.1 s, which balancers hold the virtual address."""

    def __init__(self, cluster, limit_seconds: float = 120):
        super().__init__(limit_seconds, pause=0.1)
        self.cluster = cluster
        self.samples: list[tuple[float, set[str]]] = []

    def step(self):
        self.samples.append((time.time(), self.cluster.holders_of_the_virtual_address()))


def one_holder(cluster) -> str | None:
    holders = cluster.holders_of_the_virtual_address()
    return next(iter(holders)) if len(holders) == 1 else None


def test_the_standby_balancer_takes_over_the_virtual_address(local_cluster, docker_client, figures):
    cluster = local_cluster
    (keepalived,) = [u["content"] for u in cluster.graph.named(f"lb-{cluster.balancer_kind}").plain("uploads")
                     if u["file"] == "/etc/keepalived/keepalived.conf"]
    advert = keepalived.split("advert_int ")[1].split()[0]
    master = wait_for(lambda: one_holder(cluster), timeout=15, poll=0.2)
    assert master, f"no single holder of {cluster.virtual_address}: {cluster.holders_of_the_virtual_address()}"
    (standby,) = set(cluster.balancers) - {master}
    client = docker_client.containers.run(
        cluster.graph.named("lb-image").plain("imageName"), entrypoint=["/bin/sh", "-c"], command=[CLIENT_LOOP],
        environment={"TARGET": f"https://{cluster.virtual_address}/openmrs/whoami",
                     "AUTHORITY": cluster.graph.named("net-authority").outputs["certPem"]},
        name=f"{cluster.balancer}-test-client", network=cluster.private_network, cap_drop=["ALL"], detach=True)
    sampler = HolderSampler(cluster)
    sampler.start()
    try:
        time.sleep(3)
        killed_at = time.time()
        docker_client.containers.get(master).kill()
        took_over = wait_for(lambda: cluster.holders_of_the_virtual_address() == {standby}, timeout=30, poll=0.05)
        takeover = time.time() - killed_at
        assert took_over, f"{standby} never took {cluster.virtual_address} over"
        time.sleep(5)
        client.exec_run(["touch", "/tmp/stop"])
        client.wait(timeout=30)
        log = [line.split() for line in client.logs().decode().splitlines()]

        # The killed balancer comes back as the standby: the address stays where it is (nopreempt).
        docker_client.containers.get(master).start()
        assert wait_for(lambda: cluster.exec(master, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                             "http://127.0.0.1/") == "308", timeout=30)  # it serves: the redirect
        time.sleep(3 * int(advert) + 1)
        assert cluster.holders_of_the_virtual_address() == {standby}
        # ...and it is a standby indeed: its keepalived runs again (not fooled by the last run's pid files).
        vrrp_process = cluster.exec(master, "sh", "-c", "cat /proc/$(cat /run/keepalived/vrrp.pid)/comm")
        assert vrrp_process.strip() == "keepalived", vrrp_process
    finally:
        sampler.stop()
        client.remove(force=True)
        if docker_client.containers.get(master).status != "running":
            docker_client.containers.get(master).start()

    both = [(at, holders) for at, holders in sampler.samples if len(holders) > 1]
    assert not both, f"both balancers held the virtual address: {both[:3]}"
    requests = [(float(sent), float(done), status) for sent, done, status in log]
    failed = [entry for entry in requests if entry[2] != "200"]
    after_kill = [entry for entry in requests if entry[0] >= killed_at]
    assert after_kill and after_kill[-1][2] == "200"
    slowest = max(done - sent for sent, done, _ in requests)
    bound = 3 * int(advert) + 2  # keepalived's master-down time (3 adverts and a skew) and a margin
    assert takeover <= bound, f"takeover took {takeover:.1f} s"
    # Requests fail only while no balancer holds the address: in flight at the kill (its connection dies
    # with the balancer) or sent after it, and answered before the standby had announced it. Every later
    # request succeeds.
    outage = [(round(sent - killed_at, 2), round(done - killed_at, 2), status) for sent, done, status in failed]
    assert all(0 <= done <= takeover + 0.5 for sent, done, _ in outage), outage
    failed_share = f"{len(failed)} of {len(requests)}"
    figures["balancer killed -> virtual address on the standby"] = (
        f"{takeover:.2f} s (bound {bound} s); {failed_share} requests to the virtual address failed "
        f"(at {[sent for sent, _, _ in outage]} s after the kill), slowest {slowest:.2f} s; "
        f"never held by both ({len(sampler.samples)} samples every 0.1 s)")
