"""The local monitoring as the program registers it: its configuration files checked by Prometheus' own tools
(`promtool check config`, `promtool check rules`, `amtool check-config`, the blackbox exporter's
`--config.check`), every alert rule run by `promtool test rules` on the series the exporters and the database
monitor really give, and where its programs can be reached from."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from program import is_secret, run_program, stack_config, unwrap, with_overrides

DIRECTORY = "/etc/openmrs-monitoring"


def uploaded(graph, container: str) -> dict[str, str]:
    return {upload["file"]: upload["content"] for upload in unwrap(graph.named(container).inputs["uploads"])}


def written(graph, container: str, directory: Path) -> dict[str, Path]:
    """The container's uploaded files under `directory`, each file naming the others there."""
    files = {}
    for path, content in uploaded(graph, container).items():
        local = directory / Path(path).relative_to("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content.replace(DIRECTORY, str(directory / DIRECTORY.lstrip("/"))))
        files[Path(path).name] = local
    return files


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    assert found, f"{name} is missing: .ci/run installs Debian's prometheus, prometheus-alertmanager and " \
                  "prometheus-blackbox-exporter"
    return found


@pytest.fixture(scope="module")
def graph():
    return run_program("local")


@pytest.fixture(scope="module")
def hosts_graph():
    return run_program("onprem")


def test_prometheus_accepts_its_configuration_and_rules(graph, tmp_path):
    files = written(graph, "monitoring-prometheus-1", tmp_path)
    check = subprocess.run([tool("promtool"), "check", "config", str(files["prometheus.yml"])],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 1 rule files found" in check.stdout
    check = subprocess.run([tool("promtool"), "check", "rules", str(files["alert-rules.yml"])],
                           capture_output=True, text=True)
    # 12 alerts, and the 3 figures the dashboard reads.
    assert check.returncode == 0 and "SUCCESS: 15 rules found" in check.stdout, check.stdout + check.stderr


def test_a_tier_turned_off_has_no_rules_to_fire_on_its_last_figures():
    """A tier's writers leave their files in the machine's metrics volume: with backups off and one storage
    server, no rule reads them."""
    graph = run_program("local", with_overrides(stack_config("local"), backup={"enabled": False},
                                                storage={"replicated": False}))
    rules = uploaded(graph, "monitoring-prometheus-1")[f"{DIRECTORY}/alert-rules.yml"]
    alerts = {rule.get("alert") for group in yaml.safe_load(rules)["groups"] for rule in group["rules"]}
    assert not alerts & {"BackupOverdue", "BackupFailed", "StorageNotHealing"}
    assert "RedundancyLost" in alerts and "openmrs_storage" not in rules


def test_promtool_refuses_a_broken_rule(graph, tmp_path):
    """The check above can fail: the same rules with an expression cut short are refused."""
    files = written(graph, "monitoring-prometheus-1", tmp_path)
    rules = files["alert-rules.yml"]
    rules.write_text(rules.read_text().replace("probe_success{tier=\"app\"} == 0", "probe_success{tier=\"app\"} ==", 1))
    check = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode != 0


def test_alertmanager_and_the_blackbox_exporter_accept_theirs(tmp_path):
    config = with_overrides(stack_config("local"), monitoring={
        "alert_webhooks": ["https://chat.clinic.example/hooks/openmrs"], "alert_emails": ["ops@clinic.example"],
        "smtp": {"smarthost": "mail.clinic.example:587", "sender": "openmrs@clinic.example", "username": "openmrs"}})
    graph = run_program("local", config)
    files = written(graph, "monitoring-alertmanager-1", tmp_path)
    check = subprocess.run([tool("amtool"), "check-config", str(files["alertmanager.yml"])], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    receiver = yaml.safe_load(files["alertmanager.yml"].read_text())["receivers"][0]
    assert [hook["url"] for hook in receiver["webhook_configs"]] == ["https://chat.clinic.example/hooks/openmrs"]
    assert [mail["to"] for mail in receiver["email_configs"]] == ["ops@clinic.example"]
    assert all(hook["send_resolved"] for hook in receiver["webhook_configs"] + receiver["email_configs"])
    blackbox = written(graph, "monitoring-blackbox-1", tmp_path)["blackbox.yml"]
    check = subprocess.run([tool("prometheus-blackbox-exporter"), f"--config.file={blackbox}", "--config.check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# What the exporters and the database monitor give (labels as Prometheus' relabelling sets them).
NODE = 'probe_success{job="app",tier="app",member="node2",instance="node2"}'
BALANCER = 'probe_success{job="balancers",tier="balancers",member="balancer2",instance="balancer2"}'
DB_UP = 'openmrs_database_server_up{job="database",tier="database",member="db-1",server="10.213.89.10",instance="m"}'
DB_UP_2 = 'openmrs_database_server_up{job="database",tier="database",member="db-2",server="10.213.89.11",instance="m"}'
WRITER = 'openmrs_database_writer{job="database",tier="database",member="db-2",server="10.213.89.11",instance="m"}'
REPLICATING = 'openmrs_database_replicating{job="database",tier="database",member="db-2",server="10.213.89.11",instance="m"}'
NEW_WRITER = 'openmrs_database_writer{job="database",tier="database",member="db-1",server="10.213.89.10",instance="m"}'
CHANGES = 'openmrs_database_writer_changes_total{job="database",tier="database",member="monitor1",instance="m"}'
WAITS = 'openmrs_database_waits_for_replica{job="database",tier="database",member="db-1",server="10.213.89.10",instance="m"}'
THREADS = 'mysql_global_status_threads_connected{job="database_servers",tier="database",member="db-1",instance="x"}'
MAX_CONNECTIONS = 'mysql_global_variables_max_connections{job="database_servers",tier="database",member="db-1",instance="x"}'
AVAILABLE = 'node_filesystem_avail_bytes{job="machines",tier="machines",member="local",mountpoint="/srv",fstype="ext4",device="d",instance="local"}'
SIZE = 'node_filesystem_size_bytes{job="machines",tier="machines",member="local",mountpoint="/srv",fstype="ext4",device="d",instance="local"}'
EXPIRY = 'probe_ssl_earliest_cert_expiry{job="app",tier="app",member="node1",instance="node1"}'
# What the storage servers and the backup agents write for the node exporter (images/glusterfs/storage-metrics.py,
# images/mariadb/backup-agent.py), served with their own tier and member.
BRICK_SEEN_BY_1 = 'openmrs_storage_brick_connected{job="machines",tier="storage",member="files2",seen_by="files1",instance="local"}'
BRICK_SEEN_BY_2 = 'openmrs_storage_brick_connected{job="machines",tier="storage",member="files2",seen_by="files2",instance="local"}'
HEAL = 'openmrs_storage_heal_pending_entries{job="machines",tier="storage",member="files2",seen_by="files1",instance="local"}'
SHIPPED = 'openmrs_backup_last_success_timestamp_seconds{job="machines",tier="backups",member="db-2",kind="ship",instance="local"}'
ALLOWED = 'openmrs_backup_allowed_age_seconds{job="machines",tier="backups",member="db-2",kind="ship",instance="local"}'
FAILED = 'openmrs_backup_last_attempt_failed{job="machines",tier="backups",member="files",kind="files",instance="local"}'


@pytest.mark.parametrize("alert, series, fires_at, labels", [
    # The local stack's heartbeats: 3 fails every 5 s; the node is out 15 s after its first failure.
    ("NodeOutOfBalancer", {NODE: "1 1 0x20"}, "30s", {"tier": "app", "member": "node2", "severity": "warning"}),
    ("RedundancyLost", {BALANCER: "1 1 0x20"}, "25s", {"tier": "balancers", "member": "balancer2",
                                                        "severity": "critical"}),
    ("RedundancyLost", {DB_UP: "1 1 0x20", DB_UP_2: "1x22"}, "25s", {"tier": "database", "member": "db-1",
                                                                      "severity": "critical"}),
    ("DatabaseWriterChanged", {CHANGES: "0 0 1x20", NEW_WRITER: "0 0 1x20", WRITER: "1 1 0x20"}, "10s",
     {"tier": "database", "member": "db-1", "severity": "critical"}),
    ("ReplicationStopped", {DB_UP_2: "1x22", WRITER: "0x22", REPLICATING: "1 1 0x20"}, "25s",
     {"tier": "database", "member": "db-2", "severity": "critical"}),
    ("SemiSyncOff", {WAITS: "1 1 0x20"}, "25s", {"tier": "database", "member": "db-1", "severity": "critical"}),
    # 850 connections allowed: 120 in use, then 700 (82 %) as nodes' pools grow.
    ("DatabaseConnectionsNearLimit", {THREADS: "120 120 700x20", MAX_CONNECTIONS: "850x22"}, "75s",
     {"tier": "database", "member": "db-1", "severity": "warning"}),
    ("DiskFilling", {AVAILABLE: "100 100 10x20", SIZE: "100x22"}, "25s",
     {"tier": "machines", "member": "local", "mountpoint": "/srv", "severity": "warning"}),
    # A brick that its own (stopped) server last saw connected, and another server sees lost.
    ("RedundancyLost", {BRICK_SEEN_BY_1: "1 1 0x20", BRICK_SEEN_BY_2: "1x22"}, "25s",
     {"tier": "storage", "member": "files2", "severity": "critical"}),
    ("StorageNotHealing", {HEAL: "0 0 5x200"}, "920s", {"tier": "storage", "member": "files2", "severity": "warning"}),
    # Shipped at 5 s, then no more: overdue once older than the 75 s its schedule allows.
    ("BackupOverdue", {SHIPPED: "0 5x40", ALLOWED: "75x41"}, "85s",
     {"tier": "backups", "member": "db-2", "kind": "ship", "severity": "critical"}),
    ("BackupFailed", {FAILED: "0 0 1x20"}, "10s", {"tier": "backups", "member": "files", "kind": "files",
                                                    "severity": "critical"}),
    # A certificate 100 days from its end, then (renewal forgotten, time passing) 20 days from it.
    ("CertificateExpiring", {EXPIRY: f"{100 * 86400}x1 {20 * 86400}x20"}, "10s",
     {"tier": "app", "member": "node1", "severity": "warning"}),
])
def test_each_alert_fires_on_the_fault_and_not_before(graph, tmp_path, alert, series, fires_at, labels):
    """promtool runs the rendered rules on series shaped as the exporters give them: the alert is firing when
    the rule says (its `for` after the fault, the fault at 10 s), and not while every member serves."""
    rules = written(graph, "monitoring-prometheus-1", tmp_path)["alert-rules.yml"]
    groups = yaml.safe_load(rules.read_text())["groups"]
    annotations = {rule["alert"]: rule["annotations"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert alert in annotations
    firing = subprocess.run([tool("promtool"), "test", "rules", str(_rule_test(tmp_path, rules, series, fires_at, alert))],
                            capture_output=True, text=True)
    output = firing.stdout + firing.stderr
    # promtool says which labels the firing alert has; the test asks for the ones a receiver groups by.
    assert firing.returncode != 0 and "exp:[]" in output.replace(" ", ""), output
    for name, value in labels.items():
        assert f'{name}="{value}"' in output or f"{name}={value}" in output, (name, output)
    quiet = subprocess.run([tool("promtool"), "test", "rules", str(_rule_test(tmp_path, rules, series, "5s", alert))],
                           capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr


TRAFFIC = 'job="balancer_traffic",tier="balancers",member="balancer1"'
APACHE_RESPONSES = ('openmrs_balancer_responses_total{{' + TRAFFIC
                    + ',code="{code}",pool="openmrs-nodes",route="node1",prog="balancer.mtail"}}')
HAPROXY_RESPONSES = 'haproxy_frontend_http_responses_total{{' + TRAFFIC + ',proxy="https",code="{code}"}}'


@pytest.mark.parametrize("engine_series", [APACHE_RESPONSES, HAPROXY_RESPONSES])
def test_the_dashboard_reads_responses_and_errors_alike_from_either_engine(graph, tmp_path, engine_series):
    """10 responses a second, 1 of them a server error: the dashboard's figures for a balancer of either engine."""
    rules = written(graph, "monitoring-prometheus-1", tmp_path)["alert-rules.yml"]
    ok, error = ("200", "502") if engine_series == APACHE_RESPONSES else ("2xx", "5xx")
    test = tmp_path / "traffic.yml"

    def expected(record: str, value: float) -> dict:
        return {"expr": record, "eval_time": "2m",
                "exp_samples": [{"labels": f'{record}{{member="balancer1",tier="balancers"}}', "value": value}]}

    test.write_text(yaml.safe_dump({
        "rule_files": [str(rules)], "evaluation_interval": "5s",
        "tests": [{"interval": "5s",
                   "input_series": [{"series": engine_series.format(code=ok), "values": "0+45x30"},
                                    {"series": engine_series.format(code=error), "values": "0+5x30"}],
                   "promql_expr_test": [expected("openmrs:balancer_responses:rate1m", 10),
                                        expected("openmrs:balancer_errors:rate1m", 1)]}]}))
    check = subprocess.run([tool("promtool"), "test", "rules", str(test)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def _rule_test(directory: Path, rules: Path, series: dict[str, str], at: str, alert: str) -> Path:
    """A promtool test that expects no `alert` at `at`: it fails, listing the alerts that do fire, when one does."""
    test = directory / f"test-{alert}-{at}.yml"
    test.write_text(yaml.safe_dump({
        "rule_files": [str(rules)], "evaluation_interval": "5s",
        "tests": [{"interval": "5s", "input_series": [{"series": name, "values": values} for name, values in series.items()],
                   "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]}]}))
    return test


def test_no_monitoring_program_is_published_or_outside_the_private_network(graph, hosts_graph):
    for each in (graph, hosts_graph):
        containers = [c for c in each.of_type("docker:index/container:Container") if c.name.startswith("monitoring-")]
        assert {c.name.rsplit("-", 1)[0] for c in containers} >= {
            "monitoring-prometheus", "monitoring-alertmanager", "monitoring-blackbox"}
        for container in containers:
            assert not container.plain("ports"), container.name
            networks = [n["name"] for n in container.plain("networksAdvanced")]
            assert len(networks) == 1 and "private" in networks[0], (container.name, networks)
            assert container.plain("capabilities") == {"drops": ["ALL"]}, container.name
            assert container.plain("logOpts") == {"max-size": "10m", "max-file": "3"}, container.name


def test_every_program_answers_over_tls_and_asks_for_the_generated_password(graph):
    files = uploaded(graph, "monitoring-prometheus-1")
    web = yaml.safe_load(files[f"{DIRECTORY}/web.yml"])
    assert set(web["tls_server_config"]) >= {"cert_file", "key_file"}
    (user, password_hash), = web["basic_auth_users"].items()
    assert user == "operator" and password_hash.startswith("$2")
    uploads = graph.named("monitoring-prometheus-1").inputs["uploads"]  # kept secret whole, or each entry
    assert is_secret(uploads) or all(is_secret(u) or is_secret(u.get("content")) for u in uploads
                                     if unwrap(u)["file"].endswith(("password", "private-key.pem")))
    assert files[f"{DIRECTORY}/password"] == unwrap(graph.named("monitoring-password").outputs["result"])
    config = yaml.safe_load(files[f"{DIRECTORY}/prometheus.yml"])
    assert all(job["scheme"] == "https" for job in config["scrape_configs"])


def test_the_hosts_stack_has_a_pair_on_two_machines_each_asking_its_own_blackbox(hosts_graph):
    prometheus = [hosts_graph.named(f"monitoring-prometheus-{i}") for i in (1, 2)]
    assert prometheus[0].provider != prometheus[1].provider
    blackbox = [yaml.safe_load(uploaded(hosts_graph, p.name)[f"{DIRECTORY}/prometheus.yml"])["scrape_configs"][0]
                ["relabel_configs"][-1]["replacement"] for p in prometheus]
    addresses = [hosts_graph.named(f"monitoring-blackbox-{i}").plain("networksAdvanced")[0]["ipv4Address"]
                 for i in (1, 2)]
    assert blackbox == [f"{address}:9115" for address in addresses]
    alertmanager = hosts_graph.named("monitoring-alertmanager-1").plain("command")
    assert any(flag.startswith("--cluster.peer=") for flag in alertmanager)


def test_the_dashboard_is_behind_the_balancers_path_or_on_the_back_network_behind_a_site_balancer():
    local = run_program("local")
    (outputs,) = [unwrap(o) for urn, o in local.component_outputs.items() if urn.endswith("Monitoring::monitoring")]
    balancer = uploaded(local, "lb-apache")["/etc/apache2/openmrs-balancer.conf"]
    assert outputs["dashboard_url"] == "https://127.0.0.1:8443/monitoring/consoles/openmrs.html"
    assert 'ProxyPass "/monitoring/" "balancer://openmrs-monitoring/monitoring/"' in balancer
    assert 'BalancerMember "https://prometheus1:9090"' in balancer
    f5 = run_program("onprem-f5")
    (outputs,) = [unwrap(o) for urn, o in f5.component_outputs.items() if urn.endswith("Monitoring::monitoring")]
    first = f5.named("monitoring-prometheus-1").plain("networksAdvanced")[0]["ipv4Address"]
    assert outputs["dashboard_url"] == f"https://{first}:9090/monitoring/consoles/openmrs.html"


@pytest.mark.parametrize("engine", ["apache", "haproxy"])
def test_each_balancer_serves_its_counts_on_its_private_address_to_the_prometheus_pair_alone(engine):
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"engine": engine}))
    prometheus = yaml.safe_load(uploaded(graph, "monitoring-prometheus-1")[f"{DIRECTORY}/prometheus.yml"])
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "balancer_traffic"]
    assert {"cert_file", "key_file"} <= set(job["tls_config"])  # Prometheus' own certificate
    targets = [config["targets"][0] for config in job["static_configs"]]
    for index, name in enumerate([f"lb-{engine}", f"lb-{engine}-2"]):
        balancer = graph.named(name)
        private = balancer.plain("networksAdvanced")[0]["ipv4Address"]
        assert dict(e.split("=", 1) for e in balancer.plain("envs"))["METRICS_ADDRESS"] == private
        assert targets[index] == f"{private}:9117"
        assert not any(port["internal"] == 9117 for port in balancer.plain("ports") or [])
    config = next(u["content"] for u in graph.named(f"lb-{engine}").plain("uploads") if "openmrs-balancer" in u["file"])
    if engine == "apache":
        assert "Listen ${METRICS_ADDRESS}:9117 https" in config and "SSLVerifyClient require" in config
        assert 'Require expr "%{SSL_CLIENT_S_DN_CN} =~ /^prometheus[0-9]+$/"' in config
    else:
        assert 'bind "${METRICS_ADDRESS}:9117" ssl crt' in config and "verify required" in config
        assert "http-request deny unless { ssl_c_s_dn(cn) -m reg ^prometheus[0-9]+$ }" in config
    # The names the balancers accept are those of the Prometheus pair's certificates.
    assert graph.named("monitoring-prometheus-1-csr").plain("subject")["commonName"] == "prometheus1"


def test_a_mysqld_exporter_beside_each_database_server_with_an_account_for_its_address_alone(hosts_graph):
    for index in (1, 2):
        server, exporter = hosts_graph.named(f"db-{index}"), hosts_graph.named(f"monitoring-db-{index}")
        assert exporter.provider == server.provider  # on the server's machine
        environment = dict(e.split("=", 1) for e in unwrap(server.inputs["envs"]))
        address = exporter.plain("networksAdvanced")[0]["ipv4Address"]
        assert environment["MARIADB_EXPORTER_HOST"] == address
        client = uploaded(hosts_graph, f"monitoring-db-{index}")[f"{DIRECTORY}/exporter.cnf"]
        assert f"password = {environment['MARIADB_EXPORTER_PASSWORD']}" in client
        assert f"host = {server.plain('networksAdvanced')[0]['ipv4Address']}" in client and "ssl-ca = " in client
        uploads = exporter.inputs["uploads"]
        assert is_secret(uploads) or all(is_secret(u) or is_secret(u.get("content")) for u in uploads
                                         if unwrap(u)["file"].endswith("exporter.cnf"))
