"""`baseliner daemon` as a real process against the moto server: SIGTERM in the middle of a
cycle, the writer lock against a second daemon and a manual collect, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baseliner.cli import main
from baseliner.lock import holder

from .aws_fakes import Proxy, ec2, launch, moto_server, reset


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[tuple[str, str]]:
    """The server and an image id (looking one up costs a second; it survives a reset)."""
    with moto_server() as endpoint:
        images = ec2(endpoint, "us-east-1").describe_images(Owners=["amazon"])["Images"]
        yield endpoint, images[0]["ImageId"]


@pytest.fixture
def proxy(moto_endpoint: tuple[str, str]) -> Iterator[Proxy]:
    endpoint, image = moto_endpoint
    reset(endpoint)
    launch(ec2(endpoint, "us-east-1"), 3, image=image)
    launch(ec2(endpoint, "eu-west-1"), 2, image=image)
    slow = Proxy(endpoint)
    yield slow
    slow.close()


def write_config(tmp_path: Path, daemon: str) -> Path:
    path = tmp_path / "baseliner.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'store.db'}"

[aws]
regions = ["us-east-1", "eu-west-1"]
max_workers = 4
max_attempts = 1

[daemon]
{daemon}
""")
    return path


class DaemonProcess:
    def __init__(self, tmp_path: Path, config: Path, endpoint: str, *args: str) -> None:
        self.log = tmp_path / f"daemon-{time.monotonic_ns()}.log"
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONUNBUFFERED": "1"}
        with self.log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "baseliner", *args, "--config", str(config), "daemon"],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def processes() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        process.kill()


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def finished_cycles(db: Path) -> int:
    return len(query(db, "SELECT id FROM cycles WHERE outcome = 'ok'"))


def assert_consistent(db: Path) -> None:
    """Integrity holds and every stored snapshot is whole."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for snapshot_id, instances, scopes in conn.execute(
                "SELECT id, instance_count, scope_count FROM snapshots"):
            members = conn.execute("SELECT COUNT(*) FROM members WHERE snapshot_id = ?",
                                   (snapshot_id,)).fetchone()[0]
            results = conn.execute("SELECT COUNT(*) FROM scope_results WHERE snapshot_id = ?",
                                   (snapshot_id,)).fetchone()[0]
            assert (members, results) == (instances, scopes)
    finally:
        conn.close()


def test_sigterm_mid_cycle_abandons_it_after_stop_timeout_without_a_partial_snapshot(
    tmp_path, proxy, processes
):
    # A 2s interval: the slowdown must begin before the next cycle does.
    config = write_config(tmp_path, 'interval = "2s"\nstop_timeout = "1s"')
    db = tmp_path / "store.db"
    daemon = DaemonProcess(tmp_path, config, proxy.url)
    processes.append(daemon)
    wait_for(lambda: finished_cycles(db) >= 1)
    proxy.delay = 1.0  # the next cycle's every request now takes a second
    assert proxy.slowed.wait(10)
    signalled = time.monotonic()
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert time.monotonic() - signalled < 6  # stop_timeout 1s, not the whole slow cycle
    log = daemon.stderr()
    assert "received SIGTERM; stopping" in log
    assert "waiting up to 1s for the running cycle to finish" in log
    assert "no snapshot stored" in log and "Traceback" not in log

    assert_consistent(db)
    cycles = query(db, "SELECT outcome, snapshot_id, error FROM cycles ORDER BY id")
    assert [c[0] for c in cycles[:-1]] == ["ok"] * (len(cycles) - 1)
    outcome, snapshot_id, error = cycles[-1]
    assert (outcome, snapshot_id) == ("abandoned", None)
    assert error == "abandoned at stop_timeout 1s; no snapshot was stored"
    assert len(query(db, "SELECT id FROM snapshots")) == len(cycles) - 1
    assert holder(db) is None
    state = dict(query(db, "SELECT key, value FROM daemon_state"))
    assert "stopped_at" in state and "pid" not in state


def test_sigterm_mid_cycle_lets_it_finish_within_stop_timeout(tmp_path, proxy, processes):
    config = write_config(tmp_path, 'interval = "1s"\nstop_timeout = "30s"')
    db = tmp_path / "store.db"
    daemon = DaemonProcess(tmp_path, config, proxy.url)
    processes.append(daemon)
    wait_for(lambda: finished_cycles(db) >= 1)
    proxy.delay = 0.4
    assert proxy.slowed.wait(10)
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait(20) == 0
    log = daemon.stderr()
    assert "received SIGTERM" in log and "abandoned" not in log
    assert "daemon stopped after" in log

    assert_consistent(db)
    cycles = query(db, "SELECT outcome, snapshot_id FROM cycles ORDER BY id")
    assert {c[0] for c in cycles} == {"ok"}  # the signalled cycle finished and stored
    snapshots = query(db, "SELECT id, instance_count FROM snapshots ORDER BY id")
    assert [s[0] for s in snapshots] == [c[1] for c in cycles]
    assert {s[1] for s in snapshots} == {5}


def test_the_lock_refuses_a_second_daemon_and_a_manual_collect(
    tmp_path, proxy, processes, capsys, monkeypatch
):
    config = write_config(tmp_path, 'interval = "1h"')
    db = tmp_path / "store.db"
    daemon = DaemonProcess(tmp_path, config, proxy.url, "--log-format", "json")
    processes.append(daemon)
    wait_for(lambda: finished_cycles(db) >= 1)
    who = holder(db)
    assert who is not None and (who.pid, who.command) == (daemon.pid, "baseliner daemon")

    second = DaemonProcess(tmp_path, config, proxy.url)
    processes.append(second)
    assert second.wait(15) == 2
    assert (f"is being written by 'baseliner daemon' (pid {daemon.pid} on "
            in second.stderr())

    capsys.readouterr()
    assert main(["--quiet", "--config", str(config), "collect"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"baseliner: error: {db} is being written by 'baseliner daemon' "
                          f"(pid {daemon.pid}")
    assert err.rstrip().endswith("try again later or pass --wait")

    assert main(["--quiet", "--config", str(config), "status", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["daemon"]["running"] is True and data["daemon"]["pid"] == daemon.pid
    assert data["daemon"]["schedule"] == "every 1h"
    assert data["next_cycle_at"] > data["last_cycle"]["started_at"]
    assert data["database"]["snapshots"] == 1

    os.kill(daemon.pid, signal.SIGINT)
    assert daemon.wait(15) == 0
    lines = [json.loads(line) for line in daemon.stderr().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    (cycle,) = [line for line in lines if "cycle" in line]
    assert cycle["level"] == "INFO" and cycle["message"].startswith("cycle 1 ok in ")
    assert cycle["cycle"]["instances"] == 5 and cycle["cycle"]["outcome"] == "ok"
    assert cycle["cycle"]["scopes"] == {"ok": 2, "failed": 0, "skipped": 0}
    assert any(line["message"].startswith("received SIGINT") for line in lines)

    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    assert main(["--quiet", "--config", str(config), "collect", "--wait", "5"]) == 0
    assert_consistent(db)
