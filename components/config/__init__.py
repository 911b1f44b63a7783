"""The cluster's configuration: one typed model, read from the stack and validated before any resource exists.

Every rule that a value breaks is reported at once, each with its stack key and how to fix it, so a user
fixes a stack file in one pass instead of one `pulumi up` per mistake. One module per tier.
"""
from ..checksums import PROJECT
from .app import MAX_APP_NODES, OFFICIAL_BACKEND_IMAGE, AppConfig, module_id
from .cluster import ClusterConfig
from .stack import (
    SECRET_KEYS, STRUCTURED_KEYS, ConfigError, StackConfig, decode_value, parse_cluster_config, read_stack_config,
)

__all__ = [
    "MAX_APP_NODES", "OFFICIAL_BACKEND_IMAGE", "PROJECT", "SECRET_KEYS", "STRUCTURED_KEYS", "AppConfig",
    "ClusterConfig", "ConfigError", "StackConfig", "decode_value", "module_id", "parse_cluster_config",
    "read_stack_config",
]
