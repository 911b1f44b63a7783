"""The run command (scripts/up → python -m launch): each prerequisite is checked before any pulumi command
and fails with its fix and its own exit code; pulumi always gets a backend and a passphrase, without the
user's own login or passphrase being touched.

End-to-end runs use the stack aws-staging: its platform needs no Docker engine, so only the fake `pulumi`
below stands between the command and the machine."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import requests

from components.config import ConfigError, parse_cluster_config
from launch import __main__ as launcher
from launch.preflight import (
    PULUMI_INSTALL_URL,
    Exit,
    Problem,
    check_docker,
    check_fuse,
    check_map_count,
    check_pulumi_cli,
    check_python,
    check_shared_mount,
    docker_engine_is_local,
    host_problems,
)
from launch.stack import read_cluster_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAKE_PULUMI = f"""#!{sys.executable}
import json, os, pathlib, sys
passphrase_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({{
        "argv": sys.argv[1:],
        "backend": os.environ.get("PULUMI_BACKEND_URL"),
        "passphrase": os.environ.get("PULUMI_CONFIG_PASSPHRASE"),
        "passphrase_file": passphrase_file,
        "passphrase_in_file": pathlib.Path(passphrase_file).read_text() if passphrase_file else None,
    }}) + "\\n")
sys.exit(42 if sys.argv[1] == os.environ.get("FAKE_PULUMI_FAIL_ON") else 0)
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def machine(tmp_path):
    """A home directory and a PATH holding only a fake `pulumi` that records each call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "pulumi-calls.jsonl"
    return {"PATH": str(bin_dir), "HOME": str(home), "FAKE_PULUMI_LOG": str(log)}


def run_up(environ: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch", *args], cwd=PROJECT_ROOT, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)


def pulumi_calls(environ: dict) -> list[dict]:
    log = Path(environ["FAKE_PULUMI_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def mountinfo(tmp_path: Path, *mounts: tuple[str, str]) -> Path:
    """A /proc/self/mountinfo with one line per (mount point as the kernel escapes it, optional fields)."""
    lines = [f"{29 + n} 1 8:{n} / {point} rw,relatime {optional} - ext4 /dev/sda{n} rw".replace("  ", " ")
             for n, (point, optional) in enumerate(mounts)]
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- each prerequisite, passing and failing

@pytest.mark.parametrize("version, refused", [((3, 10, 14), True), ((3, 9, 2), True), ((3, 11, 0), False),
                                              ((3, 13, 1), False)])
def test_python_older_than_3_11_is_refused_naming_the_running_one(version, refused):
    problem = check_python(version, "/usr/bin/python3")
    assert (problem is not None) == refused
    if refused:
        assert problem.code == Exit.PYTHON_TOO_OLD
        assert ".".join(map(str, version)) in problem.message and "/usr/bin/python3" in problem.message
        assert "rm -rf .venv" in problem.message


def test_the_pulumi_cli_must_be_an_executable_on_path(tmp_path):
    assert check_pulumi_cli({"PATH": str(tmp_path)}).code == Exit.PULUMI_MISSING
    cli = tmp_path / "pulumi"
    cli.write_text("#!/bin/sh\n")
    assert check_pulumi_cli({"PATH": str(tmp_path)}).code == Exit.PULUMI_MISSING  # not executable
    cli.chmod(0o755)
    assert check_pulumi_cli({"PATH": f"/nonexistent{os.pathsep}{tmp_path}"}) is None
    assert PULUMI_INSTALL_URL in check_pulumi_cli({"PATH": "/nonexistent"}).message


class AnsweringEngine:
    def __init__(self, answer):
        self.answer = answer
        self.closed = False

    def ping(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self):
        self.closed = True


def test_a_docker_engine_that_answers_passes_and_is_asked_with_the_users_environment():
    engine, asked = AnsweringEngine(True), []

    def connect(environment, timeout):
        asked.append(environment)
        return engine

    assert check_docker({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, connect) is None
    assert asked == [{"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}] and engine.closed


@pytest.mark.parametrize("answer", [False, requests.ConnectionError("connection reset by peer")])
def test_a_docker_engine_that_fails_to_answer_is_reported(answer):
    engine = AnsweringEngine(answer)
    problem = check_docker({}, lambda environment, timeout: engine)
    assert problem.code == Exit.DOCKER_UNREACHABLE and engine.closed
    assert "DOCKER_HOST is not set" in problem.message


def test_docker_host_at_a_socket_that_does_not_exist_is_reported_with_the_fix(tmp_path):
    docker_host = f"unix://{tmp_path}/missing.sock"
    problem = check_docker({"DOCKER_HOST": docker_host})  # the real docker.from_env
    assert problem.code == Exit.DOCKER_UNREACHABLE
    assert f"Cannot reach the Docker engine at {docker_host}: " in problem.message
    assert "sudo systemctl start docker" in problem.message and "DOCKER_HOST" in problem.message
    assert "allowed to use it" in problem.message


def test_fuse_needs_a_character_device(tmp_path):
    assert check_fuse("local", Path("/dev/null")) is None  # a character device, as /dev/fuse is
    regular = tmp_path / "fuse"
    regular.write_text("")
    for device, found in ((regular, "is not a character device"), (tmp_path / "absent", "is missing")):
        problem = check_fuse("local", device)
        assert problem.code == Exit.FUSE_MISSING and f"{device} {found}" in problem.message
        assert "sudo modprobe fuse" in problem.message
        assert "`replicated: false` under `openmrs-cluster:storage:` in stacks/Pulumi.local.yaml" in problem.message


@pytest.mark.parametrize("root_fields, shared", [("shared:1", True), ("shared:1 master:4", True), ("", False),
                                                 ("master:4", False)])
def test_the_host_directory_needs_a_shared_mount(tmp_path, root_fields, shared):
    table = mountinfo(tmp_path, ("/", root_fields))
    problem = check_shared_mount("local", "/var/lib/openmrs-cluster", table)
    assert (problem is None) == shared
    if not shared:
        assert problem.code == Exit.MOUNT_NOT_SHARED
        assert "/var/lib/openmrs-cluster (storage.host_directory) is on the mount /," in problem.message
        assert "sudo mount --make-rshared /" in problem.message and "replicated: false" in problem.message


def test_the_deepest_mount_holding_the_nearest_existing_directory_decides(tmp_path):
    data = (tmp_path / "data").resolve()
    data.mkdir()
    not_yet_created = str(data / "openmrs-cluster" / "files")
    shared_root_private_data = mountinfo(tmp_path, ("/", "shared:1"), (str(data), ""))
    problem = check_shared_mount("local", not_yet_created, shared_root_private_data)
    assert problem.code == Exit.MOUNT_NOT_SHARED and f"is on the mount {data}," in problem.message
    private_root_shared_data = mountinfo(tmp_path, ("/", ""), (str(data), "shared:7"))
    assert check_shared_mount("local", not_yet_created, private_root_shared_data) is None


def test_of_two_mounts_on_one_point_the_later_covers_the_earlier(tmp_path):
    point = str(tmp_path.resolve())
    shared_last = mountinfo(tmp_path, ("/", ""), (point, ""), (point, "shared:3"))
    assert check_shared_mount("local", point, shared_last) is None
    private_last = mountinfo(tmp_path, ("/", ""), (point, "shared:3"), (point, ""))
    assert check_shared_mount("local", point, private_last) is not None


def test_mount_points_with_spaces_and_symlinks_are_followed(tmp_path):
    spaced = (tmp_path / "shared files").resolve()
    spaced.mkdir()
    link = tmp_path / "link"
    link.symlink_to(spaced)
    table = mountinfo(tmp_path, ("/", ""), (str(spaced).replace(" ", "\\040"), "shared:2"))
    assert check_shared_mount("local", str(link / "openmrs-cluster"), table) is None


def test_an_unreadable_mount_table_is_a_failure_not_a_pass(tmp_path):
    problem = check_shared_mount("local", "/var/lib/openmrs-cluster", tmp_path / "no-mountinfo")
    assert problem.code == Exit.MOUNT_NOT_SHARED and "Cannot read" in problem.message


@pytest.mark.parametrize("environ, platform, local", [
    ({}, "linux", True), ({"DOCKER_HOST": ""}, "linux", True), ({"DOCKER_HOST": "unix:///x.sock"}, "linux", True),
    ({"DOCKER_HOST": "tcp://10.0.0.5:2376"}, "linux", False), ({"DOCKER_HOST": "ssh://me@server"}, "linux", False),
    ({}, "darwin", False),
])
def test_the_host_checks_apply_only_to_an_engine_on_this_machine(environ, platform, local):
    assert docker_engine_is_local(environ, platform) == local


# ---- which checks a stack gets

@pytest.fixture
def broken_host(tmp_path):
    """Every check fails: no pulumi on PATH, no engine, no /dev/fuse, no shared mount."""
    def no_engine(environment, timeout):
        raise docker.errors.DockerException("no engine here")

    low_map_count = tmp_path / "max_map_count"
    low_map_count.write_text("65530\n")  # the Linux default
    return {"connect": no_engine, "fuse_device": tmp_path / "no-fuse", "mountinfo": mountinfo(tmp_path, ("/", "")),
            "max_map_count": low_map_count, "platform": "linux"}


def test_a_replicated_local_stack_gets_every_check_reported_at_once_in_order(broken_host):
    problems = host_problems("local", parse_cluster_config({}), {"PATH": "/nonexistent"}, **broken_host)
    assert [problem.code for problem in problems] == [
        Exit.PULUMI_MISSING, Exit.DOCKER_UNREACHABLE, Exit.FUSE_MISSING, Exit.MOUNT_NOT_SHARED]


def test_three_local_search_servers_need_elasticsearchs_map_count(broken_host, tmp_path):
    three = parse_cluster_config({"search": {"servers": 3}})
    assert [problem.code for problem in host_problems("local", three, {"PATH": "/nonexistent"}, **broken_host)][-1] == \
        Exit.MAP_COUNT_TOO_LOW
    existing = parse_cluster_config({"search": {"servers": 3, "uris": ["https://search.example.org:9200"]}})
    assert Exit.MAP_COUNT_TOO_LOW not in [p.code for p in host_problems("local", existing, {}, **broken_host)]
    problem = check_map_count("local", broken_host["max_map_count"])
    assert "vm.max_map_count is 65530" in problem.message and "sudo sysctl -w vm.max_map_count=262144" in problem.message
    enough = tmp_path / "enough"
    enough.write_text("262144\n")
    assert check_map_count("local", enough) is None


def test_unreplicated_storage_skips_the_fuse_and_mount_checks(broken_host):
    cluster = parse_cluster_config({"storage": {"replicated": False}})
    assert [problem.code for problem in host_problems("local", cluster, {"PATH": "/nonexistent"}, **broken_host)] == [
        Exit.PULUMI_MISSING, Exit.DOCKER_UNREACHABLE]


def test_an_engine_elsewhere_skips_the_checks_of_this_machine(broken_host):
    broken_host["connect"] = lambda environment, timeout: AnsweringEngine(True)
    environ = {"PATH": "/nonexistent", "DOCKER_HOST": "tcp://10.0.0.5:2376"}
    problems = host_problems("local", parse_cluster_config({}), environ, **broken_host)
    assert [problem.code for problem in problems] == [Exit.PULUMI_MISSING]


def test_a_stack_on_hosts_needs_this_machines_engine_and_every_hosts(broken_host):
    """The hosts' own /dev/fuse and mounts are theirs (the README's list); each engine must answer here."""
    cluster = read_cluster_config(PROJECT_ROOT / "stacks" / "Pulumi.onprem.yaml")
    asked = []

    def reach(host):
        asked.append(host.docker_url)
        return None if host.name != "server-b" else "ssh: connect to host 192.0.2.12 port 22: Connection refused"

    problems = host_problems("onprem", cluster, {"PATH": "/nonexistent"}, reach=reach, **broken_host)
    assert [problem.code for problem in problems] == [Exit.PULUMI_MISSING, Exit.DOCKER_UNREACHABLE, Exit.HOST_UNREACHABLE]
    assert asked == ["ssh://root@192.0.2.11", "ssh://root@192.0.2.12", "ssh://openmrs@192.0.2.13"]
    assert "server-b (ssh://root@192.0.2.12): ssh: connect to host 192.0.2.12 port 22" in problems[-1].message
    assert "docker info" in problems[-1].message


def test_the_aws_platform_needs_only_the_pulumi_cli(broken_host, machine):
    cluster = read_cluster_config(PROJECT_ROOT / "stacks" / "Pulumi.aws-staging.yaml")
    assert cluster.platform == "aws"
    assert host_problems("aws-staging", cluster, machine, **broken_host) == []


# ---- the stack's configuration, as the program reads it

def test_the_stack_file_is_read_as_the_program_reads_it(tmp_path):
    stack_file = tmp_path / "Pulumi.mine.yaml"
    stack_file.write_text(
        "encryptionsalt: v1:abc\n"
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  openmrs-cluster:database_password:\n"
        "    secure: v1:AAAA\n"
        "  openmrs-cluster:storage:\n"
        "    replicated: false\n"
        "    host_directory: /srv/openmrs\n"
        "  openmrs-cluster:app: '{\"nodes\": 4}'\n"  # `pulumi config set` without --path stores JSON text
    )
    cluster = read_cluster_config(stack_file)
    assert (cluster.storage.replicated, cluster.storage.host_directory, cluster.app.nodes) == (False, "/srv/openmrs", 4)


def test_a_stack_without_a_file_has_the_defaults(tmp_path):
    cluster = read_cluster_config(tmp_path / "Pulumi.new.yaml")
    assert (cluster.platform, cluster.storage.replicated, cluster.storage.host_directory) == (
        "local", True, "/var/lib/openmrs-cluster")


def test_a_broken_or_unknown_key_is_a_config_error(tmp_path):
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text("config:\n  openmrs-cluster:app:\n    nodes: 1\n  openmrs-cluster:storag: {}\n")
    with pytest.raises(ConfigError) as invalid:
        read_cluster_config(stack_file)
    assert [problem.split(":")[1] for problem in invalid.value.problems] == ["app.nodes", "storag"]


@pytest.mark.parametrize("stack_file", sorted((PROJECT_ROOT / "stacks").glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_every_stack_of_the_project_reads(stack_file):
    read_cluster_config(stack_file)


def test_invalid_configuration_stops_before_any_other_check(tmp_path, monkeypatch, capsys, machine):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.bad.yaml").write_text("config:\n  openmrs-cluster:app:\n    nodes: 1\n")
    monkeypatch.setattr(launcher, "PROJECT_ROOT", tmp_path)
    assert launcher.main(["bad"], {**machine, "PATH": "/nonexistent"}) == Exit.INVALID_CONFIG
    message = capsys.readouterr().err
    assert message.startswith("stacks/Pulumi.bad.yaml: invalid stack configuration:\n  - openmrs-cluster:app.nodes: ")
    assert "Pulumi CLI" not in message


def test_several_failures_are_all_shown_and_the_first_sets_the_exit_code(capsys):
    problems = [Problem(Exit.DOCKER_UNREACHABLE, "engine down"), Problem(Exit.FUSE_MISSING, "no fuse")]
    assert launcher.report(problems) == Exit.DOCKER_UNREACHABLE
    assert capsys.readouterr().err == "engine down\n\nno fuse\n"


@pytest.mark.parametrize("argv, stack, options", [
    ([], "local", []), (["aws-prod"], "aws-prod", []), (["local", "--yes"], "local", ["--yes"]),
    (["--yes", "--skip-preview"], "local", ["--yes", "--skip-preview"]),
])
def test_the_first_argument_names_the_stack_unless_it_is_an_option(argv, stack, options):
    assert launcher.split_arguments(argv) == (stack, options)


# ---- the whole command, as a user runs it

def test_the_stack_is_created_if_new_then_updated(machine):
    result = run_up(machine, "aws-staging", "--yes", "--skip-preview")
    assert result.returncode == 0, result.stderr
    assert [call["argv"] for call in pulumi_calls(machine)] == [
        ["stack", "select", "--create", "aws-staging", "--secrets-provider", "passphrase", "--cwd", str(PROJECT_ROOT)],
        ["up", "--stack", "aws-staging", "--cwd", str(PROJECT_ROOT), "--yes", "--skip-preview"],
    ]


def test_up_is_not_run_when_the_stack_cannot_be_selected(machine):
    result = run_up({**machine, "FAKE_PULUMI_FAIL_ON": "stack"}, "aws-staging")
    assert result.returncode == 42
    assert [call["argv"][0] for call in pulumi_calls(machine)] == ["stack"]


@pytest.mark.parametrize("xdg_data_home", [None, "data"])
def test_state_defaults_to_a_private_file_backend_in_the_users_data_directory(machine, tmp_path, xdg_data_home):
    environ = dict(machine)
    data_home = Path(machine["HOME"]) / ".local" / "share"
    if xdg_data_home:
        data_home = tmp_path / xdg_data_home
        environ["XDG_DATA_HOME"] = str(data_home)
    state = data_home / "openmrs-cluster" / "pulumi-state"

    result = run_up(environ, "aws-staging")
    assert result.returncode == 0, result.stderr
    assert {call["backend"] for call in pulumi_calls(machine)} == {f"file://{state}"}
    assert mode(state) == 0o700 and str(state) in result.stderr


def test_a_backend_the_user_chose_is_used_and_no_local_state_is_made(machine):
    result = run_up({**machine, "PULUMI_BACKEND_URL": "s3://hospital-pulumi-state"}, "aws-staging")
    assert result.returncode == 0, result.stderr
    assert {call["backend"] for call in pulumi_calls(machine)} == {"s3://hospital-pulumi-state"}
    assert not (Path(machine["HOME"]) / ".local").exists()


@pytest.mark.parametrize("xdg_config_home", [None, "config"])
def test_the_passphrase_is_made_once_private_announced_and_reused(machine, tmp_path, xdg_config_home):
    environ = dict(machine)
    config_home = Path(machine["HOME"]) / ".config"
    if xdg_config_home:
        config_home = tmp_path / xdg_config_home
        environ["XDG_CONFIG_HOME"] = str(config_home)
    passphrase_file = config_home / "openmrs-cluster" / "aws-staging.passphrase"

    first = run_up(environ, "aws-staging")
    assert first.returncode == 0, first.stderr
    passphrase = passphrase_file.read_text()
    assert len(passphrase) >= 32 and mode(passphrase_file) == 0o600 and mode(passphrase_file.parent) == 0o700
    assert f"Created the secrets passphrase of stack aws-staging: {passphrase_file}" in first.stderr
    assert "Back this file up: losing it loses access to the stack's secrets." in first.stderr

    second = run_up(environ, "aws-staging")
    assert second.returncode == 0, second.stderr
    assert "passphrase" not in second.stderr and passphrase_file.read_text() == passphrase
    calls = pulumi_calls(machine)
    assert len(calls) == 4
    assert {(call["passphrase_file"], call["passphrase_in_file"], call["passphrase"]) for call in calls} == {
        (str(passphrase_file), passphrase, None)}


def test_each_stack_has_its_own_passphrase(machine):
    for stack in ("aws-staging", "aws-prod"):
        assert run_up(machine, stack).returncode == 0
    config = Path(machine["HOME"]) / ".config" / "openmrs-cluster"
    assert (config / "aws-staging.passphrase").read_text() != (config / "aws-prod.passphrase").read_text()


@pytest.mark.parametrize("variable, value", [
    ("PULUMI_CONFIG_PASSPHRASE", "the hospital's own passphrase"),
    ("PULUMI_CONFIG_PASSPHRASE", ""),  # Pulumi takes an empty passphrase as set
    ("PULUMI_CONFIG_PASSPHRASE_FILE", "hospital.passphrase"),
])
def test_a_passphrase_the_user_set_is_left_alone(machine, tmp_path, variable, value):
    if variable == "PULUMI_CONFIG_PASSPHRASE_FILE":
        users_file = tmp_path / value
        users_file.write_text("the hospital's own passphrase\n")
        value = str(users_file)
    result = run_up({**machine, variable: value}, "aws-staging")
    assert result.returncode == 0, result.stderr
    given = {"PULUMI_CONFIG_PASSPHRASE": None, "PULUMI_CONFIG_PASSPHRASE_FILE": None, variable: value}
    assert [(call["passphrase"], call["passphrase_file"]) for call in pulumi_calls(machine)] == 2 * [
        (given["PULUMI_CONFIG_PASSPHRASE"], given["PULUMI_CONFIG_PASSPHRASE_FILE"])]
    assert not (Path(machine["HOME"]) / ".config").exists()


def test_without_the_pulumi_cli_nothing_runs_and_nothing_is_made(machine, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_up({**machine, "PATH": str(empty)}, "aws-staging")
    assert result.returncode == Exit.PULUMI_MISSING
    assert result.stderr.startswith("The Pulumi CLI (`pulumi`) is not on PATH") and PULUMI_INSTALL_URL in result.stderr
    assert list(Path(machine["HOME"]).iterdir()) == []


def test_an_unreachable_docker_engine_stops_the_local_stack(machine, tmp_path):
    docker_host = f"unix://{tmp_path}/missing.sock"
    result = run_up({**machine, "DOCKER_HOST": docker_host}, "local")
    assert result.returncode == Exit.DOCKER_UNREACHABLE
    assert result.stderr.startswith(f"Cannot reach the Docker engine at {docker_host}: ")
    assert "sudo systemctl start docker" in result.stderr
    assert pulumi_calls(machine) == []


def test_a_name_that_is_no_stack_name_is_a_usage_error(machine):
    result = run_up(machine, "../../etc/passwd")
    assert result.returncode == Exit.USAGE and "is not a stack name" in result.stderr
    assert pulumi_calls(machine) == [] and list(Path(machine["HOME"]).iterdir()) == []


def test_help_lists_the_exit_codes_and_runs_nothing(machine):
    result = run_up(machine, "--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage: scripts/up [stack] [pulumi up options]")
    assert f"  {Exit.DOCKER_UNREACHABLE:d}  docker unreachable\n" in result.stdout
    assert pulumi_calls(machine) == [] and list(Path(machine["HOME"]).iterdir()) == []
