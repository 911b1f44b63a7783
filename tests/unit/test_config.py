"""Every configuration rule: a bad value is reported with its key and a fix, all problems at once,
and the program fails before registering any resource."""
import pytest

from components.config import ConfigError, parse_cluster_config
from program import PROJECT, run_program, stack_config, with_overrides


def problems_for(**sections) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_cluster_config(sections)
    return raised.value.problems


def test_defaults_are_a_sticky_round_robin_cluster_of_three_on_loopback():
    cluster = parse_cluster_config({})
    assert (cluster.platform, cluster.app.nodes) == ("local", 3)
    assert (cluster.balancer.scheduling, cluster.balancer.sticky_sessions) == ("round_robin", True)
    assert cluster.balancer.listen_address == "127.0.0.1"
    assert cluster.balancer.heartbeat.path == "/openmrs/health/started"
    assert cluster.app.image.startswith("openmrs/openmrs-reference-application-3-backend:")


@pytest.mark.parametrize(
    "sections, key, words",
    [
        ({"platform": "gcp"}, "platform", "'local'"),
        ({"app": {"nodes": 1}}, "app.nodes", "greater than or equal to 2"),
        ({"app": {"nodes": 17}}, "app.nodes", "less than or equal to 16"),
        ({"app": {"nodes": "three"}}, "app.nodes", "valid integer"),
        ({"app": {"port": 0}}, "app.port", "greater than or equal to 1"),
        ({"app": {"context_path": "/a/b"}}, "app.context_path", "one path segment"),
        ({"app": {"start_period_seconds": -1}}, "app.start_period_seconds", "greater than or equal to 0"),
        ({"app": {"memory_mb": 128}}, "app.memory_mb", "greater than or equal to 512"),
        ({"balancer": {"scheduling": "random"}}, "balancer.scheduling", "'round_robin' or 'by_busyness'"),
        ({"balancer": {"sticky_sessions": "maybe"}}, "balancer.sticky_sessions", "valid boolean"),
        ({"balancer": {"listen_address": "localhost"}}, "balancer.listen_address", "IPv4 address"),
        ({"balancer": {"port": 70000}}, "balancer.port", "less than or equal to 65535"),
        ({"balancer": {"heartbeat": {"path": "health"}}}, "balancer.heartbeat.path", "absolute URL path"),
        ({"balancer": {"heartbeat": {"path": "/openmrs/health/alive"}}}, "balancer.heartbeat.path", "trigger OpenMRS setup"),
        ({"balancer": {"heartbeat": {"interval_seconds": 0}}}, "balancer.heartbeat.interval_seconds", ">= 1"),
        ({"balancer": {"heartbeat": {"fails": 0}}}, "balancer.heartbeat.fails", ">= 1"),
        ({"balancer": {"heartbeat": {"passes": 21}}}, "balancer.heartbeat.passes", "<= 20"),
        ({"balancer": {"heartbeat": {"interval_seconds": 2, "timeout_seconds": 3}}}, "balancer.heartbeat.timeout_seconds",
         "set it to 2 or less"),
        ({"database": {"failover": {"interval_seconds": 0.1}}}, "database.failover.interval_seconds", ">= 0.2"),
        ({"database": {"name": "open-mrs"}}, "database.name", "letters, digits and _"),
        ({"database": {"user": "1admin"}}, "database.user", "start with a letter"),
        ({"storage": {"shared_folders": ["modules"]}}, "storage.shared_folders", "re-copied by the OpenMRS image"),
        ({"storage": {"shared_folders": ["../etc"]}}, "storage.shared_folders", "folder name directly under"),
        ({"storage": {"shared_folders": []}}, "storage.shared_folders", "at least one folder"),
        ({"storage": {"shared_folders": ["storage", "storage"]}}, "storage.shared_folders", "twice"),
        ({"storage": {"drbd": {"hosts": [{"name": "a", "address": "10.0.0.1", "disk": "/dev/sdb"}]}}},
         "storage.drbd.hosts", "exactly two hosts"),
        ({"storage": {"drbd": {"hosts": [{"name": "a", "address": "10.0.0.1", "disk": "/dev/sdb"},
                                         {"name": "a", "address": "10.0.0.2", "disk": "/dev/sdb"}]}}},
         "storage.drbd.hosts", "two different hosts"),
        ({"storage": {"drbd": {"hosts": [{"name": "a", "address": "files-a", "disk": "/dev/sdb"},
                                         {"name": "b", "address": "10.0.0.2", "disk": "/dev/sdb"}]}}},
         "storage.drbd.hosts.0.address", "IPv4 address"),
        ({"storage": {"drbd": {"hosts": [{"name": "a", "address": "10.0.0.1", "disk": "sdb"},
                                         {"name": "b", "address": "10.0.0.2", "disk": "/dev/sdb"}]}}},
         "storage.drbd.hosts.0.disk", "block device's path"),
        ({"balancer": {"virtual_router_id": 256}}, "balancer.virtual_router_id", "less than or equal to 255"),
        ({"balancer": {"advert_seconds": 0}}, "balancer.advert_seconds", "greater than or equal to 1"),
        ({"network": {"subnet": "10.1.2.0/28"}}, "network.subnet", "/24 or shorter"),
        ({"network": {"subnet": "not-a-net"}}, "network.subnet", "CIDR"),
        ({"app": {"imagee": "x"}}, "app.imagee", "unknown key"),
        ({"app": {"max_ram_percent": 95}}, "app.max_ram_percent", "<= 90"),
        ({"search": {"servers": 2}}, "search.servers", "1 or 3"),
        ({"search": {"uris": ["search:9200"]}}, "search.uris", "https://<host>:<port>"),
        ({"search": {"uris": ["http://search.example.org:9200"]}}, "search.uris", "in clear"),
        ({"tls": {"authority": 2, "also_trust": 2}}, "tls", "signs already"),
        ({"storage": {"drbd": {"hosts": [{"name": "a", "address": "10.0.0.1", "disk": "/dev/sdb"},
                                         {"name": "b", "address": "10.0.0.2", "disk": "/dev/sdb"}]}}},
         "storage.drbd", "unencrypted"),
        ({"search": {"heap_mb": 100}}, "search.heap_mb", ">= 256"),
        ({"platform": "aws", "aws": {"production": True, "availability_zones": ["eu-west-1a", "eu-west-1b"],
                                     "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b"}},
         "monitoring.alert_emails", "production's alerts would notify nobody"),
        ({"monitoring": {"alert_emails": ["ops@clinic.example"]}}, "monitoring.smtp", "need your mail relay"),
        ({"platform": "aws", "aws": {"availability_zones": ["eu-west-1a", "eu-west-1b"]},
          "monitoring": {"smtp": {"smarthost": "mail.clinic.example:587", "sender": "openmrs@clinic.example"}}},
         "monitoring.smtp", "SNS sends the e-mails"),
        ({"monitoring": {"alert_webhooks": ["http://chat.clinic.example/hooks"]}}, "monitoring.alert_webhooks",
         "never in clear"),
        ({"monitoring": {"disk_percent": 100}}, "monitoring.disk_percent", "<= 99"),
    ],
)
def test_each_rule_names_its_key_and_the_fix(sections, key, words):
    (problem,) = problems_for(**sections)
    assert problem.startswith(f"{PROJECT}:{key}: ")
    assert words.replace(">= ", "greater than or equal to ").replace("<= ", "less than or equal to ") in problem
    assert "fix" in problem or "set it to" in problem or "remove it" in problem


