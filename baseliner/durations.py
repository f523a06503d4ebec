"""Durations in configuration: ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` (one number, one unit)."""

from __future__ import annotations

import re

from .config import Section

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def seconds(text: str) -> float | None:
    """Seconds in ``text``, or None when it is not a duration."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_duration(text: str, section: Section, key: str, minimum: float = 0.001) -> float:
    """Seconds, or a ConfigError naming ``section.key``."""
    value = seconds(text)
    if value is None:
        section.fail(section.name(key),
                     f'expected a duration such as "30s", "15m", "1h" or "1d", got {text!r}')
    assert value is not None
    if value < minimum:
        section.fail(section.name(key), f"must be at least {format_duration(minimum)}")
    return value


def format_duration(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"
