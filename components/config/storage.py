"""storage.*: the shared files, replicated locally, and the DRBD resource for real servers."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, field_validator, model_validator

from ._base import _ipv4_address, _matching, _Section

# Folders of /openmrs/data that the official image deletes and re-copies at every start: never shared.
IMAGE_MANAGED_FOLDERS = {"modules", "owa", "configuration", "configuration_checksums", "frontend"}


class DrbdHost(_Section):
    """A real server of a DRBD pair: its host name (as `uname -n` prints it), address and backing disk."""

    name: str
    address: str
    disk: str

    @field_validator("name")
    @classmethod
    def _host_name(cls, name: str) -> str:
        return _matching(name, r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}",
                         "must be the host's name as `uname -n` prints it, such as files-a")

    @field_validator("disk")
    @classmethod
    def _block_device(cls, disk: str) -> str:
        return _matching(disk, r"/dev/[A-Za-z0-9/_.-]+",
                         "must be the backing block device's path, such as /dev/vg0/openmrs-files")

    @field_validator("address")
    @classmethod
    def _ipv4(cls, address: str) -> str:
        return _ipv4_address(address, "10.0.0.11")


class DrbdConfig(_Section):
    """For implementers on real servers: the DRBD resource that mirrors the shared files between two hosts."""

    hosts: list[DrbdHost]
    port: int = Field(7789, ge=1, le=65535)
    minor: int = Field(0, ge=0, le=1048575)
    # DRBD replicates the files unencrypted (Debian's kernel module, 8.4, has no TLS): only over a cable or VLAN
    # that joins these two servers and nothing else, which the site confirms here.
    direct_link: bool = False

    @field_validator("hosts")
    @classmethod
    def _two_different_hosts(cls, hosts: list[DrbdHost]) -> list[DrbdHost]:
        if len(hosts) != 2:
            raise ValueError("must name exactly two hosts, the DRBD pair")
        if hosts[0].name == hosts[1].name or hosts[0].address == hosts[1].address:
            raise ValueError("must name two different hosts with different addresses")
        return hosts

    @model_validator(mode="after")
    def _not_in_clear_over_the_network(self) -> "DrbdConfig":
        if not self.direct_link:
            raise ValueError(
                "storage.drbd: DRBD sends the shared files unencrypted (Debian's kernel module has no TLS); to fix, "
                "put the two hosts' addresses on a cable or VLAN that joins those two servers only and set "
                "storage.drbd.direct_link: true, or remove storage.drbd and keep the replicated GlusterFS volume, "
                "which is TLS throughout")
        return self


class StorageConfig(_Section):
    shared_folders: list[str] = ["complex_obs", "attachments", "storage"]
    # Local: a GlusterFS volume on three storage servers (two copies and an arbiter), or plain volumes.
    replicated: bool = True
    # How long the client waits for a storage server that stopped answering before it goes on without it.
    ping_timeout_seconds: int = Field(10, ge=2, le=42)
    # Local: where on the Docker host the client's mount lives; nodes bind its folders from there.
    host_directory: str = "/var/lib/openmrs-cluster"
    drbd: Optional[DrbdConfig] = None

    @field_validator("host_directory")
    @classmethod
    def _absolute_directory(cls, directory: str) -> str:
        return _matching(directory, r"(/[A-Za-z0-9._-]+)+",
                         "must be an absolute directory path on the Docker host, such as /var/lib/openmrs-cluster")

    @field_validator("shared_folders")
    @classmethod
    def _runtime_folders_only(cls, folders: list[str]) -> list[str]:
        if not folders:
            raise ValueError("must name at least one folder, such as complex_obs")
        for folder in folders:
            if not re.fullmatch(r"[a-z0-9_]+", folder):
                raise ValueError(f"{folder!r} must be a folder name directly under /openmrs/data, such as complex_obs")
            if folder in IMAGE_MANAGED_FOLDERS:
                raise ValueError(
                    f"{folder!r} is deleted and re-copied by the OpenMRS image at every start; "
                    "share only folders that nodes write at run time (complex_obs, attachments, storage)"
                )
        if len(set(folders)) != len(folders):
            raise ValueError("lists a folder twice")
        return folders
