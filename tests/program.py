"""Runs the real Pulumi program (`__main__.py`) under mocks and records the resource graph it registers.

The mocks play the providers' part only where an output is computed by the provider (a generated
password, an image id); everything else is the program's own inputs, exactly as it registered them.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import runpy
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import bcrypt
import pulumi
import yaml
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor

from tls_provider import tls_resource_outputs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT = "openmrs-cluster"
STACKS = sorted(path.name.split(".")[1] for path in (PROJECT_ROOT / "stacks").glob("Pulumi.*.yaml"))


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    dependencies: set[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    provider: str = ""  # "<provider urn>::<id>" when the resource names its provider; empty: the default one
    protect: bool = False
    retain_on_delete: bool = False

    def plain(self, key: str, default: Any = None) -> Any:
        """An input with every secret unwrapped, as the provider would receive it."""
        return unwrap(self.inputs.get(key, default))


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


@dataclass
class Graph:
    registrations: list[Registration] = field(default_factory=list)
    # What each component passed to register_outputs, by URN.
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each invoke the program made: (token, arguments).
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (match,) = [r for r in self.registrations if r.name == name]
        return match


# What the O3 build step leaves (components/aws/frontend_build.py), a path of each kind: the app shell's entry
# points and files named by their content, a module's versioned folder, the service worker, a configuration
# file, an icon, and a precompressed copy, which is not uploaded.
FRONTEND_BUILD = (
    "index.html", "importmap.json", "routes.registry.json", "service-worker.js", "config.json", "favicon.ico",
    "openmrs.0123456789abcdef.js", "openmrs.0123456789abcdef.js.map", "fedcba9876543210.js",
    "manifest.4e2db7544da6bb3185ade5df4f3bbac9.json", "openmrs.01234567.js",
    "openmrs-esm-login-app-5.8.1/openmrs-esm-login-app.js", "openmrs-esm-login-app-5.8.1/574.js",
    "openmrs-esm-login-app-5.8.1/routes.json", "openmrs-esm-login-app-5.8.1/assets/logo.svg",
    "openmrs-esm-home-app-5.4.1-pre.12/openmrs-esm-home-app.js", "openmrs.0123456789abcdef.js.gz",
)
CLOUDFRONT_PREFIX_LIST = "pl-4fa04526"

# Generated passwords are random per test run and the same for every run of the program within it, as the
# engine keeps a generated password in its state from one `pulumi up` to the next.
_PASSWORD_SALT = secrets.token_bytes(32)


def _generated_password(name: str, length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    stream = hashlib.shake_256(_PASSWORD_SALT + name.encode()).digest(length)
    return "".join(alphabet[byte % len(alphabet)] for byte in stream)


class ProviderMocks(pulumi.runtime.Mocks):
    """Computes the few outputs a real provider would compute; the rest echoes the inputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = _generated_password(f"{pulumi.get_stack()}/{args.name}", int(args.inputs["length"]))
            outputs["bcryptHash"] = bcrypt.hashpw(outputs["result"].encode(), bcrypt.gensalt(10)).decode()
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:" + hashlib.sha256(args.inputs["name"].encode()).hexdigest()
        elif args.typ == "docker:index/image:Image":
            # A pushed image is pulled by its digest; a local build is known by its name.
            name = args.inputs["imageName"]
            pushed = "registry" in args.inputs
            outputs["repoDigest"] = (name.rsplit(":", 1)[0] + "@sha256:" + hashlib.sha256(name.encode()).hexdigest()
                                     if pushed else name)
        elif args.typ.startswith("tls:"):
            # Real keys and certificates, as the tls provider would make them (tests/tls_provider.py).
            outputs.update(tls_resource_outputs(args.typ, args.name, unwrap(args.inputs)))
        elif args.typ.startswith("aws:"):
            outputs.update(self._aws_outputs(args))
        return f"{args.name}-id", outputs

    @staticmethod
    def _aws_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        service = args.typ.split(":")[1].split("/")[0]
        computed = {"arn": f"arn:aws:{service}:eu-west-1:123456789012:{args.name}", "name": args.inputs.get("name", args.name)}
        if args.typ == "aws:rds/instance:Instance":
            address = f"{args.name}.abcdefgh.eu-west-1.rds.amazonaws.com"
            computed.update(address=address, port=3306, endpoint=f"{address}:3306", masterUserSecrets=[{
                "secretArn": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!{args.name}-AbCdEf",
                "secretStatus": "active"}])
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            computed["dnsName"] = f"{args.name}-1234567890.eu-west-1.elb.amazonaws.com"
        elif args.typ == "aws:opensearch/domain:Domain":
            computed["endpoint"] = f"vpc-{args.name}-abcdefghijklmnop.eu-west-1.es.amazonaws.com"
        elif args.typ == "aws:ecr/repository:Repository":
            computed.update(registryId="123456789012",
                            repositoryUrl=f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{args.name}")
        elif args.typ == "aws:s3/bucket:Bucket":
            computed.update(bucket=f"{args.name}-id",
                            bucketRegionalDomainName=f"{args.name}-id.s3.eu-west-1.amazonaws.com")
        elif args.typ == "aws:cloudfront/distribution:Distribution":
            computed.update(arn=f"arn:aws:cloudfront::123456789012:distribution/{args.name}-id",
                            domainName="d111111abcdef8.cloudfront.net")
        return computed

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": secrets.token_urlsafe(32), "registryId": args.args["registryId"],
                    "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                    "authorizationToken": "", "expiresAt": "", "id": "eu-west-1"}
        if args.token == "aws:ec2/getManagedPrefixList:getManagedPrefixList":
            return {"id": CLOUDFRONT_PREFIX_LIST, "name": args.args["name"], "addressFamily": "IPv4", "maxEntries": 55}
        if args.token == "command:local:run":
            # The build step's files, found by its asset_paths ("<digest>/**") under its working folder.
            prefix = args.args["assetPaths"][0].removesuffix("**")
            return {**args.args, "stdout": "", "stderr": "", "assets": {
                f"{prefix}{path}": pulumi.FileAsset(f"{args.args['dir']}/{prefix}{path}") for path in FRONTEND_BUILD}}
        raise AssertionError(f"the program made an unexpected invoke: {args.token}")


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps each resource's parent and dependencies, which the engine would see, and the
    invokes the program made."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.graph = Graph()

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            dependencies = set(request.dependencies)
            for property_dependencies in request.propertyDependencies.values():
                dependencies.update(property_dependencies.urns)
            self.graph.registrations.append(
                Registration(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=request.custom,
                    dependencies=dependencies,
                    inputs=rpc.deserialize_properties(request.object),
                    outputs=self.resources[response.urn].state,
                    ignore_changes=list(request.ignoreChanges),
                    delete_before_replace=request.deleteBeforeReplace,
                    provider=request.provider,
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                )
            )
        return response

    def Invoke(self, request):
        response = super().Invoke(request)
        self.graph.invokes.append((request.tok, rpc.deserialize_properties(request.args)))
        return response

    def RegisterResourceOutputs(self, request):
        self.graph.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


def platform_of(stack: str) -> str:
    return stack_config(stack).get(f"{PROJECT}:platform", "local")


def stacks_on(platform: str) -> list[str]:
    return [stack for stack in STACKS if platform_of(stack) == platform]


def stack_config(stack: str) -> dict[str, Any]:
    """The stack file's config, keys namespaced as the Pulumi CLI would pass them, with a stand-in for each
    secret a user sets with `pulumi config set --secret` as the file's comments say (a file cannot hold it)."""
    document = yaml.safe_load((PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text()) or {}
    config = {}
    for key, value in (document.get("config") or {}).items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = value
    if (config.get(f"{PROJECT}:backup") or {}).get("s3"):
        config[f"{PROJECT}:backup_s3_secret_key"] = "stand-in-secret-key-of-the-bucket"
    return config


def _as_cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_program(stack: str, config: Optional[dict[str, Any]] = None) -> Graph:
    """Runs __main__.py for `stack` with `config` (default: the stack file's) and returns its graph."""
    if config is None:
        config = stack_config(stack)
    monitor = RecordingMonitor(ProviderMocks())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    previous_directory = os.getcwd()
    try:
        os.chdir(PROJECT_ROOT)
        settings.ROOT.set(None)
        pulumi.runtime.set_all_config({key: _as_cli_value(value) for key, value in config.items()})
        pulumi.runtime.set_mocks(ProviderMocks(), project=PROJECT, stack=stack, preview=False, monitor=monitor)

        @pulumi.runtime.test
        def program():
            runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")

        program()
    finally:
        os.chdir(previous_directory)
        asyncio.set_event_loop(None)
        with contextlib.suppress(Exception):
            loop.close()
    return monitor.graph


def with_overrides(config: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with some keys of its structured sections replaced (nested dicts merge)."""

    def merge(base: Any, change: Any) -> Any:
        if isinstance(base, dict) and isinstance(change, dict):
            return {**base, **{key: merge(base.get(key), value) for key, value in change.items()}}
        return change

    merged = dict(config)
    for section, change in sections.items():
        key = f"{PROJECT}:{section}"
        merged[key] = merge(merged.get(key), change)
    return merged