def test_the_balancer_pair_needs_a_second_port():
    (problem,) = problems_for(balancer={"port": 65535})
    assert problem.startswith(f"{PROJECT}:balancer.port: ") and "below 65535" in problem
    assert parse_cluster_config({"balancer": {"port": 65535, "pair": False}}).balancer.port == 65535


def test_heartbeat_path_must_lie_inside_the_application():
    (problem,) = problems_for(balancer={"heartbeat": {"path": "/other/health/started"}})
    assert "balancer.heartbeat.path" in problem and "/openmrs/health/started" in problem


def test_every_problem_is_reported_at_once():
    problems = problems_for(app={"nodes": 0, "port": -1}, balancer={"scheduling": "x"}, network={"subnet": "x"})
    assert len(problems) == 4


def test_bad_stack_fails_before_any_resource_is_registered():
    config = with_overrides(stack_config("local"), app={"nodes": 1})
    config[f"{PROJECT}:database_password"] = "short"
    config[f"{PROJECT}:balncer"] = "{}"
    with pytest.raises(ConfigError) as raised:
        run_program("local", config)
    message = str(raised.value)
    assert f"{PROJECT}:app.nodes" in message
    assert f"{PROJECT}:database_password: a given password must be at least 16 characters" in message
    assert f"{PROJECT}:balncer: unknown key" in message


