"""search.*: the search index every node shares (Elasticsearch-compatible), made by the stack or given."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ._base import _Section

# Bundles the analysis-phonetic plugin that OpenMRS's Elasticsearch analyzers need (soundex).
SEARCH_IMAGE = "openmrs/openmrs-contrib-elasticsearch:8.15.3"


class SearchConfig(_Section):
    # lucene keeps an index inside each node, so nodes would answer searches differently.
    backend: Literal["elasticsearch", "lucene"] = "elasticsearch"
    # An existing Elasticsearch or OpenSearch cluster, used instead of making one; its password is the
    # secret search_password. HTTPS only: the index holds patients' names, and the nodes' searches carry them.
    # The nodes trust the JVM's public authorities and the stack's own (app_nodes.TRUST_STORE).
    uris: list[str] = []
    username: str = "elastic"
    # Local: the search tier's image, how many servers (three survive the loss of one) and their heap.
    image: str = SEARCH_IMAGE
    servers: Literal[1, 3] = 1
    heap_mb: int = Field(1024, ge=256, le=31744)

    @field_validator("uris")
    @classmethod
    def _http_uris(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            if uri.startswith("http://"):
                raise ValueError(f"{uri!r} would send patients' names in clear: give the cluster's https:// address, "
                                 "such as https://search.example.org:9200 (turn TLS on for its HTTP layer)")
            if not re.fullmatch(r"https://[A-Za-z0-9.-]+:\d{1,5}", uri):
                raise ValueError(f"{uri!r} must be https://<host>:<port>, such as https://search.example.org:9200")
        return uris

    @field_validator("username")
    @classmethod
    def _user_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError("must be a user name of letters, digits, _, . and -")
        return name
