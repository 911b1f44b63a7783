"""Run on the deploying machine by the command provider, at every preview and update (static_content.py): the
O3 application's built files for one digest of their inputs, built from images/o3-frontend only once.

Its working folder (.build/o3-frontend/) keeps <digest>/, the image's /usr/share/openmrs-spa/; a digest found
there returns at once. The files are copied into a .partial- folder and renamed when complete, so that an
interrupted copy is never taken for a build. Other digests stay (several stacks may deploy from one checkout);
the folder may be deleted at any time, at the cost of a build. Standard library only: it runs by its path."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Where the image holds the built application (images/o3-frontend/Dockerfile).
BUILT_AT = "/usr/share/openmrs-spa"
PARTIAL = ".partial-"


def docker(*arguments: str) -> str:
    return subprocess.run(["docker", *arguments], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def build(digest: str, tag: str, context: str, build_args: dict[str, str], here: Path) -> Path:
    target = here / digest
    if target.is_dir():
        return target
    for partial in here.glob(f"{PARTIAL}*"):
        shutil.rmtree(partial)
    # Its progress goes to the deployment's log, as the build of an image the provider makes does.
    subprocess.run(["docker", "build", "--tag", tag, *(f"--build-arg={key}={value}" for key, value in sorted(
        build_args.items())), context], check=True, stdout=sys.stderr)
    container = docker("create", tag, "true")  # never started: only its files are read
    partial = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=here))
    try:
        docker("cp", f"{container}:{BUILT_AT}/.", str(partial))
    finally:
        docker("rm", container)
    if not (partial / "index.html").is_file():
        shutil.rmtree(partial)
        raise SystemExit(f"{tag} has no {BUILT_AT}/index.html: images/o3-frontend must leave the built application "
                         "there")
    partial.rename(target)
    return target


def main() -> int:
    digest = os.environ["FRONTEND_DIGEST"]
    target = build(digest, os.environ["FRONTEND_TAG"], os.environ["FRONTEND_CONTEXT"],
                   json.loads(os.environ["FRONTEND_BUILD_ARGS"]), Path.cwd())
    print(f"O3 application {digest}: {sum(1 for path in target.rglob('*') if path.is_file())} files in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
