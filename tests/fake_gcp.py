"""A local HTTP server speaking just enough of the Compute and Resource Manager REST APIs.

The real ``google-cloud-compute`` and ``google-cloud-resource-manager`` clients are pointed
at it (``client_options={"api_endpoint": "http://127.0.0.1:PORT"}``), so the provider is
tested through the SDK's own request building, paging and error translation.

Answered paths:

- ``GET /compute/v1/projects/{p}/aggregated/instances``: every zone of the project on every
  page (zones without instances on that page carry only a ``NO_RESULTS_ON_PAGE`` warning, as
  the real API does), paged by ``maxResults``/``pageToken``, ``unreachables`` for zones set
  unreachable, per-project permanent errors and a queue of transient ones.
- ``GET /v3/folders?parent=X`` and ``GET /v3/projects:search?query=parent:X``.

Instances are stored as the camelCase documents ``gcloud compute instances list
--format=json`` prints; drift is simulated with :class:`FakeProject` methods.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "https://www.googleapis.com/compute/v1"

DEFAULT_ZONES = ("us-central1-a", "us-central1-b", "europe-west1-b", "europe-west1-c")


def error_body(
    code: int, message: str, reason: str, status: str = "", info_reason: str = ""
) -> dict[str, Any]:
    """An error document shaped like Google's (legacy ``errors`` plus ``ErrorInfo``)."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }
    if status:
        error["status"] = status
    if info_reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": info_reason,
                "domain": "googleapis.com",
                "metadata": {"service": "compute.googleapis.com"},
            }
        ]
    return {"error": error}


RATE_LIMITED_403 = (
    403,
    error_body(403, "Rate Limit Exceeded", "rateLimitExceeded", "PERMISSION_DENIED"),
)
TOO_MANY_REQUESTS = (
    429,
    error_body(
        429,
        "Quota exceeded for quota metric 'Read requests'",
        "rateLimitExceeded",
        "RESOURCE_EXHAUSTED",
        "RATE_LIMIT_EXCEEDED",
    ),
)
API_DISABLED = (
    403,
    error_body(
        403,
        "Compute Engine API has not been used in project 1234 before or it is disabled.",
        "accessNotConfigured",
        "PERMISSION_DENIED",
        "SERVICE_DISABLED",
    ),
)
FORBIDDEN = (
    403,
    error_body(
        403,
        "Required 'compute.instances.list' permission for 'projects/locked'",
        "forbidden",
        "PERMISSION_DENIED",
    ),
)
UNAVAILABLE = (503, error_body(503, "Backend Error", "backendError", "UNAVAILABLE"))


