"""The real program, run under mocks against the stack across three hosts (stacks/Pulumi.onprem.yaml): each
member on its host's engine, spread so that one machine's loss leaves every tier running, and only the
balancers on the hospital's network."""
import ipaddress
import json
from collections import Counter

import pytest

from components.config import ConfigError
from program import run_program, stack_config, unwrap

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
PROVIDER = "pulumi:providers:docker"
COMMAND = "command:local:Command"
STACK = "onprem"
HOSTS = {"server-a": "ssh://root@192.0.2.11", "server-b": "ssh://root@192.0.2.12", "server-c": "ssh://openmrs@192.0.2.13"}


@pytest.fixture(scope="module")
def graph():
    return run_program(STACK)


def host_of(graph, resource) -> str:
    """The host whose engine runs `resource` (by its provider), or "" for the deploying machine's own."""
    if not resource.provider:
        return ""
    (provider,) = [r for r in graph.of_type(PROVIDER) if resource.provider.startswith(r.urn + "::")]
    return provider.name.removeprefix("host-")


def placed(graph, *names) -> list[str]:
    return [host_of(graph, graph.named(name)) for name in names]


def env_of(registration) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in registration.plain("envs"))


def test_one_provider_per_host_reaching_its_engine(graph):
    providers = {r.name.removeprefix("host-"): r.plain("host") for r in graph.of_type(PROVIDER)}
    assert providers == HOSTS


def test_every_container_network_and_volume_names_its_hosts_provider_and_images_are_made_once(graph):
    for resource in graph.registrations:
        if resource.type in (CONTAINER, NETWORK, "docker:index/volume:Volume"):
            assert host_of(graph, resource) in HOSTS, resource.name
        if resource.type in ("docker:index/image:Image", "docker:index/remoteImage:RemoteImage"):
            assert host_of(graph, resource) == "", resource.name  # built or pulled on the deploying machine


def test_a_container_is_replaced_only_once_the_old_one_is_gone(graph):
    # Its name is fixed on its host's engine: made first, the replacement would collide with the old one.
    assert [c.name for c in graph.of_type(CONTAINER) if not c.delete_before_replace] == []


def test_members_are_spread_so_that_no_machine_holds_two_of_a_pair_or_of_the_storage_servers(graph):
    assert placed(graph, "lb-apache", "lb-apache-2") == ["server-a", "server-b"]
    # the writer's first choice is not on the host that first holds the clients' address
    assert placed(graph, "db-1", "db-2") == ["server-b", "server-c"]
    assert placed(graph, "files-1", "files-2", "files-3") == ["server-a", "server-b", "server-c"]
    assert placed(graph, "search-1", "search-2", "search-3") == ["server-a", "server-b", "server-c"]
    assert placed(graph, "app-1", "app-2", "app-3") == ["server-a", "server-b", "server-c"]
    # a monitor on each of the first three machines, a storage client on every one; the keeper away from the
    # node it gives the tasks
    assert sorted(placed(graph, "db-monitor-server-a", "db-monitor-server-b", "db-monitor-server-c")) == sorted(HOSTS)
    assert sorted(placed(graph, *(f"files-client-{host}" for host in HOSTS))) == sorted(HOSTS)
    assert placed(graph, "app-scheduler-keeper") == ["server-c"]


def test_an_explicit_placement_is_followed():
    config = dict(stack_config(STACK))
    config["openmrs-cluster:placement"] = {"database": ["server-c", "server-a"], "app": ["server-b", "server-b", "server-c"]}
    graph = run_program(STACK, config)
    assert placed(graph, "db-1", "db-2") == ["server-c", "server-a"]
    assert placed(graph, "app-1", "app-2", "app-3") == ["server-b", "server-b", "server-c"]


def test_each_host_gets_the_back_network_on_its_interface_with_addresses_of_its_own(graph):
    privates = [r for r in graph.of_type(NETWORK) if r.name.startswith("net-private")]
    assert sorted(host_of(graph, r) for r in privates) == sorted(HOSTS)
    ranges = []
    for network in privates:
        assert network.plain("driver") == "macvlan" and network.plain("options") == {"parent": "eth1"}
        assert network.plain("internal") is True  # no way out of the back network
        (ipam,) = network.plain("ipamConfigs")
        assert ipam["subnet"] == "10.213.89.0/24"
        ranges.append(ipaddress.IPv4Network(ipam["ipRange"]))
    assert all(not a.overlaps(b) for i, a in enumerate(ranges) for b in ranges[i + 1:])
    # every fixed address lies below the ranges Docker hands out
    for container in graph.of_type(CONTAINER):
        for attachment in container.plain("networksAdvanced", []):
            if attachment.get("ipv4Address", "").startswith("10.213.89."):
                assert all(ipaddress.IPv4Address(attachment["ipv4Address"]) not in r for r in ranges), container.name


