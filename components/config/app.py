"""app.*: the OpenMRS nodes, their image, modules and configuration."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, field_validator

from ._base import _matching, _Section

OFFICIAL_BACKEND_IMAGE = "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo"
MAX_APP_NODES = 16

SHA256 = r"[0-9a-f]{64}"
# <module id>-<version>.omod, as the module repository and the SDK name them.
MODULE_FILE = re.compile(r"(?P<id>[a-zA-Z][a-zA-Z0-9_.]*?)-(?P<version>\d[A-Za-z0-9._-]*)\.omod")


def module_id(path: str) -> Optional[str]:
    match = MODULE_FILE.fullmatch(path.rsplit("/", 1)[-1])
    return match["id"] if match else None


class ModuleArtifact(_Section):
    """An OpenMRS module file, by path and the sha256 of its content."""

    path: str
    sha256: str = Field(pattern=SHA256)

    @field_validator("path")
    @classmethod
    def _omod(cls, path: str) -> str:
        if module_id(path) is None:
            raise ValueError("must name a module file <module id>-<version>.omod, such as modules/webservices.rest-2.44.0.omod")
        return path


class ConfigurationFolder(_Section):
    """An Initializer-style configuration folder, by path and its checksum (python -m components.checksums)."""

    path: str
    sha256: str = Field(pattern=SHA256)


class SchedulerKeeperConfig(_Section):
    """How the scheduler keeper (images/scheduler-keeper) keeps each repeating task on one node."""

    poll_seconds: int = Field(10, ge=2, le=300)
    # How long the node running the tasks may be away (a restart) before another node takes them over.
    grace_seconds: int = Field(60, ge=0, le=3600)


class AppConfig(_Section):
    nodes: int = Field(3, ge=2, le=MAX_APP_NODES)
    image: str = OFFICIAL_BACKEND_IMAGE
    build: Optional[str] = None
    port: int = Field(8080, ge=1, le=65535)
    context_path: str = "/openmrs"
    start_period_seconds: int = Field(900, ge=0, le=7200)
    memory_mb: Optional[int] = Field(None, ge=512)
    # The share of the node's memory (its container or task limit) that the JVM's heap may grow to; the
    # JVM's own default is a quarter, which leaves most of a Fargate task unused.
    max_ram_percent: int = Field(75, ge=25, le=90)
    # Layered over the image's own distribution: a listed module replaces the image's one with its id,
    # and the configuration folder replaces the image's configuration.
    modules: list[ModuleArtifact] = []
    configuration: Optional[ConfigurationFolder] = None
    # How long a rolling update waits for a drained node's running requests before replacing it.
    drain_seconds: int = Field(30, ge=0, le=600)
    scheduler: SchedulerKeeperConfig = SchedulerKeeperConfig()

    @field_validator("modules")
    @classmethod
    def _one_file_per_module(cls, modules: list[ModuleArtifact]) -> list[ModuleArtifact]:
        ids = [module_id(module.path) for module in modules]
        repeated = sorted({each for each in ids if ids.count(each) > 1})
        if repeated:
            raise ValueError(f"lists more than one file of module {', '.join(repeated)}; keep one version of each")
        return modules

    @field_validator("context_path")
    @classmethod
    def _context_path(cls, path: str) -> str:
        return _matching(path, r"/[A-Za-z0-9_-]+", "must be one path segment such as /openmrs")
