"""The daemon with the real APScheduler against a local moto server: cycles on a schedule,
alerts in a JSON Lines file and on local webhooks, metrics, status, --once."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from baseliner.cli import main
from baseliner.config import load, parse
from baseliner.daemon import Daemon, DaemonConfig, crontab_fields, status
from baseliner.errors import ConfigError
from baseliner.lock import WriterLock, holder
from baseliner.logformat import JsonFormatter
from baseliner.store import open_store

from .aws_fakes import ACCOUNT_A, ec2, launch, moto_server, reset


@pytest.fixture(scope="module")
def moto_endpoint():
    """The server and an image id (looking one up costs a second; it survives a reset)."""
    with moto_server() as endpoint:
        images = ec2(endpoint, "us-east-1").describe_images(Owners=["amazon"])["Images"]
        yield endpoint, images[0]["ImageId"]


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    endpoint, image = moto_endpoint
    reset(endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint, image


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def write_config(tmp_path: Path, daemon: str = "", alerts: str = "", store: str = "") -> Path:
    path = tmp_path / "baseliner.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'store.db'}"
{store}

[aws]
regions = ["us-east-1", "eu-west-1"]
max_workers = 4
max_attempts = 1

[rules]
expected_regions = {{ aws = ["us-east-1"] }}

[daemon]
{daemon}

{alerts}
""")
    return path


def text_of(table: str) -> str:
    """A rendered table as one line of words: borders and wrapping gone."""
    return " ".join(table.replace("│", " ").replace("┃", " ").split())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- configuration


def daemon_config(**table) -> DaemonConfig:
    return parse({"daemon": table}, "test.toml").daemon


def test_daemon_config_defaults():
    config = daemon_config()
    assert config == DaemonConfig(interval=900, cron=None, run_at_start=True,
                                  misfire_grace_time=300, stop_timeout=30, remind_after=86400,
                                  metrics_port=None)
    assert config.describe() == "every 15m"


@pytest.mark.parametrize(("text", "seconds"), [("45s", 45), ("15m", 900), ("2h", 7200),
                                               ("1d", 86400), ("1.5h", 5400)])
def test_interval_units(text, seconds):
    assert daemon_config(interval=text).interval == seconds


@pytest.mark.parametrize(("table", "message"), [
    ({"interval": "15"}, 'daemon.interval: expected a duration such as "30s"'),
    ({"interval": "15 minutes"}, "daemon.interval: expected a duration"),
    ({"interval": "0s"}, "daemon.interval: must be at least 1s"),
    ({"interval": 15}, "daemon.interval: expected a string, got 15"),
    ({"interval": "1m", "cron": "* * * * *"}, "daemon: set interval or cron, not both"),
    ({"cron": "*/15 * * *"}, "daemon.cron: not a crontab expression: expected 5 fields"),
    ({"cron": "61 * * * *"}, "daemon.cron: not a crontab expression"),
    ({"cron": "0 6 1 * 1"}, "restrict the day of month or the day of week, not both"),
    ({"remind_after": "often"}, "daemon.remind_after"),
    ({"stop_timeout": "-1s"}, "daemon.stop_timeout"),
    ({"metrics_port": 70000}, "daemon.metrics_port: expected a port from 0 to 65535"),
    ({"metrics_port": "9464"}, "daemon.metrics_port: expected an integer"),
    ({"run_at_start": "yes"}, "daemon.run_at_start: expected true or false"),
    ({"intervall": "1m"}, "daemon.intervall: unknown key"),
    ({"interval": "99999999999999999999d"}, "daemon.interval: must be at most 366d"),
    ({"interval": "9" * 400 + "d"}, "daemon.interval: must be at most 366d"),
    ({"interval": "367d"}, "daemon.interval: must be at most 366d"),
    ({"misfire_grace_time": "99999999999999999999d"},
     "daemon.misfire_grace_time: must be at most 366d"),
    ({"stop_timeout": "2d"}, "daemon.stop_timeout: must be at most 1d"),
    ({"remind_after": "99999999999999999999d"}, "daemon.remind_after: must be at most 366d"),
    ({"cron": "0 6 * * mon-"}, "daemon.cron: not a crontab expression: weekday range 'mon-' "
                               "has no end"),
    ({"cron": "0 6 * * 1-"}, "weekday range '1-' has no end"),
    ({"cron": "0 6 * * 1-/2"}, "weekday range '1-' has no end"),
    ({"cron": "0 6 * * */"}, "bad step in weekday field '*/'"),
    ({"cron": "0 6 * * -fri"}, "bad weekday ''"),
    ({"cron": "0 6 * * monday"}, "bad weekday 'monday'"),
])
def test_bad_daemon_config_names_the_key(table, message):
    with pytest.raises(ConfigError) as caught:
        daemon_config(**table)
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


