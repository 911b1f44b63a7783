"""balancer.*: the balancer tier, its scheduling, stickiness and heartbeats."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from ._base import _ipv4_address, _matching, _Section

DEFAULT_TIMEOUT_SECONDS = 4


class Heartbeat(_Section):
    """What the balancer's health checks ask of every node, and how fast they take it out and back in."""

    path: str = "/openmrs/health/started"
    interval_seconds: int = Field(5, ge=1, le=300)
    fails: int = Field(3, ge=1, le=20)
    passes: int = Field(2, ge=1, le=20)
    # A node that takes connections but never answers (a hung JVM, a hung machine whose kernel still
    # completes handshakes) fails a check after this long, not after a request's timeout.
    timeout_seconds: int = Field(DEFAULT_TIMEOUT_SECONDS, ge=1, le=60)

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError("must be an absolute URL path without spaces, such as /openmrs/health/started")
        if path.endswith("/health/alive"):
            raise ValueError("/health/alive can trigger OpenMRS setup; use /openmrs/health/started")
        return path

    @model_validator(mode="before")
    @classmethod
    def _timeout_within_the_interval(cls, values):
        """Unset, the timeout is the default or the interval, whichever is shorter."""
        interval = values.get("interval_seconds") if isinstance(values, dict) else None
        if isinstance(interval, int) and "timeout_seconds" not in values:
            return {**values, "timeout_seconds": max(1, min(DEFAULT_TIMEOUT_SECONDS, interval))}
        return values

    @model_validator(mode="after")
    def _answer_within_interval(self) -> "Heartbeat":
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError(f"balancer.heartbeat.timeout_seconds: {self.timeout_seconds} s is longer than "
                             f"interval_seconds ({self.interval_seconds} s); set it to {self.interval_seconds} or less")
        return self


class ExternalBalancer(_Section):
    """A balancer of the site's own (an F5 BIG-IP) in front of the nodes, which reaches them on the back network:
    the program makes no balancer and outputs what it needs, with an AS3 declaration of it."""

    # Where clients reach it: the BIG-IP's virtual server.
    virtual_address: str
    # The declaration's AS3 tenant (a BIG-IP partition of its own, which AS3 replaces whole).
    tenant: str = "OpenMRS"

    @field_validator("virtual_address")
    @classmethod
    def _address(cls, address: str) -> str:
        return _ipv4_address(address, "192.0.2.80")

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, tenant: str) -> str:
        if tenant == "Common":
            raise ValueError("must not be Common, BIG-IP's own partition; choose one such as OpenMRS")
        return _matching(tenant, r"[A-Za-z][0-9A-Za-z_.-]{0,63}",
                         "must start with a letter, then letters, digits, _ . or - (at most 64), such as OpenMRS")


class BalancerConfig(_Section):
    # apache or haproxy: the program's own pair of balancers; external: the site's own (balancer.external).
    engine: Literal["apache", "haproxy", "external"] = "apache"
    external: Optional[ExternalBalancer] = None
    scheduling: Literal["round_robin", "by_busyness"] = "round_robin"
    sticky_sessions: bool = True
    heartbeat: Heartbeat = Heartbeat()
    listen_address: str = "127.0.0.1"
    # On one machine, the first balancer's host ports (HTTPS, and plain HTTP that only redirects); the second
    # of a pair is published on the next ones. On several hosts the balancers answer on 443 and 80.
    https_port: int = Field(8443, ge=1, le=65535)
    port: int = Field(8080, ge=1, le=65535)
    # Local: two balancers sharing a virtual address with keepalived (the ALB is redundant by itself).
    pair: bool = True
    virtual_router_id: int = Field(51, ge=1, le=255)
    advert_seconds: int = Field(1, ge=1, le=10)

    @field_validator("listen_address")
    @classmethod
    def _ipv4(cls, address: str) -> str:
        return _ipv4_address(address, "127.0.0.1")

    @model_validator(mode="after")
    def _external_described(self) -> "BalancerConfig":
        if self.engine == "external" and self.external is None:
            raise ValueError("balancer.external: engine external needs it; set at least balancer.external.virtual_address, "
                             "where clients reach your balancer")
        if self.engine != "external" and self.external is not None:
            raise ValueError(f"balancer.external: describes a balancer of your own, and balancer.engine is {self.engine}; "
                             "set balancer.engine to external, or remove balancer.external")
        return self

    @model_validator(mode="after")
    def _room_for_the_second_balancer(self) -> "BalancerConfig":
        for key in ("port", "https_port"):
            if self.pair and getattr(self, key) == 65535:
                raise ValueError(f"balancer.{key}: the pair's second balancer is published on the next port; "
                                 "choose a port below 65535, or set balancer.pair to false")
        if abs(self.port - self.https_port) < (2 if self.pair else 1):
            raise ValueError(f"balancer.https_port: {self.https_port} collides with balancer.port ({self.port}); each "
                             "balancer of the pair takes its own port of each; choose ports at least 2 apart")
        return self
