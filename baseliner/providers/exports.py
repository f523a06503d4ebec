"""Saved CLI/API exports as a source: the auditor's case, and the embedded demo.

Accepted shapes (recognised from the document, not the file name):

- AWS: ``aws ec2 describe-instances --output json`` (``{"Reservations": [...]}``).
  Account from each reservation's ``OwnerId``, region from the availability zone (Local and
  Wavelength Zones included). A file holding no instance still records its scope when the
  file name carries it: ``<12-digit account>-<region>.json`` (e.g. ``123456789012-eu-west-1.json``).

An empty JSON list (what ``gcloud`` and ``az`` print for an empty project or subscription)
names no scope and is ignored with a warning.

Every scope found in a file is recorded as collected ``ok``: an export is a complete listing
of what it covers. Regions absent from every file are simply not in the snapshot, which the
diff reports as a coverage gap, never as deletions.

Each provider module that reads exports defines ``export_detect(doc) -> bool`` (is this
document mine?) and ``export_read(doc, path) -> (scopes, records)``; a malformed document
raises InputError naming the file (KeyError/TypeError/ValueError are turned into one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import Outcome, Scope, ScopeResult
from . import UnitResult, load

logger = logging.getLogger(__name__)

EXPORT_PROVIDERS = ("aws", "gcp", "azure")
"""Providers whose modules define export_detect/export_read, tried in this order."""


def export_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories to their ``*.json`` files (sorted); every path must exist."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise InputError(f"{path}: directory holds no *.json export")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such export file or directory")
    return files


def read_exports(paths: Iterable[Path]) -> UnitResult:
    """Records and scope outcomes from saved exports; a malformed file is an InputError."""
    result = UnitResult()
    counts: dict[Scope, int] = {}
    for path in export_files(paths):
        doc = _load(path)
        if doc == []:
            # 'gcloud ... list' and 'az vm list' print [] for an empty project or subscription;
            # it names no scope, so it adds nothing (its regions stay coverage gaps).
            logger.warning("%s: empty listing names no project or subscription; ignored", path)
            continue
        for provider in EXPORT_PROVIDERS:
            module = load(provider)
            if getattr(module, "export_detect", None) and module.export_detect(doc):
                try:
                    scopes, records = module.export_read(doc, path)
                except InputError:
                    raise
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise InputError(
                        f"{path}: malformed {provider} export ({type(exc).__name__}: {exc})"
                    ) from None
                break
        else:
            raise InputError(
                f"{path}: not a recognised export (expected the JSON of "
                "'aws ec2 describe-instances', 'gcloud compute instances list' or 'az vm list')"
            )
        for scope in scopes:
            counts.setdefault(scope, 0)
        for record in records:
            counts[record.scope] = counts.get(record.scope, 0) + 1
        result.records.extend(records)
    result.scopes = [
        ScopeResult(scope, Outcome.OK, "from export", n) for scope, n in sorted(counts.items())
    ]
    return result


def _load(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
