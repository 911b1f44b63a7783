"""A release: the app image plus the listed modules and configuration folder, checked against their checksums
and layered into one image, so that every node runs the same bytes.

Why an image layer rather than a copy into shared storage: the official image deletes and re-copies
/openmrs/data/{modules,configuration} from /openmrs/distribution at every start, so the distribution is
the one place a node reads them from; an image is immutable, named by its content, and ECS pulls it the
same way Docker does, so a node can never start with half of a copy or with a neighbour's newer one.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from .checksums import PROJECT_ROOT, resolve
from .config import AppConfig, module_id

LAYER_DOCKERFILE = PROJECT_ROOT / "images" / "app-release" / "Dockerfile"
STAGING_ROOT = PROJECT_ROOT / ".build"


@dataclass(frozen=True)
class Release:
    """What the release layer is built from; its digest names the image, so a change makes new nodes."""

    base_image: str
    app: AppConfig

    @property
    def digest(self) -> str:
        digest = hashlib.sha256(self.base_image.encode())
        digest.update(LAYER_DOCKERFILE.read_bytes())
        for module in self.app.modules:
            digest.update(f"module {Path(module.path).name} {module.sha256}\n".encode())
        if self.app.configuration:
            digest.update(f"configuration {self.app.configuration.sha256}\n".encode())
        return digest.hexdigest()[:12]

    @property
    def build_args(self) -> dict[str, str]:
        return {
            "BASE_IMAGE": self.base_image,
            "RELEASE": self.digest,
            "REPLACED_MODULE_IDS": " ".join(module_id(module.path) for module in self.app.modules),
            "REPLACE_CONFIGURATION": "true" if self.app.configuration else "false",
        }

    def stage(self) -> Path:
        """The build context: the layer's Dockerfile, the modules and the configuration, readable by all.

        Named by the digest and rebuilt from the checked files, so staging again gives the same bytes."""
        context = STAGING_ROOT / f"release-{self.digest}"
        if context.exists():
            shutil.rmtree(context)
        (context / "modules").mkdir(parents=True)
        (context / "configuration").mkdir()
        _copy_readable(LAYER_DOCKERFILE, context / "Dockerfile")
        for module in self.app.modules:
            _copy_readable(resolve(module.path), context / "modules" / Path(module.path).name)
        if self.app.configuration:
            source = resolve(self.app.configuration.path)
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                _copy_readable(path, context / "configuration" / path.relative_to(source))
        return context


def _copy_readable(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o644)
