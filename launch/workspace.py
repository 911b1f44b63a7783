"""Where Pulumi keeps this project's state and each stack's secrets passphrase when the user has not
chosen: under the user's XDG directories, handed to pulumi through its environment so that the user's
own `pulumi login` is never changed."""
from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

APPLICATION = "openmrs-cluster"


def _xdg_directory(environ: Mapping[str, str], variable: str, default_under_home: str) -> Path:
    """The XDG base directory spec ignores a relative or empty value."""
    value = environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / default_under_home


def _make_private_directory(path: Path) -> bool:
    """True if it had to be created (owner-only: it holds state and passphrases)."""
    if path.is_dir():
        return False
    path.mkdir(parents=True)
    path.chmod(0o700)  # mkdir's mode would be cut by the umask
    return True


def backend_url(environ: Mapping[str, str]) -> str:
    if environ.get("PULUMI_BACKEND_URL"):
        return environ["PULUMI_BACKEND_URL"]
    state = _xdg_directory(environ, "XDG_DATA_HOME", ".local/share") / APPLICATION / "pulumi-state"
    if _make_private_directory(state):
        print(f"Pulumi keeps this project's stacks in {state} (set PULUMI_BACKEND_URL to keep them "
              f"elsewhere).", file=sys.stderr)
    return f"file://{state}"


def passphrase_environment(stack: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Nothing when the user set a passphrase the way Pulumi reads one (an empty PULUMI_CONFIG_PASSPHRASE
    counts, an empty PULUMI_CONFIG_PASSPHRASE_FILE does not); otherwise the stack's own file."""
    if "PULUMI_CONFIG_PASSPHRASE" in environ or environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        return {}
    directory = _xdg_directory(environ, "XDG_CONFIG_HOME", ".config") / APPLICATION
    passphrase_file = directory / f"{stack}.passphrase"
    if not passphrase_file.exists():
        _make_private_directory(directory)
        with os.fdopen(os.open(passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(32))
        print(f"Created the secrets passphrase of stack {stack}: {passphrase_file}\n"
              f"Pulumi encrypts the stack's secrets (the cluster's passwords) with it. Back this file up: "
              f"losing it loses access to the stack's secrets.", file=sys.stderr)
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file)}


def pulumi_environment(stack: str, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the backend and passphrase that every pulumi command of this run gets."""
    return {**environ, "PULUMI_BACKEND_URL": backend_url(environ), **passphrase_environment(stack, environ)}
