"""What a user of the local cluster notices, through the balancer on 127.0.0.1.

The cluster is the real program's graph (3 nodes of the stand-in app, heartbeat every 2 s with a 2 s timeout,
2 fails, 2 passes) created on the Docker engine; see conftest.py.
"""
import time
import uuid
from collections import Counter

import pytest
import requests

from local_cluster import (
    KEEPER_GRACE_SECONDS, KEEPER_POLL_SECONDS, RequestStream, hang, session_less_routes, sessions_stay_on_their_node,
    wait_for,
)

pytestmark = pytest.mark.docker


def test_round_robin_spreads_requests_evenly(local_cluster, figures):
    """First in this file: byrequests evens out each member's share of all requests, sticky ones
    included, so later tests' sessions would shift which member the next session-less request gets."""
    routes = session_less_routes(local_cluster.url, 300)
    assert set(routes) == set(local_cluster.nodes)
    for route, count in routes.items():
        assert 90 <= count <= 110, routes
    figures["round robin, 300 requests"] = dict(sorted(routes.items()))


def test_the_login_answers_as_openmrs_and_refuses_a_wrong_password(local_cluster):
    """What the O3 login page asks first: the REST session, unauthenticated; a wrong password stays so."""
    with requests.Session() as browser:
        anonymous = browser.get(f"{local_cluster.url}/ws/rest/v1/session", timeout=10)
        wrong = browser.get(f"{local_cluster.url}/ws/rest/v1/session", auth=("admin", "Admin123"), timeout=10)
    assert anonymous.json() == {"authenticated": False, "locale": "en_GB", "allowedLocales": ["en_GB"]}
    assert wrong.json()["authenticated"] is False  # the cluster's generated password, never the image's default
    assert "JSESSIONID" not in browser.cookies


def test_every_request_of_a_session_reaches_the_node_that_logged_it_in(local_cluster, figures):
    login_routes = sessions_stay_on_their_node(local_cluster, sessions=50, requests_each=20)
    assert set(login_routes) == set(local_cluster.nodes)  # sessions were spread, then stuck
    figures["sticky sessions, 50 x 20 requests"] = f"all on their node; logins per node {dict(sorted(login_routes.items()))}"


def through(local_cluster, route: str) -> requests.Session:
    """A client that the sticky balancer sends to `route`: a session cookie ending in .<route> picks the
    member (the node, not knowing the session, serves the request without one)."""
    client = requests.Session()
    client.cookies.set("JSESSIONID", f"0.{route}", path="/openmrs")
    return client


def test_a_file_written_through_one_node_is_read_through_the_others(local_cluster):
    name = f"upload-{uuid.uuid4().hex}.txt"
    content = f"complex obs {uuid.uuid4()}"
    writer, *readers = sorted(local_cluster.nodes)
    with through(local_cluster, writer) as client:
        written = client.post(f"{local_cluster.url}/files", params={"name": name, "content": content}, timeout=10)
    assert (written.status_code, written.headers["X-Node-Route"]) == (200, writer)
    for reader in readers:
        with through(local_cluster, reader) as client:
            read = client.get(f"{local_cluster.url}/files", params={"name": name}, timeout=10)
        assert (read.headers["X-Node-Route"], read.status_code, read.text) == (reader, 200, content)


def test_a_row_written_is_on_the_replica_within_a_second(local_cluster, figures):
    row = uuid.uuid4().hex
    query = f"SELECT COUNT(*) FROM openmrs.standin_rows WHERE id = '{row}'"
    with local_cluster.first_answer(local_cluster.replica(), query, "1", timeout=5) as seen_at:
        response = requests.post(f"{local_cluster.url}/rows", params={"id": row}, timeout=10)
        written = time.time()
        assert response.ok, response.text
    assert seen_at, "the row never reached the replica"
    lag = seen_at[0] - written
    assert lag <= 1.0, f"row reached the replica after {lag:.2f} s"
    figures["row on the replica after"] = f"{lag:.3f} s after the write was answered (polled inside it every 20 ms)"


