"""monitoring.*: who is told when the cluster loses a member, and the thresholds that tell them."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, field_validator

from ._base import _matching, _Section

EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"


class Smtp(_Section):
    """The mail server that carries alerts by e-mail on premises (on AWS, SNS sends them). Its password, if it
    asks for one, is the stack secret monitoring_smtp_password."""

    # host:port of the site's mail relay, reached with STARTTLS.
    smarthost: str
    sender: str
    username: Optional[str] = None

    @field_validator("smarthost")
    @classmethod
    def _host_and_port(cls, smarthost: str) -> str:
        return _matching(smarthost, r"[A-Za-z0-9.-]+:\d{1,5}",
                         "must be the relay's host:port, such as mail.clinic.example:587")

    @field_validator("sender")
    @classmethod
    def _sender(cls, sender: str) -> str:
        return _matching(sender, EMAIL, "must be an e-mail address, such as openmrs-alerts@clinic.example")


class MonitoringConfig(_Section):
    enabled: bool = True
    # Who is told when an alert fires and when it resolves: on AWS each address confirms the e-mail SNS sends;
    # on premises monitoring.smtp carries them.
    alert_emails: list[str] = []
    # https:// URLs that receive each alert as a POST (on premises Alertmanager's webhook JSON; on AWS an SNS
    # subscription, which the endpoint confirms).
    alert_webhooks: list[str] = []
    smtp: Optional[Smtp] = None
    # A disk or volume fuller than this fires an alert.
    disk_percent: int = Field(85, ge=50, le=99)
    # A TLS certificate that expires in fewer days fires an alert.
    certificate_days: int = Field(21, ge=1, le=90)
    # On premises: how long Prometheus keeps its samples.
    retention_days: int = Field(15, ge=1, le=365)

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not re.fullmatch(EMAIL, email):
                raise ValueError(f"{email!r} is not an e-mail address")
        return emails

    @field_validator("alert_webhooks")
    @classmethod
    def _webhooks(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?", url):
                raise ValueError(f"{url!r} is not an https:// URL (alerts name the hospital's machines: never in "
                                 "clear), such as https://chat.clinic.example/hooks/openmrs")
        return urls
