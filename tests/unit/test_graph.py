"""The real program, run under mocks against every local stack file: what it would create, and how."""
import ipaddress
import re
from collections import Counter

import pytest

from program import STACKS, is_secret, run_program, stack_config, stacks_on, unwrap, with_overrides

CONTAINER = "docker:index/container:Container"
APACHE_CONFIG = "/etc/apache2/openmrs-balancer.conf"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
COMPONENTS = {
    "openmrs:cluster:Network", "openmrs:cluster:MySQLPair", "openmrs:cluster:SharedStorage",
    "openmrs:cluster:TomcatPool", "openmrs:cluster:LoadBalancerTier", "openmrs:cluster:SearchTier",
    "openmrs:cluster:StaticContentTier", "openmrs:cluster:Backups", "openmrs:cluster:Monitoring",
}


# The stacks on one machine; those across hosts have tests of their own (test_hosts_graph.py).
LOCAL_STACKS = [stack for stack in stacks_on("local") if not stack_config(stack).get("openmrs-cluster:hosts")]


@pytest.fixture(scope="module", params=LOCAL_STACKS)
def stack(request):
    return request.param


@pytest.fixture(scope="module")
def graph(stack):
    return run_program(stack)


def env_of(registration) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in registration.plain("envs"))


def env_entries(registration) -> list[tuple[str, bool]]:
    """Each environment entry with whether Pulumi keeps it secret (the whole list may be one secret)."""
    envs = registration.inputs.get("envs", [])
    if is_secret(envs):
        return [(entry, True) for entry in unwrap(envs)]
    return [(unwrap(entry), is_secret(entry)) for entry in envs]


def database_virtual_address(graph) -> str:
    config = uploaded_file(graph.named("db-1"), KEEPALIVED_CONFIG)
    return re.search(r"virtual_ipaddress \{\s*([\d.]+)/", config)[1]


def balancer_config(graph) -> str:
    return uploaded_file(graph.named("lb-apache"), APACHE_CONFIG)


def uploaded_file(registration, path: str) -> str:
    (content,) = [upload["content"] for upload in registration.plain("uploads") if upload["file"] == path]
    return content


def test_every_stack_file_is_tested():
    assert "local" in LOCAL_STACKS
    hosts_stacks = {stack for stack in stacks_on("local") if stack_config(stack).get("openmrs-cluster:hosts")}
    assert "onprem" in hosts_stacks
    assert set(STACKS) == set(LOCAL_STACKS) | hosts_stacks | set(stacks_on("aws"))


def test_the_cluster_is_the_nine_components_and_their_children(graph, stack):
    nodes = stack_config(stack)["openmrs-cluster:app"]["nodes"]
    counts = Counter(r.type for r in graph.registrations)
    assert {t for t in counts if t.startswith("openmrs:")} == COMPONENTS
    # database pair and monitor, nodes and their scheduler keeper, balancer pair, three storage servers,
    # their client and its host directory, one search server, two static servers of the O3 application, a
    # backup agent beside each database server and one for the shared files, and the monitoring's Prometheus,
    # Alertmanager, blackbox exporter, the machine's node exporter and a mysqld exporter beside each database server
    assert counts[CONTAINER] == 3 + nodes + 1 + 2 + 5 + 1 + 2 + 3 + 4 + 2
    # data and certificate per database server; the monitor's certificate; state, brick and certificate per
    # storage server; the storage client's certificate; the search server's index; each balancer's certificate;
    # each database backup agent's spool, the two backup repositories, Prometheus' and Alertmanager's data, and
    # the machine's metrics files
    assert counts["docker:index/volume:Volume"] == 2 * 2 + 1 + 3 * 3 + 1 + 1 + 2 + 2 + 2 + 2 + 1
    assert counts["docker:index/network:Network"] == 2
    # root, app, replication, monitor, admin, search, the backup agents' account, the backup repositories' key,
    # the monitoring's operator, the mysqld exporters' account
    assert counts["random:index/randomPassword:RandomPassword"] == 10


