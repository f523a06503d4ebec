"""Alert sinks for the daemon: a JSON Lines file and an HTTP webhook (Slack-compatible or raw).

Two kinds of finding reach a sink:

- **events**: what changed since the previous snapshot (created, deleted, modified, reverted,
  started, stopped). Each is sent once, in the cycle that saw it.
- **conditions**: a state that lasts (an unused region still active, a threshold still
  exceeded, a scope still failing, an instance still drifted from the baseline). Each has an
  id (kind, provider, account, region, plus the rule for a threshold and the instance for
  baseline drift) and a digest of its content; it is sent when it appears, again when its
  digest changes, and again after ``[daemon] remind_after``. A condition that disappears is
  forgotten, so its return alerts; one whose scope failed to collect this cycle has not
  disappeared (its absence proves nothing) and is kept.

A sink that fails is logged and recorded (``baseliner status`` shows it); it never stops the
cycle. A condition whose delivery failed on any sink is not marked sent, so it is retried in
the next cycle (events are not: the next diff no longer contains them).

The URL of a webhook is a secret (Slack and Teams put the credential in the path): it is
never logged or stored; sinks are named ``webhook:<scheme>://<host>`` unless given a name.
A failed delivery is recorded as the exception type (and the HTTP status), never the text of
an exception from the HTTP layer, which may quote the URL.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import __version__
from .config import Section
from .durations import format_duration, parse_duration
from .errors import ConfigError
from .model import ALL, Finding, Outcome, Scope, ScopeResult, Severity, content_hash
from .rules import KINDS

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "PERSISTENT_KINDS",
    "Alert",
    "Delivery",
    "SinkConfig",
    "build_sinks",
    "deliver",
    "parse_config",
    "plan",
]

PERSISTENT_KINDS = frozenset({"unused_region", "count_threshold", "coverage_gap"})
"""Estate-level conditions: alerted once, then on change or after ``remind_after``."""

FORMATS = ("slack", "json")
_VOLATILE = frozenset({"taken_at", "snapshot", "snapshot_id", "seen_at", "alert"})
"""Finding keys left out of a condition's digest: they change without the condition changing."""
_SLACK_PER_MESSAGE = 40
_SLACK_TEXT_LIMIT = 2900
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
"""Characters http.client refuses in a URL (and urlsplit silently drops some of)."""
MAX_TIMEOUT = 600.0
"""The longest per-attempt webhook ``timeout``."""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SinkConfig:
    type: str
    name: str
    min_severity: Severity = Severity.LOW
    kinds: frozenset[str] | None = None
    path: Path | None = None
    url: str | None = None
    url_env: str | None = None
    format: str = "slack"
    timeout: float = 10.0
    retries: int = 3

    def wants(self, finding: Finding) -> bool:
        if finding.severity.rank < self.min_severity.rank:
            return False
        return self.kinds is None or finding.kind in self.kinds


