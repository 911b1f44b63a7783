"""Checksums of the modules and configuration a stack deploys, checked before any resource is made.

`python -m components.checksums <path>...` prints the value to put in the stack for each file or folder
(for a single file it is the same as `sha256sum`).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import AppConfig

PROJECT = "openmrs-cluster"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_checksum(folder: Path) -> str:
    """One checksum for a folder: every file's relative path and content, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_checksum(path)}\n".encode())
    return digest.hexdigest()


def build_digest(context: Path, build_args: dict[str, str] | None = None) -> str:
    """What an image built from `context` with `build_args` depends on: every file and argument. It tags the
    image, so a changed Dockerfile or argument gives a new tag and new containers, and an unchanged one none."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode())
        digest.update(path.read_bytes())
    for key, value in sorted((build_args or {}).items()):
        digest.update(f"\0{key}={value}".encode())
    return digest.hexdigest()[:12]


def checksum(path: Path) -> str:
    return folder_checksum(path) if path.is_dir() else file_checksum(path)


def resolve(path: str) -> Path:
    """Paths in the stack are relative to the project, as the Pulumi CLI runs it, or absolute."""
    return (PROJECT_ROOT / path).resolve()


def checksum_problems(app: "AppConfig") -> list[str]:
    """Every listed artifact that is missing or whose content differs from its checksum, with the fix."""
    problems = []
    entries = [(f"app.modules[{index}]", module) for index, module in enumerate(app.modules)]
    if app.configuration:
        entries.append(("app.configuration", app.configuration))
    for key, entry in entries:
        path = resolve(entry.path)
        must_be_folder = key == "app.configuration"
        if not (path.is_dir() if must_be_folder else path.is_file()):
            kind = "folder" if must_be_folder else "file"
            problems.append(f"{PROJECT}:{key}.path: no {kind} at {path}; fix the path (relative to the project)")
            continue
        actual = checksum(path)
        if actual != entry.sha256:
            problems.append(
                f"{PROJECT}:{key}.sha256: {path} has checksum {actual}, not {entry.sha256}; if this content "
                f"is the one to deploy, `pulumi config set --path '{key}.sha256' {actual}`"
            )
    return problems


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python -m components.checksums <module.omod | configuration folder>...", file=sys.stderr)
        return 2
    for path in paths:
        print(f"{checksum(Path(path))}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
