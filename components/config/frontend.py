"""frontend.*: the O3 user interface, built from the npm registry and served apart from Tomcat."""
from __future__ import annotations

import json
import re
from typing import Optional

from pydantic import Field, field_validator, model_validator

from ..checksums import PROJECT_ROOT, resolve
from ._base import _Section

FRONTEND_CONTEXT = "images/o3-frontend"
# The RefApp 3.7.0 module set, with the exact versions that release assembles (distro frontend/).
ASSEMBLE_CONFIG = PROJECT_ROOT / FRONTEND_CONTEXT / "spa-assemble-config.json"
# What the app shell needs to log a user in and show anything after: without them the login page is empty.
LOGIN_MODULES = ("@openmrs/esm-login-app", "@openmrs/esm-primary-navigation-app", "@openmrs/esm-home-app")
MODULE_NAME = re.compile(r"@[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*")
# An exact version (npm's semver): a range would build different files from the same stack.
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
LOCALE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
# The hashes of the two onclick handlers of the page's error template: location.reload(), copyText(this.parentElement).
ERROR_PAGE_HANDLERS = ("'sha256-9gOBGqEQINNDuds+tkXbNzih6klbz+KeCyxEj4KRLeM='",
                       "'sha256-MWegsaXCFm3Gxax2cOplvmRt1yxJ/Cl/mjVO/jnl3EM='")


def _read(path: str) -> str:
    """A file the stack names, relative to the project as the Pulumi CLI runs it, or absolute."""
    try:
        return resolve(path).read_text()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None


def refapp_modules() -> dict[str, str]:
    """The checked-in module set: name -> exact version."""
    return dict(json.loads(ASSEMBLE_CONFIG.read_text())["frontendModules"])


class FrontendConfig(_Section):
    # Serve the O3 application at <context path>/spa/; false: the backend only, as before.
    enabled: bool = True
    # Added to the RefApp 3.7.0 set, or replacing a module's version there: name -> exact version.
    modules: dict[str, str] = {}
    # Taken out of the RefApp set (by name).
    removed_modules: list[str] = []
    # Configuration files (JSON) the application loads after its own, as O3's SPA_CONFIG_URLS.
    config_urls: list[str] = []
    # The language the application starts in before a user chooses, as O3's SPA_DEFAULT_LOCALE; None: O3's own.
    default_locale: Optional[str] = None
    # Local: how many static servers (two survive the loss of one).
    servers: int = Field(2, ge=2, le=8)
    # A PEM file of the authorities that re-sign this machine's traffic to the npm registry (a TLS-inspecting
    # proxy), for the build to trust; None: the registry's own certificate, checked against the public ones.
    registry_authorities_file: Optional[str] = None

    @field_validator("modules")
    @classmethod
    def _exact_versions(cls, modules: dict[str, str]) -> dict[str, str]:
        for name, version in modules.items():
            if not MODULE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an npm package name of a scope, such as @openmrs/esm-login-app")
            if not EXACT_VERSION.fullmatch(version):
                raise ValueError(f"{name}: {version!r} is not an exact version; give one such as 5.3.2, as a range "
                                 "would build other files from the same stack")
        return modules

    @field_validator("config_urls")
    @classmethod
    def _config_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not (url.startswith("https://") or url.startswith("/")) or any(c.isspace() for c in url):
                raise ValueError(f"{url!r} must be a path on this site (/openmrs/spa/config.json) or an https:// URL")
        return urls

    @field_validator("registry_authorities_file")
    @classmethod
    def _authorities(cls, path: Optional[str]) -> Optional[str]:
        if path is not None and "-----BEGIN CERTIFICATE-----" not in _read(path):
            raise ValueError(f"{path} holds no PEM certificate; give the file of the proxy's authority certificates")
        return path

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, locale: Optional[str]) -> Optional[str]:
        if locale is not None and not LOCALE.fullmatch(locale):
            raise ValueError("must be a locale such as en, fr or pt_BR")
        return locale

    @model_validator(mode="after")
    def _can_log_in(self) -> "FrontendConfig":
        unknown = sorted(set(self.removed_modules) - set(refapp_modules()))
        if unknown:
            raise ValueError(f"frontend.removed_modules: {', '.join(unknown)} not in the RefApp set; remove "
                             f"{'them' if len(unknown) > 1 else 'it'} from the list")
        missing = [name for name in LOGIN_MODULES if name not in self.module_set()]
        if self.enabled and missing:
            raise ValueError(f"frontend.removed_modules: without {', '.join(missing)} no one can log in; keep "
                             f"{'them' if len(missing) > 1 else 'it'} (or set frontend.enabled to false)")
        return self

    def module_set(self) -> dict[str, str]:
        """The modules the application is assembled from, in a stable order."""
        modules = {name: version for name, version in refapp_modules().items() if name not in self.removed_modules}
        return dict(sorted({**modules, **self.modules}.items()))

    def assemble_config(self) -> str:
        """The assemble configuration the build gets: the digest of this text keys the built application."""
        return json.dumps({"frontendModules": self.module_set()}, indent=2, sort_keys=True)

    def build_args(self) -> dict[str, str]:
        """The build arguments of images/o3-frontend: everything the built files depend on besides the context."""
        return {"ASSEMBLE_CONFIG": self.assemble_config(), "SPA_CONFIG_URLS": ",".join(self.config_urls),
                "SPA_DEFAULT_LOCALE": self.default_locale or "",
                "REGISTRY_AUTHORITIES": _read(self.registry_authorities_file) if self.registry_authorities_file else ""}

    def content_security_policy(self) -> str:
        """What the whole application needs, and no more: scripts from this site only (the build moved the
        page's inline script to a file), with eval (the form engine evaluates forms' expressions with it) and the
        two onclick handlers of the page's error template (Reload, copy); inline styles (the modules' components
        set them: the login page breaks without); images from data: and blob: URLs (bundled icons, previews of
        attachments) and workers from blob: URLs (the code editors'); requests to this site and to the origins
        of configuration files on other sites."""
        origins = sorted({"/".join(url.split("/", 3)[:3]) for url in self.config_urls if url.startswith("https://")})
        return " ".join([
            "default-src 'self'; script-src 'self' 'unsafe-eval' 'unsafe-hashes'", *ERROR_PAGE_HANDLERS,
            "; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'", *origins,
            "; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'",
        ]).replace(" ;", ";")