def parse_config(data: list[Any], file: str) -> tuple[SinkConfig, ...]:
    """The [[alerts]] array of tables."""
    sinks = []
    names: set[str] = set()
    for i, item in enumerate(data):
        s = Section(file, f"alerts[{i}]", item)
        kind = s.string("type")
        if kind not in ("jsonl", "webhook"):
            s.fail(s.name("type"), f'required: "jsonl" or "webhook", got {kind!r}')
        severity = s.string("min_severity", "low") or "low"
        if severity not in Severity.__members__.values():
            s.fail(s.name("min_severity"), f"expected one of info, low, medium, high, "
                                           f"got {severity!r}")
        kinds = None
        if "kinds" in s.data:
            kinds = frozenset(s.strings("kinds"))
            unknown = sorted(kinds - set(KINDS))
            if unknown or not kinds:
                s.fail(s.name("kinds"), f"unknown kind {unknown[0]!r}; known: {', '.join(KINDS)}"
                       if unknown else "empty list; leave kinds out to send every kind")
        if kind == "jsonl":
            path = s.string("path")
            if path is None:
                s.fail(s.name("path"), "required for a jsonl sink")
            assert path is not None
            name = s.string("name") or f"jsonl:{path}"
            config = SinkConfig("jsonl", name, Severity(severity), kinds, path=Path(path))
        else:
            url, url_env = s.string("url"), s.string("url_env")
            if (url is None) == (url_env is None):
                s.fail(s.prefix, "a webhook needs url or url_env (the name of an environment "
                                 "variable holding the URL), not both")
            if url is not None:
                _check_url(s, "url", url)
            fmt = s.string("format", "slack") or "slack"
            if fmt not in FORMATS:
                s.fail(s.name("format"), f'expected "slack" or "json", got {fmt!r}')
            timeout = parse_duration(s.string("timeout", "10s") or "10s", s, "timeout")
            if timeout > MAX_TIMEOUT:
                s.fail(s.name("timeout"), f"must be at most {format_duration(MAX_TIMEOUT)}")
            retries = s.get("retries", int, 3)
            if not 0 <= retries <= 10:
                s.fail(s.name("retries"), f"expected an integer from 0 to 10, got {retries}")
            name = s.string("name") or (
                f"webhook:{_origin(url)}" if url else f"webhook:${url_env}")
            config = SinkConfig("webhook", name, Severity(severity), kinds, url=url,
                                url_env=url_env, format=fmt, timeout=timeout, retries=retries)
        s.done()
        if config.name in names:
            s.fail(s.name("name"), f"two sinks named {config.name!r}; give one a name")
        names.add(config.name)
        sinks.append(config)
    return tuple(sinks)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL, or None. The answer never quotes the URL: it is
    a secret."""
    if _URL_UNSAFE.search(url):
        return "expected an http:// or https:// URL without spaces or control characters " \
               "(percent-encode them)"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number 0-65535, a broken [IPv6] host
        return "expected an http:// or https:// URL with a valid host and port"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not host:
        return "expected an http:// or https:// URL with a host"
    if port == 0:
        return "expected an http:// or https:// URL with a port from 1 to 65535"
    return None


def _check_url(s: Section, key: str, url: str) -> None:
    problem = url_problem(url)
    if problem:
        s.fail(s.name(key), problem)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL :func:`url_problem` accepted."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


# ---------------------------------------------------------------- what to send (pure)


@dataclass(frozen=True)
class Alert:
    finding: Finding
    reason: str
    """``event`` (a change seen this cycle), or for a condition ``new``, ``changed`` or
    ``reminder``."""
    condition: str | None = None
    first_sent: str | None = None
    covers: tuple[str, ...] = ()
    """For an event: the baseline-drift conditions it stands for this cycle (they are not
    sent separately, and count as sent only where the event was delivered)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON finding shape, plus an ``alert`` object saying why it is sent."""
        out = self.finding.to_dict()
        out["alert"] = {"reason": self.reason, "condition": self.condition,
                        "first_sent": self.first_sent}
        return out


@dataclass
class Plan:
    alerts: list[Alert] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Condition id → the alert_state row to store once its alert is delivered."""
    resolved: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """Conditions not seen this cycle but kept: their scope failed to collect, so their
    absence proves nothing."""
    quiet: int = 0
    """Conditions already alerted and unchanged: not sent again this cycle."""


def condition_id(finding: Finding, baseline_id: int | None = None) -> str:
    """``kind:provider:account:region``; a threshold adds its metric and its rule (globs,
    ``per`` and limit: two rules may judge the same group); baseline drift of one instance
    adds the baseline and the instance key."""
    base = f"{finding.kind}:{finding.provider}:{finding.account}:{finding.region}"
    rule = finding.extra.get("rule")
    if finding.kind == "count_threshold" and isinstance(rule, dict) and rule.get("metric"):
        base += (f":{rule['metric']}:{rule.get('provider', ALL)}/{rule.get('account', ALL)}/"
                 f"{rule.get('region', ALL)}:per={rule.get('per', 'region')}"
                 f":limit={rule.get('limit')}")
    if baseline_id is None:
        return base
    return f"baseline:{baseline_id}:{base}:{finding.key or finding.instance_id or ''}"


def condition_scope(ident: str) -> Scope | None:
    """The provider/account/region of a condition id (either shape of
    :func:`condition_id`), or None when it has none."""
    parts = ident.split(":")
    if parts[0] == "baseline":
        parts = parts[2:]
    if len(parts) < 4 or not all(parts[1:4]):
        return None
    return Scope(parts[1], parts[2], parts[3])