def test_only_the_balancers_are_on_the_hospitals_network_and_nothing_is_published(graph):
    fronts = [r for r in graph.of_type(NETWORK) if r.name.startswith("net-front")]
    assert sorted(host_of(graph, r) for r in fronts) == ["server-a", "server-b"]
    for network in fronts:
        assert network.plain("driver") == "macvlan" and network.plain("options") == {"parent": "eth0"}
        assert network.plain("ipamConfigs") == [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}]
    front_names = {network.plain("name") for network in fronts}
    on_front = {container.name: attachment["ipv4Address"] for container in graph.of_type(CONTAINER)
                for attachment in container.plain("networksAdvanced", []) if attachment["name"] in front_names}
    assert on_front == {"lb-apache": "192.0.2.51", "lb-apache-2": "192.0.2.52"}
    assert [c.name for c in graph.of_type(CONTAINER) if c.plain("ports")] == []
    assert not [r for r in graph.of_type(NETWORK) if r.name == "net-edge"]


def test_the_clients_address_moves_with_the_balancer_pair(graph):
    for name in ("lb-apache", "lb-apache-2"):
        uploads = {u["file"]: u["content"] for u in graph.named(name).plain("uploads")}
        keepalived = uploads["/etc/keepalived/keepalived.conf"]
        assert "include /run/keepalived/front-address.conf" in keepalived
        own = "192.0.2.51" if name == "lb-apache" else "192.0.2.52"
        start = uploads["/usr/local/bin/start-keepalived"]
        assert "192.0.2.50/24 dev $(interface_of " + own + ")" in start


def test_the_url_is_the_clients_address_on_the_hospitals_network(graph):
    (balancer,) = [r for r in graph.component_outputs.items() if "LoadBalancerTier" in r[0]]
    outputs = unwrap(balancer[1])
    assert outputs["url"] == "https://192.0.2.50/openmrs/"
    assert outputs["urls"][1:] == ["https://192.0.2.51/openmrs/", "https://192.0.2.52/openmrs/"]


def test_each_host_gets_each_image_it_runs_once_by_its_digest(graph):
    ships = [r for r in graph.of_type(COMMAND) if r.plain("create") == "ship"]
    per_host = Counter(r.name.split("-on-")[1] for r in ships)
    assert set(per_host) == set(HOSTS)
    assert len({r.name for r in ships}) == len(ships)
    for ship in ships:
        environment = ship.plain("environment")
        engine = json.loads(environment["SHIP_ENGINE"])
        host = ship.name.split("-on-")[1]
        assert engine["url"] == HOSTS[host] and ship.plain("triggers") == [environment["SHIP_IMAGE"]]
    # every container on a host waits for its image's copy there
    ship_by_urn = {r.urn: r for r in ships}
    for container in graph.of_type(CONTAINER):
        host = host_of(graph, container)
        waits_for = [ship_by_urn[urn] for urn in container.dependencies if urn in ship_by_urn]
        own = [ship for ship in waits_for if ship.name.split("-on-")[1] == host]
        # The image the container runs is the one shipped, named by its digest (a built image's tag holds it;
        # one pulled by name is known by its id): a tag that moves ships the new image, an unchanged one never.
        image = container.plain("image")
        assert image in [ship.plain("environment")["SHIP_IMAGE"] for ship in own], container.name


def test_nodes_bind_the_shared_files_from_their_own_hosts_client(graph):
    for node in ("app-1", "app-2", "app-3"):
        host = host_of(graph, graph.named(node))
        sources = {mount["source"] for mount in graph.named(node).plain("mounts")}
        assert sources and all(source.startswith(f"/var/lib/openmrs-cluster/openmrs-onprem/{host}/files/")
                               for source in sources), node


def test_every_node_and_the_keeper_find_every_node_across_hosts(graph):
    addresses = sorted(graph.named(f"app-{i}").plain("networksAdvanced")[0]["ipv4Address"] for i in (1, 2, 3))
    for name in ("app-1", "app-2", "app-3", "app-scheduler-keeper"):
        hosts = graph.named(name).plain("hosts")
        assert sorted(entry["ip"] for entry in hosts if entry["host"] == "app-nodes") == addresses, name