def test_the_longest_durations_are_accepted_and_schedule():
    config = daemon_config(interval="366d", misfire_grace_time="366d", stop_timeout="1d",
                           remind_after="366d")
    assert config.interval == 366 * 86400 and config.describe() == "every 366d"
    assert config.trigger().get_next_fire_time(None, datetime(2026, 12, 3, tzinfo=UTC))


def test_cron_weekdays_mean_what_crontab_means():
    assert crontab_fields("0 6 * * 0")["day_of_week"] == "sun"
    assert crontab_fields("0 6 * * 7")["day_of_week"] == "sun"
    assert crontab_fields("0 6 * * 1-5")["day_of_week"] == "mon,tue,wed,thu,fri"
    assert crontab_fields("0 6 * * 5-7")["day_of_week"] == "sun,fri,sat"
    assert crontab_fields("0 6 * * */2")["day_of_week"] == "sun,tue,thu,sat"
    assert crontab_fields("0 6 * * sat,sun")["day_of_week"] == "sun,sat"
    config = daemon_config(cron="30 6 * * 1", remind_after="never")
    assert config.remind_after is None
    assert config.describe() == "cron '30 6 * * 1' (UTC)"
    thursday = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    fire = config.trigger().get_next_fire_time(None, thursday)
    assert fire == datetime(2026, 12, 7, 6, 30, tzinfo=UTC)  # the next Monday, in UTC
    assert fire.weekday() == 0


def test_json_log_lines_carry_the_cycle():
    record = logging.LogRecord("baseliner.daemon", logging.INFO, __file__, 1,
                               "cycle %d ok", (3,), None)
    record.cycle = {"id": 3, "outcome": "ok"}
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "baseliner.daemon"
    assert line["message"] == "cycle 3 ok" and line["cycle"] == {"id": 3, "outcome": "ok"}
    assert line["time"].endswith("Z")


# ---------------------------------------------------------------- the scheduled daemon


