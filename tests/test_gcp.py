"""Google Cloud provider: normalise on saved documents, and the real SDK against a local fake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from baseliner.collect import run_plan
from baseliner.config import Config, parse
from baseliner.errors import InputError
from baseliner.fingerprint import fingerprint
from baseliner.model import ALL, Outcome, Scope, State
from baseliner.providers import UnitResult, gcp
from baseliner.providers.exports import read_exports
from baseliner.redact import is_marker, redact

from .fake_gcp import (
    API_DISABLED,
    FORBIDDEN,
    RATE_LIMITED_403,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    FakeFolder,
    FakeGcpServer,
    SearchableProject,
    error_body,
)

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "gcp"
SAMPLE = ROOT / "snapshots" / "sample"
PROJECT = "acme-prod-1234"
SECRET = "Sup3rS3cretPassw0rd"


def documents() -> list[dict[str, Any]]:
    return json.loads((DATA / "instances.json").read_text())


def record_of(doc: dict[str, Any], project: str = PROJECT):
    zone = doc["zone"].rsplit("/", 1)[1]
    return gcp.normalise(redact(doc), Scope("gcp", project, gcp.region_of_zone(zone)))


@pytest.fixture(autouse=True)
def no_default_credentials(monkeypatch):
    """Application Default Credentials may probe 169.254.169.254: no test may reach them."""
    import google.auth

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test called google.auth.default()")

    monkeypatch.setattr(google.auth, "default", refuse)


@pytest.fixture
def server():
    with FakeGcpServer() as running:
        yield running


def config(server: FakeGcpServer | None = None, **gcp_keys: Any) -> Config:
    section: dict[str, Any] = {"max_attempts": 3}
    if server is not None:
        section["endpoint"] = server.url
        section["resource_manager_endpoint"] = server.url
    section.update(gcp_keys)
    return parse({"gcp": section}, "test.toml")


def collect(cfg: Config) -> UnitResult:
    return run_plan(gcp.plan(cfg, base_delay=0.0), max_workers=4)


def outcomes(result: UnitResult) -> dict[Scope, tuple[Outcome, int]]:
    return {r.scope: (r.outcome, r.instance_count) for r in result.scopes}


# ---------------------------------------------------------------- normalise


def test_normalise_sets_every_field_from_a_gcloud_document():
    record = record_of(documents()[0])
    assert all(value not in (None, "", (), {}) for value in record.to_dict().values())
    assert record.key == f"gcp:{PROJECT}:7283491002837465123"
    assert (record.account, record.region, record.zone) == (PROJECT, "us-central1", "us-central1-a")
    assert record.name == "web-1"
    assert record.state is State.RUNNING
    assert record.instance_type == "n2-standard-4"
    assert record.image == "projects/debian-cloud/global/licenses/debian-12-bookworm"
    assert record.launch_time == "2024-06-01T07:00:01.123-07:00"
    assert record.private_ips == ("10.10.0.12", "192.168.5.12")
    assert record.public_ips == ("34.72.10.11", "2600:1900:4000:9a1b:0:0:0:0")
    assert record.network == {
        "vpc": "projects/acme-net-host/global/networks/shared-vpc",
        "subnet": "projects/acme-net-host/regions/us-central1/subnetworks/web",
    }
    assert record.security_groups == ("http-server", "https-server")
    assert record.tags == {"env": "prod", "team": "web"}
    assert record.identity == "web-frontend@acme-prod-1234.iam.gserviceaccount.com"
    assert is_marker(record.key_name)
    assert record.root_disk == "projects/acme-prod-1234/zones/us-central1-a/disks/web-1"


def test_stopped_instance_is_stopped_and_machine_image_is_its_image():
    record = record_of(documents()[1])
    assert record.state is State.STOPPED  # GCP's TERMINATED: stopped, not gone
    assert record.instance_type == "e2-custom-4-8192"
    assert record.image == "projects/acme-images/global/machineImages/batch-golden-2023-11"
    assert record.public_ips == ()
    assert record.key_name is None
    assert record.launch_time == "2024-05-20T01:00:00.000-07:00"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("PROVISIONING", State.PENDING),
        ("STAGING", State.PENDING),
        ("RUNNING", State.RUNNING),
        ("STOPPING", State.STOPPING),
        ("SUSPENDING", State.STOPPING),
        ("TERMINATED", State.STOPPED),
        ("SUSPENDED", State.SUSPENDED),
        ("REPAIRING", State.UNKNOWN),
        ("SOMETHING_NEW", State.UNKNOWN),
    ],
)
def test_state_map(status, state):
    doc = documents()[0] | {"status": status}
    assert record_of(doc).state is state


def test_launch_time_falls_back_to_creation():
    doc = documents()[0]
    del doc["lastStartTimestamp"]
    assert record_of(doc).launch_time == "2024-02-12T03:14:15.926-08:00"


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-central1-a", "us-central1"),
        ("northamerica-northeast2-c", "northamerica-northeast2"),
        ("europe-west1-b", "europe-west1"),
    ],
)
def test_region_of_zone(zone, region):
    assert gcp.region_of_zone(zone) == region


def test_stop_and_start_leave_the_fingerprint_alone():
    before = documents()[0]
    after = json.loads(json.dumps(before))
    after["status"] = "RUNNING"
    after["lastStartTimestamp"] = "2024-07-01T00:00:00.000-07:00"
    after["lastStopTimestamp"] = "2024-06-30T23:59:00.000-07:00"
    after["networkInterfaces"][0]["accessConfigs"][0]["natIP"] = "35.1.1.1"
    stopped = json.loads(json.dumps(before))
    stopped["status"] = "TERMINATED"
    del stopped["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    assert fingerprint(record_of(after)) == fingerprint(record_of(before))
    assert fingerprint(record_of(stopped)) == fingerprint(record_of(before))


def test_machine_type_change_changes_the_fingerprint():
    before = documents()[0]
    after = json.loads(json.dumps(before))
    after["machineType"] = after["machineType"].replace("n2-standard-4", "n2-standard-8")
    assert fingerprint(record_of(after)) != fingerprint(record_of(before))


def test_real_stop_changes_cpu_platform_and_physical_host_only():
    before = documents()[0]
    stopped = json.loads(json.dumps(before))
    stopped["status"] = "TERMINATED"
    stopped["cpuPlatform"] = "Unknown CPU Platform"
    del stopped["resourceStatus"]
    del stopped["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    assert fingerprint(record_of(stopped)) == fingerprint(record_of(before))


def test_secrets_in_metadata_never_reach_the_record():
    text = json.dumps(record_of(documents()[0]).to_dict())
    assert SECRET not in text
    assert "AAAAC3NzaC1lZDI1NTE5AAAAIHq1Yl3gX6Q" not in text  # the ssh key
    assert "enable-oslogin" in text  # harmless metadata stays


# ---------------------------------------------------------------- saved exports


def test_export_detect_claims_gcloud_lists_only():
    assert gcp.export_detect(documents())
    assert not gcp.export_detect([])
    assert not gcp.export_detect({"Reservations": []})
    assert not gcp.export_detect([{"type": "Microsoft.Compute/virtualMachines"}])


def test_gcloud_export_is_read_with_project_and_region_from_the_zone_url():
    result = read_exports([DATA / "instances.json"])
    assert {(r.scope, r.outcome, r.instance_count) for r in result.scopes} == {
        (Scope("gcp", PROJECT, "us-central1"), Outcome.OK, 1),
        (Scope("gcp", PROJECT, "europe-west1"), Outcome.OK, 1),
    }
    assert [r.key for r in result.records] == [
        f"gcp:{PROJECT}:7283491002837465123",
        f"gcp:{PROJECT}:1938475610293847561",
    ]
    assert SECRET not in json.dumps([r.to_dict() for r in result.records])


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"kind": "compute#instance", "name": "x", "id": "1"}], "no project and zone"),
        (
            [{"kind": "compute#instance", "name": "x", "id": "1", "zone": "us-central1-a"}],
            "no project and zone",
        ),
        ([{"kind": "compute#instance", "name": "x"}], "without id"),
        (
            [
                {
                    "kind": "compute#instance",
                    "id": "1",
                    "name": "x",
                    "zone": "https://x/compute/v1/projects/p/zones/us-central1-a",
                },
                "junk",
            ],
            "not a compute#instance",
        ),
    ],
)
def test_malformed_gcloud_export_names_the_file(tmp_path, items, message):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(items))
    with pytest.raises(InputError, match=message) as raised:
        read_exports([path])
    assert str(path) in str(raised.value)


def test_zone_less_document_is_an_input_error_not_a_crash(tmp_path):
    doc = documents()[0]
    doc["zone"] = 42
    doc["selfLink"] = None
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([doc]))
    with pytest.raises(InputError, match=str(path)):
        read_exports([path])


def test_sample_exports_show_the_demo_drift():
    old = read_exports([SAMPLE / "t1" / "gcp-my-project.json"])
    new = read_exports([SAMPLE / "t2" / "gcp-my-project.json"])
    assert {s.scope for s in old.scopes} == {s.scope for s in new.scopes}
    assert len({s.scope.region for s in old.scopes}) == 2
    before = {r.key: r for r in old.records}
    after = {r.key: r for r in new.records}
    assert len(after.keys() - before.keys()) == 1  # created
    assert len(before.keys() - after.keys()) == 1  # deleted
    both = before.keys() & after.keys()
    retyped = [k for k in both if before[k].instance_type != after[k].instance_type]
    stopped = [
        k for k in both if before[k].state is State.RUNNING and after[k].state is State.STOPPED
    ]
    assert len(retyped) == 1 and len(stopped) == 1
    # The stopped one also shows cpuPlatform "Unknown CPU Platform", as the API does: see
    # test_real_stop_changes_cpu_platform_and_physical_host_only.
    assert all(
        fingerprint(before[k]) == fingerprint(after[k]) for k in both if k not in retyped + stopped
    )


# ---------------------------------------------------------------- the SDK against the fake


def test_provider_module_imports_no_sdk():
    code = (
        "import sys, baseliner.providers.gcp; "
        "assert 'google.cloud.compute_v1' not in sys.modules; "
        "assert 'google.auth' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_two_pages_every_region_and_empty_region_collected(server):
    project = server.fake.add_project(
        PROJECT,
        page_size=2,
        zones=["us-central1-a", "us-central1-b", "europe-west1-b", "asia-east1-a"],
    )
    for i in range(3):
        project.create(f"us-{i}", "us-central1-a" if i else "us-central1-b")
    project.create("eu-0", "europe-west1-b")
    result = collect(config(server, projects=[PROJECT]))
    assert outcomes(result) == {
        Scope("gcp", PROJECT, "us-central1"): (Outcome.OK, 3),
        Scope("gcp", PROJECT, "europe-west1"): (Outcome.OK, 1),
        Scope("gcp", PROJECT, "asia-east1"): (Outcome.OK, 0),  # collected, empty
    }
    assert sorted(r.name for r in result.records) == ["eu-0", "us-0", "us-1", "us-2"]
    calls = server.fake.calls("/aggregated/instances")
    assert len(calls) == 2
    assert all(q["maxResults"] == ["500"] and q["includeAllScopes"] == ["true"] for q in calls)
    assert calls[1]["pageToken"] == ["2"]
    assert all("authorization" not in h for h in server.fake.headers)  # anonymous over http


def test_live_documents_are_the_gcloud_shape(server):
    project = server.fake.add_project(PROJECT)
    served = project.create("web", "us-central1-a", labels={"team": "a"})
    [record] = collect(config(server, projects=[PROJECT])).records
    assert record.raw == redact(served)
    assert record == record_of(served)


def test_project_with_no_instances_records_every_region_ok_and_empty(server):
    server.fake.add_project(PROJECT)
    result = collect(config(server, projects=[PROJECT]))
    assert outcomes(result) == {
        Scope("gcp", PROJECT, "us-central1"): (Outcome.OK, 0),
        Scope("gcp", PROJECT, "europe-west1"): (Outcome.OK, 0),
    }
    assert result.records == []


@pytest.mark.parametrize("how", ["unreachables", "warning"])
def test_unreachable_zone_fails_its_region_never_reports_it_empty(server, how):
    project = server.fake.add_project(PROJECT)
    project.create("eu", "europe-west1-b")
    project.create("lost", "europe-west1-c")
    project.create("us", "us-central1-a")
    if how == "unreachables":
        project.unreachable.add("europe-west1-c")
    else:
        project.warning_unreachable.add("europe-west1-c")
    result = collect(config(server, projects=[PROJECT]))
    scopes = {r.scope: r for r in result.scopes}
    europe = scopes[Scope("gcp", PROJECT, "europe-west1")]
    assert europe.outcome is Outcome.FAILED
    assert "europe-west1-c" in europe.detail
    assert scopes[Scope("gcp", PROJECT, "us-central1")].outcome is Outcome.OK
    assert sorted(r.name for r in result.records) == ["eu", "us"]


def test_unplaceable_unreachable_scope_fails_the_whole_project():
    listing = gcp.Listing(zones={"us-central1-a"}, unplaced=["global/something"])
    results = {r.scope: r.outcome for r in gcp.scope_results(PROJECT, listing, [], 0.0)}
    assert results == {
        Scope("gcp", PROJECT, ALL): Outcome.FAILED,
        Scope("gcp", PROJECT, "us-central1"): Outcome.FAILED,
    }


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (API_DISABLED, "Compute Engine API not enabled (HTTP 403 accessNotConfigured)"),
        (FORBIDDEN, "access denied (HTTP 403 forbidden): Required 'compute.instances.list'"),
        (None, "not found (HTTP 404 notFound)"),
    ],
)
def test_denied_disabled_or_unknown_project_fails_only_that_project(server, error, phrase):
    server.fake.add_project("fine").create("vm", "us-central1-a")
    if error is not None:
        server.fake.add_project("broken", error=error)
    result = collect(config(server, projects=["fine", "broken"]))
    scopes = {r.scope: r for r in result.scopes}
    broken = scopes[Scope("gcp", "broken", ALL)]
    assert broken.outcome is Outcome.FAILED
    assert phrase in broken.detail
    assert "\n" not in broken.detail and "http://" not in broken.detail
    assert scopes[Scope("gcp", "fine", "us-central1")].outcome is Outcome.OK
    assert [r.account for r in result.records] == ["fine"]
    assert len(server.fake.calls("/projects/broken/")) == 1  # not retried


def test_unauthenticated_over_plain_http_says_no_credentials_were_sent(server):
    body = error_body(
        401, "Request is missing required authentication credential.", "required", "UNAUTHENTICATED"
    )
    server.fake.add_project(PROJECT, error=(401, body))
    [failed] = collect(config(server, projects=[PROJECT])).scopes
    assert failed.detail.startswith("not authenticated (HTTP 401): the endpoint wants")


@pytest.mark.parametrize(
    "transient",
    [
        [TOO_MANY_REQUESTS],
        [RATE_LIMITED_403],
        [RATE_LIMITED_403, TOO_MANY_REQUESTS],
        [UNAVAILABLE],
    ],
)
def test_throttling_is_retried_until_success(server, transient):
    project = server.fake.add_project(PROJECT, transient=list(transient))
    project.create("vm", "us-central1-a")
    result = collect(config(server, projects=[PROJECT]))
    assert [r.name for r in result.records] == ["vm"]
    assert all(r.outcome is Outcome.OK for r in result.scopes)
    assert len(server.fake.calls("/aggregated/instances")) == len(transient) + 1


def test_throttled_second_page_is_retried_without_losing_the_first(server):
    project = server.fake.add_project(PROJECT, page_size=1, transient=[None, TOO_MANY_REQUESTS])
    project.create("a", "us-central1-a")
    project.create("b", "us-central1-b")
    result = collect(config(server, projects=[PROJECT]))
    assert sorted(r.name for r in result.records) == ["a", "b"]
    assert [q.get("pageToken") for q in server.fake.calls("/aggregated/instances")] == [
        None,
        ["1"],
        ["1"],
    ]


def test_throttling_gives_up_after_max_attempts(server):
    server.fake.add_project(PROJECT, transient=[TOO_MANY_REQUESTS] * 10)
    result = collect(config(server, projects=[PROJECT], max_attempts=3))
    [failed] = result.scopes
    assert failed.scope == Scope("gcp", PROJECT, ALL)
    assert failed.outcome is Outcome.FAILED
    assert "rate limited (HTTP 429" in failed.detail and "after 3 attempts" in failed.detail
    assert len(server.fake.calls("/aggregated/instances")) == 3
    assert result.records == []


def test_unreachable_endpoint_fails_with_the_connection_error():
    cfg = config(projects=[PROJECT], endpoint="http://127.0.0.1:9", max_attempts=2)
    [failed] = collect(cfg).scopes
    assert failed.outcome is Outcome.FAILED
    assert "ConnectionError" in failed.detail and "after 2 attempts" in failed.detail


def test_backoff_is_capped_and_grows():
    backoff = gcp.Backoff(max_attempts=10, base_delay=1.0, max_delay=8.0)
    assert 0.5 <= backoff.delay(1) <= 1.0
    assert 2.0 <= backoff.delay(3) <= 4.0
    assert 4.0 <= backoff.delay(9) <= 8.0


def test_backoff_honours_a_small_retry_after():
    import requests
    from google.api_core.exceptions import TooManyRequests

    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "3"
    exc = TooManyRequests("slow down", response=response)
    backoff = gcp.Backoff(max_attempts=5, base_delay=0.01, max_delay=8.0)
    assert backoff.delay(1, exc) == 3.0
    response.headers["Retry-After"] = "3600"
    assert backoff.delay(1, exc) == 8.0  # capped


def test_plan_and_run_without_fake_server_never_builds_a_client_at_plan_time():
    plan = gcp.plan(config(projects=["a", "b"], endpoint="http://127.0.0.1:9"))
    assert [u.label for u in plan.units] == ["gcp/a", "gcp/b"]
    assert [u.scopes for u in plan.units] == [(Scope("gcp", "a", ALL),), (Scope("gcp", "b", ALL),)]


# ---------------------------------------------------------------- discovery


def organization(server: FakeGcpServer) -> None:
    fake = server.fake
    fake.folders = [
        FakeFolder("folders/1", "organizations/123"),
        FakeFolder("folders/2", "folders/1"),
        FakeFolder("folders/3", "folders/1", state="DELETE_REQUESTED"),
    ]
    fake.searchable = [
        SearchableProject("top", "organizations/123"),
        SearchableProject("in-folder", "folders/1"),
        SearchableProject("nested", "folders/2"),
        SearchableProject("nested-2", "folders/2"),
        SearchableProject("nested-3", "folders/2"),
        SearchableProject("going", "folders/2", state="DELETE_REQUESTED"),
        SearchableProject("in-deleted-folder", "folders/3"),
        SearchableProject("elsewhere", "organizations/999"),
    ]
    for project in ("top", "in-folder", "nested", "nested-2", "nested-3", "elsewhere"):
        fake.add_project(project).create(f"vm-{project}", "us-central1-a")


def test_discovery_walks_the_folder_tree_and_keeps_active_projects(server):
    organization(server)
    cfg = config(server, projects=["nested"], organization={"parent": "organizations/123"})
    plan = gcp.plan(cfg, base_delay=0.0)
    assert [u.label for u in plan.units] == [
        "gcp/nested",
        "gcp/top",
        "gcp/in-folder",
        "gcp/nested-2",
        "gcp/nested-3",
    ]
    assert plan.results == []
    queries = [q["query"][0] for q in server.fake.calls("/v3/projects:search")]
    assert queries == [
        "parent:organizations/123",
        "parent:folders/1",
        "parent:folders/2",
        "parent:folders/2",
    ]  # folders/2 has two pages
    result = run_plan(plan, max_workers=4)
    assert len(result.records) == 5


def test_discovery_without_parent_searches_everything_visible(server):
    organization(server)
    plan = gcp.plan(config(server, organization={}), base_delay=0.0)
    assert "gcp/elsewhere" in [u.label for u in plan.units]
    assert "gcp/going" not in [u.label for u in plan.units]
    assert server.fake.calls("/v3/folders") == []


def test_discovery_failure_is_a_failed_wildcard_scope_and_configured_projects_still_run(server):
    organization(server)
    server.fake.search_error = FORBIDDEN
    cfg = config(server, projects=["top"], organization={"parent": "organizations/123"})
    plan = gcp.plan(cfg, base_delay=0.0)
    [failed] = plan.results
    assert failed.scope == Scope("gcp", ALL, ALL)
    assert failed.outcome is Outcome.FAILED
    assert failed.detail.startswith("project discovery failed: access denied (HTTP 403")
    assert [u.label for u in plan.units] == ["gcp/top"]


# ---------------------------------------------------------------- credentials


def test_https_endpoint_uses_application_default_credentials(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    seen: list[Any] = []

    def fake_default(scopes: Any = None, **kwargs: Any) -> Any:
        seen.append(scopes)
        return AnonymousCredentials(), None

    monkeypatch.setattr(google.auth, "default", fake_default)
    creds = gcp._Credentials(config(projects=["p"]).gcp)
    assert isinstance(creds.for_endpoint(None), AnonymousCredentials)
    assert creds.for_endpoint("https://compute.example") is creds.for_endpoint(None)
    assert seen == [list(gcp.SCOPES)]  # loaded once, read-only scopes


def test_credentials_file_is_used_even_for_plain_http(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "baseliner@p.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    creds = gcp._Credentials(config(projects=["p"], credentials_file=str(path)).gcp)
    loaded = creds.for_endpoint("http://127.0.0.1:1")
    assert loaded.service_account_email == "baseliner@p.iam.gserviceaccount.com"
    assert tuple(loaded.scopes) == gcp.SCOPES


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        ("{not json", "Expecting property name"),
        (
            '{"type": "external_account", "credential_source": {"executable": {}}}',
            "'external_account' is not a service account key",
        ),
    ],
)
def test_unusable_credentials_file_fails_every_project_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    plan = gcp.plan(config(projects=["a", "b"], credentials_file=str(path)))
    assert plan.units == []
    assert {r.scope for r in plan.results} == {Scope("gcp", "a", ALL), Scope("gcp", "b", ALL)}
    assert all(
        r.detail.startswith(f"cannot load credentials_file {path}: ") and reason in r.detail
        for r in plan.results
    )


# ---------------------------------------------------------------- redaction end to end


def test_planted_startup_script_and_ssh_keys_never_reach_records(server):
    project = server.fake.add_project(PROJECT)
    project.create(
        "web",
        "us-central1-a",
        metadata={
            "startup-script": f"#!/bin/sh\nmysql -p{SECRET} < /init.sql\n",
            "ssh-keys": "root:ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCsecretkeymaterial root@x",
            "windows-startup-script-ps1": f"net user admin {SECRET}",
            "team": "web",
        },
    )
    result = collect(config(server, projects=[PROJECT]))
    text = json.dumps([r.to_dict() for r in result.records])
    assert SECRET not in text
    assert "secretkeymaterial" not in text
    [record] = result.records
    items = {i["key"]: i["value"] for i in record.raw["metadata"]["items"]}
    assert is_marker(items["startup-script"]) and items["team"] == "web"
    assert record.key_name == items["ssh-keys"]


@pytest.mark.parametrize(
    ("item", "secret"),
    [
        (
            {
                "key": "kube-env",
                "value": "KUBELET_KEY: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=\n",
            },
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo",
        ),
        ({"key": "db-password", "value": "hunter2-correct-horse"}, "hunter2-correct-horse"),
        ({"key": "app-env", "value": "DB_PASSWORD=hunter2-correct-horse"}, "hunter2-correct-horse"),
    ],
)
def test_other_secret_looking_metadata_is_redacted(item, secret):
    doc = documents()[1]
    doc["metadata"]["items"] = [item]
    assert secret not in json.dumps(record_of(doc).to_dict())


# ---------------------------------------------------------------- the command end to end


def test_cli_collect_change_collect_diff(server, tmp_path, capsys):
    cli = pytest.importorskip("baseliner.cli")
    project = server.fake.add_project(PROJECT)
    keep = project.create("keep", "us-central1-a")
    resize = project.create("resize", "us-central1-b")
    halt = project.create("halt", "europe-west1-b")
    gone = project.create("gone", "europe-west1-b")
    other = server.fake.add_project("other-proj")
    lost = other.create("lost", "us-central1-a")
    cfg = tmp_path / "baseliner.toml"
    cfg.write_text(
        f'[gcp]\nprojects = ["{PROJECT}", "other-proj"]\nendpoint = "{server.url}"\n'
        "max_attempts = 2\n"
    )
    db = tmp_path / "b.db"

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(["--config", str(cfg), "--db", str(db), "--quiet", *argv])
        return code, capsys.readouterr().out

    assert run("collect", "--format", "json")[0] == 0
    created = project.create("new", "europe-west1-b")
    project.delete("gone")
    project.set_machine_type("resize", "e2-standard-8")
    project.stop("halt")
    other.error = FORBIDDEN  # a whole project fails the second time
    assert run("collect", "--format", "json")[0] == 3  # partial
    code, out = run("diff", "--format", "json")
    assert code == 0
    findings = json.loads(out)["findings"]

    def kinds(doc: dict[str, Any], project_id: str = PROJECT) -> set[str]:
        key = f"gcp:{project_id}:{doc['id']}"
        return {f["kind"] for f in findings if f["key"] == key}

    assert kinds(created) == {"instance_created"}
    assert kinds(gone) == {"instance_deleted"}
    assert "instance_modified" in kinds(resize)
    modified = next(
        f
        for f in findings
        if f["key"] == f"gcp:{PROJECT}:{resize['id']}" and f["kind"] == "instance_modified"
    )
    assert {"path": "instance_type", "old": "e2-medium", "new": "e2-standard-8"} in (
        modified["changes"]
    )
    assert "instance_stopped" in kinds(halt)
    assert kinds(keep) == set()
    assert kinds(lost, "other-proj") == set()  # failed project: no deletion
    gaps = [f for f in findings if f["kind"] == "coverage_gap"]
    assert any(f["account"] == "other-proj" for f in gaps)
    assert not any(
        f["kind"] == "instance_deleted" and f["account"] == "other-proj" for f in findings
    )


def test_cli_unreachable_zone_in_second_collect_is_a_gap_not_a_deletion(server, tmp_path, capsys):
    cli = pytest.importorskip("baseliner.cli")
    project = server.fake.add_project(PROJECT)
    project.create("stays", "us-central1-a")
    hidden = project.create("hidden", "europe-west1-c")
    project.create("eu", "europe-west1-b")
    cfg = tmp_path / "baseliner.toml"
    cfg.write_text(f'[gcp]\nprojects = ["{PROJECT}"]\nendpoint = "{server.url}"\n')
    db = tmp_path / "b.db"
    argv = ["--config", str(cfg), "--db", str(db), "--quiet"]
    assert cli.main([*argv, "collect"]) == 0
    project.unreachable.add("europe-west1-c")
    assert cli.main([*argv, "collect"]) == 3
    capsys.readouterr()
    assert cli.main([*argv, "diff", "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert not [f for f in findings if f["kind"] == "instance_deleted"]
    assert not [f for f in findings if f["key"] == f"gcp:{PROJECT}:{hidden['id']}"]
    [gap] = [f for f in findings if f["kind"] == "coverage_gap"]
    assert (gap["account"], gap["region"]) == (PROJECT, "europe-west1")


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"organization": {"parent": "123"}}, "gcp.organization.parent: expected organizations/"),
        ({"projects": ["p"], "endpoint": "compute.example"}, "gcp.endpoint: expected an https://"),
        (
            {"projects": ["p"], "resource_manager_endpoint": "ftp://x"},
            "gcp.resource_manager_endpoint: expected",
        ),
    ],
)
def test_bad_gcp_configuration_names_the_key(section, message):
    from baseliner.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse({"gcp": section}, "test.toml")
