"""Each component's platform-specific half lives in components/<platform>/<module>.py."""
import importlib
from types import ModuleType


def implementation(platform: str, module: str) -> ModuleType:
    """The module that builds a component on `platform`, imported only when that platform is used."""
    return importlib.import_module(f"{__package__}.{platform}.{module}")
