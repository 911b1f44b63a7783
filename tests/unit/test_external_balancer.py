"""balancer.engine external: no balancer of the program's, and outputs that tell the site's own (an F5 BIG-IP)
what to do, as an AS3 declaration that AS3's published schema accepts (tests/reference/f5-as3)."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from program import PROJECT, is_secret, run_program, stack_config, unwrap, with_overrides

STACK = "onprem-f5"
CONTAINER = "docker:index/container:Container"
SCHEMA = json.loads((Path(__file__).parents[1] / "reference/f5-as3/as3-schema-3.56.0-10.json").read_text())
VIRTUAL_ADDRESS = "192.0.2.80"


def outputs_of(graph) -> dict:
    """The balancer tier's outputs, which __main__.py exports as they are."""
    (outputs,) = [outputs for urn, outputs in graph.component_outputs.items() if urn.endswith("LoadBalancerTier::lb")]
    return outputs


def declared(graph) -> dict:
    return json.loads(unwrap(outputs_of(graph)["as3_declaration"]))


def application(request: dict) -> dict:
    return request["declaration"]["OpenMRS"]["openmrs"]


def schema_errors(request: dict) -> list[str]:
    return [error.message for error in Draft7Validator(SCHEMA).iter_errors(request)]


@pytest.fixture(scope="module")
def graph():
    return run_program(STACK)


def with_balancer(**settings) -> dict:
    return with_overrides(stack_config(STACK), balancer=settings)


def test_no_balancer_of_the_programs_is_made_and_no_host_joins_the_hospitals_network(graph):
    names = [container.name for container in graph.of_type(CONTAINER)]
    assert not [name for name in names if name.startswith("lb-")], names
    assert {"app-1", "app-2", "app-3"} <= set(names)
    networks = [network.plain("name") for network in graph.of_type("docker:index/network:Network")]
    assert networks and not [name for name in networks if "front" in name], networks


def test_every_member_is_named_with_the_address_port_and_route_it_serves_on(graph):
    members = unwrap(outputs_of(graph)["external"])["members"]
    for member in members:
        prefix = "app" if member["pool"] == "nodes" else "o3-static"
        (container,) = [c for c in graph.of_type(CONTAINER)
                        if c.name.startswith(prefix) and c.plain("hostname") in (member["route"], f"{prefix}-{member['route'][-1]}")
                        and c.plain("networksAdvanced")[0]["ipv4Address"] == member["address"]]
        if member["pool"] == "nodes":
            env = dict(entry.split("=", 1) for entry in container.plain("envs"))
            assert f"-DjvmRoute={member['route']}" in env["OMRS_JAVA_SERVER_OPTS"]
    assert [m["route"] for m in members if m["pool"] == "nodes"] == ["node1", "node2", "node3"]
    assert {m["port"] for m in members if m["pool"] == "nodes"} == {8443}
    assert len([m for m in members if m["pool"] == "static"]) == 2


def test_the_declaration_is_a_secret_that_as3s_schema_accepts(graph):
    assert is_secret(outputs_of(graph)["as3_declaration"])  # it holds the site certificate's private key
    request = declared(graph)
    assert schema_errors(request) == []
    assert "PRIVATE KEY" in application(request)["site_certificate"]["privateKey"]


def test_the_schema_check_can_fail(graph):
    request = declared(graph)
    broken_mode = copy.deepcopy(request)
    application(broken_mode)["nodes"]["loadBalancingMode"] = "round_robin"
    broken_monitor = copy.deepcopy(request)
    application(broken_monitor)["nodes_started"]["interval"] = "5"
    assert schema_errors(broken_mode) and schema_errors(broken_monitor)


def test_every_object_the_declaration_points_to_exists_with_the_right_class(graph):
    # AS3 resolves these itself (f5PostProcess); a plain schema check does not.
    objects = application(declared(graph))
    service = objects["openmrs"]
    pointers = {service["pool"]: "Pool", service["serverTLS"]: "TLS_Server", service["clientTLS"]: "TLS_Client",
                service["profileHTTP"]["use"]: "HTTP_Profile", service["policyEndpoint"]: "Endpoint_Policy",
                objects["members_tls"]["trustCA"]["use"]: "CA_Bundle",
                objects["site_tls"]["certificates"][0]["certificate"]: "Certificate",
                **{rule: "iRule" for rule in service["iRules"]},
                **{method["use"]: "Persist" for method in service["persistenceMethods"]}}
    for persist in (objects[method["use"]] for method in service["persistenceMethods"]):
        pointers[persist["iRule"]] = "iRule"
    for pool in (o for o in objects.values() if isinstance(o, dict) and o.get("class") == "Pool"):
        pointers.update({monitor["use"]: "Monitor" for monitor in pool["monitors"]})
    for rule in objects[service["policyEndpoint"]]["rules"]:
        pointers.update({action["select"]["pool"]["use"]: "Pool" for action in rule["actions"]
                         if action["type"] == "forward"})
    assert {name: objects.get(name, {}).get("class") for name in pointers} == pointers


