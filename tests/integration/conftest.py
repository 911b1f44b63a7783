"""The local cluster deployed from the program's own registered inputs onto the real Docker engine."""
import sys
from pathlib import Path

import docker
import docker.errors
import pytest

from components.checksums import checksum
from local_cluster import BACKUP, MONITORING, deployed

# Measured figures, printed at the end of the run (the closing notes and README quote them).
FIGURES: dict[str, str] = {}


def shares_the_cluster(item) -> bool:
    """Whether a test uses the shared cluster (local_cluster below), not one its module deploys under that name."""
    definitions = item._fixtureinfo.name2fixturedefs.get("local_cluster", ())
    return bool(definitions) and not definitions[-1].baseid.endswith(".py")


def pytest_collection_modifyitems(items):
    """Tests with a deployment of their own first, then those of the shared one: so that two clusters
    never run at once on the machine's 2 cores (each module tears its own down when it ends)."""
    items.sort(key=shares_the_cluster)


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    """Each failure printed when it happens, with the figures so far: a run cut short by CI's time limit
    still says what failed and why (pytest itself prints failures only at the end)."""
    if report.failed:
        sys.stdout.write(f"\n{'=' * 30} {report.nodeid} ({report.when}) FAILED {'=' * 30}\n"
                         f"{report.longreprtext}\n{FIGURES}\n")
        sys.stdout.flush()


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def figures() -> dict[str, str]:
    return FIGURES


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
        client.images.get("debian:bookworm-slim")
    except (docker.errors.DockerException, docker.errors.ImageNotFound) as error:
        pytest.fail(f"the integration tests need a running Docker engine and debian:bookworm-slim: {error}")
    return client


def module(folder: Path, file_name: str) -> dict[str, str]:
    """A module file (its content stands for the module's code) and the stack entry that lists it."""
    path = folder / file_name
    path.write_bytes(f"omod {file_name}\n".encode() * 1000)
    return {"path": str(path), "sha256": checksum(path)}


def configuration(folder: Path, files: dict[str, str]) -> dict[str, str]:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    return {"path": str(folder), "sha256": checksum(folder)}


@pytest.fixture(scope="session")
def releases(tmp_path_factory) -> tuple[dict, dict]:
    """Release 1, and release 2: one module upgraded, one added, the configuration changed."""
    modules = tmp_path_factory.mktemp("modules")
    first = {
        "modules": [module(modules, "webservices.rest-2.44.0.omod"), module(modules, "idgen-4.14.0.omod")],
        "configuration": configuration(tmp_path_factory.mktemp("configuration-1"), {
            "locations/locations.csv": "Uuid,Name\n1,Ward A\n", "globalproperties/gp.xml": "<config/>\n"}),
    }
    second = {
        "modules": [module(modules, "webservices.rest-2.45.0.omod"), first["modules"][1],
                    module(modules, "attachments-3.6.0.omod")],
        "configuration": configuration(tmp_path_factory.mktemp("configuration-2"), {
            "locations/locations.csv": "Uuid,Name\n1,Ward A\n2,Ward B\n", "globalproperties/gp.xml": "<config/>\n"}),
    }
    return first, second


@pytest.fixture(scope="session")
def local_cluster(docker_client, releases):
    """The cluster most tests share, on release 1 (tests/integration/test_rolling_update.py rolls it to 2)."""
    with deployed(docker_client, backup=BACKUP, app=releases[0], monitoring=MONITORING) as cluster:
        kind = "cold: built " + ", ".join(cluster.built_images) if cluster.built_images else "warm: images cached"
        FIGURES["bring-up"] = (f"{cluster.timings['containers up']:.1f} s ({kind}), "
                               f"all members in the balancer after {cluster.timings['serving']:.1f} s")
        yield cluster
