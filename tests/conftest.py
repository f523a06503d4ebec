"""Every test process is cut off from real clouds and metadata services.

Set at import time, before any SDK is imported by a test module.
"""

from __future__ import annotations

import os

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_GCE_CHECK": "true",
    "GOOGLE_APPLICATION_CREDENTIALS": "/dev/null",
    "AZURE_CLIENT_ID": "",
    "AZURE_TENANT_ID": "",
    "AZURE_CLIENT_SECRET": "",
}
os.environ.update(_ENV)
for _name in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
    os.environ.pop(_name, None)


# Fixtures shared by the end-to-end tests against a moto server (imported lazily: moto is
# slow to import and most tests do not need it).
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def moto_endpoint():
    from .aws_fakes import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """A reset moto server that boto3 reaches through AWS_ENDPOINT_URL."""
    from .aws_fakes import reset

    reset(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint
