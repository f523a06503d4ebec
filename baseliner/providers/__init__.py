"""Providers by name, loaded lazily: an SDK is imported only when its provider runs.

A provider module offers three functions:

``plan(config: Config) -> Plan``
    Discovery (accounts, regions, projects, subscriptions). May do I/O. Returns the units
    of work to run, plus outcomes already known (a region that is not enabled is skipped;
    an account whose role cannot be assumed is failed with the reason).
``fetch(...)``
    The SDK calls of one unit; yields provider documents. The only place that talks to a cloud.
``normalise(raw, scope) -> InstanceRecord``
    Pure: a redacted provider document to the shared record.

Each unit's ``run()`` returns a :class:`UnitResult`; raising ``ProviderError`` (or anything
else) marks every scope of the unit failed with the error's text.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from ..errors import ConfigError
from ..model import InstanceRecord, Scope, ScopeResult

PROVIDERS = {
    "aws": "baseliner.providers.aws",
    "gcp": "baseliner.providers.gcp",
    "azure": "baseliner.providers.azure",
}


@dataclass
class UnitResult:
    records: list[InstanceRecord] = field(default_factory=list)
    scopes: list[ScopeResult] = field(default_factory=list)


@dataclass(frozen=True)
class WorkUnit:
    label: str
    scopes: tuple[Scope, ...]
    """What a failure of this unit leaves uncovered."""
    run: Callable[[], UnitResult]


@dataclass
class Plan:
    units: list[WorkUnit] = field(default_factory=list)
    results: list[ScopeResult] = field(default_factory=list)


def load(name: str) -> ModuleType:
    try:
        return importlib.import_module(PROVIDERS[name])
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None
