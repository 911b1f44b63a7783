"""Scripted deployment on the local cluster: every node runs the release the stack lists (modules and
configuration, layered into one image), the first node starts alone, and a new release rolls through
the nodes one at a time under a steady load without a failed request.

On the shared cluster, deployed with release 1 (conftest.py's `releases`); the rolling update leaves it on
release 2.
"""
import hashlib
import re
from pathlib import Path

import pytest

from local_cluster import NODES, updated_under_requests
from program import run_program, with_overrides

pytestmark = pytest.mark.docker


# The stand-in image's own module that no release lists: it stays (its webservices.rest-2.40.0 is replaced).
IMAGE_MODULE = {"legacyui-1.9.0.omod": hashlib.sha256(b"legacyui 1.9.0\n").hexdigest()}


def expected_modules(release: dict) -> dict[str, str]:
    return {**IMAGE_MODULE, **{Path(entry["path"]).name: entry["sha256"] for entry in release["modules"]}}


def expected_configuration(release: dict) -> dict[str, str]:
    folder = Path(release["configuration"]["path"])
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*") if path.is_file()}


def test_every_node_runs_the_listed_modules_with_web_administration_off(local_cluster, releases):
    first, _ = releases
    answers = {route: local_cluster.node_answer(route, "/release") for route in local_cluster.nodes}
    releases_run = {answer["release"] for answer in answers.values()}
    assert len(releases_run) == 1 and None not in releases_run, answers
    for route, answer in answers.items():
        assert answer["modules"] == expected_modules(first), route
        assert answer["configuration"] == expected_configuration(first), route
        assert local_cluster.node_answer(route, "/whoami")["moduleWebAdmin"] == "false", route


def test_the_first_node_is_ready_before_the_next_one_starts(local_cluster):
    """OpenMRS's first-time setup and migrations run on one node alone: node 1 set the database up (the
    stand-in's setup takes STANDIN_SETUP_SECONDS, under Liquibase's lock), and each node's JVM started only
    after the node before it was ready (times from the stand-in, by the database's clock)."""
    assert local_cluster.replica_query("SELECT installed_by FROM openmrs.standin_schema") == "node1"
    rows = local_cluster.replica_query(
        "SELECT route, jvm_started, ready FROM openmrs.standin_starts ORDER BY route, jvm_started")
    first_start = {}
    for line in rows.splitlines():
        route, jvm_started, ready = line.split("\t")
        first_start.setdefault(route, (jvm_started, ready))
    assert sorted(first_start) == sorted(local_cluster.nodes), rows
    for index in range(2, NODES + 1):
        started, _ = first_start[f"node{index}"]
        _, previous_ready = first_start[f"node{index - 1}"]
        assert started > previous_ready, f"node{index} started at {started}, before node{index - 1} was ready ({previous_ready})"


def test_a_new_release_rolls_one_node_at_a_time_without_a_failed_request(local_cluster, releases, figures):
    _, second = releases
    cluster = local_cluster
    old_containers = {route: cluster.client.containers.get(name).id for route, name in cluster.nodes.items()}
    new_config = with_overrides(cluster.config, app=second)
    new_graph = run_program(cluster.stack, new_config)
    steps_before = len(cluster.deployer.steps)
    stream, sampler, rollout = updated_under_requests(cluster, new_graph)
    cluster.config, cluster.graph = new_config, new_graph

    failures = stream.failures()
    assert stream.log and not failures, (
        f"{len(failures)} of {len(stream.log)} requests failed: {failures[:5]}\n" + "\n".join(cluster.balancer_complaints()))
    for route, name in cluster.nodes.items():
        assert cluster.client.containers.get(name).id != old_containers[route], f"{route} was not replaced"
        answer = cluster.node_answer(route, "/release")
        assert (answer["modules"], answer["configuration"]) == (expected_modules(second), expected_configuration(second)), route
    assert len({cluster.node_answer(route, "/release")["release"] for route in cluster.nodes}) == 1

    fewest_in_service = min(len(in_service) for in_service, _ in sampler.samples)
    fewest_healthy = min(len(healthy) for _, healthy in sampler.samples)
    assert fewest_in_service >= NODES - 1 and fewest_healthy >= NODES - 1, sampler.samples
    drained = {route for in_service, _ in sampler.samples for route in set(cluster.nodes) - in_service}
    assert drained == set(cluster.nodes), f"nodes never seen out of the balancer: {set(cluster.nodes) - drained}"
    assert cluster.in_service() == set(cluster.nodes)

    node_steps = [name for _, action, name in cluster.deployer.steps[steps_before:]
                  if action != "delete" and re.fullmatch(r"app-\d+(-drain|-admit)?", name)]
    assert node_steps == [f"app-{n}{step}" for n in range(1, NODES + 1) for step in ("-drain", "", "-admit")]

    figures["rolling update of 3 nodes"] = (
        f"{rollout:.1f} s; {len(stream.log)} requests, {len(failures)} failed, {stream.resent} resent; "
        f"at least {fewest_in_service} nodes in the balancer and {fewest_healthy} healthy in every 0.25 s sample "
        f"({len(sampler.samples)} samples)"
    )