def test_every_resource_is_a_child_of_a_component(graph):
    components = {r.urn: r for r in graph.registrations if r.type in COMPONENTS}
    for resource in graph.registrations:
        if resource.type in COMPONENTS:
            assert resource.parent.endswith("pulumi:pulumi:Stack::openmrs-cluster-" + resource.urn.split("::")[1]) \
                or "pulumi:pulumi:Stack" in resource.parent
        else:
            assert resource.parent in components, f"{resource.name} is not inside a component"
            assert resource.name.startswith(components[resource.parent].name + "-"), resource.name


def test_each_node_has_a_unique_route_and_the_cluster_contract(graph, stack):
    nodes = sorted((r for r in graph.of_type(CONTAINER) if re.fullmatch(r"app-\d+", r.name)), key=lambda r: r.name)
    assert len(nodes) == stack_config(stack)["openmrs-cluster:app"]["nodes"]
    routes = []
    writer = database_virtual_address(graph)
    for index, node in enumerate(nodes, start=1):
        env = env_of(node)
        (route,) = re.findall(r"-DjvmRoute=(\S+)", env["OMRS_JAVA_SERVER_OPTS"])
        routes.append(route)
        assert env["OMRS_JAVA_SERVER_OPTS"].startswith("-Dfile.encoding=UTF-8 -server")
        # The heap may take 75 % of the node's memory, not the JVM's default quarter; the image's NewSize stays.
        assert env["OMRS_JAVA_MEMORY_OPTS"] == "-XX:NewSize=128m -XX:MaxRAMPercentage=75"
        # After a database failover the pool must not hand out connections to the server that died.
        assert "-Dc3p0.testConnectionOnCheckout=true" in env["OMRS_JAVA_SERVER_OPTS"].split()
        assert env["OMRS_MODULE_WEB_ADMIN"] == "false"
        assert (env["OMRS_DB"], env["OMRS_DB_HOSTNAME"], env["OMRS_DB_PORT"]) == ("mariadb", writer, "3306")
        assert env["OMRS_DB_NAME"] == "openmrs" and env["OMRS_DB_USERNAME"] == "openmrs"
        assert len(env["OMRS_DB_PASSWORD"]) == 32 and len(env["OMRS_ADMIN_USER_PASSWORD"]) == 32
        check = node.plain("healthcheck")
        assert check["tests"][-1].endswith(":8080/openmrs/health/started")
        assert [m["target"] for m in node.plain("mounts")] == [
            f"/openmrs/data/{folder}" for folder in stack_config(stack)["openmrs-cluster:storage"]["shared_folders"]
        ]
        assert node.plain("stopTimeout") == 60
        server_xml, _certificate, _key, _database_authority = node.plain("uploads")
        assert server_xml["file"] == "/usr/local/tomcat/conf/server.xml" and 'jvmRoute="${jvmRoute}"' in server_xml["content"]
    assert len(set(routes)) == len(routes)


def test_a_container_is_replaced_only_once_the_old_one_is_gone(graph):
    # Its name is fixed: made first, the replacement would collide with the old one on the engine (a new
    # authority replaces every container holding it; the backup agents once failed so).
    assert [c.name for c in graph.of_type(CONTAINER) if not c.delete_before_replace] == []


def test_the_nodes_share_one_password_and_it_is_generated_per_cluster(graph):
    passwords = {env_of(node)["OMRS_DB_PASSWORD"] for node in app_nodes(graph)}
    assert len(passwords) == 1
    assert passwords == {env_of(graph.named("db-1"))["MARIADB_PASSWORD"]}
    assert "Admin123" not in str(unwrap([r.inputs for r in graph.registrations]))


def test_balancer_has_one_member_per_node_with_its_route(graph):
    config = balancer_config(graph)
    members = re.findall(r'BalancerMember "https://(node[^:]+):8443" route=(\S+)', config)
    assert all(host == route for host, route in members)  # by the name the node's certificate gives it
    nodes = {r.plain("networksAdvanced")[0]["ipv4Address"]: env_of(r)["OMRS_JAVA_SERVER_OPTS"].rsplit("=", 1)[1]
             for r in app_nodes(graph)}
    # ...which each balancer's /etc/hosts maps to the node's address (and the static servers' names to theirs)
    hosts = {entry["ip"]: entry["host"] for entry in graph.named("lb-apache").plain("hosts")}
    assert {ip: host for ip, host in hosts.items() if host.startswith("node")} == nodes
    assert {route for _, route in members} == set(nodes.values())


def test_balancer_config_follows_the_stack(graph, stack):
    balancer = stack_config(stack)["openmrs-cluster:balancer"]
    config = balancer_config(graph)
    lbmethod = {"round_robin": "byrequests", "by_busyness": "bybusyness"}[balancer["scheduling"]]
    assert f"ProxySet lbmethod={lbmethod}" in config
    assert ("stickysession=JSESSIONID|jsessionid" in config) == balancer["sticky_sessions"]
    heartbeat = balancer["heartbeat"]
    for member in re.findall(r"BalancerMember .* route=node.*", config):
        assert f"hcuri={heartbeat['path']}" in member
        assert f"hcinterval={heartbeat['interval_seconds']} " in member
        assert f"hcfails={heartbeat['fails']} " in member and f"hcpasses={heartbeat['passes']}" in member


@pytest.mark.parametrize(
    "balancer, expected",
    [
        ({"scheduling": "by_busyness", "sticky_sessions": False}, ("bybusyness", False)),
        ({"scheduling": "round_robin", "sticky_sessions": True}, ("byrequests", True)),
    ],
)
def test_scheduling_and_stickiness_reach_apache(balancer, expected):
    graph = run_program("local", with_overrides(stack_config("local"), balancer=balancer))
    config = balancer_config(graph)
    assert f"ProxySet lbmethod={expected[0]}" in config
    assert ("stickysession=" in config) == expected[1]


def test_heartbeat_settings_reach_apache():
    heartbeat = {"path": "/openmrs/health/started", "interval_seconds": 7, "fails": 4, "passes": 3}
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"heartbeat": heartbeat}))
    assert "hcinterval=7 hcfails=4 hcpasses=3" in balancer_config(graph)


def test_each_balancer_times_every_members_heartbeat_out():
    """Apache's checks wait as long as a request may: the uploaded watcher gives each member's heartbeat
    the configured timeout, and marks it failed after `fails` unanswered ones."""
    heartbeat = {"path": "/openmrs/health/started", "interval_seconds": 7, "fails": 4, "passes": 3,
                 "timeout_seconds": 2}
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"heartbeat": heartbeat}))
    members = set(re.findall(r'BalancerMember "(https://\S+)" route=\S+ .* hcuri=(\S+)', balancer_config(graph)))
    assert len(members) == 3 + 2  # the nodes and the static servers, each with its own heartbeat path
    for balancer in ("lb-apache", "lb-apache-2"):
        (upload,) = [u for u in graph.named(balancer).plain("uploads") if u["file"] == "/usr/local/bin/heartbeat-watch"]
        watch = upload["content"]
        watched = re.findall(r"^watch_member (\S+) (\S+) (\S+) (\S+) &$", watch, re.M)
        assert upload["executable"] and {(url, path) for url, path, _, _ in watched} == members
        assert {url: balancer_name for url, _, balancer_name, _ in watched if "//node" in url} == {
            url: "openmrs-nodes" for url, _ in members if "//node" in url}
        assert '--max-time 2 "$1$2"' in watch and '-ge 4 ]' in watch and "w_status_C=1" in watch
        assert '--data-urlencode "b=$2"' in watch and 'mark_failed "$1" "$3"' in watch


def test_balancer_manager_is_for_the_container_itself_only(graph):
    config = balancer_config(graph)
    block = re.search(r'<Location "/balancer-manager">(.*?)</Location>', config, re.S)[1]
    assert "SetHandler balancer-manager" in block and "Require local" in block


def test_only_the_balancers_ports_are_published_and_on_the_configured_address(graph, stack):
    balancer = stack_config(stack)["openmrs-cluster:balancer"]
    published = {r.name: r.plain("ports") for r in graph.of_type(CONTAINER) if r.inputs.get("ports")}
    https_port = balancer.get("https_port", 8443)
    # HTTPS, and plain HTTP that only redirects to it
    assert published == {
        "lb-apache": [{"internal": 443, "external": https_port, "ip": balancer["listen_address"]},
                      {"internal": 80, "external": balancer["port"], "ip": balancer["listen_address"]}],
        "lb-apache-2": [{"internal": 443, "external": https_port + 1, "ip": balancer["listen_address"]},
                        {"internal": 80, "external": balancer["port"] + 1, "ip": balancer["listen_address"]}],
    }


