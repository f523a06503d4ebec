"""Redaction: secrets become hash markers wherever they sit; ordinary values stay."""

from __future__ import annotations

import json

import pytest

from baseliner.redact import is_marker, redact

SECRET_VALUES = [
    ("container env", {"items": [{"key": "gce-container-declaration", "value":
        "spec:\n  containers:\n  - env:\n    - name: DB_PASSWORD\n      value: hunter2hunter2\n"}]},
     "hunter2hunter2"),
    ("yaml env pair", {"x": "env:\n - name: DB_PASSWORD\n   value: hunter2hunter2"},
     "hunter2hunter2"),
    ("env line", {"x": "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"},
     "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"),
    ("underscored name", {"x": "DB_PASSWORD=hunter2-correct-horse"}, "hunter2-correct-horse"),
    ("bearer token", {"x": "curl -H 'Authorization: Bearer ya29.a0AfH6SMBplantedtoken'"},
     "ya29.a0AfH6SMBplantedtoken"),
    ("slack webhook", {"x": "https://hooks.slack.com/services/T000/B000/PLANTEDXX"},
     "PLANTEDXX"),
    ("jwt", {"x": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"},
     "c2lnbmF0dXJl"),
    ("aws key id", {"x": "AKIAIOSFODNN7EXAMPLE"}, "AKIAIOSFODNN7EXAMPLE"),
    ("pem", {"x": "-----BEGIN RSA PRIVATE KEY-----\nMIIEplanted"}, "MIIEplanted"),
    ("numeric password", {"adminPassword": 12345678}, "12345678"),
    ("nested secret key", {"osProfile": {"customData": "IyEvYmluL3NoCg=="}}, "IyEvYmluL3NoCg=="),
    ("metadata with extra field", {"items": [{"key": "db-password", "value": "hunter2x",
                                              "note": "x"}]}, "hunter2x"),
    ("startup script", {"items": [{"key": "startup-script", "value": "echo plantedscript"}]},
     "plantedscript"),
    ("sas signature", {"fileUris": ["https://a.blob.core.windows.net/s?sv=1&sig=UGxhbnRlZFNpZw%3D"]},
     "UGxhbnRlZFNpZw"),
    ("account key", {"c": "DefaultEndpointsProtocol=https;AccountKey=UGxhbnRlZEtleQ==;x=y"},
     "UGxhbnRlZEtleQ"),
]


@pytest.mark.parametrize(("document", "secret"), [c[1:] for c in SECRET_VALUES],
                         ids=[c[0] for c in SECRET_VALUES])
def test_secret_is_replaced_by_a_marker(document, secret):
    assert secret in json.dumps(document)
    assert secret not in json.dumps(redact(document))


def test_ordinary_values_are_kept():
    document = {"Name": "web-1", "KeyName": "ops-2026", "desc": "a token bucket",
                "Arn": "arn:aws:iam::111111111111:instance-profile/web",
                "zone": "projects/p/zones/us-central1-a", "count": 3, "flag": True,
                "items": [{"key": "enable-oslogin", "value": "TRUE"}]}
    assert redact(document) == document


def test_a_changed_secret_changes_the_marker_and_equal_ones_under_other_names_differ():
    one = redact({"customData": "a-secret-value"})["customData"]
    two = redact({"customData": "another-secret-value"})["customData"]
    other_name = redact({"userData": "a-secret-value"})["userData"]
    assert is_marker(one) and one != two and one != other_name
    assert redact({"customData": "a-secret-value"})["customData"] == one


def test_redaction_is_idempotent():
    once = redact({"customData": "x" * 20, "t": "password=hunter2hunter2"})
    assert redact(once) == once