def test_a_stopped_node_is_taken_out_then_put_back(local_cluster, figures):
    heartbeat = local_cluster.heartbeat
    interval, fails, passes = heartbeat["interval_seconds"], heartbeat["fails"], heartbeat["passes"]
    route = "node2"
    container = local_cluster.client.containers.get(local_cluster.nodes[route])
    stream = RequestStream(f"{local_cluster.url}/whoami")
    stream.start()
    try:
        time.sleep(1)
        # What `docker stop` sends, without waiting for the exit: Tomcat closes its listener at once,
        # then lets running requests and open connections finish (gracefulStopAwaitMillis).
        stopped = time.monotonic()
        container.kill(signal="SIGTERM")
        out = wait_for(lambda: not local_cluster.member_in(route), timeout=30)
        detection = time.monotonic() - stopped
        assert out, "the balancer never took the stopped node out"
        elected_when_out = local_cluster.members()[route].elected
        time.sleep(2 * interval)
        assert local_cluster.members()[route].elected == elected_when_out, "requests still reached the stopped node"
        assert detection <= 2 * interval * fails + 1

        container.wait(timeout=60)
        container.start()
        ready = wait_for(lambda: local_cluster.node_started(route), timeout=60, poll=0.1)
        assert ready, "the restarted node never became healthy"
        healthy_at = time.monotonic()
        back = wait_for(lambda: any(t >= healthy_at and r == route for t, _, r in stream.log), timeout=30)
        recovery = time.monotonic() - healthy_at
        assert back, "the balancer never put the restarted node back"
        assert recovery <= 2 * interval * passes + 1
    finally:
        stream.stop()
        container.reload()
        if container.status != "running":
            container.start()
    failures = stream.failures()
    assert not failures, (
        f"{len(failures)} of {len(stream.log)} requests failed: {failures[:5]}\n"
        + "\n".join(local_cluster.balancer_complaints())
    )
    figures["node stopped -> out of the balancer"] = f"{detection:.2f} s (bound {2 * interval * fails + 1} s)"
    figures["node healthy -> back in the balancer"] = f"{recovery:.2f} s (bound {2 * interval * passes + 1} s)"
    figures["requests during stop and restart"] = (
        f"{len(stream.log)} sent, {len(failures)} failed, {stream.resent} resent by the client as a browser would"
    )


def test_a_hung_node_is_taken_out_within_its_heartbeats_timeout(local_cluster, figures):
    """A paused container takes connections (its kernel completes the handshake) and never answers, as a hung
    JVM: out after `fails` heartbeats of `timeout_seconds`, where Apache's own check would wait as long as a
    request may; only the request it held is in doubt; back after `passes` once it answers again. When it
    went out is the balancer's own word (the time of its log line): reading its state from outside, through
    the engine, takes a second or more on a busy machine."""
    heartbeat = local_cluster.heartbeat
    interval, fails, timeout = heartbeat["interval_seconds"], heartbeat["fails"], heartbeat["timeout_seconds"]
    if local_cluster.balancer_kind == "haproxy":
        # HAProxy waits its interval after each check ends, a failed one timeout_seconds after it began.
        bound = fails * (interval + timeout) + 1
    else:
        # Apache's watchdog starts a check every interval.
        bound = fails * max(interval, timeout) + interval + 1
    route = "node3"
    container = local_cluster.client.containers.get(local_cluster.nodes[route])
    stream = RequestStream(f"{local_cluster.url}/whoami")
    stream.start()
    try:
        time.sleep(1)
        hung_at = hang(container)
        out = wait_for(lambda: not local_cluster.member_in(route), timeout=30, poll=0.2)
        seen_out = time.time() - hung_at
        assert out, "the balancer never took the hung node out"
        took_out = local_cluster.took_out_at(route, hung_at)
        assert took_out, f"the balancer's log does not say when it took {route} out"
        detection = took_out - hung_at
        served_meanwhile = session_less_routes(local_cluster.url, 30)
        container.unpause()
        answering = time.monotonic()
        back = wait_for(lambda: any(r == route and sent > answering for sent, _, r in stream.log), timeout=30, poll=0.2)
        assert back, "no request reached the node again once it answered"
    finally:
        stream.stop()
        container.reload()
        if container.status == "paused":
            container.unpause()
    assert detection <= bound, f"out after {detection:.1f} s (bound {bound} s)"
    assert route not in served_meanwhile and sum(served_meanwhile.values()) == 30, served_meanwhile
    failures = stream.failures()
    # one request at a time: at most the one the node held when it hung (the client gives up after 10 s)
    assert len(failures) <= 1 and all("timed out" in error.lower() for _, _, error in failures), failures
    figures["node hung (paused) -> out of the balancer"] = (
        f"{detection:.2f} s by the balancer's log (bound {bound} s), seen out from outside after {seen_out:.2f} s; "
        f"{len(stream.log)} requests, {len(failures)} failed")


def resolved_discovery_name(local_cluster, route: str) -> set[str]:
    """What the clustered caches' DNS_PING gets for the discovery name, asked inside the node."""
    answer = local_cluster.exec(local_cluster.nodes[route], "getent", "ahostsv4", "app-nodes")
    return {line.split()[0] for line in answer.splitlines() if line.strip()}