def test_nodes_that_would_answer_differently_are_refused_before_any_resource():
    """A Lucene index per node, or a core older than 2.8 (no clustered caches), with several nodes."""
    (lucene,) = problems_for(search={"backend": "lucene"})
    assert lucene.startswith(f"{PROJECT}:search.backend: ") and "set it to elasticsearch" in lucene
    for image in ("openmrs/openmrs-reference-application-3-backend:3.5.0", "openmrs/openmrs-reference-application-3-backend:3.0.0-no-demo",
                  "openmrs/openmrs-core:2.7.4", "registry.example.org/openmrs/openmrs-core:2.6.x"):
        (old,) = problems_for(app={"image": image})
        assert old.startswith(f"{PROJECT}:app.image: ") and "older than 2.8" in old and "3.7.x-no-demo" in old
    for image in ("openmrs/openmrs-reference-application-3-backend:3.6.0", "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo",
                  "openmrs/openmrs-reference-application-3-backend:3.10.0", "openmrs/openmrs-core:2.8.7", "hospital/openmrs:1.0"):
        assert parse_cluster_config({"app": {"image": image}}).app.image == image


def test_a_search_password_without_an_existing_cluster_is_refused():
    config = stack_config("local")
    config[f"{PROJECT}:search_password"] = "a-search-password-long-enough"
    with pytest.raises(ConfigError) as raised:
        run_program("local", config)
    assert f"{PROJECT}:search_password: is the password of an existing cluster (search.uris)" in str(raised.value)


# -- several hosts --------------------------------------------------------------------------------------
THREE_HOSTS = [{"name": "a", "address": "192.0.2.11"}, {"name": "b", "address": "192.0.2.12"},
               {"name": "c", "address": "192.0.2.13"}]
ON_HOSTS = {
    "hosts": THREE_HOSTS,
    "network": {"interface": "eth1", "front": {"interface": "eth0", "subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
                                               "virtual_address": "192.0.2.50",
                                               "balancer_addresses": ["192.0.2.51", "192.0.2.52"]}},
    "search": {"servers": 3},
    "backup": {"s3": {"endpoint": "https://backups.example:9000", "bucket": "openmrs", "access_key_id": "cluster"}},
}


def test_hosts_default_to_docker_over_ssh_as_root_and_spread_every_tier():
    cluster = parse_cluster_config(ON_HOSTS)
    assert [host.docker_url for host in cluster.hosts] == [f"ssh://root@192.0.2.1{i}" for i in (1, 2, 3)]
    assert cluster.members_of("balancers") == ["a", "b"] and cluster.members_of("database") == ["b", "c"]
    assert cluster.members_of("storage") == cluster.members_of("search") == cluster.members_of("app") == ["a", "b", "c"]
    assert parse_cluster_config({**ON_HOSTS, "app": {"nodes": 5}}).members_of("app") == ["a", "b", "c", "a", "b"]


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"hosts": THREE_HOSTS[:2]}, "hosts", "needs 3 to 8"),
        ({"hosts": [*THREE_HOSTS[:2], {"name": "a", "address": "192.0.2.14"}]}, "hosts", "same name"),
        ({"placement": {"database": ["a", "a"]}}, "placement.database", "two of the tier's 2 members on one machine"),
        ({"placement": {"balancers": ["b", "b"]}}, "placement.balancers", "on one machine"),
        ({"placement": {"storage": ["a", "b", "b"]}}, "placement.storage", "on one machine"),
        ({"placement": {"app": ["c", "c", "c"]}}, "placement.app", "die with that machine"),
        ({"placement": {"database": ["a", "d"]}}, "placement.database", "d is not in hosts"),
        ({"placement": {"storage": ["a", "b"]}}, "placement.storage", "names 2 hosts for the tier's 3 members"),
        ({"balancer": {"pair": False}}, "balancer.pair", "dies with its machine"),
        ({"balancer": {"heartbeat": {"interval_seconds": 1, "passes": 2}}}, "balancer.heartbeat", "at least 5"),
        ({"storage": {"replicated": False}}, "storage.replicated", "not shared between hosts"),
        ({"search": {"servers": 1}}, "search.servers", "dies with its machine"),
        ({"backup": {}}, "backup.s3", "lives on one machine and dies with it"),
        ({"network": {"interface": "eth1"}}, "network.front", "virtual_address"),
        ({"network": {"front": ON_HOSTS["network"]["front"]}}, "network.interface", "back network"),
        ({"hosts": [{"name": "a", "address": "192.0.2.11", "docker": "tcp://192.0.2.11:2376"}, *THREE_HOSTS[1:]]},
         "hosts.0", "without TLS"),
        ({"hosts": [{"name": "a", "address": "192.0.2.11", "docker": "http://192.0.2.11"}, *THREE_HOSTS[1:]]},
         "hosts.0.docker", "ssh://user@address"),
        ({"platform": "aws", "aws": {"availability_zones": ["eu-west-1a", "eu-west-1b"]}}, "hosts", "platform: local"),
    ],
)
def test_a_cluster_that_one_machines_loss_would_take_down_is_refused_before_any_resource(change, key, words):
    sections = {**ON_HOSTS, **change}
    problems = problems_for(**sections)
    assert any(problem.startswith(f"{PROJECT}:{key}") and words in problem for problem in problems), problems


