"""balancer.engine haproxy keeps the balancer's whole contract: the tests that prove Apache's, collected again
here, where `local_cluster` is a cluster of this module's own behind a pair of HAProxy
balancers (deployed and removed before the shared cluster comes up: conftest.py). Their figures are reported
under "HAProxy:"."""
import pytest

from local_cluster import deployed
# In the order they run: round robin first, as in its own file (later sessions shift the counts).
from test_local_cluster import (  # noqa: F401  isort: skip
    test_round_robin_spreads_requests_evenly, test_the_login_answers_as_openmrs_and_refuses_a_wrong_password,
    test_every_request_of_a_session_reaches_the_node_that_logged_it_in, test_a_stopped_node_is_taken_out_then_put_back,
    test_a_hung_node_is_taken_out_within_its_heartbeats_timeout,
)
from test_balancer_pair import test_the_standby_balancer_takes_over_the_virtual_address  # noqa: F401  isort: skip
from test_o3 import test_a_static_server_killed_under_load_fails_no_request  # noqa: F401  isort: skip
from test_monitoring import test_each_balancer_reports_what_it_served_per_node  # noqa: F401  isort: skip
# Last: it moves every node to the second release.
from test_rolling_update import test_a_new_release_rolls_one_node_at_a_time_without_a_failed_request  # noqa: F401,E501  isort: skip

pytestmark = pytest.mark.docker


class EngineFigures(dict):
    """The run's figures (conftest's), each name prefixed with the engine that measured it."""

    def __init__(self, shared: dict):
        super().__init__()
        self.shared = shared

    def __setitem__(self, name: str, value) -> None:
        self.shared[f"HAProxy: {name}"] = value


@pytest.fixture(scope="module")
def figures(figures) -> EngineFigures:
    return EngineFigures(figures)


@pytest.fixture(scope="module")
def local_cluster(docker_client, releases, figures):
    # Monitored (alerts to no receiver): HAProxy's own exporter is what the dashboard reads of it.
    with deployed(docker_client, stack="haproxy", subnet="10.213.94.0/24", app=releases[0], engine="haproxy",
                  monitoring={"enabled": True}) as cluster:
        figures["bring-up"] = f"all members in both balancers after {cluster.timings['serving']:.1f} s"
        yield cluster

