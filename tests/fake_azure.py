"""A fake Azure Resource Manager on 127.0.0.1, over HTTPS, for the real Azure SDK clients.

azure-core refuses bearer tokens over plain http, so the server speaks TLS with a self-signed
certificate for 127.0.0.1 and localhost made here with ``cryptography``; clients trust it
through ``connection_verify=<cert>`` (or ``REQUESTS_CA_BUNDLE``).

It answers the few calls the Azure provider makes, as ARM does:

- ``GET /subscriptions`` (discovery);
- ``GET /subscriptions/{s}/locations``;
- ``GET /subscriptions/{s}/providers/Microsoft.Compute/virtualMachines`` with or without
  ``statusOnly=true``, paged by ``nextLink`` (which carries the api-version, as ARM's does).

Every request must carry ``api-version`` and ``Authorization: Bearer fake``. Failures are
injected per subscription (an ARM error code, a number of 429 answers with Retry-After).
Every request is logged, so a test can count calls and check that nothing but GET was sent.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake"

ERRORS = {
    "AuthorizationFailed": (403, "The client 'baseliner-test' with object id "
                                 "'00000000-0000-0000-0000-0000000000aa' does not have "
                                 "authorization to perform action "
                                 "'Microsoft.Compute/virtualMachines/read' over scope "
                                 "'/subscriptions/{sub}' or the scope is invalid."),
    "SubscriptionNotFound": (404, "The subscription '{sub}' could not be found."),
    "MissingSubscriptionRegistration": (409, "The subscription is not registered to use "
                                             "namespace 'Microsoft.Compute'."),
    "InternalServerError": (500, "Something went wrong."),
}

PHYSICAL_LOCATIONS = ("westeurope", "northeurope", "eastus", "uksouth")
LOGICAL_LOCATIONS = ("europe",)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (a CA for itself) for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "baseliner fake ARM")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "arm.pem", directory / "arm-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


@dataclass
class FakeSubscription:
    id: str
    state: str = "Enabled"
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name -> ARM wire document (no instanceView)."""
    power: dict[str, str] = field(default_factory=dict)
    """name -> PowerState code (running, deallocated, ...)."""
    error: str | None = None
    """An ARM error code from ERRORS answered to every VM listing."""
    throttle: int = 0
    """How many VM listings to answer with 429 before answering normally."""
    locations: tuple[str, ...] = PHYSICAL_LOCATIONS


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]