def test_daemon_runs_cycles_on_schedule_alerts_and_prunes(aws, tmp_path, httpserver):
    endpoint, image = aws
    east, west = ec2(endpoint, "us-east-1"), ec2(endpoint, "eu-west-1")
    launch(east, 2, image=image)
    (stray,) = launch(west, 1, name="stray", image=image)  # eu-west-1 is not an expected region
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    httpserver.expect_request("/json", method="POST").respond_with_data("ok")
    alerts_file = tmp_path / "alerts" / "findings.jsonl"
    config_path = write_config(
        tmp_path,
        daemon='interval = "1s"\nmetrics_port = 0\nremind_after = "1h"',
        store="keep_last = 2",
        alerts=f"""
[[alerts]]
type = "jsonl"
path = "{alerts_file}"

[[alerts]]
type = "webhook"
url = "{httpserver.url_for('/slack')}"
timeout = "5s"

[[alerts]]
type = "webhook"
name = "soc"
url = "{httpserver.url_for('/json')}"
format = "json"
min_severity = "medium"
kinds = ["instance_created", "unused_region"]
""")
    config = load(config_path)
    db = config.store.path

    def no_exit(code: int) -> None:
        raise AssertionError(f"the daemon tried to end the test process ({code})")

    daemon = Daemon(config, db, exit_process=no_exit)
    seen: dict[str, object] = {}
    intruder: list[str] = []

    def drive() -> None:
        try:
            wait_for(lambda: daemon.cycles_run >= 1)
            intruder.extend(launch(east, 1, name="intruder", image=image))
            wait_for(lambda: daemon.cycles_run >= 3)
            with urllib.request.urlopen(
                f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5
            ) as response:
                seen["metrics"] = response.read().decode()
            with open_store(db) as store:
                seen["status"] = status(store)
        finally:
            daemon.stop()

    driver = threading.Thread(target=drive)
    started = time.monotonic()
    with WriterLock(db, "baseliner daemon") as lock:
        daemon.lock = lock
        driver.start()
        code = daemon.run()
    driver.join()
    assert code == 0
    assert time.monotonic() - started < 20

    with open_store(db) as store:
        cycles = store.cycles(limit=50)
        after = status(store)
        snapshots = store.snapshots()
    assert len(cycles) >= 3
    assert {c["outcome"] for c in cycles} == {"ok"}
    ordered = sorted(cycles, key=lambda c: c["id"])
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert earlier["finished_at"] <= later["started_at"]  # one cycle at a time
    assert len(snapshots) == 2  # keep_last = 2, pruned after every cycle
    assert sum(c["pruned"] for c in cycles) == len(cycles) - 2

    # The unused region is a condition: alerted once over every cycle. The new instance
    # is an event: alerted in the cycle that saw it.
    lines = jsonl(alerts_file)
    assert [(line["kind"], line["alert"]["reason"]) for line in lines] == [
        ("unused_region", "new"), ("instance_created", "event")]
    assert lines[0]["instances"] == [stray]
    assert lines[1]["instance_id"] == intruder[0]
    assert lines[1]["techniques"] == ["T1578.002"]

    slack = [r.get_json() for r, _ in httpserver.log if r.path == "/slack"]
    soc = [r.get_json() for r, _ in httpserver.log if r.path == "/json"]
    assert len(slack) == 2 and len(soc) == 2
    assert all(set(body) == {"text", "blocks"} for body in slack)
    assert intruder[0] in json.dumps(slack[1]["blocks"])
    assert [f["kind"] for body in soc for f in body["findings"]] == ["unused_region",
                                                                      "instance_created"]
    assert soc[1]["source"] == "baseliner" and soc[1]["snapshot"] > soc[0]["snapshot"]

    metrics = str(seen["metrics"])
    assert "baseliner_last_success_timestamp_seconds " in metrics
    assert (f'baseliner_instances{{account="{ACCOUNT_A}",provider="aws",region="us-east-1"}} '
            "3.0") in metrics
    assert 'baseliner_findings{kind="unused_region",severity="high"} 1.0' in metrics
    assert 'baseliner_cycles_total{outcome="ok"}' in metrics
    assert "baseliner_cycle_duration_seconds_count " in metrics
    assert "# TYPE baseliner_scope_failures_total counter" in metrics
    assert 'baseliner_failed_scopes{provider="aws"} 0.0' in metrics
    assert 'baseliner_alerts_sent_total{sink="soc"} 2.0' in metrics

    running = seen["status"]
    assert running["daemon"]["running"] is True
    assert running["daemon"]["schedule"] == "every 1s"
    assert running["next_cycle_at"] is not None
    assert running["last_cycle"]["outcome"] == "ok"
    assert running["alert_conditions"] == 1
    assert {s["sink"]: s["last_ok"] for s in running["alert_sinks"]} == {
        f"jsonl:{alerts_file}": True, f"webhook:{httpserver.url_for('/')[:-1]}": True,
        "soc": True}
    assert after["daemon"]["running"] is False and after["daemon"]["stopped_at"]
    assert after["next_cycle_at"] is None and after["current_cycle"] is None


# ---------------------------------------------------------------- --once and status


