"""Alert sinks and what the daemon sends: events once, conditions on change or reminder."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug import Response

from baseliner import alerts
from baseliner.config import parse
from baseliner.errors import ConfigError
from baseliner.model import Change, Finding, Outcome, Scope, ScopeResult, Severity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def created(instance_id: str = "i-1", severity: Severity = Severity.MEDIUM) -> Finding:
    return Finding("instance_created", severity, "aws", "111111111111", "us-east-1",
                   instance_id=instance_id, key=f"aws:111111111111:{instance_id}",
                   techniques=("T1578.002",))


def unused(instances: tuple[str, ...] = ("i-9",), region: str = "ap-south-1") -> Finding:
    return Finding("unused_region", Severity.HIGH, "aws", "111111111111", region,
                   detail=f"{len(instances)} instance(s) in a region outside expected_regions",
                   techniques=("T1535",), extra={"instances": list(instances)})


def sinks_from(toml_alerts: list[dict]) -> tuple[alerts.SinkConfig, ...]:
    return parse({"alerts": toml_alerts}, "test.toml").alerts


# ---------------------------------------------------------------- configuration


def test_alerts_config_defaults_and_names():
    jsonl, hook = sinks_from([
        {"type": "jsonl", "path": "out/alerts.jsonl"},
        {"type": "webhook", "url": "https://hooks.example.com/services/T0/B0/secret",
         "min_severity": "high", "kinds": ["instance_created", "unused_region"]},
    ])
    assert jsonl.min_severity is Severity.LOW and jsonl.kinds is None
    assert jsonl.name == "jsonl:out/alerts.jsonl"
    assert hook.format == "slack" and hook.retries == 3 and hook.timeout == 10
    assert hook.name == "webhook:https://hooks.example.com"  # the secret path never shows
    assert hook.wants(unused())
    assert not hook.wants(created())  # medium < high
    assert not hook.wants(Finding("instance_deleted", Severity.HIGH, "aws", "1", "r"))


@pytest.mark.parametrize(("item", "message"), [
    ({"type": "email"}, 'alerts[0].type: required: "jsonl" or "webhook"'),
    ({"type": "jsonl"}, "alerts[0].path: required"),
    ({"type": "webhook"}, "alerts[0]: a webhook needs url or url_env"),
    ({"type": "webhook", "url": "ftp://x"}, "alerts[0].url: expected an http:// or https://"),
    ({"type": "webhook", "url": "http://x", "format": "xml"}, "alerts[0].format"),
    ({"type": "webhook", "url": "http://x", "retries": 99}, "alerts[0].retries"),
    ({"type": "webhook", "url": "http://x", "timeout": "soon"}, "alerts[0].timeout"),
    ({"type": "webhook", "url": "http://x", "timeout": "99999999999999999999d"},
     "alerts[0].timeout: must be at most 10m"),
    ({"type": "jsonl", "path": "a", "min_severity": "urgent"}, "alerts[0].min_severity"),
    ({"type": "jsonl", "path": "a", "kinds": ["instance_creatd"]},
     "alerts[0].kinds: unknown kind 'instance_creatd'"),
    ({"type": "jsonl", "path": "a", "colour": "red"}, "alerts[0].colour: unknown key"),
])
def test_bad_alerts_config_names_the_key(item, message):
    with pytest.raises(ConfigError) as caught:
        sinks_from([item])
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


SECRET = "T0/B0/s3cr3t"


@pytest.mark.parametrize("url", [
    f"https://hooks.example.com/services/{SECRET} x",
    f"https://hooks.example.com/services/{SECRET}\t",
    f"https://hooks.example.com/services/{SECRET}\n",
    f"https://hooks.example.com/services/{SECRET}\x7f",
    f" https://hooks.example.com/services/{SECRET}",
    f"https://hooks.example.com:abc/services/{SECRET}",
    f"https://hooks.example.com:99999/services/{SECRET}",
    f"https://hooks.example.com:0/services/{SECRET}",
    f"https://[::1/services/{SECRET}",
    f"https:///services/{SECRET}",
])
def test_a_malformed_webhook_url_is_a_config_error_that_does_not_quote_it(url):
    with pytest.raises(ConfigError) as caught:
        sinks_from([{"type": "webhook", "url": url}])
    message = str(caught.value)
    assert message.startswith("test.toml: alerts[0].url: expected an http:// or https:// URL")
    assert "\n" not in message and SECRET not in message and "example" not in message


def test_a_malformed_webhook_url_in_the_environment_is_refused_at_start(monkeypatch):
    (config,) = sinks_from([{"type": "webhook", "url_env": "BASELINER_HOOK"}])
    for url in (f"https://hooks.example.com/services/{SECRET} x",
                f"https://hooks.example.com:abc/{SECRET}", f"https://[::1/{SECRET}"):
        monkeypatch.setenv("BASELINER_HOOK", url)
        with pytest.raises(ConfigError) as caught:
            alerts.build_sinks([config])
        message = str(caught.value)
        assert message.startswith("webhook:$BASELINER_HOOK: environment variable "
                                  "BASELINER_HOOK: expected an http:// or https:// URL")
        assert SECRET not in message and "\n" not in message


def test_an_ipv6_webhook_is_named_by_its_origin():
    (config,) = sinks_from([{"type": "webhook", "url": f"http://[::1]:8080/{SECRET}"}])
    assert config.name == "webhook:http://[::1]:8080"


def test_webhook_errors_never_carry_the_url(caplog):
    # A URL that got past the checks (or an HTTP layer quoting it in an error): only the
    # exception type reaches the log and the delivery record.
    url = f"http://127.0.0.1:9/services/{SECRET} x"
    config = alerts.SinkConfig("webhook", "hook", url=url, retries=1)
    slept: list[float] = []
    sink = alerts.WebhookSink(config, url, sleep=slept.append)
    with caplog.at_level(logging.DEBUG, logger="baseliner"):
        (delivery,) = alerts.deliver([sink], alerts.plan([created()], now=NOW).alerts, {})
    assert not delivery.ok
    assert delivery.error == "InvalidURL (after 1 attempt)"  # not retried
    assert slept == []
    assert SECRET not in caplog.text and "Traceback" not in caplog.text
    assert "alert sink hook failed: InvalidURL (after 1 attempt)" in caplog.messages


def test_an_unexpected_sink_error_is_recorded_by_type_only(caplog):
    class Broken:
        config = alerts.SinkConfig("webhook", "hook", url="https://h/x")

        def send(self, alerts_, context):
            raise RuntimeError(f"cannot post to https://h/services/{SECRET}")

    with caplog.at_level(logging.DEBUG, logger="baseliner"):
        (delivery,) = alerts.deliver([Broken()], alerts.plan([created()], now=NOW).alerts, {})
    assert delivery.error == "unexpected RuntimeError"
    assert SECRET not in caplog.text and "Traceback" not in caplog.text


def test_two_sinks_with_the_same_name_are_refused():
    with pytest.raises(ConfigError, match="alerts\\[1\\].name: two sinks named"):
        sinks_from([{"type": "jsonl", "path": "a"}, {"type": "jsonl", "path": "a"}])


def test_webhook_url_from_the_environment(monkeypatch):
    (config,) = sinks_from([{"type": "webhook", "url_env": "BASELINER_HOOK"}])
    assert config.name == "webhook:$BASELINER_HOOK"
    monkeypatch.delenv("BASELINER_HOOK", raising=False)
    with pytest.raises(ConfigError, match="BASELINER_HOOK is not set"):
        alerts.build_sinks([config])
    monkeypatch.setenv("BASELINER_HOOK", "https://hooks.example.com/x")
    (sink,) = alerts.build_sinks([config])
    assert sink.url == "https://hooks.example.com/x"


# ---------------------------------------------------------------- what is sent (pure)


def test_events_are_always_sent():
    plan = alerts.plan([created("i-1"), created("i-2")], now=NOW)
    assert [a.reason for a in plan.alerts] == ["event", "event"]
    assert plan.states == {}


def test_a_persistent_condition_alerts_once_then_on_change_then_as_reminder():
    first = alerts.plan([unused()], now=NOW, remind_after=86400)
    assert [a.reason for a in first.alerts] == ["new"]
    ident = "unused_region:aws:111111111111:ap-south-1"
    assert first.alerts[0].condition == ident
    states = first.states

    same = alerts.plan([unused()], states=states, now=NOW + timedelta(hours=1),
                       remind_after=86400)
    assert same.alerts == [] and same.quiet == 1

    changed = alerts.plan([unused(("i-9", "i-10"))], states=states,
                          now=NOW + timedelta(hours=2), remind_after=86400)
    assert [a.reason for a in changed.alerts] == ["changed"]
    assert changed.alerts[0].first_sent == "2026-12-01T12:00:00Z"  # it started then

    later = alerts.plan([unused()], states=states, now=NOW + timedelta(days=1, seconds=1),
                        remind_after=86400)
    assert [a.reason for a in later.alerts] == ["reminder"]
    never = alerts.plan([unused()], states=states, now=NOW + timedelta(days=30),
                        remind_after=None)
    assert never.alerts == []


def test_a_resolved_condition_is_forgotten_and_alerts_again_when_it_returns():
    states = alerts.plan([unused()], now=NOW).states
    gone = alerts.plan([], states=states, now=NOW)
    assert gone.resolved == ["unused_region:aws:111111111111:ap-south-1"]
    back = alerts.plan([unused()], states={}, now=NOW)
    assert [a.reason for a in back.alerts] == ["new"]


def test_coverage_gap_error_text_is_not_a_change():
    gap = Finding("coverage_gap", Severity.MEDIUM, "aws", "1", "us-east-1",
                  detail="failed: Throttling (request id 1)")
    states = alerts.plan([gap], now=NOW).states
    again = Finding("coverage_gap", Severity.MEDIUM, "aws", "1", "us-east-1",
                    detail="failed: Throttling (request id 2)")
    assert alerts.plan([again], states=states, now=NOW, remind_after=None).alerts == []


def gap(old: str, new: str, old_detail: str = "", new_detail: str = "",
        missing: int = 0) -> Finding:
    """A coverage_gap as the diff makes it: its error texts in detail and in coverage."""
    return Finding("coverage_gap", Severity.MEDIUM, "aws", "1", "us-east-1",
                   detail=f"{old_detail} {new_detail}",
                   extra={"coverage": {"old": {"outcome": old, "detail": old_detail},
                                       "new": {"outcome": new, "detail": new_detail},
                                       "unverified_missing": missing,
                                       "unverified_appeared": 0}})


def test_a_persistent_coverage_gap_is_not_changed_by_its_error_texts():
    first = gap("failed", "failed", "Throttling (request id 1, 06:00:01)",
                "Throttling (request id 2, 06:15:01)")
    states = alerts.plan([first], now=NOW).states
    later = gap("failed", "failed", "Throttling (request id 2, 06:15:01)",
                "Throttling (request id 3, 06:30:02)")
    assert alerts.plan([later], states=states, now=NOW, remind_after=None).alerts == []
    # Outcomes and counts are what the gap is: a change there is a change.
    (healing,) = alerts.plan([gap("failed", "ok", "x")], states=states, now=NOW).alerts
    assert healing.reason == "changed"
    (lost,) = alerts.plan([gap("failed", "failed", missing=2)], states=states, now=NOW).alerts
    assert lost.reason == "changed"


def outcomes(*scopes: tuple[str, str, str, Outcome]) -> list[ScopeResult]:
    return [ScopeResult(Scope(p, a, r), outcome) for p, a, r, outcome in scopes]


OK, FAILED = Outcome.OK, Outcome.FAILED


def test_a_condition_in_a_scope_that_failed_to_collect_is_held_not_resolved():
    states = alerts.plan([unused(region="eu-west-1")], now=NOW).states
    ident = "unused_region:aws:111111111111:eu-west-1"
    east = ("aws", "111111111111", "us-east-1", OK)
    # The region failed this cycle: its instances are unknown, the condition is not gone.
    for failed in (("aws", "111111111111", "eu-west-1", FAILED),
                   ("aws", "111111111111", "*", FAILED), ("aws", "*", "*", FAILED),
                   ("aws", "ambient", "*", FAILED)):  # failed before its id was known
        held = alerts.plan([], states=states, now=NOW, scopes=outcomes(failed))
        assert held.resolved == [] and held.held == [ident]
    # Another region, account or provider failing proves the absence all the same.
    for failed in (("aws", "111111111111", "us-east-1", FAILED),
                   ("aws", "222222222222", "*", FAILED), ("gcp", "*", "*", FAILED)):
        gone = alerts.plan([], states=states, now=NOW,
                           scopes=outcomes(failed, ("aws", "111111111111", "eu-west-1", OK)))
        assert gone.resolved == [ident] and gone.held == []
    gone = alerts.plan([], states=states, now=NOW,
                       scopes=outcomes(east, ("aws", "ambient", "*", FAILED)))
    assert gone.resolved == [ident]  # the account was collected: the failure is another's
    # Back next cycle: unchanged, so quiet (not "new").
    back = alerts.plan([unused(region="eu-west-1")], states=states, now=NOW,
                       remind_after=None)
    assert back.alerts == [] and back.quiet == 1


def test_held_conditions_include_baseline_drift_and_wildcard_groups():
    drift = created("i-1")
    threshold = Finding("count_threshold", Severity.HIGH, "aws", "*", "*",
                        extra={"count": 5, "rule": {"metric": "max_instances", "limit": 3,
                                                    "provider": "aws", "account": "*",
                                                    "region": "*", "per": "provider"}})
    first = alerts.plan([threshold], baseline=[drift], baseline_id=3, now=NOW)
    assert len(first.states) == 2
    held = alerts.plan([], baseline=[], baseline_id=3, states=first.states, now=NOW,
                       scopes=outcomes(("aws", "111111111111", "us-east-1", FAILED)))
    assert held.resolved == [] and sorted(held.held) == sorted(first.states)
    assert alerts.condition_scope(
        "baseline:3:instance_created:aws:111111111111:us-east-1:aws:111111111111:i-1"
    ) == Scope("aws", "111111111111", "us-east-1")
    assert alerts.condition_scope("garbage") is None


def test_thresholds_of_different_rules_on_the_same_group_are_different_conditions():
    def threshold(region_glob: str) -> Finding:
        rule = {"metric": "max_instances", "limit": 1, "provider": "aws", "account": "*",
                "region": region_glob, "per": "provider"}
        return Finding("count_threshold", Severity.HIGH, "aws", "*", "*",
                       detail="3 instances, more than max_instances = 1",
                       extra={"count": 3, "rule": rule})

    plan = alerts.plan([threshold("us-*"), threshold("eu-*")], now=NOW)
    assert [a.condition for a in plan.alerts] == [
        "count_threshold:aws:*:*:max_instances:aws/*/us-*:per=provider:limit=1",
        "count_threshold:aws:*:*:max_instances:aws/*/eu-*:per=provider:limit=1",
    ]


def test_thresholds_of_different_metrics_are_different_conditions():
    def threshold(metric: str) -> Finding:
        return Finding("count_threshold", Severity.HIGH, "aws", "1", "us-east-1",
                       extra={"count": 5, "rule": {"metric": metric, "limit": 3}})

    plan = alerts.plan([threshold("max_instances"), threshold("max_created")], now=NOW)
    assert len(plan.alerts) == 2
    assert {a.condition for a in plan.alerts} == {
        "count_threshold:aws:1:us-east-1:max_instances:*/*/*:per=region:limit=3",
        "count_threshold:aws:1:us-east-1:max_created:*/*/*:per=region:limit=3",
    }


def test_drift_from_the_baseline_is_a_condition_not_repeated_every_cycle():
    # Cycle n: i-1 was created since the previous snapshot and differs from the baseline.
    plan = alerts.plan([created("i-1")], baseline=[created("i-1")], baseline_id=3, now=NOW)
    assert [a.reason for a in plan.alerts] == ["event"]  # said once, as the event
    assert list(plan.states) == ["baseline:3:instance_created:aws:111111111111:us-east-1:"
                                 "aws:111111111111:i-1"]
    # Cycle n+1: nothing changed since, the drift from the baseline is still there.
    quiet = alerts.plan([], baseline=[created("i-1")], baseline_id=3, states=plan.states,
                        now=NOW, remind_after=3600)
    assert quiet.alerts == [] and quiet.resolved == []
    # A day later it is a reminder; a new baseline makes it a new condition (or none).
    later = alerts.plan([], baseline=[created("i-1")], baseline_id=3, states=plan.states,
                        now=NOW + timedelta(hours=2), remind_after=3600)
    assert [a.reason for a in later.alerts] == ["reminder"]


def test_drift_told_by_an_event_is_sent_only_where_the_event_was_delivered(tmp_path: Path):
    ident = "baseline:3:instance_created:aws:111111111111:us-east-1:aws:111111111111:i-1"
    plan = alerts.plan([created("i-1")], baseline=[created("i-1")], baseline_id=3, now=NOW)
    (event,) = plan.alerts
    assert event.reason == "event" and event.condition is None and event.covers == (ident,)
    assert "covers" not in event.to_dict()["alert"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    good, bad = alerts.build_sinks(sinks_from([
        {"type": "jsonl", "path": str(tmp_path / "ok.jsonl")},
        {"type": "jsonl", "path": str(blocker / "x")},
    ]))
    # One sink that wanted the event did not get it: the drift is not marked sent, so the
    # next cycle sends it (as a new condition) instead of losing it.
    deliveries = alerts.deliver([good, bad], plan.alerts, {})
    assert alerts.undelivered([good, bad], plan.alerts, deliveries) == {ident}
    nxt = alerts.plan([], baseline=[created("i-1")], baseline_id=3, states={}, now=NOW)
    assert [(a.reason, a.condition) for a in nxt.alerts] == [("new", ident)]
    # Every sink got it: marked sent.
    deliveries = alerts.deliver([good], plan.alerts, {})
    assert alerts.undelivered([good], plan.alerts, deliveries) == set()


def test_drift_told_again_keeps_when_it_was_first_sent():
    plan = alerts.plan([], baseline=[created("i-1")], baseline_id=3, now=NOW)
    (ident,) = plan.states
    later = alerts.plan([created("i-1")], baseline=[created("i-1")], baseline_id=3,
                        states=plan.states, now=NOW + timedelta(days=2))
    assert later.states[ident]["first_sent"] == "2026-12-01T12:00:00Z"
    assert later.states[ident]["last_sent"] == "2026-12-03T12:00:00Z"


def test_estate_conditions_found_by_both_diffs_are_sent_once():
    plan = alerts.plan([unused()], baseline=[unused()], baseline_id=3, now=NOW)
    assert len(plan.alerts) == 1 and plan.alerts[0].reason == "new"


# ---------------------------------------------------------------- sinks


def test_jsonl_sink_appends_one_finding_per_line(tmp_path: Path):
    path = tmp_path / "sub" / "alerts.jsonl"
    (sink,) = alerts.build_sinks(sinks_from([{"type": "jsonl", "path": str(path)}]))
    plan = alerts.plan([created("i-1"), unused()], now=NOW)
    sink.send(plan.alerts, {})
    sink.send(plan.alerts[:1], {})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["instance_created", "unused_region",
                                                "instance_created"]
    first = lines[0]
    # The JSON finding shape, plus why it is sent.
    assert first | {"alert": None} == created("i-1").to_dict() | {"alert": None}
    assert first["alert"] == {"reason": "event", "condition": None, "first_sent": None}
    assert lines[1]["alert"]["reason"] == "new"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_jsonl_sink_failure_is_reported_not_raised(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    sinks = alerts.build_sinks(sinks_from([{"type": "jsonl", "path": str(blocker / "x")}]))
    deliveries = alerts.deliver(sinks, alerts.plan([created()], now=NOW).alerts, {})
    assert len(deliveries) == 1 and not deliveries[0].ok
    assert "cannot append" in deliveries[0].error


def test_webhook_slack_body(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    config = sinks_from([{"type": "webhook", "url": httpserver.url_for("/hook")}])
    sinks = alerts.build_sinks(config)
    finding = Finding("instance_modified", Severity.MEDIUM, "aws", "1", "us-east-1",
                      instance_id="i-1", key="aws:1:i-1",
                      changes=(Change("tags.Owner", "platform", "<!channel> & co"),),
                      techniques=("T1578.004",))
    context = {"cycle": 4, "snapshot": 9, "previous": 8, "baseline": None,
               "taken_at": "2026-12-01T12:00:00Z"}
    deliveries = alerts.deliver(sinks, alerts.plan([finding, unused()], now=NOW).alerts, context)
    assert deliveries[0].ok and deliveries[0].count == 2
    (request, _), = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    body = request.get_json()
    assert body["text"] == "baseliner: 2 findings (1 high, 1 medium)"
    header, ctx, first, second = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text",
                                                 "text": "baseliner: 2 findings"}}
    assert ctx["elements"][0]["text"] == "snapshot 9 taken 2026-12-01T12:00:00Z"
    assert first["type"] == "section"
    text = first["text"]["text"]
    assert text.startswith("*MEDIUM* `instance_modified` `i-1` in aws/1/us-east-1")
    assert "&lt;!channel&gt; &amp; co" in text and "<!channel>" not in text
    assert "_(new)_" in second["text"]["text"]


def test_webhook_json_body_and_retries(httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    config = sinks_from([{"type": "webhook", "url": httpserver.url_for("/hook"),
                          "format": "json", "retries": 2}])
    slept: list[float] = []
    sinks = alerts.build_sinks(config, sleep=slept.append)
    deliveries = alerts.deliver(sinks, alerts.plan([created()], now=NOW).alerts,
                                {"cycle": 1, "snapshot": 2})
    assert deliveries[0].ok
    assert slept == [1.0]
    body = httpserver.log[-1][0].get_json()
    assert body["source"] == "baseliner" and body["cycle"] == 1 and body["snapshot"] == 2
    assert body["findings"][0]["kind"] == "instance_created"
    assert body["findings"][0]["alert"]["reason"] == "event"


def test_webhook_gives_up_after_its_retries_and_never_raises(httpserver):
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    config = sinks_from([{"type": "webhook", "url": httpserver.url_for("/hook"),
                          "retries": 2}])
    slept: list[float] = []
    sinks = alerts.build_sinks(config, sleep=slept.append)
    plan = alerts.plan([unused()], now=NOW)
    deliveries = alerts.deliver(sinks, plan.alerts, {})
    assert not deliveries[0].ok
    assert deliveries[0].error == "HTTP 500 (after 3 attempts)"
    assert slept == [1.0, 2.0] and len(httpserver.log) == 3
    assert alerts.undelivered(sinks, plan.alerts, deliveries) == {
        "unused_region:aws:111111111111:ap-south-1"}


def test_webhook_client_error_is_not_retried(httpserver):
    httpserver.expect_request("/hook").respond_with_response(Response("gone", status=404))
    sinks = alerts.build_sinks(
        sinks_from([{"type": "webhook", "url": httpserver.url_for("/hook")}]),
        sleep=lambda _: None)
    deliveries = alerts.deliver(sinks, alerts.plan([created()], now=NOW).alerts, {})
    assert deliveries[0].error.startswith("HTTP 404") and len(httpserver.log) == 1


def test_webhook_unreachable_is_reported():
    sinks = alerts.build_sinks(
        sinks_from([{"type": "webhook", "url": "http://127.0.0.1:9/hook", "retries": 0,
                     "timeout": "2s"}]))
    deliveries = alerts.deliver(sinks, alerts.plan([created()], now=NOW).alerts, {})
    assert not deliveries[0].ok
    assert deliveries[0].error == "ConnectionRefusedError (after 1 attempt)"


def test_filters_choose_what_each_sink_receives(tmp_path: Path):
    high = tmp_path / "high.jsonl"
    created_only = tmp_path / "created.jsonl"
    sinks = alerts.build_sinks(sinks_from([
        {"type": "jsonl", "path": str(high), "min_severity": "high"},
        {"type": "jsonl", "path": str(created_only), "kinds": ["instance_created"]},
    ]))
    deliveries = alerts.deliver(sinks, alerts.plan([created(), unused()], now=NOW).alerts, {})
    assert [(d.sink, d.count) for d in deliveries] == [(f"jsonl:{high}", 1),
                                                       (f"jsonl:{created_only}", 1)]
    assert json.loads(high.read_text())["kind"] == "unused_region"
    assert json.loads(created_only.read_text())["kind"] == "instance_created"


def test_slack_messages_are_split_to_stay_within_block_limits(httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    sinks = alerts.build_sinks(sinks_from([{"type": "webhook",
                                            "url": httpserver.url_for("/hook")}]))
    findings = [created(f"i-{n}") for n in range(45)]
    alerts.deliver(sinks, alerts.plan(findings, now=NOW).alerts, {})
    bodies = [request.get_json() for request, _ in httpserver.log]
    assert [len(b["blocks"]) for b in bodies] == [42, 7]
    assert all(len(b["blocks"]) <= 50 for b in bodies)
    assert bodies[1]["text"].startswith("baseliner: 45 findings (these 5:")
