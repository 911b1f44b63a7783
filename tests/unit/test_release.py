"""Scripted deployment under mocks: the listed modules and configuration are checked, layered into one
release image for every node, and nodes are created and replaced one at a time (drain, replace, admit)."""
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from components.checksums import checksum
from components.config import ConfigError, parse_cluster_config
from deployer import Deployer, DeploymentFailed
from program import PROJECT, PROJECT_ROOT, run_program, stack_config, unwrap, with_overrides

COMMAND = "command:local:Command"
NODES = 3


@pytest.fixture
def release(tmp_path) -> dict:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "webservices.rest-2.44.0.omod").write_bytes(b"rest module")
    (modules / "idgen-4.14.0.omod").write_bytes(b"idgen module")
    configuration = tmp_path / "configuration"
    (configuration / "locations").mkdir(parents=True)
    (configuration / "locations" / "locations.csv").write_text("Uuid,Name\n")
    return {
        "modules": [{"path": str(path), "sha256": checksum(path)} for path in sorted(modules.iterdir())],
        "configuration": {"path": str(configuration), "sha256": checksum(configuration)},
    }


def program_with(release: dict, stack: str = "local"):
    return run_program(stack, with_overrides(stack_config(stack), app={**release, "nodes": NODES}))


def test_the_checksum_command_prints_what_the_stack_needs(tmp_path):
    """For a file it is sha256sum's value; for a folder, the value checksum_problems compares with."""
    module = tmp_path / "idgen-4.14.0.omod"
    content = b"\x00module bytes"
    module.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "components.checksums", str(module), str(tmp_path)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        f"{hashlib.sha256(content).hexdigest()}  {module}", f"{checksum(tmp_path)}  {tmp_path}"]


def test_a_folder_checksum_covers_names_and_contents(tmp_path):
    folder = tmp_path / "configuration"
    folder.mkdir()
    (folder / "a.csv").write_text("1")
    first = checksum(folder)
    (folder / "a.csv").rename(folder / "b.csv")
    renamed = checksum(folder)
    (folder / "b.csv").write_text("2")
    assert len({first, renamed, checksum(folder)}) == 3


@pytest.mark.parametrize(
    "app, key, words",
    [
        ({"modules": [{"path": "modules/rest.jar", "sha256": "0" * 64}]}, "app.modules.0.path", "<module id>-<version>.omod"),
        ({"modules": [{"path": "m/idgen-4.14.0.omod", "sha256": "abc"}]}, "app.modules.0.sha256", "[0-9a-f]{64}"),
        ({"modules": [{"path": "a/idgen-4.14.0.omod", "sha256": "0" * 64},
                      {"path": "b/idgen-4.15.0.omod", "sha256": "1" * 64}]}, "app.modules", "more than one file of module idgen"),
        ({"drain_seconds": 601}, "app.drain_seconds", "less than or equal to 600"),
    ],
)
def test_each_release_rule_names_its_key(app, key, words):
    with pytest.raises(ConfigError) as raised:
        parse_cluster_config({"app": app})
    (problem,) = raised.value.problems
    assert problem.startswith(f"{PROJECT}:{key}: ") and words in problem


def test_a_checksum_mismatch_stops_the_deployment_before_any_resource(release, tmp_path):
    Path(release["modules"][1]["path"]).write_bytes(b"a different build of the module")
    release["configuration"]["sha256"] = "f" * 64
    release["modules"].append({"path": str(tmp_path / "missing-1.0.omod"), "sha256": "0" * 64})
    with pytest.raises(ConfigError) as raised:
        program_with(release)
    problems = raised.value.problems
    actual = hashlib.sha256(b"a different build of the module").hexdigest()
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{PROJECT}:app.modules[1].sha256: ") and actual in problems[0]
    assert f"pulumi config set --path 'app.modules[1].sha256' {actual}" in problems[0]
    assert problems[1].startswith(f"{PROJECT}:app.modules[2].path: no file at ")
    assert problems[2].startswith(f"{PROJECT}:app.configuration.sha256: ")


def test_every_node_runs_one_release_image_layered_from_the_listed_files(release):
    graph = program_with(release)
    layer = graph.named("app-release")
    build = layer.plain("build")
    context = PROJECT_ROOT / build["context"]
    assert build["args"]["REPLACED_MODULE_IDS"] == "idgen webservices.rest"
    assert build["args"]["REPLACE_CONFIGURATION"] == "true"
    assert build["args"]["BASE_IMAGE"] == graph.named("app-image").plain("name")
    assert graph.named("app-image").urn in layer.dependencies
    for module in release["modules"]:
        staged = context / "modules" / Path(module["path"]).name
        assert staged.read_bytes() == Path(module["path"]).read_bytes() and staged.stat().st_mode & 0o444 == 0o444
    assert (context / "configuration" / "locations" / "locations.csv").read_text() == "Uuid,Name\n"
    assert layer.plain("imageName").endswith(":" + build["args"]["RELEASE"])
    for index in range(1, NODES + 1):
        assert graph.named(f"app-{index}").plain("image") == layer.plain("imageName")


