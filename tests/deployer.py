"""Creates the pulumi-docker and pulumi-command resources that the program registered, with their exact
inputs, on real engines and this machine: each resource on the engine of the Docker provider it names (a
host's, reached as the provider reaches it), or on this machine's own engine.

The Pulumi CLI and its providers cannot be installed here, so this stands in for `pulumi up`: it applies
each input the way the provider does and refuses any input it does not know how to apply, so that nothing
the program asks for is silently dropped. Resources are created in dependency order, independent ones at
the same time, as the engine does. A second graph is applied as an update: unchanged resources stay, a
changed container is replaced (delete-before-replace when the program asks for it, else create-before-
delete, which fails on a taken name as the provider does), a command whose triggers changed runs again.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors
import docker.types

from components.local.engines import Engine, EngineAddress
from program import Graph, Registration, unwrap

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/image:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"
PROVIDER = "pulumi:providers:docker"

# What each resource type's handler applies; any other input fails the deployment.
APPLIED_INPUTS = {
    NETWORK: {"name", "driver", "internal", "ipamConfigs", "options"},
    PROVIDER: {"host", "sshOpts", "caMaterial", "certMaterial", "keyMaterial", "version"},
    VOLUME: {"name"},
    IMAGE: {"imageName", "build", "skipPush", "buildOnPreview"},  # buildOnPreview acts in previews only
    COMMAND: {"create", "interpreter", "dir", "environment", "triggers"},
    REMOTE_IMAGE: {"name", "keepLocally"},
    CONTAINER: {
        "name", "hostname", "image", "envs", "command", "uploads", "volumes", "mounts", "networksAdvanced",
        "networkMode", "ports", "healthcheck", "capabilities", "restart", "memory", "stopTimeout", "wait",
        "waitTimeout", "mustRun", "attach", "destroyGraceSeconds", "devices", "securityOpts", "hosts", "sysctls",
        "entrypoints", "user", "logOpts",
    },
}


class UnsupportedInput(Exception):
    pass


class DeploymentFailed(Exception):
    pass


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if not match:
        raise UnsupportedInput(f"duration {duration!r}")
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def _nanoseconds(duration: str) -> int:
    return int(_seconds(duration) * 1_000_000_000)


def _schema_types(value: Any) -> Any:
    """Protobuf carries every number as a double; the provider's schema types these as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _schema_types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_schema_types(item) for item in value]
    return value