def _overlaps(a: Scope, b: Scope) -> bool:
    """Some scope is both in ``a`` and in ``b`` (either may be a wildcard)."""
    return (a.provider == b.provider
            and (a.account == b.account or ALL in (a.account, b.account))
            and (a.region == b.region or ALL in (a.region, b.region)))


def digest(finding: Finding) -> str:
    if finding.kind == "coverage_gap":
        # Scope, outcomes and counts: the error texts (request ids, timestamps) change from
        # cycle to cycle while the gap stays the same gap.
        coverage = finding.extra.get("coverage")
        coverage = coverage if isinstance(coverage, dict) else {}

        def outcome(side: str) -> Any:
            value = coverage.get(side)
            return value.get("outcome") if isinstance(value, dict) else value

        return content_hash({
            "kind": finding.kind, "provider": finding.provider, "account": finding.account,
            "region": finding.region, "old": outcome("old"), "new": outcome("new"),
            "unverified_missing": coverage.get("unverified_missing"),
            "unverified_appeared": coverage.get("unverified_appeared"),
        })
    data = {k: v for k, v in finding.to_dict().items() if k not in _VOLATILE}
    return content_hash(data)


def plan(
    changes: Sequence[Finding],
    baseline: Sequence[Finding] = (),
    baseline_id: int | None = None,
    states: Mapping[str, Mapping[str, Any]] | None = None,
    now: datetime | None = None,
    remind_after: float | None = None,
    scopes: Iterable[ScopeResult] = (),
) -> Plan:
    """Decide what to send this cycle.

    ``changes`` are the findings of previous → new snapshot; ``baseline`` those of baseline →
    new (empty when no baseline is set). ``states`` is what was sent before (alert_state).
    ``scopes`` are the scope outcomes of the new snapshot: a known condition whose scope was
    not collected this time is not resolved by its absence (it is held, not forgotten).
    """
    states = states or {}
    now = now or datetime.now(UTC)
    stamp = _stamp(now)
    out = Plan()
    conditions: dict[str, Finding] = {}
    events: dict[tuple[str, str | None], list[int]] = {}
    for finding in changes:
        if finding.kind in PERSISTENT_KINDS:
            conditions.setdefault(condition_id(finding), finding)
        else:
            events.setdefault((finding.kind, finding.key), []).append(len(out.alerts))
            out.alerts.append(Alert(finding, "event"))
    already_told: set[str] = set()
    for finding in baseline:
        if finding.kind in PERSISTENT_KINDS:
            conditions.setdefault(condition_id(finding), finding)
            continue
        ident = condition_id(finding, baseline_id)
        conditions.setdefault(ident, finding)
        told_by = events.get((finding.kind, finding.key))
        if told_by:  # the event alert of this cycle says it already
            already_told.add(ident)
            for i in told_by:
                out.alerts[i] = replace(out.alerts[i], covers=(*out.alerts[i].covers, ident))
    for ident, finding in conditions.items():
        known = states.get(ident)
        fresh = digest(finding)
        row = {"condition": ident, "digest": fresh, "kind": finding.kind,
               "severity": str(finding.severity),
               "first_sent": known["first_sent"] if known and known.get("first_sent")
               else stamp,
               "last_sent": stamp}
        if ident in already_told:
            out.states[ident] = row  # stored only where its event was delivered
            continue
        if known is None:
            reason = "new"
        elif known["digest"] != fresh:
            reason = "changed"
        elif remind_after is not None and _age(known.get("last_sent"), now) >= remind_after:
            reason = "reminder"
        else:
            out.quiet += 1
            continue
        first = known["first_sent"] if known else stamp
        row["first_sent"] = first
        out.alerts.append(Alert(finding, reason, ident, first))
        out.states[ident] = row
    results = list(scopes)
    for ident in sorted(set(states) - set(conditions)):
        scope = condition_scope(ident)
        if scope is not None and _uncollected(scope, results):
            out.held.append(ident)
        else:
            out.resolved.append(ident)
    return out