def test_the_pool_checks_every_node_on_its_heartbeat_and_trusts_only_the_stacks_authority(graph):
    objects = application(declared(graph))
    config = stack_config(STACK)
    heartbeat = {"interval_seconds": 5, "fails": 3, "passes": 2, **(config.get(f"{PROJECT}:balancer", {}).get("heartbeat") or {})}
    members = unwrap(outputs_of(graph)["external"])["members"]
    pool = objects["nodes"]
    assert [(m["serverAddresses"], m["servicePort"]) for m in pool["members"]] == [
        ([m["address"]], m["port"]) for m in members if m["pool"] == "nodes"]
    monitor = objects[pool["monitors"][0]["use"]]
    assert monitor["monitorType"] == "https"
    assert monitor["send"].startswith("GET /openmrs/health/started HTTP/1.1\\r\\n") and monitor["receive"] == "HTTP/1.1 200"
    assert monitor["interval"] == heartbeat["interval_seconds"]
    assert monitor["timeUntilUp"] == heartbeat["interval_seconds"] * heartbeat["passes"]
    assert monitor["timeout"] == heartbeat["interval_seconds"] * heartbeat["fails"] + 1
    tls = objects["members_tls"]
    assert tls["validateCertificate"] and not tls["ignoreUntrusted"] and not tls["ignoreExpired"]
    assert objects["stack_authority"]["bundle"] == unwrap(outputs_of(graph)["authority_certificate"])


def test_clients_get_https_only_with_the_site_certificate_for_its_name_and_address(graph):
    objects = application(declared(graph))
    service = objects["openmrs"]
    assert (service["virtualAddresses"], service["virtualPort"], service["redirect80"]) == ([VIRTUAL_ADDRESS], 443, True)
    tls = objects["site_tls"]
    assert not any(tls[f"{protocol}Enabled"] for protocol in ("ssl3", "ssl", "tls1_0", "tls1_1"))
    request = graph.named("lb-site-csr")  # the certificate the stack's authority signs for the site
    assert (request.plain("dnsNames"), request.plain("ipAddresses")) == (["openmrs.clinic.example"], [VIRTUAL_ADDRESS])
    assert unwrap(outputs_of(graph)["urls"]) == ["https://openmrs.clinic.example/openmrs/"]
    http = objects["site_http"]
    assert http["hstsInsert"] and http["insertHeader"] == {"name": "X-Forwarded-Proto", "value": "https"}


def test_the_o3_application_goes_to_the_static_servers_and_everything_else_to_the_nodes(graph):
    objects = application(declared(graph))
    rules = {rule["name"]: rule for rule in objects["o3_routing"]["rules"]}
    assert rules["o3_application"]["conditions"][0]["path"] == {"operand": "starts-with", "values": ["/openmrs/spa/"]}
    assert rules["o3_application"]["actions"][0]["select"] == {"pool": {"use": "static"}}
    assert rules["application"] == {"name": "application", "conditions": [],
                                    "actions": [{"type": "forward", "event": "request", "select": {"pool": {"use": "nodes"}}}]}
    assert list(rules) == ["o3_application", "home", "application"]  # first match wins: the catch-all last
    static_monitor = objects[objects["static"]["monitors"][0]["use"]]
    assert static_monitor["send"].startswith("GET /openmrs/spa/health ")


@pytest.mark.parametrize("scheduling, mode", [("round_robin", "round-robin"), ("by_busyness", "least-connections-member")])
@pytest.mark.parametrize("sticky", [True, False])
def test_the_declaration_follows_the_configured_scheduling_and_stickiness(scheduling, mode, sticky):
    balancer = {**stack_config(STACK)[f"{PROJECT}:balancer"], "scheduling": scheduling, "sticky_sessions": sticky}
    graph = run_program(STACK, with_overrides(stack_config(STACK), balancer=balancer))
    request = declared(graph)
    assert schema_errors(request) == []
    objects = application(request)
    assert objects["nodes"]["loadBalancingMode"] == mode
    methods = objects["openmrs"]["persistenceMethods"]
    if not sticky:
        assert methods == [] and "jsessionid" not in objects
        return
    persist = objects[methods[0]["use"]]
    assert (persist["persistenceMethod"], persist["mirror"]) == ("universal", True)
    rule = objects[persist["iRule"]]["iRule"]
    # The session's id, from the request that carries it and from the response that sets it.
    assert "persist uie $session" in rule and "persist add uie $session" in rule and "JSESSIONID" in rule


def test_a_rolling_update_drains_nothing_and_waits_for_the_balancers_own_checks(graph):
    for step in ("app-1-drain", "app-1-admit", "o3-static-1-admit"):
        environment = unwrap(graph.named(step).inputs["environment"])
        assert environment["ROLLOUT_BALANCER_CONTAINERS"] == "" and json.loads(environment["ROLLOUT_BALANCER_ENGINES"]) == []
        assert int(environment["ROLLOUT_SETTLE_SECONDS"]) == 5 * (2 + 1)  # an interval more than the monitor's passes


def test_the_drain_step_runs_with_no_balancer_to_reach(graph):
    environment = {key: str(value) for key, value in unwrap(graph.named("app-1-drain").inputs["environment"]).items()}
    step = subprocess.run([sys.executable, "-m", "components.local.rollout", "drain"], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], env={**os.environ, **environment}, timeout=60)
    assert (step.returncode, step.stdout.split(":")[0]) == (0, "drain node1"), step.stderr


def test_the_apache_engine_outputs_no_declaration():
    assert (unwrap(outputs_of(run_program("onprem"))["external"]), unwrap(outputs_of(run_program("onprem"))["as3_declaration"])) \
        == ({}, "")
