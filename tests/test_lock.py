"""One writer per database: the lock next to it, who holds it, and --wait."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from baseliner.cli import main
from baseliner.lock import LockedError, WriterLock, holder, lock_path

SAMPLE = Path(__file__).resolve().parent.parent / "snapshots" / "sample" / "t1"


def test_the_lock_file_sits_next_to_the_database(tmp_path: Path):
    db = tmp_path / "store.db"
    assert lock_path(db) == tmp_path / "store.db.lock"
    link = tmp_path / "link.db"
    link.symlink_to(db)
    assert lock_path(link) == tmp_path / "store.db.lock"  # one lock whatever the spelling


def test_a_second_writer_is_told_who_holds_the_lock(tmp_path: Path):
    db = tmp_path / "store.db"
    with WriterLock(db, "baseliner daemon"):
        who = holder(db)
        assert who is not None
        assert (who.pid, who.host, who.command) == (os.getpid(), socket.gethostname(),
                                                    "baseliner daemon")
        started = time.monotonic()
        with pytest.raises(LockedError) as caught:
            WriterLock(db, "baseliner collect").acquire()
        assert time.monotonic() - started < 2
    message = str(caught.value)
    assert message.startswith(f"{db} is being written by 'baseliner daemon' (pid {os.getpid()}")
    assert message.endswith("try again later or pass --wait")
    assert caught.value.exit_code == 2
    assert holder(db) is None
    assert lock_path(db).read_text() == ""  # released: nobody named any more
    assert oct(lock_path(db).stat().st_mode & 0o777) == "0o600"


def test_wait_gives_up_after_its_time(tmp_path: Path):
    db = tmp_path / "store.db"
    with WriterLock(db, "baseliner prune"):
        started = time.monotonic()
        with pytest.raises(LockedError, match="gave up after waiting 0.6s"):
            WriterLock(db, "baseliner collect").acquire(wait=0.6)
        assert 0.5 < time.monotonic() - started < 3


def test_wait_takes_the_lock_once_it_is_free(tmp_path: Path):
    db = tmp_path / "store.db"
    first = WriterLock(db, "baseliner daemon --once").acquire()
    threading.Timer(0.4, first.release).start()
    second = WriterLock(db, "baseliner collect").acquire(wait=math.inf)
    try:
        assert json.loads(lock_path(db).read_text())["command"] == "baseliner collect"
    finally:
        second.release()


def test_a_stale_text_without_a_lock_is_not_a_holder(tmp_path: Path):
    db = tmp_path / "store.db"
    lock_path(db).write_text(json.dumps({"pid": 1, "host": "gone", "command": "baseliner daemon",
                                         "since": "2026-01-01T00:00:00Z"}))
    assert holder(db) is None  # a crashed daemon leaves text, never a lock
    with WriterLock(db, "baseliner collect"):
        assert holder(db).command == "baseliner collect"


def test_collect_refuses_while_another_process_writes(tmp_path: Path, capsys):
    db = tmp_path / "store.db"
    with WriterLock(db, "baseliner daemon"):
        code = main(["--quiet", "--db", str(db), "collect", "--from-export", str(SAMPLE)])
        err = capsys.readouterr().err
        assert code == 2
        assert "is being written by 'baseliner daemon'" in err
        code = main(["--quiet", "--db", str(db), "collect", "--wait", "0.3",
                     "--from-export", str(SAMPLE)])
        assert code == 2
        assert "gave up after waiting 0.3s" in capsys.readouterr().err
    assert main(["--quiet", "--db", str(db), "collect", "--wait",
                 "--from-export", str(SAMPLE)]) == 0
    assert main(["--quiet", "--db", str(db), "prune", "--wait", "1s"]) == 2  # no policy


def test_prune_takes_the_lock(tmp_path: Path, capsys):
    db = tmp_path / "store.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{db}"\nkeep_last = 1\n')
    assert main(["--quiet", "--config", str(config), "collect", "--from-export",
                 str(SAMPLE)]) == 0
    with WriterLock(db, "baseliner daemon"):
        assert main(["--quiet", "--config", str(config), "prune"]) == 2
        assert "is being written by 'baseliner daemon'" in capsys.readouterr().err
        # A dry run writes nothing, so it needs no lock.
        assert main(["--quiet", "--config", str(config), "prune", "--dry-run"]) == 0


def test_wait_option_rejects_nonsense(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["collect", "--wait", "soon"])
    assert caught.value.code == 2
    assert "not a number of seconds or a duration: 'soon'" in capsys.readouterr().err