def test_placement_without_hosts_is_refused():
    assert problems_for(placement={"database": ["a", "b"]}) == [
        f"{PROJECT}:placement: places members on hosts, and no hosts are given; set hosts or remove it"]


def test_a_machine_added_at_the_end_of_hosts_moves_no_member():
    """Adding a machine never moves a database server, storage server or node (their data stays); raising
    app.nodes with it puts the new node on the new machine."""
    before = parse_cluster_config({**ON_HOSTS, "app": {"nodes": 3}})
    more_hosts = [*THREE_HOSTS, {"name": "d", "address": "192.0.2.14"}]
    after = parse_cluster_config({**ON_HOSTS, "hosts": more_hosts, "app": {"nodes": 4}})
    for tier in ("balancers", "database", "storage", "search"):
        assert after.members_of(tier) == before.members_of(tier), tier
    assert after.members_of("app") == [*before.members_of("app"), "d"]


# -- an external balancer ---------------------------------------------------------------------------------
EXTERNAL = {"engine": "external", "external": {"virtual_address": "192.0.2.80"}}
BEHIND_EXTERNAL = {**ON_HOSTS, "network": {"interface": "eth1"}, "balancer": EXTERNAL}


def test_an_external_balancer_needs_no_front_network_and_no_balancer_pair():
    cluster = parse_cluster_config(BEHIND_EXTERNAL)
    assert cluster.member_counts()["balancers"] == 0 and cluster.members_of("balancers") == []
    assert cluster.client_addresses() == ["192.0.2.80"]


@pytest.mark.parametrize("sections, key, fix", [
    ({"balancer": EXTERNAL}, "balancer.engine", "list hosts, or set balancer.engine to apache"),
    ({**BEHIND_EXTERNAL, "network": ON_HOSTS["network"]}, "network.front", "remove network.front"),
    ({**BEHIND_EXTERNAL, "balancer": {"engine": "external"}}, "balancer.external", "set at least balancer.external"),
    ({**ON_HOSTS, "balancer": {"external": EXTERNAL["external"]}}, "balancer.external", "set balancer.engine to external"),
    ({**BEHIND_EXTERNAL, "balancer": {**EXTERNAL, "external": {"virtual_address": "f5"}}},
     "balancer.external.virtual_address", "IPv4 address"),
    ({**BEHIND_EXTERNAL, "balancer": {**EXTERNAL, "external": {"virtual_address": "192.0.2.80", "tenant": "Common"}}},
     "balancer.external.tenant", "BIG-IP's own partition"),
    ({**BEHIND_EXTERNAL, "balancer": {**EXTERNAL, "external": {"virtual_address": "192.0.2.80", "tenant": "1st"}}},
     "balancer.external.tenant", "start with a letter"),
])
def test_an_external_balancer_is_refused_where_it_cannot_work(sections, key, fix):
    problems = problems_for(**sections)
    assert any(problem.startswith(f"{PROJECT}:{key}") and fix in problem for problem in problems), problems


def test_aws_refuses_another_balancer_than_its_own():
    config = with_overrides(stack_config("aws-staging"), balancer=EXTERNAL)
    with pytest.raises(ConfigError) as raised:
        run_program("aws-staging", config)
    assert any(problem.startswith(f"{PROJECT}:balancer.engine: AWS balances with its Application Load Balancer")
               for problem in raised.value.problems), raised.value.problems
