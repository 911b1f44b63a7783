"""Each configuration file a server reads, rendered from the real program's graph and checked by the
server's own tool: Apache's `apache2 -t`, `haproxy -c`, `keepalived -t`, MariaDB's option parser, `drbdadm dump`,
and an XML parser for Tomcat."""
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

from program import is_secret, run_program, stack_config, unwrap, with_overrides


APACHE_CONFIG = "/etc/apache2/openmrs-balancer.conf"
HAPROXY_CONFIG = "/etc/haproxy/openmrs-balancer.cfg"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
MARIADB_CONFIG = "/etc/mysql/mariadb.conf.d/90-openmrs-cluster.cnf"


def uploaded(graph, container: str) -> dict[str, str]:
    return {upload["file"]: upload["content"] for upload in unwrap(graph.named(container).inputs["uploads"])}


def environment_of(graph, container: str) -> dict[str, str]:
    """The server's own environment, as the container gives it (its metrics address), over this machine's."""
    return {**os.environ, **dict(entry.split("=", 1) for entry in unwrap(graph.named(container).inputs.get("envs") or []))}


def with_site_certificate(graph, content: str, directory) -> str:
    """The balancer's configuration reading the certificate and key the program made (as the step installs
    them in the balancer's volume) from `directory`: `apache2 -t` loads them."""
    environment = unwrap(graph.named("lb-site-certificate").inputs["environment"])
    for name, key in (("certificate.pem", "TLS_CERTIFICATE"), ("private-key.pem", "TLS_PRIVATE_KEY"),
                      ("authority.pem", "TLS_AUTHORITY")):
        (directory / name).write_text(environment[key])
    return content.replace("/etc/apache2/tls/", f"{directory}/")


@pytest.fixture(scope="module")
def graph():
    return run_program("local")


@pytest.fixture(scope="module")
def apache_runtime_dir():
    # Debian's apache2 package creates this at boot (tmpfiles.d); the rendered file names it.
    os.makedirs("/run/apache2", exist_ok=True)


@pytest.mark.parametrize("scheduling", ["round_robin", "by_busyness"])
@pytest.mark.parametrize("sticky", [True, False])
def test_apache_accepts_the_balancer_config(tmp_path, apache_runtime_dir, scheduling, sticky):
    config = with_overrides(stack_config("local"), balancer={"scheduling": scheduling, "sticky_sessions": sticky})
    graph = run_program("local", config)
    content = with_site_certificate(graph, uploaded(graph, "lb-apache")[APACHE_CONFIG], tmp_path)
    path = tmp_path / "balancer.conf"
    path.write_text(content)
    check = subprocess.run([shutil.which("apache2") or "/usr/sbin/apache2", "-t", "-f", str(path)],
                           capture_output=True, text=True, env=environment_of(graph, "lb-apache"))
    assert check.returncode == 0, check.stderr
    assert "Syntax OK" in check.stderr


def test_apache_rejects_a_broken_balancer_config(tmp_path, graph, apache_runtime_dir):
    """The check above can fail: the same file with a misspelt directive is refused."""
    content = uploaded(graph, "lb-apache")[APACHE_CONFIG]
    path = tmp_path / "balancer.conf"
    path.write_text(content.replace("ProxySet", "ProxySett"))
    assert subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(path)], capture_output=True,
                          env=environment_of(graph, "lb-apache")).returncode != 0


def haproxy_check(graph, directory, change=lambda content: content) -> subprocess.CompletedProcess:
    """`haproxy -c` on the balancer's configuration, reading the files the program made from `directory` (the
    site's certificate and key as the one file the image assembles) and its sockets made there."""
    content = uploaded(graph, "lb-haproxy")[HAPROXY_CONFIG]
    with_site_certificate(graph, "", directory)
    (directory / "site.pem").write_text((directory / "certificate.pem").read_text() + (directory / "private-key.pem").read_text())
    content = content.replace("/etc/haproxy/tls/", f"{directory}/").replace("/run/haproxy/", f"{directory}/")
    path = directory / "haproxy.cfg"
    path.write_text(change(content))
    return subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-c", "-f", str(path)],
                          capture_output=True, text=True, env=environment_of(graph, "lb-haproxy"))


@pytest.mark.parametrize("scheduling", ["round_robin", "by_busyness"])
@pytest.mark.parametrize("sticky", [True, False])
@pytest.mark.parametrize("frontend", [True, False])
def test_haproxy_accepts_the_balancer_config(tmp_path, scheduling, sticky, frontend):
    config = with_overrides(stack_config("local"), frontend={"enabled": frontend},
                            balancer={"engine": "haproxy", "scheduling": scheduling, "sticky_sessions": sticky})
    check = haproxy_check(run_program("local", config), tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout


def test_haproxy_rejects_a_broken_balancer_config(tmp_path):
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"engine": "haproxy"}))
    check = haproxy_check(graph, tmp_path, lambda content: content.replace("http-check expect", "http-check expekt"))
    assert check.returncode != 0