class FakeArm:
    """The estate and the server. ``base_url`` is ``https://127.0.0.1:<port>``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.lock = threading.Lock()
        self.subscriptions: dict[str, FakeSubscription] = {}
        self.requests: list[Request] = []
        self.page_size = 2
        self.retry_after = "1"
        self.discovery_error: str | None = None
        handler = _handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeArm:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.subscriptions.clear()
            self.requests.clear()
            self.page_size = 2
            self.retry_after = "1"
            self.discovery_error = None

    # ------------------------------------------------------------ the estate

    def subscription(self, sub: str, **kwargs: Any) -> FakeSubscription:
        with self.lock:
            if sub not in self.subscriptions:
                self.subscriptions[sub] = FakeSubscription(sub, **kwargs)
            return self.subscriptions[sub]

    def add_vm(self, sub: str, name: str, location: str = "westeurope", *,
               size: str = "Standard_B2s", zone: str | None = None, power: str = "running",
               tags: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
        doc = vm_document(sub, name, location, size=size, zone=zone, tags=tags)
        for key, value in (extra or {}).items():
            _deep_update(doc, key, value)
        subscription = self.subscription(sub)
        with self.lock:
            subscription.vms[name] = doc
            subscription.power[name] = power
        return doc

    def delete_vm(self, sub: str, name: str) -> None:
        with self.lock:
            del self.subscriptions[sub].vms[name]
            del self.subscriptions[sub].power[name]

    def resize(self, sub: str, name: str, size: str) -> None:
        with self.lock:
            self.subscriptions[sub].vms[name]["properties"]["hardwareProfile"]["vmSize"] = size

    def set_power(self, sub: str, name: str, power: str) -> None:
        with self.lock:
            self.subscriptions[sub].power[name] = power

    def requests_for(self, sub: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(f"/subscriptions/{sub}/")]

    # ------------------------------------------------------------ answers

    def answer(self, method: str, target: str, headers: Any) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        path = parts.path.rstrip("/")
        with self.lock:
            self.requests.append(Request(method, path, query))
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if method != "GET":
            return _error(405, "MethodNotAllowed", "The fake ARM only answers GET.")
        if not query.get("api-version"):
            return _error(400, "MissingApiVersionParameter",
                          "The api-version query parameter (?api-version=) is required.")
        segments = path.split("/")
        if path == "/subscriptions":
            return self._subscriptions()
        if len(segments) == 4 and segments[3] == "locations":
            return self._locations(segments[2], query)
        if path.lower().endswith("/providers/microsoft.compute/virtualmachines"):
            return self._vms(segments[2], query, parts)
        return _error(404, "NotFound", f"no route for {path}")

    def _subscriptions(self) -> tuple[int, dict[str, str], Any]:
        if self.discovery_error:
            status, message = ERRORS[self.discovery_error]
            return _error(status, self.discovery_error, message.format(sub="*"))
        with self.lock:
            value = [
                {"id": f"/subscriptions/{s.id}", "subscriptionId": s.id,
                 "displayName": f"sub {s.id[:8]}", "state": s.state,
                 "tenantId": "tttttttt-0000-0000-0000-000000000000"}
                for s in self.subscriptions.values()
            ]
        return 200, {}, {"value": value}

    def _locations(self, sub: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        subscription = self.subscriptions.get(sub)
        if subscription is None:
            status, message = ERRORS["SubscriptionNotFound"]
            return _error(status, "SubscriptionNotFound", message.format(sub=sub))
        value = [_location(sub, name, "Physical") for name in subscription.locations]
        value += [_location(sub, name, "Logical") for name in LOGICAL_LOCATIONS]
        return 200, {}, {"value": value}

    def _vms(self, sub: str, query: dict[str, list[str]],
             parts: Any) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            subscription = self.subscriptions.get(sub)
            if subscription is None:
                status, message = ERRORS["SubscriptionNotFound"]
                return _error(status, "SubscriptionNotFound", message.format(sub=sub))
            if subscription.throttle > 0:
                subscription.throttle -= 1
                status, headers, body = _error(
                    429, "SubscriptionRequestsThrottled",
                    "Number of read requests for subscription exceeded the limit.")
                return status, {**headers, "Retry-After": self.retry_after}, body
            if subscription.error:
                status, message = ERRORS[subscription.error]
                return _error(status, subscription.error, message.format(sub=sub))
            status_only = query.get("statusOnly", [""])[0].lower() == "true"
            names = sorted(subscription.vms)
            start = int(query.get("$skiptoken", ["0"])[0])
            page = names[start:start + self.page_size]
            value = [
                _status_document(subscription.vms[n], subscription.power[n]) if status_only
                else json.loads(json.dumps(subscription.vms[n]))
                for n in page
            ]
        body: dict[str, Any] = {"value": value}
        if start + self.page_size < len(names):
            next_query = f"api-version={query['api-version'][0]}"
            if status_only:
                next_query += "&statusOnly=true"
            next_query += f"&$skiptoken={start + self.page_size}"
            body["nextLink"] = f"{self.base_url}{parts.path}?{next_query}"
        return 200, {}, body


def vm_document(sub: str, name: str, location: str, *, size: str = "Standard_B2s",
                zone: str | None = None, tags: dict[str, str] | None = None,
                rg: str = "rg-prod") -> dict[str, Any]:
    """An ARM wire VM document as ``GET .../virtualMachines`` returns it (no instanceView)."""
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers"
    doc: dict[str, Any] = {
        "id": f"{base}/Microsoft.Compute/virtualMachines/{name}",
        "name": name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": location,
        "tags": tags if tags is not None else {"owner": "team-a"},
        "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL,
                     f"principal/{sub}/{name}")), "tenantId": "tttttttt-0000-0000-0000-0000"},
        "etag": "\"1\"",
        "properties": {
            "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sub}/{name}")),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical",
                                   "offer": "0001-com-ubuntu-server-jammy",
                                   "sku": "22_04-lts-gen2", "version": "latest",
                                   "exactVersion": "22.04.202405010"},
                "osDisk": {"osType": "Linux", "name": f"{name}_OsDisk_1",
                           "createOption": "FromImage", "caching": "ReadWrite",
                           "managedDisk": {
                               "id": f"{base}/Microsoft.Compute/disks/{name}_OsDisk_1",
                               "storageAccountType": "Premium_LRS"},
                           "deleteOption": "Delete", "diskSizeGB": 30},
                "dataDisks": [],
            },
            "osProfile": {
                "computerName": name, "adminUsername": "azureuser",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys",
                                            "keyData": "ssh-ed25519 AAAAC3Nza fake@test"}]},
                    "provisionVMAgent": True},
                "secrets": [], "allowExtensionOperations": True,
                "requireGuestProvisionSignal": True,
            },
            "networkProfile": {"networkInterfaces": [
                {"id": f"{base}/Microsoft.Network/networkInterfaces/{name}-nic",
                 "properties": {"deleteOption": "Delete"}}]},
            "provisioningState": "Succeeded",
            "timeCreated": "2024-05-02T09:15:00.1234567+00:00",
        },
    }
    if zone is not None:
        doc["zones"] = [zone]
    return doc


def _status_document(vm: dict[str, Any], power: str) -> dict[str, Any]:
    """What ``statusOnly=true`` answers for one VM: identity fields and the instance view."""
    return {
        "id": vm["id"], "name": vm["name"], "type": vm["type"], "location": vm["location"],
        "properties": {"vmId": vm["properties"]["vmId"], "instanceView": {"statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info",
             "displayStatus": "Provisioning succeeded", "time": "2024-05-02T09:16:00+00:00"},
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]}},
    }


def _location(sub: str, name: str, region_type: str) -> dict[str, Any]:
    return {"id": f"/subscriptions/{sub}/locations/{name}", "name": name, "type": "Region",
            "displayName": name.title(), "metadata": {"regionType": region_type}}


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {"x-ms-failure-cause": "gateway"}, {"error": {"code": code, "message": message}}


def _deep_update(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def _handler(arm: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers, body = arm.answer(self.command, self.path, self.headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def install_az_cli(directory: Path, monkeypatch: Any, ca_file: Path) -> None:
    """A stand-in ``az`` on PATH that prints a token (for the "cli" credential, so no test
    builds DefaultAzureCredential), and the fake's CA for requests."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    token = {"accessToken": TOKEN, "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}
    az.write_text(f"#!/bin/sh\necho '{json.dumps(token)}'\n")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