def _uncollected(scope: Scope, results: Sequence[ScopeResult]) -> bool:
    """True when the snapshot cannot vouch for ``scope``: a failed scope overlaps it, or
    its provider failed somewhere and its account was collected nowhere (an account that
    failed before its id was known is recorded under its configured name)."""
    failed = [r.scope for r in results if r.outcome is Outcome.FAILED]
    if any(_overlaps(scope, f) for f in failed):
        return True
    if scope.account == ALL or not any(f.provider == scope.provider for f in failed):
        return False
    return not any(r.outcome is Outcome.OK and r.scope.provider == scope.provider
                   and r.scope.account == scope.account for r in results)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return float("inf")
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (now - then).total_seconds()


# ---------------------------------------------------------------- sinks (I/O)


class DeliveryError(Exception):
    """One sink could not take this cycle's alerts."""


class Sink(Protocol):
    config: SinkConfig

    def send(self, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Delivery:
    sink: str
    ok: bool
    count: int
    error: str = ""


class JsonlSink:
    """One alert per line, appended, flushed and fsynced before the cycle goes on."""

    def __init__(self, config: SinkConfig) -> None:
        assert config.path is not None
        self.config = config
        self.path = config.path

    def send(self, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        data = "".join(
            json.dumps(a.to_dict(), ensure_ascii=False, sort_keys=True, default=str) + "\n"
            for a in alerts
        ).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror or exc}") from None


class WebhookSink:
    """HTTP POST of a JSON body; retried on network errors, 429 and 5xx with backoff."""

    def __init__(self, config: SinkConfig, url: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.url = url
        self.sleep = sleep

    def bodies(self, alerts: Sequence[Alert], context: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.config.format == "json":
            return [json_body(alerts, context)]
        return [slack_body(alerts[i:i + _SLACK_PER_MESSAGE], context, len(alerts))
                for i in range(0, len(alerts), _SLACK_PER_MESSAGE)]

    def send(self, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        for body in self.bodies(alerts, context):
            self._post(json.dumps(body, ensure_ascii=False, default=str).encode())

    def _post(self, data: bytes) -> None:
        attempts = 1 + self.config.retries
        error = ""
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(
                self.url, data=data, method="POST",
                headers={"Content-Type": "application/json",
                         "User-Agent": f"baseliner/{__version__}"},
            )
            delay = min(2.0 ** (attempt - 1), 30.0)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    response.read()
                return
            # Only the exception type and the HTTP status are kept: the text of an
            # exception from the HTTP layer may quote the URL, which is a secret.
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break
                delay = max(delay, _retry_after(exc.headers.get("Retry-After")))
            except urllib.error.URLError as exc:
                reason = exc.reason
                error = type(reason).__name__ if isinstance(reason, BaseException) \
                    else type(exc).__name__
            except (TimeoutError, OSError) as exc:
                error = type(exc).__name__
            except http.client.InvalidURL as exc:  # not retried: it will not get better
                error = type(exc).__name__
                break
            except (http.client.HTTPException, ValueError) as exc:
                error = type(exc).__name__
            if attempt < attempts:
                logger.info("%s: attempt %d of %d failed (%s); retrying in %.0fs",
                            self.config.name, attempt, attempts, error, delay)
                self.sleep(delay)
        raise DeliveryError(f"{error} (after {attempt} attempt{'s' if attempt > 1 else ''})")


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value or 0), 30.0)
    except ValueError:
        return 0.0


def json_body(alerts: Sequence[Alert], context: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": "baseliner", **context, "findings": [a.to_dict() for a in alerts]}


def slack_body(alerts: Sequence[Alert], context: Mapping[str, Any],
               total: int | None = None) -> dict[str, Any]:
    """``text`` (notifications, clients without blocks) plus Block Kit blocks."""
    total = total or len(alerts)
    counts = Counter(str(a.finding.severity) for a in alerts)
    by_severity = ", ".join(f"{counts[s]} {s}" for s in ("high", "medium", "low", "info")
                            if counts[s])
    where = f"snapshot {context.get('snapshot')}" if context.get("snapshot") else "baseliner"
    title = f"baseliner: {total} finding{'s' if total != 1 else ''}"
    part = f" (these {len(alerts)}: {by_severity})" if total != len(alerts) else \
        f" ({by_severity})"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(
            f"{where} taken {context.get('taken_at', '?')}"
            + (f", compared with baseline snapshot {context['baseline']}"
               if context.get("baseline") else ""))}]},
    ]
    for alert in alerts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_line(alert)}})
    return {"text": _escape(title + part), "blocks": blocks}