def test_the_balancer_pair_shares_one_configuration_and_a_virtual_address(graph):
    first, second = graph.named("lb-apache"), graph.named("lb-apache-2")
    assert uploaded_file(first, APACHE_CONFIG) == uploaded_file(second, APACHE_CONFIG)
    vrrp = {}
    for balancer in (first, second):
        config = uploaded_file(balancer, KEEPALIVED_CONFIG)
        own = balancer.plain("networksAdvanced")[0]["ipv4Address"]
        vrrp[balancer.name] = {
            "src": re.search(r"unicast_src_ip (\S+)", config)[1],
            "peer": re.search(r"unicast_peer \{\s*(\S+)", config)[1],
            "virtual": re.search(r"virtual_ipaddress \{\s*(\S+)", config)[1],
            "priority": int(re.search(r"priority (\d+)", config)[1]),
            "router": re.search(r"virtual_router_id (\d+)", config)[1],
        }
        assert vrrp[balancer.name]["src"] == own
        assert "nopreempt" in config and "track_script" in config
    assert vrrp["lb-apache"]["peer"] == vrrp["lb-apache-2"]["src"] and vrrp["lb-apache-2"]["peer"] == vrrp["lb-apache"]["src"]
    assert vrrp["lb-apache"]["virtual"] == vrrp["lb-apache-2"]["virtual"]
    assert vrrp["lb-apache"]["router"] == vrrp["lb-apache-2"]["router"]
    assert vrrp["lb-apache"]["priority"] > vrrp["lb-apache-2"]["priority"]
    # Docker never gives the virtual address to a container: it lies outside the network's dynamic range.
    virtual = ipaddress.IPv4Interface(vrrp["lb-apache"]["virtual"])
    (ipam,) = graph.named("net-private").plain("ipamConfigs")
    assert virtual.network == ipaddress.IPv4Network(ipam["subnet"])
    assert virtual.ip not in ipaddress.IPv4Network(ipam["ipRange"])
    used = {net["ipv4Address"] for r in graph.of_type(CONTAINER) for net in r.plain("networksAdvanced", []) if "ipv4Address" in net}
    assert str(virtual.ip) not in used


def test_the_balancers_are_replaced_one_at_a_time_each_stopped_before_its_successor(graph):
    """A new member changes both balancers' configuration: the second waits for the first's successor, and
    each is stopped (handing the address over, finishing its requests) before its fixed name is taken again."""
    first, second = graph.named("lb-apache"), graph.named("lb-apache-2")
    assert first.urn in second.dependencies and second.urn not in first.dependencies
    for balancer in (first, second):
        assert balancer.delete_before_replace and balancer.plain("destroyGraceSeconds") >= 30, balancer.name


def test_a_single_balancer_has_no_keepalived_and_no_network_capabilities():
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"pair": False}))
    assert not [r for r in graph.of_type(CONTAINER) if r.name == "lb-apache-2"]
    single = graph.named("lb-apache")
    assert [u["file"] for u in single.plain("uploads")] == [APACHE_CONFIG, "/usr/local/bin/heartbeat-watch"]
    assert single.plain("capabilities") == {"drops": ["ALL"], "adds": ["SETUID", "SETGID"]}


def test_the_database_is_on_the_internal_network_only(graph):
    private = graph.named("net-private")
    assert private.plain("internal") is True
    for server in ("db-1", "db-2", "db-monitor"):
        registration = graph.named(server)
        assert "ports" not in registration.inputs
        assert [n["name"] for n in registration.plain("networksAdvanced")] == [private.plain("name")]


