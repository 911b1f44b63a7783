"""The whole cluster's settings, and the rules that span tiers."""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import model_validator

from ._base import _Section
from .app import AppConfig
from .aws import AwsConfig
from .balancer import BalancerConfig
from .database import DatabaseConfig
from .network import NetworkConfig
from .search import SearchConfig
from .storage import StorageConfig

# RefApp 3.0 to 3.5 run core 2.6 and 2.7, and openmrs-core before 2.8: no clustered caches, no search outside
# each node (core 2.8 added both; distro/pom.xml of each RefApp tag names its core).
PRE_CLUSTER_IMAGE = re.compile(
    r"(.*/)?(openmrs-reference-application-3-backend:3\.[0-5]|openmrs-core:2\.[0-7])([.-].*)?")


class ClusterConfig(_Section):
    platform: Literal["local", "aws"] = "local"
    app: AppConfig = AppConfig()
    balancer: BalancerConfig = BalancerConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    search: SearchConfig = SearchConfig()
    aws: Optional[AwsConfig] = None

    @model_validator(mode="after")
    def _nodes_answer_alike(self) -> "ClusterConfig":
        """Several nodes must share their caches and their search index, which needs core 2.8 or later."""
        problems = []
        if self.app.nodes > 1 and self.search.backend == "lucene":
            problems.append(
                f"search.backend: lucene keeps a separate index in each of the {self.app.nodes} nodes, so a "
                "patient registered through one is not found through another; set it to elasticsearch (the default)")
        if self.app.nodes > 1 and not self.app.build and PRE_CLUSTER_IMAGE.fullmatch(self.app.image):
            problems.append(
                f"app.image: {self.app.image} runs an OpenMRS core older than 2.8, whose nodes cannot share caches "
                "or a search index; use RefApp 3.6 or later, such as "
                "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _platform_settings(self) -> "ClusterConfig":
        if self.platform == "aws" and self.aws is None:
            raise ValueError("aws: platform aws needs this section; set at least aws.availability_zones")
        if self.platform != "aws" or self.aws is None:
            return self
        problems = []
        if self.app.build:
            problems.append("app.build: builds happen on the local platform only; on AWS push the image to a "
                            "registry and set app.image, then `pulumi config rm --path app.build`")
        if not self.aws.min_nodes <= self.app.nodes <= self.aws.max_nodes:
            problems.append(
                f"app.nodes: {self.app.nodes} must lie between aws.min_nodes ({self.aws.min_nodes}) "
                f"and aws.max_nodes ({self.aws.max_nodes}); change one of them"
            )
        heartbeat = self.balancer.heartbeat
        if heartbeat.interval_seconds < 5:
            problems.append("balancer.heartbeat.interval_seconds: an ALB checks at most every 5 s; set 5 or more")
        for key, value in (("fails", heartbeat.fails), ("passes", heartbeat.passes)):
            if not 2 <= value <= 10:
                problems.append(f"balancer.heartbeat.{key}: an ALB counts 2 to 10 checks (got {value}); set one in that range")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _health_path_inside_the_application(self) -> "ClusterConfig":
        heartbeat_path = self.balancer.heartbeat.path
        if not heartbeat_path.startswith(self.app.context_path + "/"):
            raise ValueError(
                f"balancer.heartbeat.path: {heartbeat_path!r} is outside app.context_path "
                f"{self.app.context_path!r}; set it to {self.app.context_path}/health/started"
            )
        return self