def mariadb_accepts(path) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/sbin/mariadbd", f"--defaults-file={path}", "--help", "--verbose"],
                          capture_output=True, text=True)


@pytest.mark.parametrize("server", ["db-1", "db-2"])
def test_mariadb_accepts_each_servers_config(tmp_path, graph, server):
    content = uploaded(graph, server)[MARIADB_CONFIG]
    path = tmp_path / "my.cnf"
    path.write_text(content)
    check = mariadb_accepts(path)
    assert check.returncode == 0, check.stderr
    # After its options, --help --verbose lists every variable with the value the server would run with.
    table = check.stdout.split("Variables (--variable-name=value)", 1)[1]
    variables = dict(re.findall(r"^(\S+) +(\S+)$", table, re.M))
    assert variables["server-id"] == server.removeprefix("db-")
    assert variables["gtid-strict-mode"] == "TRUE" and variables["log-slave-updates"] == "TRUE"
    # Fenced at every start: read-only and not replicating until the monitor decides.
    assert variables["read-only"] == "TRUE" and variables["skip-slave-start"] == "TRUE"
    assert variables["init-rpl-role"] == "SLAVE"  # crash recovery cuts what no replica acknowledged
    assert variables["rpl-semi-sync-master-enabled"] == variables["rpl-semi-sync-slave-enabled"] == "TRUE"
    assert variables["rpl-semi-sync-master-wait-point"] == "AFTER_SYNC"
    assert variables["rpl-semi-sync-master-timeout"] == "2000"
    assert variables["character-set-server"] == "utf8mb4"
    # Nothing but TLS over the network, with the certificate in the server's own certificate volume.
    assert variables["require-secure-transport"] == "TRUE" and variables["tls-version"] == "TLSv1.2,TLSv1.3"
    assert (variables["ssl-cert"], variables["ssl-key"], variables["ssl-ca"]) == (
        "/etc/mysql/tls/certificate.pem", "/etc/mysql/tls/private-key.pem", "/etc/mysql/tls/authority.pem")


def test_mariadb_accepts_the_config_with_a_quorum_of_monitors_and_waits_for_its_replica_forever(tmp_path):
    """Across hosts: semi-sync starts off and has no timeout; the monitors' leader turns it on on the writer."""
    path = tmp_path / "my.cnf"
    path.write_text(uploaded(run_program("onprem"), "db-1")[MARIADB_CONFIG])
    check = mariadb_accepts(path)
    assert check.returncode == 0, check.stderr
    variables = dict(re.findall(r"^(\S+) +(\S+)$", check.stdout.split("Variables (--variable-name=value)", 1)[1], re.M))
    assert variables["rpl-semi-sync-master-enabled"] == "FALSE" and variables["rpl-semi-sync-slave-enabled"] == "TRUE"
    assert variables["rpl-semi-sync-master-timeout"] == "18446744073709551615"
    assert variables["rpl-semi-sync-master-wait-no-slave"] == "TRUE"


def test_mariadb_rejects_an_unknown_option(tmp_path, graph):
    content = uploaded(graph, "db-1")[MARIADB_CONFIG]
    path = tmp_path / "my.cnf"
    path.write_text(content + "gtid_strictest_mode = ON\n")
    check = mariadb_accepts(path)
    assert check.returncode != 0 and "unknown variable" in check.stderr


def test_tomcat_engine_takes_its_route_from_the_jvm(graph):
    content = uploaded(graph, "app-1")["/usr/local/tomcat/conf/server.xml"]
    server = ElementTree.fromstring(content.encode())
    engine = server.find("./Service/Engine")
    assert engine.get("jvmRoute") == "${jvmRoute}"
    connector = server.find("./Service/Connector")
    assert (connector.get("port"), connector.get("URIEncoding")) == ("8080", "UTF-8")
    assert server.get("port") == "-1"  # no shutdown port


DRBD_HOSTS = [{"name": "files-a", "address": "10.0.0.11", "disk": "/dev/vg0/openmrs-files"},
              {"name": "files-b", "address": "10.0.0.12", "disk": "/dev/vg1/openmrs-files"}]


@pytest.fixture(scope="module")
def drbd_resource() -> str:
    graph = run_program("local", with_overrides(stack_config("local"),
                                                storage={"drbd": {"hosts": DRBD_HOSTS, "direct_link": True}}))
    outputs = graph.component_outputs[graph.named("files").urn]
    assert is_secret(outputs["drbd_resource"])  # it holds the peers' shared secret
    return unwrap(outputs["drbd_resource"])


