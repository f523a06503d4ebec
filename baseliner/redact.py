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
)
"""GCP metadata item keys (``metadata.items[].key``) whose ``value`` is a secret."""

_CREDENTIAL_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)\b(password|passwd|pwd|secret|api[_-]?key|token)\s*[=:]\s*\S+"),
    re.compile(r"\bxox[abprs]-[0-9A-Za-z-]{10,}"),
    re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"),
)
"""Values that look like credentials wherever they appear (a tag value, a label)."""


def marker(value: Any, path: str) -> str:
    digest = hashlib.sha256(f"{path}\0{value}".encode()).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}]"


def is_marker(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)


def looks_like_credential(value: str) -> bool:
    return any(p.search(value) for p in _CREDENTIAL_PATTERNS)


def _secret_metadata_key(name: str) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in GCP_SECRET_METADATA)


def redact(document: Any, path: str = "") -> Any:
    """Return a copy of ``document`` with every secret replaced by a marker."""
    if isinstance(document, dict):
        if _is_metadata_item(document):
            return _redact_metadata_item(document, path)
        out: dict[str, Any] = {}
        for key, value in document.items():
            child = f"{path}.{key}" if path else str(key)
            if str(key).lower() in SECRET_KEY_NAMES and value not in (None, "", {}, []):
                out[key] = value if is_marker(value) else marker(value, child)
            else:
                out[key] = redact(value, child)
        return out
    if isinstance(document, list):
        return [redact(v, f"{path}[{i}]") for i, v in enumerate(document)]
    if isinstance(document, str) and not is_marker(document) and looks_like_credential(document):
        return marker(document, path)
    return document


def _is_metadata_item(document: dict[str, Any]) -> bool:
    return set(document) <= {"key", "value"} and "key" in document and "value" in document


def _redact_metadata_item(item: dict[str, Any], path: str) -> dict[str, Any]:
    key, value = item["key"], item["value"]
    if isinstance(key, str) and _secret_metadata_key(key) and not is_marker(value):
        return {"key": key, "value": marker(value, f"metadata.{key}")}
    return {"key": key, "value": redact(value, f"{path}.{key}")}
