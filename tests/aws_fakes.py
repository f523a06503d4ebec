"""Local AWS for tests: a moto server, and a proxy in front of it that fails chosen regions."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

ACCOUNT_A = "123456789012"  # moto's default account: the "ambient" credentials
ACCOUNT_B = "111111111111"  # reached by assuming a role
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).close()


def session(endpoint: str, account: str = ACCOUNT_A) -> boto3.Session:
    """A session in ``account``: ambient for A, an assumed role for any other."""
    if account == ACCOUNT_A:
        return boto3.Session(region_name="us-east-1")
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/BaselinerReadOnly", RoleSessionName="tests"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def ec2(endpoint: str, region: str, account: str = ACCOUNT_A) -> Any:
    return session(endpoint, account).client("ec2", region_name=region, endpoint_url=endpoint)


def launch(client: Any, count: int = 1, instance_type: str = "t3.micro",
           name: str | None = None, image: str | None = None) -> list[str]:
    if image is None:
        image = client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    params: dict[str, Any] = {
        "ImageId": image, "MinCount": count, "MaxCount": count, "InstanceType": instance_type,
    }
    if name:
        params["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
        ]
    return [i["InstanceId"] for i in client.run_instances(**params)["Instances"]]


class Proxy:
    """Forwards to moto, with faults to order: every request signed for a region in
    ``failing`` gets a 503, and once ``delay`` is set every request waits that long first."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing: set[str] = set()
        self.failed_requests = 0
        self.delay = 0.0
        self.slowed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.delay:
                    proxy.slowed.set()
                    time.sleep(proxy.delay)
                match = _SCOPE.search(self.headers.get("Authorization", ""))
                if match and match.group(1) in proxy.failing:
                    proxy.failed_requests += 1
                    self._answer(503, {}, _OUTAGE)
                    return
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, headers, data = response.status, response.headers, response.read()
                except urllib.error.HTTPError as exc:
                    status, headers, data = exc.code, exc.headers, exc.read()
                self._answer(status, headers, data)

            def _answer(self, status: int, headers: Any, data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OUTAGE = (
    b"<Response><Errors><Error><Code>ServiceUnavailable</Code>"
    b"<Message>injected outage</Message></Error></Errors></Response>"
)