def test_database_pair_is_two_equal_servers_a_monitor_and_a_virtual_address(graph, stack):
    servers = [graph.named("db-1"), graph.named("db-2")]
    # neither is the writer by configuration; each lets in its own backup agent
    own = [{key: value for key, value in env_of(server).items() if key not in ("MARIADB_BACKUP_HOST", "MARIADB_EXPORTER_HOST")} for server in servers]
    assert own[0] == own[1]
    volumes = {server.plain("volumes")[0]["volumeName"] for server in servers}
    assert len(volumes) == 2  # each server on its own volume
    addresses = [server.plain("networksAdvanced")[0]["ipv4Address"] for server in servers]
    monitor = graph.named("db-monitor")
    settings = env_of(monitor)
    assert settings["DB_SERVERS"] == ",".join(addresses)
    assert settings["DB_VIRTUAL_ADDRESS"] == database_virtual_address(graph) not in addresses
    failover = stack_config(stack)["openmrs-cluster:database"]["failover"]
    assert (settings["CHECK_INTERVAL_SECONDS"], settings["FAILS"]) == (str(failover["interval_seconds"]), str(failover["fails"]))
    assert settings["MONITOR_PASSWORD"] == env_of(servers[0])["MARIADB_MONITOR_PASSWORD"]
    assert {s.urn for s in servers} <= monitor.dependencies and monitor.plain("wait") is True
    for index, server in enumerate(servers):
        vrrp = uploaded_file(server, KEEPALIVED_CONFIG)
        # The virtual address follows read_only off (which only the monitor sets), as the server's role
        # watcher writes it, and moves within a second: VRRP version 3 with adverts of 0.2 s.
        assert 'file "/run/mysqld/read_only"' in vrrp and re.search(r"track_file \{\s*is_writer\s", vrrp)
        # A writer no replica follows (one just promoted) outranks a stale one back from a freeze.
        assert re.search(r'vrrp_track_file is_writer_bonus \{\s*file "/run/mysqld/lone_writer"\s*weight 50\s', vrrp)
        assert re.search(r"track_file \{\s*is_writer\s+is_writer_bonus\s*\}", vrrp)
        assert "version 3" in vrrp and "advert_int 0.2" in vrrp
        assert f"unicast_src_ip {addresses[index]}" in vrrp and re.search(rf"unicast_peer \{{\s*{addresses[1 - index]}\s", vrrp)


def test_passwords_are_secret_wherever_they_appear(graph):
    checked = 0
    for registration in graph.of_type(CONTAINER):
        for entry, secret in env_entries(registration):
            if "PASSWORD=" in entry:
                assert secret, f"{registration.name}: {entry.split('=')[0]} is not a secret"
                checked += 1
    assert checked >= 4


def test_given_passwords_are_used_and_stay_secret():
    config = stack_config("local")
    config["openmrs-cluster:database_password"] = "a-given-password-of-some-length"
    graph = run_program("local", config)
    entries = [(e, secret) for e, secret in env_entries(graph.named("app-1")) if e.startswith("OMRS_DB_PASSWORD=")]
    assert entries == [("OMRS_DB_PASSWORD=a-given-password-of-some-length", True)]
    assert "db-password" not in {r.name for r in graph.registrations}  # not generated when given


# Each container's added capabilities, and why; every other container drops them all.
ADDED_CAPABILITIES = {
    # setpriv starts Apache or MariaDB as its user; keepalived moves the virtual address with VRRP packets.
    **{name: ["SETUID", "SETGID", "NET_ADMIN", "NET_RAW"] for name in ("lb-apache", "lb-apache-2", "db-1", "db-2")},
    # glusterd marks bricks with trusted.* attributes and works on every owner's files as root.
    **{name: ["SYS_ADMIN", "CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"] for name in ("files-1", "files-2", "files-3")},
    "files-client": ["SYS_ADMIN", "CHOWN"],  # the FUSE mount, and the shared folders handed to uid 1001
}


def test_containers_drop_every_capability_and_none_is_privileged(graph):
    for registration in graph.of_type(CONTAINER):
        assert not registration.plain("privileged")
        expected = {"drops": ["ALL"], "adds": ADDED_CAPABILITIES[registration.name]} \
            if registration.name in ADDED_CAPABILITIES else {"drops": ["ALL"]}
        assert registration.plain("capabilities") == expected, registration.name


