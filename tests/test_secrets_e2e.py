"""All three clouds in one configuration make one snapshot; secrets planted through the real
SDK paths never reach the database, the JSON or the terminal, while a change of a secret is
still reported (through its hash marker)."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from baseliner.cli import main

from .aws_fakes import ec2, launch, moto_server, reset
from .fake_azure import FakeArm, install_az_cli, make_certificate
from .fake_gcp import FakeGcpServer

STARTUP = "#!/bin/sh\ncurl -H 'Authorization: Bearer s3cr3t-gcp-token-123' https://x"
SSH = "alice:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlantedSshKeyMaterial alice"
TAG = "password=Planted-AWS-Tag-Secret-42"
CUSTOM_DATA = "IyEvYmluL3NoCmV4cG9ydCBQTEFOVEVEPWF6dXJlLWN1c3RvbS1kYXRh"
ADMIN_PASSWORD = "Planted-Azure-Admin-Pw-9"
SECRETS = ("s3cr3t-gcp-token-123", "AAAAC3NzaC1lZDI1NTE5AAAAIPlantedSshKeyMaterial",
           "Planted-AWS-Tag-Secret-42", "rotated-secret-value-77", CUSTOM_DATA, ADMIN_PASSWORD)
SUBSCRIPTION = "aaaaaaaa-1111-2222-3333-444444444444"


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


def test_no_planted_secret_reaches_storage_json_or_terminal(tmp_path, capsys, monkeypatch,
                                                             request):
    (tmp_path / "tls").mkdir()
    certificate = make_certificate(tmp_path / "tls")
    install_az_cli(tmp_path, monkeypatch, certificate[0])
    arm = FakeArm(*certificate).start()
    request.addfinalizer(arm.stop)
    with moto_server() as endpoint, FakeGcpServer() as gcp:
        reset(endpoint)
        azure_vm = arm.add_vm(SUBSCRIPTION, "jump", "westeurope", extra={
            "properties.osProfile": {"computerName": "jump", "adminUsername": "ops",
                                     "adminPassword": ADMIN_PASSWORD,
                                     "customData": CUSTOM_DATA}})
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
                       "max_attempts = 2\n"
                       f'[azure]\nsubscriptions = ["{SUBSCRIPTION}"]\ncredential = "cli"\n'
                       f'endpoint = "{arm.base_url}"\nmax_attempts = 2\n')
        db = tmp_path / "s.db"
        outputs = []

        def run(*argv):
            capsys.readouterr()
            code = main(["--config", str(cfg), "--db", str(db), *argv])
            captured = capsys.readouterr()
            outputs.append(captured.out + captured.err)
            return code

        assert run("collect", "--format", "json") == 0
        first = json.loads(outputs[-1])
        assert first["status"] == "complete" and first["instance_count"] == 3
        assert {s["provider"] for s in first["scopes"]} == {"aws", "gcp", "azure"}
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
        assert run("show", azure_vm["properties"]["vmId"]) == 0

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