def test_once_runs_one_cycle_and_a_failing_webhook_is_retried_next_cycle(
    aws, tmp_path, httpserver, capsys
):
    endpoint, image = aws
    launch(ec2(endpoint, "eu-west-1"), 1, image=image)
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    alerts_file = tmp_path / "findings.jsonl"
    config = write_config(tmp_path, alerts=f"""
[[alerts]]
type = "jsonl"
path = "{alerts_file}"

[[alerts]]
type = "webhook"
url = "{httpserver.url_for('/hook')}"
format = "json"
retries = 0
""")
    base = ["--quiet", "--config", str(config)]
    assert main([*base, "daemon", "--once"]) == 0
    assert [line["alert"]["reason"] for line in jsonl(alerts_file)] == ["new"]
    capsys.readouterr()
    assert main([*base, "status", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["last_cycle"]["outcome"] == "ok"
    assert data["last_cycle"]["alerts_sent"] == 1 and data["last_cycle"]["alerts_failed"] == 1
    assert data["last_cycle"]["findings"] == {"high": 1}
    hook = next(s for s in data["alert_sinks"] if s["sink"].startswith("webhook:"))
    assert hook["last_ok"] is False and hook["failures_since_success"] == 1
    assert hook["last_error"] == "HTTP 500 (after 1 attempt)"
    assert data["alert_conditions"] == 0  # not marked sent: the webhook never had it

    assert main([*base, "status"]) == 0
    table = text_of(capsys.readouterr().out)
    assert "FAILING, 1 failed delivery and none succeeded yet; last error: HTTP 500" in table
    assert "daemon not running" in table

    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("ok")
    assert main([*base, "daemon", "--once"]) == 0
    assert [line["alert"]["reason"] for line in jsonl(alerts_file)] == ["new", "new"]
    (request, _), = httpserver.log
    assert request.get_json()["findings"][0]["kind"] == "unused_region"
    assert main([*base, "daemon", "--once"]) == 0  # nothing new: nothing sent
    assert len(jsonl(alerts_file)) == 2 and len(httpserver.log) == 1
    capsys.readouterr()
    assert main([*base, "status", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alert_conditions"] == 1
    assert data["alert_sinks"][1]["last_ok"] is True


def test_once_with_an_unreachable_cloud_is_partial(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    config = write_config(tmp_path)
    assert main(["--quiet", "--config", str(config), "daemon", "--once"]) == 3
    capsys.readouterr()
    assert main(["--quiet", "--config", str(config), "status", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["last_cycle"]["outcome"] == "partial"
    assert data["last_cycle"]["findings"] == {}
    (failing,) = data["failing_scopes"]
    assert failing["provider"] == "aws" and failing["region"] == "*"
    assert "Could not connect" in failing["detail"]


def test_status_of_an_empty_database(tmp_path, capsys):
    db = tmp_path / "s.db"
    open_store(db, create=True).close()
    assert main(["--db", str(db), "status"]) == 0
    out = text_of(capsys.readouterr().out)
    assert "last cycle none yet" in out and "next cycle - (daemon not running)" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] == 0


def test_a_cycle_left_running_by_a_dead_process_shows_as_interrupted(tmp_path, capsys):
    db = tmp_path / "s.db"
    with open_store(db, create=True) as store:
        store.start_cycle("2026-12-01T00:00:00Z")  # then kill -9: nobody holds the lock
        data = status(store)
    assert data["current_cycle"] is None
    assert data["last_cycle"]["outcome"] == "interrupted"
    # The next daemon to start records it so.
    config = load(write_config(tmp_path))
    Daemon(config, db)._prepare(publish=False)
    with open_store(db) as store:
        (cycle,) = store.cycles()
    assert cycle["outcome"] == "interrupted" and cycle["finished_at"]


def test_a_metrics_port_in_use_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, daemon=f"metrics_port = {port}")
        assert main(["--quiet", "--config", str(config), "daemon"]) == 2
    err = capsys.readouterr().err
    assert f"daemon.metrics_port: cannot listen on 127.0.0.1:{port}" in err
    assert holder(tmp_path / "store.db") is None


def test_skipped_and_missed_cycles_are_logged(tmp_path, caplog):
    from types import SimpleNamespace

    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

    daemon = Daemon(load(write_config(tmp_path, daemon='interval = "1m"')), tmp_path / "s.db")
    due = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="baseliner.daemon"):
        daemon._on_scheduler_event(SimpleNamespace(code=EVENT_JOB_MAX_INSTANCES,
                                                   scheduled_run_times=[due]))
        daemon._on_scheduler_event(SimpleNamespace(code=EVENT_JOB_MISSED,
                                                   scheduled_run_time=due))
    assert caplog.messages == [
        "cycle due at 2026-12-01T06:00:00Z skipped: the previous cycle is still running "
        "(interval too short for the estate?)",
        "cycle due at 2026-12-01T06:00:00Z skipped: missed by more than misfire_grace_time "
        "(5m)",
    ]


# ---------------------------------------------------------------- database faults


def failing_final_write(monkeypatch) -> None:
    """The write that ends a cycle fails, as on a full disk; every other write works."""
    from baseliner.store import Store

    real = Store.finish_cycle

    def finish_cycle(self, cycle_id, **fields):
        if fields.get("outcome") in ("ok", "partial"):
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, cycle_id, **fields)

    monkeypatch.setattr(Store, "finish_cycle", finish_cycle)


def errors_logged(caplog) -> list[str]:
    """ERROR lines, each one line without a traceback."""
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    return [r.getMessage() for r in records]


def test_once_exits_4_when_the_cycle_cannot_be_recorded(tmp_path, monkeypatch, capsys,
                                                        caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    config = write_config(tmp_path)
    failing_final_write(monkeypatch)
    assert main(["--config", str(config), "daemon", "--once"]) == 4
    assert "Traceback" not in capsys.readouterr().err
    (line,) = errors_logged(caplog)
    assert line.startswith("cycle 1 failed in")
    assert line.endswith(f"error: {tmp_path / 'store.db'}: cannot record the end of the "
                         "cycle: database or disk is full")


def test_a_cycle_that_cannot_start_exits_4(tmp_path, monkeypatch, capsys, caplog):
    from baseliner.store import Store

    def start_cycle(self, started_at):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "start_cycle", start_cycle)
    config = write_config(tmp_path)
    assert main(["--config", str(config), "daemon", "--once"]) == 4
    assert "Traceback" not in capsys.readouterr().err
    assert errors_logged(caplog) == [
        f"cycle not run: {tmp_path / 'store.db'}: cannot start a cycle: database or disk "
        "is full"]


def test_a_read_only_database_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from baseliner.store import Store

    def interrupt_cycles(self, finished_at):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Store, "interrupt_cycles", interrupt_cycles)
    config = write_config(tmp_path)
    assert main(["--config", str(config), "daemon", "--once"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"baseliner: error: {tmp_path / 'store.db'}: cannot write: attempt to write a "
        "readonly database")
    assert holder(tmp_path / "store.db") is None


def test_the_daemon_records_a_cycle_whose_final_write_failed_once_it_can(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    config = load(write_config(tmp_path))
    db = config.store.path
    daemon = Daemon(config, db)
    with monkeypatch.context() as patch:
        failing_final_write(patch)
        with caplog.at_level(logging.INFO, logger="baseliner.daemon"):
            first = daemon._job()
    assert first is not None and first.outcome == "failed" and first.exit_code == 4
    assert "database or disk is full" in first.error
    with open_store(db) as store:
        assert [c["outcome"] for c in store.cycles()] == ["running"]  # could not say more
    second = daemon._job()
    assert second is not None and second.outcome == "partial"
    with open_store(db) as store:
        latest, earlier = store.cycles()
    assert latest["id"] == second.id and latest["outcome"] == "partial"
    assert earlier["id"] == first.id and earlier["outcome"] == "failed"
    assert earlier["finished_at"] and "database or disk is full" in earlier["error"]
    assert "Traceback" not in caplog.text


def test_conditions_of_a_scope_that_failed_this_cycle_are_not_forgotten(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # every scope fails
    alerts_file = tmp_path / "alerts.jsonl"
    config = write_config(tmp_path, alerts=f'[[alerts]]\ntype = "jsonl"\npath = "{alerts_file}"')
    ident = f"unused_region:aws:{ACCOUNT_A}:eu-west-1"
    with open_store(tmp_path / "store.db", create=True) as store:
        store.update_alert_states([{"condition": ident, "digest": "d", "kind": "unused_region",
                                    "severity": "high", "first_sent": "2026-12-01T00:00:00Z",
                                    "last_sent": "2026-12-01T00:00:00Z"}], [])
    assert main(["--quiet", "--config", str(config), "daemon", "--once"]) == 3
    with open_store(tmp_path / "store.db") as store:
        assert list(store.alert_states()) == [ident]
