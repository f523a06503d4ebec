"""Secrets planted through the real SDK paths never reach the database, the JSON or the
terminal, while a change of a secret is still reported (through its hash marker)."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from baseliner.cli import main

from .aws_fakes import ec2, launch, moto_server, reset
from .fake_gcp import FakeGcpServer

STARTUP = "#!/bin/sh\ncurl -H 'Authorization: Bearer s3cr3t-gcp-token-123' https://x"
SSH = "alice:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlantedSshKeyMaterial alice"
TAG = "password=Planted-AWS-Tag-Secret-42"
SECRETS = ("s3cr3t-gcp-token-123", "AAAAC3NzaC1lZDI1NTE5AAAAIPlantedSshKeyMaterial",
           "Planted-AWS-Tag-Secret-42", "rotated-secret-value-77")


@pytest.fixture(autouse=True)
def no_default_credentials(monkeypatch):
    import google.auth

    def refuse(*args, **kwargs):
        raise AssertionError("a test called google.auth.default()")

    monkeypatch.setattr(google.auth, "default", refuse)


def every_stored_text(db) -> str:
    """Every document body, decompressed with its dictionary, plus every other column."""
    with sqlite3.connect(db) as conn:
        zdicts = dict(conn.execute("SELECT id, body FROM dictionaries"))
        texts = [b.decode("latin-1") for (b,) in conn.execute("SELECT body FROM dictionaries")]
        for dictionary, body in conn.execute("SELECT dictionary, body FROM documents"):
            unpacker = zlib.decompressobj(zdict=zdicts[dictionary])
            texts.append((unpacker.decompress(body) + unpacker.flush()).decode())
        for table in ("scope_results", "snapshots"):
            texts.extend(str(row) for row in conn.execute(f"SELECT * FROM {table}"))
    return "\n".join(texts) + db.read_bytes().decode("latin-1")


def test_no_planted_secret_reaches_storage_json_or_terminal(tmp_path, capsys, monkeypatch):
    with moto_server() as endpoint, FakeGcpServer() as gcp:
        reset(endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        client = ec2(endpoint, "us-east-1")
        [instance] = launch(client, 1, name="web")
        client.create_tags(Resources=[instance], Tags=[{"Key": "bootstrap", "Value": TAG}])
        project = gcp.fake.add_project("acme-prod-1234")
        vm = project.create("vm", "us-central1-a",
                            metadata={"startup-script": STARTUP, "ssh-keys": SSH})
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[aws]\nregions = ["us-east-1"]\nmax_attempts = 2\n'
                       f'[gcp]\nprojects = ["acme-prod-1234"]\nendpoint = "{gcp.url}"\n'
                       "max_attempts = 2\n")
        db = tmp_path / "s.db"
        outputs = []

        def run(*argv):
            capsys.readouterr()
            code = main(["--config", str(cfg), "--db", str(db), *argv])
            captured = capsys.readouterr()
            outputs.append(captured.out + captured.err)
            return code

        assert run("collect") == 0
        items = vm["metadata"]["items"]
        next(i for i in items if i["key"] == "startup-script")["value"] = (
            "#!/bin/sh\nexport TOKEN=rotated-secret-value-77"
        )
        assert run("collect", "--format", "json") == 0
        assert run("diff") == 0
        assert run("diff", "--format", "json") == 0
        diff = json.loads(outputs[-1])
        assert run("show", instance) == 0
        assert run("show", instance, "--format", "json") == 0
        assert run("show", vm["id"], "--format", "json") == 0

    changed = [f for f in diff["findings"] if f["kind"] == "instance_modified"]
    assert [f["instance_id"] for f in changed] == [vm["id"]]
    [change] = changed[0]["changes"]
    assert change["path"].startswith("raw.metadata.items")
    assert change["old"].startswith("[redacted:") and change["new"].startswith("[redacted:")
    assert change["old"] != change["new"]

    stored = every_stored_text(db)
    for secret in SECRETS:
        assert secret not in stored
        for output in outputs:
            assert secret not in output
    assert "[redacted:" in stored
