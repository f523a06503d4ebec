"""The command line: exit codes, one-line errors, the demo, and untouched data on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from baseliner.cli import main

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "snapshots" / "sample"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def db(tmp_path, capsys):
    path = tmp_path / "b.db"
    for moment in ("t1", "t2"):
        code, _, _ = run(capsys, "--db", str(path), "collect", "--from-export",
                         str(SAMPLE / moment))
        assert code == 0
    return path


def test_demo_runs_as_a_module_with_no_cloud_account():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    done = subprocess.run([sys.executable, "-m", "baseliner", "demo"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "instance_created" in done.stdout or "created" in done.stdout
    assert "Coverage gaps" in done.stdout


def test_demo_json_has_the_documented_shape(capsys):
    code, out, _ = run(capsys, "demo", "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"old", "new", "findings"}
    assert set(result["old"]) >= {"id", "taken_at", "status"}
    kinds = {f["kind"] for f in result["findings"]}
    assert {"instance_created", "instance_deleted", "instance_modified", "instance_started",
            "instance_stopped", "coverage_gap"} <= kinds
    for finding in result["findings"]:
        assert set(finding) >= {"kind", "severity", "provider", "account", "region",
                                "instance_id", "key", "changes", "techniques"}


def test_collect_from_export_prints_id_and_summary(tmp_path, capsys):
    code, out, _ = run(capsys, "--db", str(tmp_path / "x.db"), "collect", "--from-export",
                       str(SAMPLE / "t1" / "111111111111-us-east-1.json"), "--from-export",
                       str(SAMPLE / "t1" / "222222222222-us-east-1.json"))
    assert code == 0
    assert out.startswith("snapshot 1: complete, 4 instances in 2 scopes")


def test_fail_on_exits_1_only_at_or_above_the_severity(db, capsys):
    assert run(capsys, "--db", str(db), "diff", "--fail-on", "medium")[0] == 1
    assert run(capsys, "--db", str(db), "diff", "--fail-on", "high")[0] == 0


def test_show_by_instance_id(db, capsys):
    code, out, _ = run(capsys, "--db", str(db), "show", "i-0a11111111111111a", "--format", "json")
    assert code == 0
    assert json.loads(out)["instance_type"] == "t3.xlarge"
    code, out, _ = run(capsys, "--db", str(db), "show", "i-0a11111111111111a")
    assert "t3.xlarge" in out


def test_snapshots_table(db, capsys):
    code, out, _ = run(capsys, "--db", str(db), "snapshots")
    assert code == 0 and "complete" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["diff", "7"], 2, "no snapshot 7"),
        (["diff", "2", "1"], 2, "is newer than NEW"),
        (["diff", "sometime"], 2, "not a snapshot reference"),
        (["show", "i-doesnotexist"], 2, "no instance"),
        (["collect", "--from-export", "/nonexistent/x.json"], 2, "no such export"),
        (["--config", "/nonexistent.toml", "snapshots"], 2, "configuration file not found"),
    ],
)
def test_bad_input_is_one_line_and_a_distinct_exit_code(db, capsys, argv, code, message):
    before = db.read_bytes()
    got, out, err = run(capsys, "--db", str(db), *argv)
    assert got == code
    assert message in err
    assert err.count("\n") == 1 and err.startswith("baseliner: error: ")
    assert db.read_bytes() == before


def test_malformed_export_stores_nothing(db, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Reservations": [{"OwnerId": "1"')
    before = db.read_bytes()
    code, _, err = run(capsys, "--db", str(db), "collect", "--from-export", str(bad))
    assert code == 2 and str(bad) in err and "not valid JSON" in err
    assert db.read_bytes() == before


def test_unreadable_database_exit_4_and_file_untouched(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 512)
    before = junk.read_bytes()
    code, _, err = run(capsys, "--db", str(junk), "collect", "--from-export", str(SAMPLE / "t1"))
    assert code == 4 and "not a readable baseliner database" in err
    assert junk.read_bytes() == before


def test_reading_commands_never_create_a_database(tmp_path, capsys):
    path = tmp_path / "none.db"
    code, _, err = run(capsys, "--db", str(path), "snapshots")
    assert code == 4 and "run 'baseliner collect' first" in err
    assert not path.exists()


def test_diff_needs_two_snapshots(tmp_path, capsys):
    path = tmp_path / "one.db"
    run(capsys, "--db", str(path), "collect", "--from-export", str(SAMPLE / "t1"))
    code, _, err = run(capsys, "--db", str(path), "diff")
    assert code == 2 and "nothing to compare" in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["diff", "--format", "yaml"])
    assert caught.value.code == 2


def test_bad_config_key_exit_2_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[aws]\nmax_workers = 'many'\n")
    code, _, err = run(capsys, "--config", str(cfg), "collect")
    assert code == 2
    assert err.strip() == (f"baseliner: error: {cfg}: aws.max_workers: expected an integer, "
                           "got 'many'")


@pytest.mark.skipif(shutil.which("baseliner") is None, reason="console script not on PATH")
def test_console_script_is_installed():
    done = subprocess.run(["baseliner", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("baseliner ")


def test_escape_sequences_in_cloud_values_never_reach_the_terminal(tmp_path, capsys):
    doc = json.loads((SAMPLE / "t1" / "222222222222-us-east-1.json").read_text())
    name = doc["Reservations"][0]["Instances"][0]["Tags"][0]
    t1 = tmp_path / "t1"
    t1.mkdir()
    (t1 / "222222222222-us-east-1.json").write_text(json.dumps(doc))
    name["Value"] = "ci\x1b]0;PWNED\x07\x1b[2J\x1b[31mevil"
    t2 = tmp_path / "t2"
    t2.mkdir()
    (t2 / "222222222222-us-east-1.json").write_text(json.dumps(doc))
    db = str(tmp_path / "e.db")
    for moment in (t1, t2):
        assert run(capsys, "--db", db, "collect", "--from-export", str(moment))[0] == 0
    outputs = [run(capsys, "--db", db, *argv)[1] for argv in (
        ["diff"], ["diff", "--format", "markdown"], ["show", "i-0d77777777777777a"],
        ["history", "i-0d77777777777777a"])]
    assert all("\x1b" not in o and "\x07" not in o for o in outputs)
    assert "\\x1b[2J" in outputs[0]
    code, out, _ = run(capsys, "--db", db, "diff", "--format", "json")
    values = [c["new"] for f in json.loads(out)["findings"] for c in f["changes"]]
    assert "ci\x1b]0;PWNED\x07\x1b[2J\x1b[31mevil" in values  # JSON keeps it, escaped
    assert "\x1b" not in out