def _tar(files: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for upload in files:
            content = upload["content"].encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(content)
            info.mode = int(upload.get("permissions", "0755" if upload.get("executable") else "0644"), 8)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _deployable(graph: Graph) -> list[Registration]:
    """The graph's resources that act on this machine, each checked for inputs the deployer cannot apply."""
    unknown = [r for r in graph.registrations
               if r.type.startswith(("docker:", "command:", "pulumi:providers:")) and r.type not in APPLIED_INPUTS]
    if unknown:
        raise UnsupportedInput(f"resource types the deployer cannot apply: {sorted({r.type for r in unknown})}")
    resources = [r for r in graph.registrations if r.type in APPLIED_INPUTS]
    for resource in resources:
        # "<urn>::<id>", the urn's third part its type, after the types of its parents and a "$"
        if resource.provider and resource.provider.split("::")[2].rsplit("$", 1)[-1] != PROVIDER:
            raise UnsupportedInput(f"{resource.name}: provider {resource.provider}")
        extra = set(resource.inputs) - APPLIED_INPUTS[resource.type]
        if extra:
            raise UnsupportedInput(f"{resource.name} ({resource.type}): inputs {sorted(extra)}")
    return resources


class Deployer:
    def __init__(self, graph: Graph, project_root: Path, client: docker.DockerClient | None = None):
        self.resources = _deployable(graph)
        self.graph = graph
        self.project_root = project_root
        self.client = client or docker.from_env()
        # A client per host's engine, by provider URN, made when its provider resource is created.
        self.engines: dict[str, Engine] = {}
        self.engine_addresses: dict[str, EngineAddress] = {}
        self.created: list[tuple[str, str, str]] = []  # (type, docker name, provider URN), in creation order
        self.image_ids: dict[str, str] = {}  # a mocked RemoteImage id -> the engine's image id
        # What each step did and when it ended: (monotonic time, "create"/"replace"/"update"/"delete", name).
        self.steps: list[tuple[float, str, str]] = []

    def client_of(self, resource: Registration) -> docker.DockerClient:
        """The engine that `resource` lives on: its Docker provider's, or this machine's."""
        return self._engine_client(self._provider_of(resource))

    @staticmethod
    def _provider_of(resource: Registration) -> str:
        return resource.provider.rsplit("::", 1)[0]

    def _engine_client(self, provider: str) -> docker.DockerClient:
        return self.engines[provider].client if provider else self.client

    # -- ordering -------------------------------------------------------------------------------------
    def _descendants(self, urn: str) -> set[str]:
        found, frontier = set(), {urn}
        while frontier:
            children = {r.urn for r in self.graph.registrations if r.parent in frontier}
            frontier = children - found
            found |= children
        return found

    def _prerequisites(self, resource: Registration) -> set[str]:
        deployable = {r.urn for r in self.resources}
        needed = {self._provider_of(resource)} & deployable
        custom = {r.urn for r in self.graph.registrations if r.custom}
        for urn in resource.dependencies:
            # As the engine: a component stands for its children, a custom resource for itself only.
            needed |= ({urn} | (set() if urn in custom else self._descendants(urn))) & deployable
        return needed

    def up(self) -> None:
        """Creates everything in dependency order; independent resources are created concurrently."""
        self._apply(lambda resource: self._create(resource))

    def update(self, graph: Graph) -> None:
        """Applies `graph` over what `up` made, as `pulumi up` applies a changed program."""
        resources = _deployable(graph)
        previous = {r.urn: r for r in self.resources}
        # As each `pulumi up` does, reach every host's engine afresh: an ssh connection kept idle since the
        # last run may have been closed by its far end, and the SDK does not retry a request sent on it.
        for urn, address in self.engine_addresses.items():
            self.engines[urn].close()
            self.engines[urn] = Engine(address)
        self.graph, self.resources = graph, resources
        self._apply(lambda resource: self._change(previous.get(resource.urn), resource))
        current = {r.urn for r in resources}
        for old in reversed([r for r in previous.values() if r.urn not in current]):
            self._delete(old)

    def build_images(self) -> None:
        """Every image of the graph, at once, and nothing else: what tests/prebuild.py starts early."""
        images = [r for r in self.resources if r.type == IMAGE]
        with ThreadPoolExecutor(max_workers=max(len(images), 1)) as pool:
            for built in [pool.submit(self._create, image) for image in images]:
                built.result()

    def _apply(self, step: Callable[[Registration], None]) -> None:
        pending = {r.urn: r for r in self.resources}
        needs = {r.urn: self._prerequisites(r) for r in self.resources}
        done: set[str] = set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            running = {}
            while pending or running:
                for urn in [u for u in pending if needs[u] <= done]:
                    running[pool.submit(step, pending.pop(urn))] = urn
                if not running:
                    raise DeploymentFailed(f"dependency cycle among {sorted(pending)}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    done.add(running.pop(future))

    def _create(self, resource: Registration, action: str = "create") -> None:
        handler: Callable[[dict[str, Any]], None] = {
            NETWORK: self._network, VOLUME: self._volume, IMAGE: self._image,
            REMOTE_IMAGE: self._remote_image, CONTAINER: self._container, COMMAND: self._command,
            PROVIDER: self._provider,
        }[resource.type]
        handler(_schema_types(unwrap(resource.inputs)), resource)
        self.steps.append((time.monotonic(), action, resource.name))

    def _change(self, old: Registration | None, new: Registration) -> None:
        """One resource's step in an update: create, keep, run again, or replace, as the provider decides."""
        if old is None:
            return self._create(new)
        if unwrap(old.inputs) == unwrap(new.inputs):
            return
        if new.type == COMMAND:
            # A change of triggers replaces the command, any other change updates it: either runs `create`
            # again (no `update` command is given), and the old one has no `delete` to run.
            return self._create(new, "replace" if old.plain("triggers") != new.plain("triggers") else "update")
        if new.type == IMAGE:
            return self._create(new, "replace")
        if new.type == PROVIDER:
            raise UnsupportedInput(f"{new.name}: changing a host's engine")
        if new.type != CONTAINER:
            raise UnsupportedInput(f"{new.name}: changing a {new.type}")
        if not new.delete_before_replace and old.plain("name") == new.plain("name"):
            raise DeploymentFailed(f"{new.name}: create-before-delete would fail, the name {new.plain('name')} is taken")
        self._delete(old)
        self._create(new, "replace")

    def _delete(self, resource: Registration) -> None:
        """As the providers delete: a container is stopped first when it has destroyGraceSeconds, then removed."""
        inputs = _schema_types(unwrap(resource.inputs))
        api = self.client_of(resource).api
        if resource.type == CONTAINER:
            with contextlib.suppress(docker.errors.NotFound):
                if inputs.get("destroyGraceSeconds"):
                    api.stop(inputs["name"], timeout=inputs["destroyGraceSeconds"])
                api.remove_container(inputs["name"], force=True)
        elif resource.type in (NETWORK, VOLUME):
            remove = api.remove_network if resource.type == NETWORK else api.remove_volume
            with contextlib.suppress(docker.errors.NotFound):
                remove(inputs["name"])
        self.steps.append((time.monotonic(), "delete", resource.name))

    # -- handlers -------------------------------------------------------------------------------------
    def _provider(self, inputs: dict[str, Any], resource: Registration) -> None:
        """As the Docker provider connects: the host's URL, with ssh options or TLS material."""
        tls = None
        if inputs.get("certMaterial"):
            tls = {"ca_pem": inputs["caMaterial"], "cert_pem": inputs["certMaterial"], "key_pem": inputs["keyMaterial"]}
        # A provider's inputs are its configuration, where a list travels as JSON text.
        ssh_options = json.loads(inputs.get("sshOpts", "[]"))
        address = EngineAddress(url=inputs["host"], ssh_options=ssh_options, tls=tls)
        engine = Engine(address)
        engine.client.ping()
        self.engines[resource.urn], self.engine_addresses[resource.urn] = engine, address

    def _network(self, inputs: dict[str, Any], resource: Registration) -> None:
        pools = [
            docker.types.IPAMPool(subnet=config.get("subnet"), iprange=config.get("ipRange"),
                                  gateway=config.get("gateway"))
            for config in inputs.get("ipamConfigs", [])
        ]
        self.client_of(resource).networks.create(
            inputs["name"],
            driver=inputs.get("driver", "bridge"),
            options=inputs.get("options"),
            internal=inputs.get("internal", False),
            ipam=docker.types.IPAMConfig(pool_configs=pools) if pools else None,
        )
        self.created.append((NETWORK, inputs["name"], self._provider_of(resource)))

    def _volume(self, inputs: dict[str, Any], resource: Registration) -> None:
        self.client_of(resource).volumes.create(inputs["name"])
        self.created.append((VOLUME, inputs["name"], self._provider_of(resource)))

    def _image(self, inputs: dict[str, Any], resource: Registration) -> None:
        build = inputs["build"]
        if not set(build) <= {"context", "args"}:
            raise UnsupportedInput(f"{resource.name}: build inputs {sorted(set(build) - {'context', 'args'})}")
        if not inputs.get("skipPush"):
            raise UnsupportedInput(f"{resource.name}: pushing images")
        client = self.client_of(resource)
        try:
            client.images.get(inputs["imageName"])
        except docker.errors.ImageNotFound:
            client.images.build(path=str(self.project_root / build["context"]), tag=inputs["imageName"], rm=True,
                                     buildargs=build.get("args"))

    def _command(self, inputs: dict[str, Any], resource: Registration) -> None:
        """As pulumi-command runs `create`: the interpreter with the command appended, in `dir`, with `environment`
        (a pulled image's id in it resolved to the engine's, as the real engine would have given it)."""
        interpreter = inputs.get("interpreter", ["/bin/sh", "-c"])
        environment = {key: self.image_ids.get(value, value) for key, value in inputs.get("environment", {}).items()}
        result = subprocess.run(
            [*interpreter, inputs["create"]], cwd=inputs.get("dir"), env={**os.environ, **environment},
            capture_output=True, text=True, timeout=900,
        )
        if result.returncode != 0:
            raise DeploymentFailed(f"{resource.name} exited {result.returncode}: {result.stdout}{result.stderr}")

    def _remote_image(self, inputs: dict[str, Any], resource: Registration) -> None:
        client = self.client_of(resource)
        try:
            image = client.images.get(inputs["name"])
        except docker.errors.ImageNotFound:
            image = client.images.pull(inputs["name"])
        self.image_ids[resource.outputs["imageId"]] = image.id

    def _container(self, inputs: dict[str, Any], resource: Registration) -> None:
        client = self.client_of(resource)
        api = client.api
        name = inputs["name"]
        networks = inputs.get("networksAdvanced", [])
        host_config = api.create_host_config(
            # A host path takes precedence over a volume name, as in the provider.
            binds={v.get("hostPath") or v["volumeName"]: {"bind": v["containerPath"], "mode": "ro" if v.get("readOnly") else "rw"}
                   for v in inputs.get("volumes", [])} or None,
            mounts=[docker.types.Mount(m["target"], m["source"], type=m["type"], read_only=m.get("readOnly", False),
                                       propagation=m.get("bindOptions", {}).get("propagation"))
                    for m in inputs.get("mounts", [])] or None,
            devices=[f"{d['hostPath']}:{d.get('containerPath', d['hostPath'])}:{d.get('permissions', 'rwm')}"
                     for d in inputs.get("devices", [])] or None,
            security_opt=inputs.get("securityOpts"),
            sysctls=inputs.get("sysctls"),
            port_bindings={p["internal"]: (p.get("ip", "0.0.0.0"), p["external"]) for p in inputs.get("ports", [])} or None,
            cap_drop=inputs.get("capabilities", {}).get("drops"),
            cap_add=inputs.get("capabilities", {}).get("adds"),
            restart_policy={"Name": inputs["restart"]} if inputs.get("restart") else None,
            mem_limit=f"{inputs['memory']}m" if inputs.get("memory") else None,
            extra_hosts=[f"{entry['host']}:{entry['ip']}" for entry in inputs.get("hosts", [])] or None,
            network_mode=inputs.get("networkMode") or (networks[0]["name"] if networks else None),
            # The provider's default driver, json-file, with the container's options (rotation).
            log_config=docker.types.LogConfig(type="json-file", config=inputs["logOpts"]) if "logOpts" in inputs else None,
        )
        healthcheck = None
        if "healthcheck" in inputs:
            check = inputs["healthcheck"]
            healthcheck = docker.types.Healthcheck(
                test=check["tests"], interval=_nanoseconds(check["interval"]), timeout=_nanoseconds(check["timeout"]),
                retries=check["retries"], start_period=_nanoseconds(check["startPeriod"]),
            )
        endpoint = lambda net: api.create_endpoint_config(ipv4_address=net.get("ipv4Address"), aliases=net.get("aliases"))
        container = api.create_container(
            image=self.image_ids.get(inputs["image"], inputs["image"]),
            name=name,
            hostname=inputs.get("hostname"),
            entrypoint=inputs.get("entrypoints"),
            command=inputs.get("command"),
            user=inputs.get("user"),
            environment=inputs.get("envs"),
            ports=[p["internal"] for p in inputs.get("ports", [])] or None,
            healthcheck=healthcheck,
            stop_timeout=inputs.get("stopTimeout"),
            host_config=host_config,
            networking_config=api.create_networking_config({networks[0]["name"]: endpoint(networks[0])}) if networks else None,
        )
        self.created.append((CONTAINER, name, self._provider_of(resource)))
        for net in networks[1:]:
            api.connect_container_to_network(container["Id"], net["name"], ipv4_address=net.get("ipv4Address"),
                                             aliases=net.get("aliases"))
        if inputs.get("uploads"):
            api.put_archive(container["Id"], "/", _tar(inputs["uploads"]))
        api.start(container["Id"])
        if inputs.get("attach") and not inputs.get("mustRun", True):
            status = api.wait(container["Id"], timeout=300)
            if status["StatusCode"] != 0:
                raise DeploymentFailed(f"{name} exited {status['StatusCode']}: {self.logs(name, client=client)}")
        elif inputs.get("wait"):
            self.wait_healthy(name, inputs.get("waitTimeout", 60), client)

    # -- helpers (on this machine's engine unless given another's client) ----------------------------
    def logs(self, name: str, tail: int = 40, client: docker.DockerClient | None = None) -> str:
        return (client or self.client).api.logs(name, tail=tail).decode(errors="replace")

    def health(self, name: str, client: docker.DockerClient | None = None) -> str:
        state = (client or self.client).api.inspect_container(name)["State"]
        return state.get("Health", {}).get("Status", state["Status"]) if state["Running"] else state["Status"]

    def wait_healthy(self, name: str, timeout: float, client: docker.DockerClient | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.health(name, client)
            if status == "healthy":
                return
            if status in ("unhealthy", "exited", "dead"):
                break
            time.sleep(0.5)
        state = (client or self.client).api.inspect_container(name)["State"]
        checks = [(check["ExitCode"], check["Output"].strip()[-200:]) for check in state.get("Health", {}).get("Log", [])]
        raise DeploymentFailed(
            f"{name} is {self.health(name, client)} after {timeout}s (exit code {state['ExitCode']}, restarts "
            f"{(client or self.client).api.inspect_container(name)['RestartCount']}, last checks {checks[-3:]}):\n"
            f"{self.logs(name, client=client)}")

    def destroy(self) -> list[str]:
        """Removes every container, network and volume this deployment made; returns what it could not."""
        leftovers = []
        grace = {r.plain("name"): r.plain("destroyGraceSeconds") for r in self.resources if r.type == CONTAINER}
        for type_, name, provider in reversed(self.created):
            api = self._engine_client(provider).api
            try:
                if type_ == CONTAINER:
                    if grace.get(name):  # as the provider: stop first, so that the container can clean up
                        api.stop(name, timeout=int(grace[name]))
                    api.remove_container(name, force=True, v=False)
                elif type_ == NETWORK:
                    api.remove_network(name)
                elif type_ == VOLUME:
                    api.remove_volume(name, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                leftovers.append(f"{type_} {name}: {error}")
        for engine in self.engines.values():
            engine.close()
        return leftovers

    def names_of(self, type_: str) -> list[str]:
        return [r.plain("name") for r in self.resources if r.type == type_]

    def remove_leftovers(self) -> None:
        """Removes objects with this deployment's names that an interrupted earlier run left behind, on this
        machine's engine (a host's engine is new in each run of the tests)."""
        api = self.client.api
        removers = ((CONTAINER, lambda name: api.remove_container(name, force=True)),
                    (NETWORK, api.remove_network), (VOLUME, api.remove_volume))
        for type_, remove in removers:  # containers first: they hold the networks and volumes
            for resource in self.resources:
                if resource.type == type_ and not resource.provider:
                    with contextlib.suppress(docker.errors.NotFound):
                        remove(resource.plain("name"))
