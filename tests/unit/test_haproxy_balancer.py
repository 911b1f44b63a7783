"""balancer.engine haproxy: the same pair, certificate and rolling steps as Apache's, with HAProxy's own
configuration (checked by `haproxy -c` in test_rendered_configs.py) and its runtime API."""
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.local.rollout import HaproxyRuntime, MemberState, RolloutFailed
from program import run_program, stack_config, unwrap, with_overrides

CONFIG = "/etc/haproxy/openmrs-balancer.cfg"
# What HAProxy 2.6.12 answered to `show stat` for the local stack's configuration, node1 set to maint and no
# node up (each "UP 1/3": serving, one check failed so far).
SHOW_STAT = (Path(__file__).parents[1] / "reference/haproxy-2.6-show-stat.csv").read_text()


def graph_with(**balancer):
    return run_program("local", with_overrides(stack_config("local"), balancer={"engine": "haproxy", **balancer}))


@pytest.fixture(scope="module")
def graph():
    return graph_with()


def config_of(graph, balancer: str = "lb-haproxy") -> str:
    (content,) = [u["content"] for u in graph.named(balancer).plain("uploads") if u["file"] == CONFIG]
    return content


def test_a_pair_of_haproxy_balancers_replaces_apaches(graph):
    balancers = sorted(r.name for r in graph.of_type("docker:index/container:Container") if r.name.startswith("lb-"))
    assert balancers == ["lb-haproxy", "lb-haproxy-2"]
    assert config_of(graph) == config_of(graph, "lb-haproxy-2")
    files = {u["file"] for u in graph.named("lb-haproxy").plain("uploads")}
    assert "/usr/local/bin/heartbeat-watch" not in files  # HAProxy's checks have their own timeout
    keepalived = next(u["content"] for u in graph.named("lb-haproxy").plain("uploads")
                      if u["file"] == "/etc/keepalived/keepalived.conf")
    assert "script_user haproxy" in keepalived or "user haproxy" in keepalived
    assert graph.named("lb-image").plain("build")["context"].endswith("images/haproxy")


def test_every_node_is_a_checked_member_at_its_fixed_address_named_by_its_route(graph):
    config = config_of(graph)
    for index in (1, 2, 3):
        address = graph.named(f"app-{index}").plain("networksAdvanced")[0]["ipv4Address"]
        assert f"    server node{index} {address}:8443 verifyhost node{index}\n" in config
    heartbeat = stack_config("local")["openmrs-cluster:balancer"]["heartbeat"]
    assert f"check inter {heartbeat['interval_seconds']}s fall {heartbeat['fails']} rise {heartbeat['passes']}" in config
    assert "http-check send meth GET uri /openmrs/health/started" in config and "http-check expect status 200" in config
    assert "ssl verify required ca-file /etc/haproxy/tls/authority.pem" in config


@pytest.mark.parametrize("scheduling, balance", [("round_robin", "roundrobin"), ("by_busyness", "leastconn")])
def test_the_configured_scheduling_is_haproxys_balance(scheduling, balance):
    assert re.search(rf"backend openmrs-nodes\n    balance {balance}\n", config_of(graph_with(scheduling=scheduling)))


def test_sessions_stick_to_the_route_their_id_ends_with_and_only_when_asked(graph):
    config = config_of(graph)
    for index in (1, 2, 3):
        assert (f"use-server node{index} if {{ req.cook(JSESSIONID) -m end .node{index} }} || "
                f"{{ path -m reg ;jsessionid=[^;/?]*\\.node{index}$ }}") in config
    assert "use-server" not in config_of(graph_with(sticky_sessions=False))


def test_the_rolling_steps_ask_haproxys_runtime_api(graph):
    environment = unwrap(graph.named("app-1-drain").inputs["environment"])
    assert environment["ROLLOUT_BALANCER_KIND"] == "haproxy"
    assert environment["ROLLOUT_BALANCER_CONTAINERS"] == ",".join(
        graph.named(name).plain("name") for name in ("lb-haproxy", "lb-haproxy-2"))


class FakeBalancer:
    """A balancer container that answers the runtime API as HAProxy did (SHOW_STAT), or with `answer`."""

    name = "openmrs-itest-lb-haproxy"

    def __init__(self, answer: str = SHOW_STAT, exit_code: int = 0):
        self.answer, self.exit_code, self.asked = answer, exit_code, []

    def exec_run(self, command, user=""):
        self.asked.append((command[-1], user))
        return SimpleNamespace(exit_code=self.exit_code, output=self.answer.encode())


def test_the_runtime_apis_answer_is_each_members_state_without_the_unchecked_copies():
    balancer = FakeBalancer()
    states = HaproxyRuntime(balancer).states()
    assert states == {
        "node1": MemberState(disabled=True, in_service=False, busy=0, elected=0),
        "node2": MemberState(disabled=False, in_service=True, busy=0, elected=0),
        "node3": MemberState(disabled=False, in_service=True, busy=0, elected=0),
        "static1": MemberState(disabled=False, in_service=True, busy=0, elected=0),
        "static2": MemberState(disabled=False, in_service=True, busy=0, elected=0),
    }
    assert balancer.asked[0][1] == "haproxy"  # the admin socket is haproxy's alone


def test_a_refused_state_change_is_an_error():
    with pytest.raises(RolloutFailed, match="No such server"):
        HaproxyRuntime(FakeBalancer("No such server.\n")).set_disabled("openmrs-nodes", "node9", True)
    asked = FakeBalancer("\n")
    HaproxyRuntime(asked).set_disabled("openmrs-nodes", "node2", True)
    assert "set server openmrs-nodes/node2 state maint" in asked.asked[0][0]
