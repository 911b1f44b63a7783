"""The local backups (components/local/backups.py), run under mocks: an agent beside each database server and
one for the shared files, each reading what it backs up read-only, with no capability and no port; the two
repositories on kept volumes by default or in the configured bucket; the agents' database account known to
the servers by its password and its one address."""
import pytest

from program import is_secret, run_program, stack_config, unwrap, with_overrides

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
PROVIDER = "pulumi:providers:docker"
AGENTS = ("backups-db-1", "backups-db-2", "backups-files")
S3 = {"endpoint": "https://backups.clinic.example:9000", "bucket": "openmrs-backups", "access_key_id": "AKIDLOCAL"}


@pytest.fixture(scope="module")
def graph():
    return run_program("local")


@pytest.fixture(scope="module")
def graph_with_bucket():
    config = with_overrides(stack_config("local"), backup={"s3": S3})
    config["openmrs-cluster:backup_s3_secret_key"] = "the-bucket-secret"
    return run_program("local", config)


def container(graph, name):
    (match,) = [r for r in graph.of_type(CONTAINER) if r.name == name]
    return match


def env_of(registration) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in registration.plain("envs"))


def secret_env(registration, key) -> bool:
    """Whether the `key=` entry of the container's environment reaches the provider as a secret (an entry
    made from a secret makes the whole list one)."""
    envs = registration.inputs["envs"]
    return is_secret(envs) or any(is_secret(entry) and env_of_entries([entry]).get(key) for entry in envs)


def env_of_entries(entries) -> dict[str, str]:
    return dict(str(unwrap(entry)).split("=", 1) for entry in entries)


def test_an_agent_beside_each_database_server_reads_its_data_directory_read_only(graph):
    for index in (1, 2):
        agent, server = container(graph, f"backups-db-{index}"), container(graph, f"db-{index}")
        assert agent.plain("user") == "mysql"
        (data,) = [v for v in agent.plain("volumes") if v["containerPath"] == "/var/lib/mysql"]
        assert data["volumeName"] == server.plain("volumes")[0]["volumeName"] and data["readOnly"]
        assert agent.provider == server.provider  # on the server's own engine, as the volume is


def test_the_files_agent_runs_as_openmrs_and_reads_the_shared_folders_read_only(graph):
    agent = container(graph, "backups-files")
    assert agent.plain("user") == "1001:1001"
    # Beside the machine's metrics volume, where it writes its figures for the monitoring.
    mounts = [mount for mount in agent.plain("mounts") if mount["target"] != "/var/lib/openmrs-metrics"]
    folders = env_of(agent)["FOLDERS"].split(",")
    assert mounts and {mount["target"].rsplit("/", 1)[1] for mount in mounts} == set(folders)
    assert all(mount["readOnly"] for mount in mounts)


def test_agents_have_no_port_no_capability_and_turn_unhealthy_when_a_backup_fails(graph):
    for name in AGENTS:
        agent = container(graph, name)
        assert "ports" not in agent.inputs
        assert agent.plain("capabilities") == {"drops": ["ALL"]} and not agent.plain("privileged")
        assert agent.plain("healthcheck")["tests"] == ["CMD", "/usr/local/bin/backup-agent", "check"]
        assert [n["name"] for n in agent.plain("networksAdvanced")] == [container(graph, "db-1").plain(
            "networksAdvanced")[0]["name"]]  # the private network only: no way out without a bucket


def test_by_default_two_repositories_on_volumes_kept_when_the_stack_is_destroyed(graph):
    repositories = {r.name: r for r in graph.of_type(VOLUME) if r.name in ("backups-database", "backups-files")}
    assert set(repositories) == {"backups-database", "backups-files"}
    assert all(volume.retain_on_delete for volume in repositories.values())
    for name in AGENTS:
        kind = "files" if name == "backups-files" else "database"
        repository = env_of(container(graph, name))["RESTIC_REPOSITORY"]
        assert repository == f"/srv/openmrs-backup/{kind}"
        assert any(v["volumeName"] == repositories[f"backups-{kind}"].plain("name") and v["containerPath"] == repository
                   for v in container(graph, name).plain("volumes"))


