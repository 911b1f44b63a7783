"""Builds the images the integration tests deploy, for scripts/test to run beside the unit tests: the O3
frontend's build alone takes minutes, most of them spent waiting on the npm registry, time the CPU-bound unit
tests leave to it. The deployments then find every image built (the deployer builds only a missing tag)."""
import docker

from deployer import Deployer
from local_cluster import BACKUP, MONITORING, PROJECT_ROOT, deployed_config
from program import run_program

# The shared cluster's stack (conftest.py) and test_haproxy.py's; the hosts' images are a subset.
STACKS = {"itest": {"backup": BACKUP, "monitoring": MONITORING},
          "haproxy": {"engine": "haproxy", "monitoring": {"enabled": True}}}


def main() -> None:
    client = docker.from_env()
    for stack, settings in STACKS.items():
        Deployer(run_program(stack, deployed_config(**settings)), PROJECT_ROOT, client).build_images()


if __name__ == "__main__":
    main()
