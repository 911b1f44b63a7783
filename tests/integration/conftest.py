"""The local cluster deployed from the program's own registered inputs onto the real Docker engine."""
import docker
import docker.errors
import pytest

from local_cluster import deployed

# Backups of the shared cluster on a short schedule, so that tests/integration/test_backups.py's restore
# waits seconds for a shipment and a minute for a snapshot of the files.
BACKUP = {"ship_every_seconds": 5, "files_every_minutes": 1, "full_every_hours": 1}

# Measured figures, printed at the end of the run (the closing notes and README quote them).
FIGURES: dict[str, str] = {}


def pytest_collection_modifyitems(items):
    """Tests with a deployment of their own first, then those of the shared one: so that two clusters
    never run at once on the machine's 2 cores (each module tears its own down when it ends)."""
    items.sort(key=lambda item: "local_cluster" in item.fixturenames)


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


@pytest.fixture(scope="session")
def local_cluster(docker_client):
    with deployed(docker_client, backup=BACKUP) as cluster:
        kind = "cold: built " + ", ".join(cluster.built_images) if cluster.built_images else "warm: images cached"
        FIGURES["bring-up"] = (f"{cluster.timings['containers up']:.1f} s ({kind}), "
                               f"all members in the balancer after {cluster.timings['serving']:.1f} s")
        yield cluster