def test_repositories_are_encrypted_with_one_generated_secret_key(graph):
    keys = {env_of(container(graph, name))["RESTIC_PASSWORD"] for name in AGENTS}
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert all(secret_env(container(graph, name), "RESTIC_PASSWORD") for name in AGENTS)


def test_each_server_lets_in_its_own_agent_alone_with_the_generated_password(graph):
    for index in (1, 2):
        agent, server = env_of(container(graph, f"backups-db-{index}")), env_of(container(graph, f"db-{index}"))
        address = container(graph, f"backups-db-{index}").plain("networksAdvanced")[0]["ipv4Address"]
        assert server["MARIADB_BACKUP_HOST"] == address
        assert agent["MYSQL_PWD"] == server["MARIADB_BACKUP_PASSWORD"] and agent["DB_USER"] == "backup"
        assert agent["DB_HOST"] == container(graph, f"db-{index}").plain("networksAdvanced")[0]["ipv4Address"]
        assert secret_env(container(graph, f"backups-db-{index}"), "MYSQL_PWD")
    # only the first agent makes the repository: two at once would race restic's init
    assert [env_of(container(graph, name))["MAKE_REPOSITORY"] for name in AGENTS] == ["1", "0", "1"]


def test_the_schedule_and_retention_come_from_config():
    config = with_overrides(stack_config("local"), backup={"full_every_hours": 6, "ship_every_seconds": 20,
                                                           "files_every_minutes": 5, "retention_days": 30})
    agent = env_of(container(run_program("local", config), "backups-db-1"))
    assert (agent["FULL_EVERY_HOURS"], agent["SHIP_EVERY_SECONDS"], agent["FILES_EVERY_MINUTES"],
            agent["RETENTION_DAYS"]) == ("6", "20", "5", "30")


def test_with_a_bucket_the_repositories_are_in_it_and_the_agents_get_a_way_out(graph_with_bucket):
    graph = graph_with_bucket
    assert not [r for r in graph.of_type(VOLUME) if r.name in ("backups-database", "backups-files")]
    egress = {r.plain("name") for r in graph.of_type(NETWORK) if "egress" in r.name}
    assert len(egress) == 1
    for name in AGENTS:
        agent = container(graph, name)
        kind = "files" if name == "backups-files" else "database"
        assert env_of(agent)["RESTIC_REPOSITORY"] == f"s3:{S3['endpoint']}/{S3['bucket']}/{kind}"
        assert env_of(agent)["AWS_ACCESS_KEY_ID"] == S3["access_key_id"]
        assert env_of(agent)["AWS_SECRET_ACCESS_KEY"] == "the-bucket-secret"
        assert secret_env(agent, "AWS_SECRET_ACCESS_KEY")
        assert egress <= {n["name"] for n in agent.plain("networksAdvanced")}


def test_without_backups_no_agent_and_no_backup_account():
    graph = run_program("local", with_overrides(stack_config("local"), backup={"enabled": False}))
    assert not [r for r in graph.registrations if r.name.startswith("backups")]
    assert "MARIADB_BACKUP_PASSWORD" not in env_of(container(graph, "db-1"))


def test_on_several_hosts_each_agent_is_on_its_servers_host_and_the_repositories_in_the_bucket():
    graph = run_program("onprem")
    for index in (1, 2):
        assert container(graph, f"backups-db-{index}").provider == container(graph, f"db-{index}").provider
    assert container(graph, "backups-files").provider == container(graph, "app-1").provider
    assert not [r for r in graph.of_type(VOLUME) if r.name in ("backups-database", "backups-files")]
    egress = [r for r in graph.of_type(NETWORK) if "egress" in r.name]
    assert {r.provider for r in egress} == {container(graph, name).provider for name in AGENTS}