def drbdadm_dump(path, host: str) -> subprocess.CompletedProcess:
    """drbdadm as if on `host`, without a DRBD kernel module (its documented overrides for this)."""
    environment = {**os.environ, "__DRBD_NODE__": host, "DRBD_DRIVER_VERSION_OVERRIDE": "9.2.0"}
    return subprocess.run(["/usr/sbin/drbdadm", "-c", str(path), "dump", "openmrs_files"],
                          capture_output=True, text=True, env=environment)


@pytest.mark.parametrize("host", DRBD_HOSTS, ids=lambda host: host["name"])
def test_drbdadm_accepts_the_resource_on_each_host(tmp_path, drbd_resource, host):
    path = tmp_path / "openmrs_files.res"
    path.write_text(drbd_resource)
    check = drbdadm_dump(path, host["name"])
    assert check.returncode == 0, check.stderr
    parsed = re.sub(r"\s+", " ", check.stdout)
    for each in DRBD_HOSTS:
        assert f"on {each['name']} {{" in parsed and f"disk {each['disk']};" in parsed
        assert f"address ipv4 {each['address']}:7789;" in parsed
    assert "protocol C;" in parsed and re.search(r"shared-secret [A-Za-z0-9]{32};", parsed)


def test_drbdadm_rejects_a_broken_resource(tmp_path, drbd_resource):
    path = tmp_path / "openmrs_files.res"
    path.write_text(drbd_resource.replace("protocol C;", "protocol D;"))
    assert drbdadm_dump(path, "files-a").returncode != 0


@pytest.fixture(scope="module")
def keepalived_interface_file():
    # The balancer image's entrypoint writes this at start, naming the interface of the private address.
    os.makedirs("/run/keepalived", exist_ok=True)
    with open("/run/keepalived/interface.conf", "w") as interface:
        interface.write("interface eth0\n")


def keepalived_complaints(path) -> str:
    """What `keepalived -t` reports about a file. It reports problems on stderr (its exit status, a
    SIGTERM it sends itself, says nothing either way)."""
    check = subprocess.run(["/usr/sbin/keepalived", "-t", "-f", str(path)], capture_output=True, text=True,
                           start_new_session=True)
    return check.stderr


@pytest.mark.parametrize("member", ["lb-apache", "lb-apache-2", "db-1", "db-2"])
def test_keepalived_accepts_each_pair_members_config(tmp_path, graph, keepalived_interface_file, member):
    path = tmp_path / "keepalived.conf"
    path.write_text(uploaded(graph, member)[KEEPALIVED_CONFIG])
    assert keepalived_complaints(path) == ""


@pytest.mark.parametrize("member", ["lb-apache", "db-1"])
def test_the_keepalived_start_script_is_valid_shell(tmp_path, graph, member):
    path = tmp_path / "start-keepalived"
    path.write_text(uploaded(graph, member)["/usr/local/bin/start-keepalived"])
    check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("stack", ["local", "onprem"])
def test_the_heartbeat_watcher_is_valid_shell(tmp_path, stack):
    path = tmp_path / "heartbeat-watch"
    path.write_text(uploaded(run_program(stack), "lb-apache")["/usr/local/bin/heartbeat-watch"])
    check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_keepalived_rejects_a_broken_config(tmp_path, graph, keepalived_interface_file):
    path = tmp_path / "keepalived.conf"
    path.write_text(uploaded(graph, "lb-apache")[KEEPALIVED_CONFIG].replace("nopreempt", "nopreemptt"))
    assert "Unknown keyword 'nopreemptt'" in keepalived_complaints(path)


@pytest.mark.parametrize("member", ["lb-apache", "lb-apache-2"])
def test_keepalived_accepts_the_balancers_config_across_hosts_with_the_clients_address(tmp_path, member):
    """On several hosts the pair also moves the clients' address, on the interface the start script finds."""
    uploads = uploaded(run_program("onprem"), member)
    os.makedirs("/run/keepalived", exist_ok=True)
    with open("/run/keepalived/interface.conf", "w") as interface:
        interface.write("interface eth0\n")  # an interface this machine has
    with open("/run/keepalived/front-address.conf", "w") as front:
        front.write("192.0.2.50/24 dev eth0\n")  # as the start script writes it
    path = tmp_path / "keepalived.conf"
    path.write_text(uploads[KEEPALIVED_CONFIG])
    assert keepalived_complaints(path) == ""
    start = tmp_path / "start-keepalived"
    start.write_text(uploads["/usr/local/bin/start-keepalived"])
    assert subprocess.run(["sh", "-n", str(start)], capture_output=True, text=True).returncode == 0
