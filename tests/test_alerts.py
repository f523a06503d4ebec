"""Alert sinks and what the daemon sends: events once, conditions on change or reminder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug import Response

from baseliner import alerts
from baseliner.config import parse
from baseliner.errors import ConfigError
from baseliner.model import Change, Finding, Severity

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


def test_thresholds_of_different_metrics_are_different_conditions():
    def threshold(metric: str) -> Finding:
        return Finding("count_threshold", Severity.HIGH, "aws", "1", "us-east-1",
                       extra={"count": 5, "rule": {"metric": metric, "limit": 3}})

    plan = alerts.plan([threshold("max_instances"), threshold("max_created")], now=NOW)
    assert len(plan.alerts) == 2
    assert {a.condition for a in plan.alerts} == {
        "count_threshold:aws:1:us-east-1:max_instances",
        "count_threshold:aws:1:us-east-1:max_created",
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
    assert deliveries[0].error == "HTTP 500 INTERNAL SERVER ERROR (after 3 attempts)"
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
    assert not deliveries[0].ok and "refused" in deliveries[0].error.lower()
    assert "127.0.0.1:9/hook" not in deliveries[0].error


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