def test_rolling_steps_reach_each_balancer_and_node_on_its_own_engine(graph):
    drain = graph.named("app-2-drain")
    environment = drain.plain("environment")
    engines = [json.loads(engine)["url"] for engine in json.loads(environment["ROLLOUT_BALANCER_ENGINES"])]
    assert engines == [HOSTS["server-a"], HOSTS["server-b"]]
    assert json.loads(environment["ROLLOUT_NODE_ENGINE"])["url"] == HOSTS["server-b"]


def test_a_monitor_per_machine_decides_by_majority_and_the_writer_fences_itself(graph):
    monitors = [graph.named(f"db-monitor-{host}") for host in HOSTS]
    addresses = [monitor.plain("networksAdvanced")[0]["ipv4Address"] for monitor in monitors]
    assert len(set(addresses)) == 3
    for index, monitor in enumerate(monitors):
        env = env_of(monitor)
        assert env["MONITOR_INDEX"] == str(index) and env["MONITOR_PORT"] == "8700"
        assert sorted(env["MONITOR_PEERS"].split(",")) == sorted(f"{a}:8700" for a in addresses if a != addresses[index])
        assert env["FENCE_SECONDS"] == "2.0" and env["DB_SERVERS"] == env_of(monitors[0])["DB_SERVERS"]
    for server in ("db-1", "db-2"):
        env = env_of(graph.named(server))
        assert sorted(env["FENCE_MONITORS"].split(",")) == sorted(f"{a}:8700" for a in addresses)
        my_cnf = {u["file"]: u["content"] for u in graph.named(server).plain("uploads")}[
            "/etc/mysql/mariadb.conf.d/90-openmrs-cluster.cnf"]
        # a writer cut off or frozen can acknowledge nothing: no timeout to fall back to asynchronous
        assert "rpl_semi_sync_master_timeout = 18446744073709551615" in my_cnf


def with_fourth_host(nodes: int = 3) -> dict:
    config = dict(stack_config(STACK))
    config["openmrs-cluster:hosts"] = [*config["openmrs-cluster:hosts"], {"name": "server-d", "address": "192.0.2.14"}]
    config["openmrs-cluster:app"] = {**config.get("openmrs-cluster:app", {}), "nodes": nodes}
    return config


def test_a_host_added_to_the_list_changes_no_monitor_database_server_or_storage_server(graph):
    """Three monitors decide, however many hosts: the new machine gets a storage client, the images and a node
    once app.nodes grows, and the quorum's members keep their inputs (nothing of theirs is replaced)."""
    grown = run_program(STACK, with_fourth_host(nodes=4))
    assert not [r for r in grown.of_type(CONTAINER) if r.name == "db-monitor-server-d"]
    for name in ("db-monitor-server-a", "db-monitor-server-b", "db-monitor-server-c", "db-1", "db-2",
                 "files-1", "files-2", "files-3"):
        assert unwrap(grown.named(name).inputs) == unwrap(graph.named(name).inputs), name
    assert placed(grown, "app-4", "files-client-server-d") == ["server-d", "server-d"]


@pytest.mark.parametrize("monitors, words", [(["server-a", "server-b"], "name 3 or 5 hosts"),
                                             (["server-a", "server-b", "server-b"], "on one machine"),
                                             (["server-a", "server-b", "server-c", "server-d"], "name 3 or 5 hosts")])
def test_a_quorum_one_machine_could_break_or_tie_is_refused(monitors, words):
    config = with_fourth_host()
    config["openmrs-cluster:placement"] = {"monitors": monitors}
    with pytest.raises(ConfigError) as raised:
        run_program(STACK, config)
    assert any(p.startswith("openmrs-cluster:placement.monitors: ") and words in p for p in raised.value.problems), \
        raised.value.problems


def test_monitors_follow_an_explicit_placement():
    config = with_fourth_host()
    config["openmrs-cluster:placement"] = {"monitors": ["server-b", "server-c", "server-d"]}
    grown = run_program(STACK, config)
    assert sorted(r.name for r in grown.of_type(CONTAINER) if r.name.startswith("db-monitor-")) == [
        "db-monitor-server-b", "db-monitor-server-c", "db-monitor-server-d"]
    assert env_of(grown.named("db-monitor-server-b"))["MONITOR_INDEX"] == "0"