def test_the_release_changes_only_when_its_content_does(release):
    first = program_with(release).named("app-release").plain("imageName")
    assert program_with(release).named("app-release").plain("imageName") == first
    module = Path(release["modules"][0]["path"])
    module.write_bytes(b"rest module, next build")
    release["modules"][0]["sha256"] = checksum(module)
    assert program_with(release).named("app-release").plain("imageName") != first


def test_without_modules_or_configuration_the_image_is_used_as_it_is():
    graph = run_program("local")
    assert not [r for r in graph.registrations if r.name == "app-release"]
    assert graph.named("app-1").plain("image") == graph.named("app-image").outputs["imageId"]


def test_nodes_are_created_and_replaced_one_at_a_time(release):
    """drain node k -> replace node k -> admit node k -> drain node k+1: each waits for the one before."""
    graph = program_with(release)
    previous = graph.named("lb-apache")  # a dependency on the balancer component is one on its children
    for index in range(1, NODES + 1):
        drain, node, admit = (graph.named(f"app-{index}{step}") for step in ("-drain", "", "-admit"))
        assert previous.urn in drain.dependencies
        assert drain.urn in node.dependencies and node.urn in admit.dependencies
        assert node.delete_before_replace  # its fixed name and address must be free first
        assert (drain.plain("create"), admit.plain("create")) == ("drain", "admit")
        previous = admit


def test_drain_and_admit_run_together_exactly_when_the_node_changes(release):
    graph = program_with(release)
    for index in range(1, NODES + 1):
        drain, admit = graph.named(f"app-{index}-drain"), graph.named(f"app-{index}-admit")
        assert drain.plain("environment") == admit.plain("environment")
        assert drain.plain("triggers") == admit.plain("triggers")
        # The admit step takes no output of the container: a replaced container does not replace it early.
        assert all(value == drain.inputs[key] for key, value in admit.inputs.items() if key != "create")
    same = program_with(release)
    release["configuration"]["sha256"] = "0" * 64  # not checked here: only the trigger's input matters
    changed_config = Path(release["configuration"]["path"]) / "locations" / "locations.csv"
    changed_config.write_text("Uuid,Name\n1,Ward A\n")
    release["configuration"]["sha256"] = checksum(changed_config.parent.parent)
    changed = program_with(release)
    for index in range(1, NODES + 1):
        triggers = graph.named(f"app-{index}-drain").plain("triggers")
        assert same.named(f"app-{index}-drain").plain("triggers") == triggers
        assert changed.named(f"app-{index}-drain").plain("triggers") != triggers


@pytest.mark.parametrize("change", [{"app": {"nodes": NODES + 1}}, {"app": {"max_ram_percent": 70}},
                                    {"app": {"memory_mb": 3072}}, {"balancer": {"heartbeat": {"fails": 5}}}])
def test_no_change_replaces_a_node_without_draining_it_first(change):
    """Adding a node changes every node's list of its peers (the cluster's discovery name), a heartbeat every
    node's health check: whatever replaces a node's container runs its drain step first."""
    before = run_program("local")
    after = run_program("local", with_overrides(stack_config("local"), **change))
    replaced = [index for index in range(1, NODES + 1)
                if unwrap(after.named(f"app-{index}").inputs) != unwrap(before.named(f"app-{index}").inputs)]
    assert replaced, f"{change} changes no node: the test proves nothing"
    for index in replaced:
        assert (after.named(f"app-{index}-drain").plain("triggers")
                != before.named(f"app-{index}-drain").plain("triggers")), f"app-{index} would be replaced undrained"


def test_the_drain_settings_name_the_balancer_and_the_member(release):
    graph = program_with(release)
    environment = graph.named("app-2-drain").plain("environment")
    assert environment["ROLLOUT_WORKER_URL"] == "https://node2:8443"
    balancers = [graph.named("lb-apache"), graph.named("lb-apache-2")]
    assert environment["ROLLOUT_BALANCER_CONTAINERS"] == ",".join(balancer.plain("name") for balancer in balancers)
    for balancer in balancers:
        assert 'BalancerMember "https://node2:8443" route=node2' in balancer.plain("uploads")[0]["content"]
    assert environment["ROLLOUT_NODE_CONTAINER"] == graph.named("app-2").plain("name")
    assert environment["ROLLOUT_DRAIN_SECONDS"] == "30"


def test_the_deployer_refuses_a_replacement_the_provider_could_not_make(release):
    """Without delete-before-replace, the new container would need the old one's name while it exists."""
    graph = program_with(release)
    old = graph.named("app-1")
    new = type(old)(**{**old.__dict__, "delete_before_replace": False,
                       "inputs": {**old.inputs, "image": "openmrs-cluster/app-release:other"}})
    with pytest.raises(DeploymentFailed, match="name .* is taken"):
        Deployer(graph, PROJECT_ROOT, client=object())._change(old, new)