def make_instance(
    project: str,
    zone: str,
    name: str,
    instance_id: int,
    *,
    machine_type: str = "e2-medium",
    status: str = "RUNNING",
    nat_ip: str | None = "34.1.2.3",
    network_ip: str = "10.128.0.2",
    labels: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An instance document as ``gcloud compute instances list --format=json`` prints it."""
    region = zone.rsplit("-", 1)[0]
    zone_url = f"{API}/projects/{project}/zones/{zone}"
    access_configs: list[dict[str, Any]] = []
    if nat_ip is not None:
        access_configs.append(
            {
                "kind": "compute#accessConfig",
                "name": "External NAT",
                "natIP": nat_ip,
                "networkTier": "PREMIUM",
                "type": "ONE_TO_ONE_NAT",
            }
        )
    doc: dict[str, Any] = {
        "kind": "compute#instance",
        "id": str(instance_id),
        "creationTimestamp": "2024-03-01T09:00:00.000-08:00",
        "name": name,
        "machineType": f"{zone_url}/machineTypes/{machine_type}",
        "status": status,
        "zone": zone_url,
        "canIpForward": False,
        "networkInterfaces": [
            {
                "kind": "compute#networkInterface",
                "network": f"{API}/projects/{project}/global/networks/default",
                "subnetwork": f"{API}/projects/{project}/regions/{region}/subnetworks/default",
                "networkIP": network_ip,
                "name": "nic0",
                "accessConfigs": access_configs,
                "fingerprint": "a1B2c3D4e5F=",
                "stackType": "IPV4_ONLY",
            }
        ],
        "disks": [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "source": f"{zone_url}/disks/{name}",
                "deviceName": name,
                "index": 0,
                "boot": True,
                "autoDelete": True,
                "licenses": [f"{API}/projects/debian-cloud/global/licenses/debian-12-bookworm"],
                "interface": "SCSI",
                "diskSizeGb": "10",
                "architecture": "X86_64",
            }
        ],
        "metadata": {
            "kind": "compute#metadata",
            "fingerprint": "mdFp0000000=",
            "items": [{"key": k, "value": v} for k, v in (metadata or {}).items()],
        },
        "serviceAccounts": [
            {
                "email": "1234-compute@developer.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
        ],
        "selfLink": f"{zone_url}/instances/{name}",
        "scheduling": {
            "onHostMaintenance": "MIGRATE",
            "automaticRestart": True,
            "preemptible": False,
            "provisioningModel": "STANDARD",
        },
        "cpuPlatform": "Intel Broadwell",
        "labels": labels if labels is not None else {"env": "prod"},
        "labelFingerprint": "lblFp000000=",
        "startRestricted": False,
        "deletionProtection": False,
        "fingerprint": "instFp00000=",
        "lastStartTimestamp": "2024-03-01T09:00:10.000-08:00",
        "tags": {"items": ["http-server"], "fingerprint": "tagFp000000="},
    }
    if not doc["metadata"]["items"]:
        del doc["metadata"]["items"]
    return doc


@dataclass
class FakeProject:
    project_id: str
    zones: list[str] = field(default_factory=lambda: list(DEFAULT_ZONES))
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: tuple[int, dict[str, Any]] | None = None
    """Answered to every request for this project (access denied, API disabled)."""
    transient: list[tuple[int, dict[str, Any]] | None] = field(default_factory=list)
    """Answered once each, in order, before normal answers resume (throttling); ``None``
    answers that request normally, so an error can be aimed at a later page."""
    unreachable: set[str] = field(default_factory=set)
    """Zones reported in ``unreachables`` (and left out of ``items``)."""
    warning_unreachable: set[str] = field(default_factory=set)
    """Zones reported the older way: a scoped list whose warning code is UNREACHABLE."""
    page_size: int | None = None
    """Caps the server's page size below ``maxResults`` to force several pages."""
    next_id: int = 5_000_000_000_000_000_000

    def create(self, name: str, zone: str, **kwargs: Any) -> dict[str, Any]:
        self.next_id += 1
        doc = make_instance(self.project_id, zone, name, self.next_id, **kwargs)
        self.instances[name] = doc
        return doc

    def delete(self, name: str) -> None:
        del self.instances[name]

    def set_machine_type(self, name: str, machine_type: str) -> None:
        doc = self.instances[name]
        doc["machineType"] = doc["machineType"].rsplit("/", 1)[0] + "/" + machine_type

    def stop(self, name: str) -> None:
        doc = self.instances[name]
        doc["status"] = "TERMINATED"
        doc["lastStopTimestamp"] = "2024-03-02T10:00:00.000-08:00"
        doc["cpuPlatform"] = "Unknown CPU Platform"  # what the API shows while stopped
        for nic in doc["networkInterfaces"]:
            for config in nic.get("accessConfigs", []):
                config.pop("natIP", None)

    def start(self, name: str, nat_ip: str = "35.9.9.9") -> None:
        doc = self.instances[name]
        doc["status"] = "RUNNING"
        doc["lastStartTimestamp"] = "2024-03-03T08:00:00.000-08:00"
        doc["cpuPlatform"] = "Intel Broadwell"
        for nic in doc["networkInterfaces"]:
            for config in nic.get("accessConfigs", []):
                config["natIP"] = nat_ip


@dataclass
class FakeFolder:
    name: str
    parent: str
    state: str = "ACTIVE"


@dataclass
class SearchableProject:
    project_id: str
    parent: str
    state: str = "ACTIVE"
    number: int = 0


class FakeGcp:
    """State of the fake estate plus the requests it received."""

    def __init__(self) -> None:
        self.projects: dict[str, FakeProject] = {}
        self.folders: list[FakeFolder] = []
        self.searchable: list[SearchableProject] = []
        self.search_error: tuple[int, dict[str, Any]] | None = None
        self.search_page_size = 2
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def add_project(self, project_id: str, **kwargs: Any) -> FakeProject:
        project = FakeProject(project_id, **kwargs)
        self.projects[project_id] = project
        return project

    def calls(self, path_part: str) -> list[dict[str, list[str]]]:
        with self.lock:
            return [q for p, q in self.requests if path_part in p]

    # ------------------------------------------------------------ request handling

    def handle(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((path, query))
            self.headers.append(headers)
            parts = path.strip("/").split("/")
            if (
                len(parts) == 6
                and parts[:3] == ["compute", "v1", "projects"]
                and parts[4:] == ["aggregated", "instances"]
            ):
                return self._aggregated(parts[3], query)
            if path == "/v3/folders":
                return self._folders(query)
            if path == "/v3/projects:search":
                return self._search(query)
            return 404, error_body(404, f"no route for {path}", "notFound", "NOT_FOUND")

    def _aggregated(
        self, project_id: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        project = self.projects.get(project_id)
        if project is None:
            return 404, error_body(
                404, f"The resource 'projects/{project_id}' was not found", "notFound", "NOT_FOUND"
            )
        if project.error is not None:
            return project.error
        if project.transient:
            answer = project.transient.pop(0)
            if answer is not None:  # None: answer this request normally
                return answer
        size = int(query.get("maxResults", ["500"])[0])
        if project.page_size:
            size = min(size, project.page_size)
        start = int(query.get("pageToken", ["0"])[0] or 0)
        reachable = [z for z in project.zones if z not in project.unreachable]
        listed = [
            d
            for d in project.instances.values()
            if d["zone"].rsplit("/", 1)[1] in reachable
            and d["zone"].rsplit("/", 1)[1] not in project.warning_unreachable
        ]
        listed.sort(key=lambda d: (d["zone"], d["name"]))
        page = listed[start : start + size]
        items: dict[str, Any] = {}
        for zone in reachable:
            on_page = [d for d in page if d["zone"].endswith(f"/zones/{zone}")]
            if zone in project.warning_unreachable:
                items[f"zones/{zone}"] = {
                    "warning": {
                        "code": "UNREACHABLE",
                        "message": f"zone {zone} is unreachable",
                        "data": [{"key": "scope", "value": f"zones/{zone}"}],
                    }
                }
            elif on_page:
                items[f"zones/{zone}"] = {"instances": on_page}
            else:
                items[f"zones/{zone}"] = {
                    "warning": {
                        "code": "NO_RESULTS_ON_PAGE",
                        "message": f"There are no results for scope 'zones/{zone}' on this page.",
                        "data": [{"key": "scope", "value": f"zones/{zone}"}],
                    }
                }
        body: dict[str, Any] = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project_id}/aggregated/instances",
            "items": items,
            "selfLink": f"{API}/projects/{project_id}/aggregated/instances",
        }
        if start + size < len(listed):
            body["nextPageToken"] = str(start + size)
        if project.unreachable:
            body["unreachables"] = [f"zones/{z}" for z in sorted(project.unreachable)]
        return 200, json.loads(json.dumps(body))

    def _folders(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if self.search_error is not None:
            return self.search_error
        parent = query.get("parent", [""])[0]
        folders = [
            {"name": f.name, "parent": f.parent, "state": f.state, "displayName": f.name}
            for f in self.folders
            if f.parent == parent
        ]
        return 200, {"folders": folders}

    def _search(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if self.search_error is not None:
            return self.search_error
        text = query.get("query", [""])[0]
        matches = self.searchable
        if text.startswith("parent:"):
            matches = [p for p in matches if p.parent == text.removeprefix("parent:")]
        elif text:
            return 400, error_body(400, f"unsupported query {text!r}", "badRequest")
        start = int(query.get("pageToken", ["0"])[0] or 0)
        page = matches[start : start + self.search_page_size]
        body: dict[str, Any] = {
            "projects": [
                {
                    "name": f"projects/{p.number or 100 + i}",
                    "projectId": p.project_id,
                    "parent": p.parent,
                    "state": p.state,
                    "displayName": p.project_id,
                }
                for i, p in enumerate(page, start)
            ]
        }
        if start + self.search_page_size < len(matches):
            body["nextPageToken"] = str(start + self.search_page_size)
        return 200, body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGcp

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        parts = urlsplit(self.path)
        status, body = self.fake.handle(
            parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeGcpServer:
    """``with FakeGcpServer() as server:`` serves ``server.fake`` at ``server.url``."""

    def __init__(self, fake: FakeGcp | None = None) -> None:
        self.fake = fake or FakeGcp()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGcpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