def test_shared_files_are_a_replicated_volume_mounted_once_and_bound_into_every_node(graph):
    servers = [graph.named(f"files-{index}") for index in (1, 2, 3)]
    addresses = [server.plain("networksAdvanced")[0]["ipv4Address"] for server in servers]
    bootstrap = env_of(servers[0])
    assert bootstrap["VOLUME_BRICKS"].split() == [f"{address}:/bricks/openmrs" for address in addresses]
    assert bootstrap["PEERS"].split() == addresses[1:]
    client = graph.named("files-client")
    (parent,) = [mount for mount in client.plain("mounts") if mount["type"] == "bind"]
    assert (parent["type"], parent["target"], parent["bindOptions"]) == ("bind", "/mnt/cluster", {"propagation": "rshared"})
    assert client.plain("devices") == [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse"}]
    assert env_of(client)["SERVERS"].split() == addresses  # any server hands out the volume
    assert {s.urn for s in servers} <= client.dependencies
    for node in (r for r in graph.of_type(CONTAINER) if re.fullmatch(r"app-\d+", r.name)):
        for mount in node.plain("mounts"):
            folder = mount["target"].rsplit("/", 1)[1]
            assert mount == {"type": "bind", "source": f"{parent['source']}/files/{folder}",
                             "target": f"/openmrs/data/{folder}", "bindOptions": {"propagation": "rslave"}}


def test_unreplicated_storage_is_a_volume_per_folder_handed_to_the_openmrs_user():
    graph = run_program("local", with_overrides(stack_config("local"), storage={"replicated": False}))
    assert not [r for r in graph.registrations if r.name.startswith("files-") and r.name[6:].isdigit()]
    ownership = graph.named("files-ownership")
    assert ownership.plain("networkMode") == "none" and ownership.plain("command")[:2] == ["chown", "1001:0"]
    assert ownership.plain("capabilities") is None  # chown needs CAP_CHOWN, once, with no network
    for mount in graph.named("app-1").plain("mounts"):
        assert mount["type"] == "volume" and "bindOptions" not in mount


def test_images_are_built_from_the_repository_or_pulled_by_name(graph, stack):
    built = {r.name: r.plain("build")["context"] for r in graph.of_type("docker:index/image:Image")}
    assert built == {"db-image": "images/mariadb", "db-monitor-image": "images/db-monitor", "lb-image": "images/httpd",
                     "files-image": "images/glusterfs", "app-keeper-image": "images/scheduler-keeper",
                     "o3-image": "images/o3-frontend", "monitoring-image": "images/monitoring"}
    pulled = {r.name: r.plain("name") for r in graph.of_type("docker:index/remoteImage:RemoteImage")}
    assert pulled["app-image"] == stack_config(stack)["openmrs-cluster:app"]["image"]
    assert pulled["search-image"] == "openmrs/openmrs-contrib-elasticsearch:8.15.3"  # bundles analysis-phonetic


def test_app_build_replaces_the_pulled_image():
    graph = run_program("local", with_overrides(stack_config("local"), app={"build": "tests/standin"}))
    (image,) = [r for r in graph.of_type("docker:index/image:Image") if r.name == "app-image"]
    assert image.plain("build") == {"context": "tests/standin"}
    assert graph.named("app-1").plain("image") == image.plain("imageName")


def test_nodes_wait_for_the_database_and_the_shared_folders(graph):
    node = graph.named("app-1")
    assert graph.named("db-monitor").urn in node.dependencies  # healthy once a writer is at the address
    assert graph.named("files-client").urn in node.dependencies


def app_nodes(graph) -> list:
    return sorted((r for r in graph.of_type(CONTAINER) if re.fullmatch(r"app-\d+", r.name)), key=lambda r: r.name)


def discovery_answers(container) -> list[str]:
    return sorted(entry["ip"] for entry in container.plain("hosts", []) if entry["host"] == "app-nodes")


def test_caches_are_clustered_and_every_node_finds_every_node_by_the_discovery_name(graph):
    """Core 2.8's Infinispan caches invalidate across nodes, found by JGroups' DNS_PING, which resolves the
    name with InetAddress.getAllByName: /etc/hosts answers first, and lists every node under it."""
    addresses = sorted(node.plain("networksAdvanced")[0]["ipv4Address"] for node in app_nodes(graph))
    for node in app_nodes(graph):
        options = env_of(node)["OMRS_JAVA_SERVER_OPTS"].split()
        # both channels (Hibernate's and the API cache's) discover by DNS_PING, neither by multicast
        assert {"-Dcache.type=cluster", "-Dcache.stack=kubernetes", "-Djgroups.dns.query=app-nodes",
                "-Dhibernate.cache.infinispan.jgroups_cfg=default-configs/default-jgroups-kubernetes.xml"} <= set(options)
        (private,) = node.plain("networksAdvanced")
        assert private["name"] == graph.named("net-private").plain("name")
        assert discovery_answers(node) == addresses


def test_one_search_server_secured_on_its_own_volume_and_never_published(graph):
    server = graph.named("search-1")
    settings = env_of(server)
    assert settings["xpack.security.enabled"] == "true" and settings["discovery.type"] == "single-node"
    assert server.plain("ports") is None
    (private,) = server.plain("networksAdvanced")
    assert private["name"] == graph.named("net-private").plain("name")
    (data,) = server.plain("volumes")
    assert data["containerPath"] == "/usr/share/elasticsearch/data"
    assert data["volumeName"] == graph.named("search-1-data").plain("name")
    assert server.plain("memory") == 2048 and "-Xmx1024m" in settings["ES_JAVA_OPTS"]
    assert settings["ELASTIC_PASSWORD"] not in server.plain("healthcheck")["tests"][-1]  # read from the environment


def test_every_node_searches_the_shared_index_with_the_generated_password(graph):
    server = graph.named("search-1")
    address = server.plain("networksAdvanced")[0]["ipv4Address"]
    password = env_of(server)["ELASTIC_PASSWORD"]
    assert len(password) == 32
    for node in app_nodes(graph):
        env = env_of(node)
        assert env["OMRS_SEARCH"] == "elasticsearch" and env["OMRS_SEARCH_ES_URIS"] == f"https://{address}:9200"
        assert env["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_USERNAME"] == "elastic"
        assert env["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD"] == password
        assert server.urn in node.dependencies  # nodes start once the search server answers
    secret_entries = {entry.split("=")[0] for entry, secret in env_entries(app_nodes(graph)[0]) if secret}
    assert "OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD" in secret_entries
    assert "ELASTIC_PASSWORD" in {entry.split("=")[0] for entry, secret in env_entries(server) if secret}


def test_three_search_servers_form_one_cluster_over_tls_between_them_and_with_the_nodes():
    graph = run_program("local", with_overrides(stack_config("local"), search={"servers": 3}))
    servers = [graph.named(f"search-{index}") for index in (1, 2, 3)]
    addresses = [server.plain("networksAdvanced")[0]["ipv4Address"] for server in servers]
    authority = graph.named("net-authority").outputs["certPem"]  # the stack's one authority
    for index, server in enumerate(servers):
        settings = env_of(server)
        assert "discovery.type" not in settings
        assert settings["discovery.seed_hosts"].split(",") == addresses
        assert settings["cluster.initial_master_nodes"].split(",") == ["search-1", "search-2", "search-3"]
        assert settings["xpack.security.transport.ssl.enabled"] == "true"
        assert settings["xpack.security.transport.ssl.verification_mode"] == "full"
        certs = "/usr/share/elasticsearch/config/certs"
        for layer in ("transport", "http"):  # between the servers, and from the nodes
            assert settings[f"xpack.security.{layer}.ssl.enabled"] == "true"
            assert settings[f"xpack.security.{layer}.ssl.certificate"] == f"{certs}/server.crt"
            assert settings[f"xpack.security.{layer}.ssl.certificate_authorities"] == f"{certs}/ca.crt"
        assert f"https://{addresses[index]}:9200/" in server.plain("healthcheck")["tests"][-1]
        files = {upload["file"]: upload["content"] for upload in server.plain("uploads")}
        assert files[f"{certs}/ca.crt"] == authority
        assert files[f"{certs}/server.crt"] == graph.named(f"search-{index + 1}-cert").outputs["certPem"]
        assert files[f"{certs}/server.key"] == graph.named(f"search-{index + 1}-key").outputs["privateKeyPem"]
        request = graph.named(f"search-{index + 1}-csr")
        assert request.plain("dnsNames") == [f"search-{index + 1}"] and request.plain("ipAddresses") == [addresses[index]]
        uploads = server.inputs["uploads"]  # the private key keeps them secret, whole or the key's entry
        assert is_secret(uploads) or any(is_secret(u) or is_secret(u.get("content")) for u in uploads
                                         if unwrap(u)["file"].endswith("server.key"))
    uris = env_of(graph.named("app-1"))["OMRS_SEARCH_ES_URIS"].split(",")
    assert uris == [f"https://{address}:9200" for address in addresses]


def test_an_existing_search_cluster_is_used_as_given_and_no_server_is_made():
    config = with_overrides(stack_config("local"), search={"uris": ["https://search.example.org:9200"], "username": "openmrs"})
    config["openmrs-cluster:search_password"] = "a-given-search-password"
    graph = run_program("local", config)
    assert not [r for r in graph.registrations if r.name.startswith("search-")]
    env = env_of(graph.named("app-1"))
    assert env["OMRS_SEARCH_ES_URIS"] == "https://search.example.org:9200"
    assert env["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_USERNAME"] == "openmrs"
    assert ("OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD=a-given-search-password", True) in env_entries(graph.named("app-1"))


def test_a_scheduler_keeper_asks_the_nodes_by_the_discovery_name_once_they_are_all_in(graph):
    keeper = graph.named("app-scheduler-keeper")
    env = env_of(keeper)
    assert (env["DISCOVERY_NAME"], env["NODE_PORT"], env["CONTEXT_PATH"]) == ("app-nodes", "8443", "/openmrs")
    assert (env["POLL_SECONDS"], env["GRACE_SECONDS"]) == ("10", "60")
    assert env["OPENMRS_USER"] == "admin" and env["OPENMRS_PASSWORD"] == env_of(graph.named("app-1"))["OMRS_ADMIN_USER_PASSWORD"]
    assert ("OPENMRS_PASSWORD=" + env["OPENMRS_PASSWORD"], True) in env_entries(keeper)
    (private,) = keeper.plain("networksAdvanced")
    assert private["name"] == graph.named("net-private").plain("name")
    assert discovery_answers(keeper) == discovery_answers(graph.named("app-1")) != []
    last_admit = max((r for r in graph.registrations if re.fullmatch(r"app-\d+-admit", r.name)), key=lambda r: r.name)
    assert last_admit.urn in keeper.dependencies and keeper.plain("ports") is None
    assert keeper.delete_before_replace  # its fixed name is free again before a new node list replaces it


def test_the_balancer_never_reuses_a_connection_that_tomcat_may_have_closed(graph):
    """A pooled connection idle longer than Tomcat's keep-alive would be closed under the next request (a 502),
    as after a balancer that hung resumes; the members' ttl retires them first."""
    config = balancer_config(graph)
    ttls = {int(ttl) for ttl in re.findall(r"BalancerMember .* route=node\d+ .* ttl=(\d+) ", config)}
    server_xml = uploaded_file(graph.named("app-1"), "/usr/local/tomcat/conf/server.xml")
    keep_alive_ms = int(re.search(r'connectionTimeout="(\d+)"', server_xml)[1])
    assert len(re.findall(r"BalancerMember .* route=node\d+ .* ttl=", config)) == len(app_nodes(graph))
    (ttl,) = ttls
    assert 0 < ttl * 1000 < keep_alive_ms


def test_no_engine_health_check_runs_more_often_than_every_two_seconds():
    """Each engine check is a process started in its container; at the tests' 1 s heartbeat they took a third of
    a 2-core machine at rest. The nodes and static servers follow the heartbeat's interval when it is slower."""
    def intervals(heartbeat_interval: int) -> dict[str, int]:
        heartbeat = {"path": "/openmrs/health/started", "interval_seconds": heartbeat_interval, "fails": 2,
                     "passes": 2, "timeout_seconds": 1}
        graph = run_program("local", with_overrides(stack_config("local"), balancer={"heartbeat": heartbeat}))
        return {container.name: int(container.plain("healthcheck")["interval"].removesuffix("s"))
                for container in graph.of_type(CONTAINER) if container.plain("healthcheck")}

    fast, slow = intervals(1), intervals(7)
    assert fast and min(fast.values()) >= 2, fast
    assert {name: slow[name] for name in slow if re.fullmatch(r"app-\d+|o3-static-\d+", name)} == {
        **{f"app-{n}": 7 for n in (1, 2, 3)}, "o3-static-1": 7, "o3-static-2": 7}