def test_the_discovery_name_answers_with_every_node_inside_every_node(local_cluster, figures):
    """A fixed list, in each container's /etc/hosts, as on several hosts, where no one engine's DNS knows every
    node: a node that is down is still listed, and JGroups simply finds it not answering."""
    addresses = {route: local_cluster.address_of(f"app-{route[4:]}") for route in local_cluster.nodes}
    for route in local_cluster.nodes:
        assert resolved_discovery_name(local_cluster, route) == set(addresses.values()), route
    figures["discovery name"] = "every node's address, from inside each node"


def reaches(local_cluster, container: str, address: str, port: int) -> bool:
    probe = f"timeout 3 bash -c '</dev/tcp/{address}/{port}' && echo reached || echo refused"
    return local_cluster.exec(container, "sh", "-c", probe).strip() == "reached"


def test_nodes_reach_each_other_on_the_cache_ports_and_nothing_outside_the_private_network_does(local_cluster):
    node2 = local_cluster.address_of("app-2")
    for port in (7800, 7801):
        assert reaches(local_cluster, local_cluster.nodes["node1"], node2, port), port
    edge = local_cluster.graph.named("net-edge").plain("name")
    outsider = local_cluster.client.containers.run(
        "debian:bookworm-slim", ["sleep", "60"], network=edge, detach=True, remove=True)
    try:
        for port in (7800, 7801, 8443):
            assert not reaches(local_cluster, outsider.name, node2, port), port
    finally:
        outsider.kill()


START_ON_STARTUP_TASK = "a1b2c3d4-0000-4000-8000-00000000a001"  # the stand-in's, every 2 s (STANDIN_TASK_SECONDS)


def task_runs_since(local_cluster, since: str) -> Counter:
    rows = local_cluster.replica_query(
        f"SELECT route, COUNT(*) FROM openmrs.standin_task_runs WHERE uuid = '{START_ON_STARTUP_TASK}' "
        f"AND ran > '{since}' GROUP BY route")
    return Counter({route: int(count) for route, count in (line.split("\t") for line in rows.splitlines())})


def database_now(local_cluster) -> str:
    return local_cluster.replica_query("SELECT NOW(3)")


def test_a_start_on_startup_task_runs_on_one_node_and_moves_when_that_node_is_lost(local_cluster, figures):
    """Core 2.8 starts the task on every node; the keeper leaves it on one, and moves it when that one stops."""
    settle = 2 * KEEPER_POLL_SECONDS + 1
    time.sleep(settle)
    since = database_now(local_cluster)
    time.sleep(8)
    runs = task_runs_since(local_cluster, since)
    assert len(runs) == 1 and sum(runs.values()) >= 3, f"runs per node in 8 s: {dict(runs)}"
    (designated,) = runs
    stopped = local_cluster.client.containers.get(local_cluster.nodes[designated])
    stopped.stop(timeout=60)
    stopped_at, since = time.monotonic(), database_now(local_cluster)
    try:
        moved = wait_for(lambda: set(task_runs_since(local_cluster, since)) - {designated},
                         timeout=KEEPER_GRACE_SECONDS + 3 * KEEPER_POLL_SECONDS + 10, poll=0.5)
        moved_after = time.monotonic() - stopped_at
        assert moved, f"nothing ran the task after {designated} stopped"
        returned = database_now(local_cluster)
        stopped.start()
    finally:
        stopped.reload()
        if stopped.status != "running":
            stopped.start()
    assert wait_for(local_cluster.all_members_in, timeout=120, poll=0.5), f"{designated} never came back"
    time.sleep(settle)
    since = database_now(local_cluster)
    time.sleep(8)
    runs_after = task_runs_since(local_cluster, since)
    assert len(runs_after) == 1 and set(runs_after) == moved, f"runs per node after the return: {dict(runs_after)}"
    boot_runs = task_runs_since(local_cluster, returned)[designated]
    figures["scheduled task (every 2 s) with 3 nodes"] = (
        f"{sum(runs.values())} runs in 8 s, all on {designated}; {designated} stopped -> the task ran on "
        f"{', '.join(sorted(moved))} after {moved_after:.1f} s (grace {KEEPER_GRACE_SECONDS} s, poll "
        f"{KEEPER_POLL_SECONDS} s); {designated} back: it ran the task {boot_runs} time(s) at its start before the "
        f"keeper stopped it there, then {sum(runs_after.values())} runs in 8 s, all on {', '.join(sorted(runs_after))}")
