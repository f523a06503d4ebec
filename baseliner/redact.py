"""Scrub secrets from provider documents before anything is stored or printed.

A secret value is replaced by a marker holding a hash of it, ``[redacted:<16 hex>]``, so a
changed startup script or password still changes the document (and is reported as a
change) while the value itself is never kept. The hash is keyed by the field's path, so
equal secrets in different places do not reveal that they are equal.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from typing import Any

MARKER_PREFIX = "[redacted:"

SECRET_KEY_NAMES = frozenset(
    {
        "customdata",
        "userdata",
        "user_data",
        "adminpassword",
        "password",
        "secret",
        "clientsecret",
        "protectedsettings",
        "protectedsettingsfromkeyvault",
        "privatekey",
        "private_key",
        "accesskey",
        "secretaccesskey",
        "sessiontoken",
        "token",
        "sastoken",
        "connectionstring",
        "commandtoexecute",
        "script",
        "additionalunattendcontent",
    }
)
"""Keys (compared case-insensitively) whose value is always a secret, at any depth."""

GCP_SECRET_METADATA = (
    "startup-script",
    "startup-script-*",
    "shutdown-script",
    "shutdown-script-*",
    "*-script-url",
    "user-data",
    "windows-startup-script-*",
    "windows-shutdown-script-*",
    "sysprep-*",
    "ssh-keys",
    "sshkeys",
    "windows-keys",
    "kube-env",
    "gce-container-declaration",
    "user-data*",
    "*env*",
    "*-key",
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*credential*",
    "*private-key*",
    "*api-key*",
    "*apikey*",
)
"""GCP metadata item keys (``metadata.items[].key``) whose ``value`` is a secret."""

_CREDENTIAL = re.compile(
    "|".join(
        (
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            # NAME=value, NAME: value, DB_PASSWORD=..., AWS_SECRET_ACCESS_KEY=...
            r"(?i:[a-z0-9_.-]*(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token"
            r"|credential)[a-z0-9_.-]*['\"]?\s*[=:]\s*\S+)",
            # YAML env entries: "- name: DB_PASSWORD" followed by "value: ..."
            r"(?is:name:\s*['\"]?[a-z0-9_.-]*(?:password|passwd|secret|token|key|credential)"
            r"[a-z0-9_.-]*['\"]?\s*\n\s*value:\s*\S+)",
            r"(?i:\bbearer\s+[a-z0-9._~+/=-]{16,})",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+",
            r"hooks\.slack\.com/services/[A-Za-z0-9/]+",
            r"(?i:(?:accountkey|sharedaccesskey)=[^;\s]+)",
            r"[?&]sig=[0-9A-Za-z%+/=]{10,}",
            r"\bxox[abprs]-[0-9A-Za-z-]{10,}",
            r"\bgh[pousr]_[0-9A-Za-z]{30,}",
        )
    )
)
"""Values that look like credentials wherever they appear (a tag value, a label)."""
_SHORTEST_CREDENTIAL = 10


def marker(value: Any, name: str) -> str:
    """``[redacted:<hash>]``; the hash is keyed by the field name, so equal secrets under
    different names do not show as equal."""
    digest = hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}]"


def is_marker(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)


_HINTS = re.compile(
    r"private key|akia|asia|pass|pwd|secret|api|token|xox|gh[pousr]_|key|sig=|bearer|eyj"
    r"|credential|hooks\.slack"
)
"""Cheap test (on the lowercased value) without which no credential pattern can match."""


def looks_like_credential(value: str) -> bool:
    if len(value) < _SHORTEST_CREDENTIAL or _HINTS.search(value.lower()) is None:
        return False
    return _CREDENTIAL.search(value) is not None


def _secret_metadata_key(name: str) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in GCP_SECRET_METADATA)


def redact(document: Any, name: str = "") -> Any:
    """Return a copy of ``document`` with every secret replaced by a marker.

    Runs on every document of every collection, so the common path is kept cheap: no path
    strings are built, scalars are handled without a call, and the credential patterns are
    tried only on strings that contain a hint of one."""
    if isinstance(document, dict):
        if "key" in document and "value" in document:
            return _redact_metadata_item(document)
        out: dict[str, Any] = {}
        for key, value in document.items():
            kind = type(value)
            if kind is str:
                if isinstance(key, str) and key.lower() in SECRET_KEY_NAMES and value:
                    out[key] = value if is_marker(value) else marker(value, key)
                elif looks_like_credential(value) and not is_marker(value):
                    out[key] = marker(value, key)
                else:
                    out[key] = value
            elif kind is dict or kind is list:
                if isinstance(key, str) and key.lower() in SECRET_KEY_NAMES and value:
                    out[key] = marker(value, key)
                else:
                    out[key] = redact(value, key)
            elif isinstance(key, str) and key.lower() in SECRET_KEY_NAMES and kind in _NUMBERS:
                out[key] = marker(value, key)  # a numeric PIN or password is a secret too
            else:
                out[key] = value
        return out
    if isinstance(document, list):
        return [
            v if type(v) in _PLAIN else redact(v, name)
            for v in document
        ]
    if isinstance(document, str) and looks_like_credential(document) and not is_marker(document):
        return marker(document, name)
    return document


_PLAIN = (int, float, bool, type(None))
_NUMBERS = (int, float)


def _redact_metadata_item(item: dict[str, Any]) -> dict[str, Any]:
    """A ``{"key": ..., "value": ...}`` item (GCP metadata, and the like): the key says
    whether the value is a secret. Other fields of the item are redacted as usual."""
    key, value = item["key"], item["value"]
    rest = {k: v for k, v in item.items() if k not in ("key", "value")}
    out = redact(rest) if rest else {}
    if isinstance(key, str) and _secret_metadata_key(key) and not is_marker(value):
        return {"key": key, "value": marker(value, f"metadata.{key}"), **out}
    return {"key": key, "value": redact(value, str(key)), **out}
