"""The stack's configuration as the program will read it, taken from the stack's file so that the checks
know the platform and the storage before the stack exists in any backend."""
from pathlib import Path

import yaml

from components.config import PROJECT, SECRET_KEYS, ClusterConfig, decode_value, parse_cluster_config


def read_cluster_config(stack_file: Path) -> ClusterConfig:
    """Raises ConfigError as the program would; a stack without a file has every default."""
    document = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None
    config = (document or {}).get("config") or {}
    prefix = f"{PROJECT}:"
    values = {
        key.removeprefix(prefix): decode_value(raw) for key, raw in config.items()
        if key.startswith(prefix) and key.removeprefix(prefix) not in SECRET_KEYS
    }
    return parse_cluster_config(values)