def _slack_line(alert: Alert) -> str:
    f = alert.finding
    head = f"*{str(f.severity).upper()}* `{f.kind}`"
    if f.instance_id:
        head += f" `{_escape(f.instance_id)}`"
    head += f" in {_escape(f'{f.provider}/{f.account}/{f.region}')}"
    if alert.reason != "event":
        head += f" _({alert.reason})_"
    lines = [head]
    if f.detail:
        lines.append(_escape(f.detail))
    for change in f.changes[:10]:
        lines.append(_escape(f"{change.path}: {_short(change.old)} → {_short(change.new)}"))
    if len(f.changes) > 10:
        lines.append(f"… and {len(f.changes) - 10} more changes")
    if f.techniques:
        lines.append("ATT&amp;CK " + ", ".join(f.techniques))
    text = "\n".join(lines)
    return text if len(text) <= _SLACK_TEXT_LIMIT else text[:_SLACK_TEXT_LIMIT - 1] + "…"


def _escape(text: str) -> str:
    """Slack mrkdwn control characters: a tag value must not become a link or an @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(value: Any, limit: int = 80) -> str:
    text = "∅" if value is None else value if isinstance(value, str) else json.dumps(
        value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def build_sinks(configs: Iterable[SinkConfig],
                sleep: Callable[[float], None] = time.sleep) -> list[Sink]:
    """Sinks ready to send; a webhook's ``url_env`` is read here (missing = ConfigError)."""
    sinks: list[Sink] = []
    for config in configs:
        if config.type == "jsonl":
            sinks.append(JsonlSink(config))
            continue
        url = config.url
        if url is None:
            url = os.environ.get(config.url_env or "", "")
            if not url:
                raise ConfigError(f"{config.name}: environment variable {config.url_env} "
                                  "is not set (it should hold the webhook URL)")
            problem = url_problem(url)
            if problem:
                raise ConfigError(f"{config.name}: environment variable {config.url_env}: "
                                  f"{problem}")
        sinks.append(WebhookSink(config, url, sleep))
    return sinks


def deliver(sinks: Sequence[Sink], alerts: Sequence[Alert],
            context: Mapping[str, Any]) -> list[Delivery]:
    """Send each sink what it wants; a failing sink is logged and reported, never raised."""
    out = []
    for sink in sinks:
        chosen = [a for a in alerts if sink.config.wants(a.finding)]
        if not chosen:
            continue
        try:
            sink.send(chosen, context)
        except DeliveryError as exc:  # our own text, without the URL
            logger.error("alert sink %s failed: %s", sink.config.name, exc)
            out.append(Delivery(sink.config.name, False, len(chosen), str(exc)))
            continue
        except Exception as exc:  # a sink bug must not stop the cycle; it is reported
            # The type only: the text (and a traceback) may quote a webhook URL.
            error = f"unexpected {type(exc).__name__}"
            logger.error("alert sink %s failed: %s", sink.config.name, error)
            out.append(Delivery(sink.config.name, False, len(chosen), error))
            continue
        logger.debug("alert sink %s took %d alerts", sink.config.name, len(chosen))
        out.append(Delivery(sink.config.name, True, len(chosen)))
    return out


def undelivered(sinks: Sequence[Sink], alerts: Sequence[Alert],
                deliveries: Sequence[Delivery]) -> set[str]:
    """Conditions that at least one failing sink should have received: the condition of an
    alert, and the baseline-drift conditions an event alert stood for."""
    failed = {d.sink for d in deliveries if not d.ok}
    out: set[str] = set()
    for alert in alerts:
        idents = ((alert.condition,) if alert.condition else ()) + alert.covers
        if idents and any(sink.config.name in failed and sink.config.wants(alert.finding)
                          for sink in sinks):
            out.update(idents)
    return out
