"""The whole cluster's settings, and the rules that span tiers."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import model_validator

from ._base import _Section
from .app import AppConfig
from .aws import AwsConfig
from .balancer import BalancerConfig
from .database import DatabaseConfig
from .network import NetworkConfig
from .storage import StorageConfig

class ClusterConfig(_Section):
    platform: Literal["local", "aws"] = "local"
    app: AppConfig = AppConfig()
    balancer: BalancerConfig = BalancerConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    aws: Optional[AwsConfig] = None

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
