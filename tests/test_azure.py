"""The Azure provider: normalising saved documents, and the real SDK against a fake ARM.

The SDK tests drive azure-mgmt-compute and azure-mgmt-resource-subscriptions over HTTPS
against ``tests/fake_azure.py``; the credential is a stub whose ``get_token`` returns
``AccessToken("fake", ...)``, so no test builds DefaultAzureCredential (it probes the
metadata address).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from baseliner.cli import main
from baseliner.collect import run_plan
from baseliner.config import AzureConfig, Config, parse
from baseliner.errors import ConfigError, InputError
from baseliner.fingerprint import fingerprint
from baseliner.model import ALL, InstanceRecord, Outcome, Scope, State
from baseliner.providers import azure as azure_provider
from baseliner.providers.exports import read_exports
from baseliner.redact import is_marker, redact

from .fake_azure import TOKEN, FakeArm, install_az_cli, make_certificate

DATA = Path(__file__).parent / "data" / "azure"
SAMPLE = Path(__file__).parent.parent / "snapshots" / "sample"
SUB_A = "aaaaaaaa-1111-2222-3333-444444444444"
SUB_B = "bbbbbbbb-1111-2222-3333-444444444444"
SUB_C = "cccccccc-1111-2222-3333-444444444444"
WIRE_SCOPE = Scope("azure", "33333333-4444-5555-6666-777777777777", "westeurope")


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


# ---------------------------------------------------------------- normalise (pure)


def test_normalise_wire_document_sets_every_field():
    raw = load("vm_wire.json")
    record = azure_provider.normalise(redact(raw), WIRE_SCOPE)
    sub = WIRE_SCOPE.account
    assert record.key == f"azure:{sub}:5d8a7e2c-1b3f-4c6d-9e0a-7b8c9d0e1f2a"
    assert (record.provider, record.account, record.region) == ("azure", sub, "westeurope")
    assert record.zone == "3"
    assert record.instance_id == "5d8a7e2c-1b3f-4c6d-9e0a-7b8c9d0e1f2a"
    assert record.name == "app-1"
    assert record.state is State.RUNNING
    assert record.instance_type == "Standard_D4s_v5"
    assert record.image == (
        "MicrosoftWindowsServer:WindowsServer:2022-datacenter-azure-edition:20348.2461.240510"
    )
    assert record.launch_time == "2024-01-15T10:20:30.4567890+00:00"
    assert record.network == {"interfaces": [
        f"/subscriptions/{sub}/resourceGroups/RG-APP/providers/Microsoft.Network/"
        "networkInterfaces/app-1-nic",
        f"/subscriptions/{sub}/resourceGroups/RG-APP/providers/Microsoft.Network/"
        "networkInterfaces/app-1-nic-mgmt",
    ]}
    assert record.tags == {"env": "prod", "owner": "app-team"}
    assert record.identity == (
        "system:0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0, "
        f"user:/subscriptions/{sub}/resourceGroups/rg-identity/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/id-app"
    )
    assert record.key_name == "appadmin"
    assert record.root_disk == (
        f"/subscriptions/{sub}/resourceGroups/RG-APP/providers/Microsoft.Compute/disks/"
        "app-1_OsDisk_1_5d8a7e2c"
    )
    assert record.raw == raw
    # The wire document names no address and no NSG (those live on the NIC resources).
    unset = {name for name, value in record.to_dict().items() if value in (None, [], {}, "")}
    assert unset == {"private_ips", "public_ips", "security_groups"}


def test_normalise_az_vm_list_d_document_sets_every_field():
    raw = load("az_vm_list_d.json")[0]
    scope = Scope("azure", "11111111-2222-3333-4444-555555555555", "westeurope")
    record = azure_provider.normalise(redact(raw), scope)
    assert record.key == f"azure:{scope.account}:{raw['vmId']}"
    assert record.instance_id == raw["vmId"]
    assert record.name == "web-1"
    assert record.zone == "1"
    assert record.state is State.RUNNING
    assert record.instance_type == "Standard_D2s_v5"
    assert record.image == "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:22.04.202405010"
    assert record.launch_time == "2024-03-11T08:02:41.5512345+00:00"
    assert record.private_ips == ("10.10.1.4",)
    assert record.public_ips == ("20.61.15.7",)
    assert record.network["interfaces"][0].endswith("/networkInterfaces/web-1-nic")
    assert record.tags == {"env": "prod", "owner": "web-team"}
    assert record.identity.startswith("system:7d1c2f0e-") and ", user:/subscriptions/" in (
        record.identity)
    assert record.key_name == "azureuser"
    assert record.root_disk.endswith("/disks/" + raw["storageProfile"]["osDisk"]["name"])
    unset = {name for name, value in record.to_dict().items() if value in (None, [], {}, "")}
    assert unset == {"security_groups"}


@pytest.mark.parametrize(("code", "state"), [
    ("PowerState/running", State.RUNNING),
    ("PowerState/starting", State.PENDING),
    ("PowerState/stopping", State.STOPPING),
    ("PowerState/deallocating", State.STOPPING),
    ("PowerState/stopped", State.STOPPED),
    ("PowerState/deallocated", State.STOPPED),
    ("PowerState/unknown", State.UNKNOWN),
    ("PowerState/hibernated-by-a-future-api", State.UNKNOWN),
    (None, State.UNKNOWN),
])
def test_power_states_map_onto_shared_states(code, state):
    raw = load("vm_wire.json")
    statuses = [{"code": "ProvisioningState/succeeded"}] + ([{"code": code}] if code else [])
    raw["properties"]["instanceView"] = {"statuses": statuses}
    assert azure_provider.normalise(raw, WIRE_SCOPE).state is state


@pytest.mark.parametrize(("text", "state"), [
    ("VM running", State.RUNNING), ("VM deallocated", State.STOPPED),
    ("VM stopped", State.STOPPED), ("VM deallocating", State.STOPPING),
    ("VM starting", State.PENDING), ("", State.UNKNOWN),
])
def test_az_power_state_text_maps_onto_shared_states(text, state):
    raw = load("az_vm_list_d.json")[0]
    raw["powerState"] = text
    scope = Scope("azure", "s", "westeurope")
    assert azure_provider.normalise(raw, scope).state is state


def deallocate_wire(raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw["properties"]["provisioningState"] = "Updating"
    raw["etag"] = '"8"'
    raw["properties"]["instanceView"] = {"statuses": [
        {"code": "ProvisioningState/updating", "time": "2024-06-02T07:00:00+00:00"},
        {"code": "PowerState/deallocated", "displayStatus": "VM deallocated"},
    ]}
    return raw


def test_stop_and_deallocate_leave_the_fingerprint_unchanged():
    wire = load("vm_wire.json")
    before = azure_provider.normalise(redact(wire), WIRE_SCOPE)
    after = azure_provider.normalise(redact(deallocate_wire(wire)), WIRE_SCOPE)
    assert after.state is State.STOPPED and before.state is State.RUNNING
    assert fingerprint(before) == fingerprint(after)

    listed = load("az_vm_list_d.json")[0]
    scope = Scope("azure", "11111111-2222-3333-4444-555555555555", "westeurope")
    stopped = {**listed, "powerState": "VM deallocated", "publicIps": "", "fqdns": "",
               "provisioningState": "Updating"}
    assert fingerprint(azure_provider.normalise(redact(listed), scope)) == fingerprint(
        azure_provider.normalise(redact(stopped), scope))


def test_vm_size_change_changes_the_fingerprint():
    wire = load("vm_wire.json")
    resized = copy.deepcopy(wire)
    resized["properties"]["hardwareProfile"]["vmSize"] = "Standard_D8s_v5"
    before = azure_provider.normalise(wire, WIRE_SCOPE)
    after = azure_provider.normalise(resized, WIRE_SCOPE)
    assert after.instance_type == "Standard_D8s_v5"
    assert fingerprint(before) != fingerprint(after)


@pytest.mark.parametrize(("reference", "image"), [
    ({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/"
           "web/versions/1.2.3"},
     "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/web/"
     "versions/1.2.3"),
    ({"sharedGalleryImageId": "/SharedGalleries/abc/Images/web/Versions/latest"},
     "/SharedGalleries/abc/Images/web/Versions/latest"),
    ({"communityGalleryImageId": "/CommunityGalleries/c/Images/i/Versions/1.0.0"},
     "/CommunityGalleries/c/Images/i/Versions/1.0.0"),
    ({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "1.0"},
     "Canonical:ubuntu-24_04-lts:server:1.0"),
    ({"publisher": "Canonical", "offer": "o", "sku": "s", "version": "latest"},
     "Canonical:o:s:latest"),
    ({}, None),
])
def test_image_is_the_gallery_id_or_the_marketplace_urn(reference, image):
    assert azure_provider.image_of(reference) == image


@pytest.mark.parametrize(("identity", "expected"), [
    ({}, None),
    ({"type": "None"}, None),
    ({"type": "SystemAssigned", "principalId": "p-1"}, "system:p-1"),
    ({"type": "UserAssigned", "userAssignedIdentities": {"/x/id-b": {}, "/x/id-a": {}}},
     "user:/x/id-a, user:/x/id-b"),
])
def test_identity_names_the_system_principal_and_user_identities(identity, expected):
    assert azure_provider.identity_of(identity) == expected


def test_power_states_are_merged_by_id_whatever_its_case():
    models = [{"id": "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/"
                     "virtualMachines/VM1", "properties": {"vmId": "1"}},
              {"id": "/subscriptions/s/new-vm", "properties": {"vmId": "2"}}]
    statuses = [{"id": "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/"
                       "virtualmachines/vm1",
                 "properties": {"instanceView": {"statuses": [{"code": "PowerState/stopped"}]}}},
                {"id": "/subscriptions/s/gone", "properties": {"instanceView": {}}}]
    merged = list(azure_provider.merge_power_states(models, statuses))
    assert [azure_provider.power_state(m) for m in merged] == ["stopped", None]
    assert "instanceView" not in models[0]["properties"]  # inputs are not mutated


# ---------------------------------------------------------------- saved exports


def test_az_vm_list_export_is_read_with_subscription_and_location():
    result = read_exports([DATA / "az_vm_list_d.json"])
    sub = "11111111-2222-3333-4444-555555555555"
    assert {(s.scope, s.outcome, s.instance_count) for s in result.scopes} == {
        (Scope("azure", sub, "westeurope"), Outcome.OK, 1),
        (Scope("azure", sub, "northeurope"), Outcome.OK, 1),
    }
    states = {r.name: r.state for r in result.records}
    assert states == {"web-1": State.RUNNING, "db-1": State.STOPPED}


def test_sample_estate_drifts_between_t1_and_t2():
    def by_name(moment: str) -> dict[str, InstanceRecord]:
        records = read_exports([SAMPLE / moment / "azure-subscription.json"]).records
        return {r.name: r for r in records}

    t1, t2 = by_name("t1"), by_name("t2")
    assert set(t1) - set(t2) == {"web-2"}
    assert set(t2) - set(t1) == {"jump-7"}
    assert (t1["web-1"].instance_type, t2["web-1"].instance_type) == (
        "Standard_D2s_v5", "Standard_D4s_v5")
    assert fingerprint(t1["web-1"]) != fingerprint(t2["web-1"])
    assert (t1["db-1"].state, t2["db-1"].state) == (State.RUNNING, State.STOPPED)
    assert fingerprint(t1["db-1"]) == fingerprint(t2["db-1"])
    assert fingerprint(t1["batch-1"]) == fingerprint(t2["batch-1"])
    # The deleted VM's location still holds a VM, so the export covers it at t2 too.
    assert t1["web-2"].region == t2["web-1"].region == "westeurope"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda vm: vm.pop("vmId"), "[1]: missing vmId"),
    (lambda vm: vm.update(id="/resourceGroups/rg/vm"), "[1]: no subscription in id"),
    (lambda vm: vm.update(location=""), "[1]: missing location"),
    (lambda vm: vm.update(type="Microsoft.Network/networkInterfaces"),
     "[1]: not a virtual machine"),
])
def test_malformed_export_is_an_input_error_naming_the_file(tmp_path, mutate, message):
    doc = load("az_vm_list_d.json")
    mutate(doc[1])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as error:
        read_exports([path])
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_an_empty_list_is_not_claimed_as_an_azure_export():
    assert not azure_provider.export_detect([])
    assert not azure_provider.export_detect({"value": []})
    assert azure_provider.export_detect(load("az_vm_list_d.json"))


# ---------------------------------------------------------------- the real SDK, a fake ARM


class StubCredential:
    """What azure-core needs of a credential: ``get_token`` returning an AccessToken."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("arm-tls"))


@pytest.fixture(scope="module")
def arm_server(certificate):
    server = FakeArm(*certificate).start()
    yield server
    server.stop()


@pytest.fixture
def arm(arm_server) -> FakeArm:
    arm_server.reset()
    return arm_server


def collect(arm: FakeArm, certificate: tuple[Path, Path], *, subscriptions=(SUB_A,),
            attempts: int = 3, credential: Any = None) -> Any:
    config = Config(azure=AzureConfig(subscriptions=tuple(subscriptions), endpoint=arm.base_url,
                                      max_attempts=attempts))
    plan = azure_provider.plan(config, credential=credential or StubCredential(), client_kwargs={
        "connection_verify": str(certificate[0]), "retry_backoff_factor": 0.01})
    return run_plan(plan, max_workers=4)


def outcomes(result: Any) -> dict[Scope, tuple[Outcome, int]]:
    return {s.scope: (s.outcome, s.instance_count) for s in result.scopes}


def test_collect_follows_next_links_merges_power_states_and_covers_every_location(
        arm, certificate):
    for i in range(5):
        arm.add_vm(SUB_A, f"web-{i}", "westeurope", zone=str(i % 3 + 1))
    arm.add_vm(SUB_A, "db-1", "northeurope", power="deallocated")
    credential = StubCredential()
    result = collect(arm, certificate, credential=credential)

    assert outcomes(result) == {
        Scope("azure", SUB_A, "westeurope"): (Outcome.OK, 5),
        Scope("azure", SUB_A, "northeurope"): (Outcome.OK, 1),
        # Locations without VMs are collected too: the listing is subscription-wide.
        Scope("azure", SUB_A, "eastus"): (Outcome.OK, 0),
        Scope("azure", SUB_A, "uksouth"): (Outcome.OK, 0),
    }
    states = {r.name: r.state for r in result.records}
    assert states == {**{f"web-{i}": State.RUNNING for i in range(5)}, "db-1": State.STOPPED}
    assert all(r.key == f"azure:{SUB_A}:{r.instance_id}" for r in result.records)
    assert all(r.raw["properties"]["instanceView"]["statuses"] for r in result.records)
    assert {r.zone for r in result.records} == {"1", "2", "3", None}

    calls = arm.requests_for(SUB_A)
    assert {c.method for c in calls} == {"GET"}
    listings = [c for c in calls if c.path.endswith("/virtualMachines")]
    status_pages = [c for c in listings if c.query.get("statusOnly") == ["true"]]
    # 6 VMs, 2 a page: 3 pages for the power states, 3 for the models, 1 for the locations.
    assert (len(status_pages), len(listings) - len(status_pages), len(calls)) == (3, 3, 7)
    assert all("api-version" in c.query for c in calls)
    assert set(credential.scopes) == {("https://management.azure.com/.default",)}


def test_one_token_serves_every_client_of_a_run(arm, certificate):
    for sub in (SUB_A, SUB_B, SUB_C):
        arm.add_vm(sub, "web-1")
    credential = StubCredential()
    result = collect(arm, certificate, subscriptions=(SUB_A, SUB_B, SUB_C), credential=credential)
    assert len(result.records) == 3
    assert len(credential.scopes) == 1  # not one per client (6 clients were built)


def test_an_empty_subscription_is_collected_in_every_location(arm, certificate):
    arm.subscription(SUB_A)
    result = collect(arm, certificate)
    assert result.records == []
    assert {(s.scope.region, s.outcome) for s in result.scopes} == {
        (r, Outcome.OK) for r in ("westeurope", "northeurope", "eastus", "uksouth")
    }


def test_throttled_listing_waits_for_retry_after_then_succeeds(arm, certificate):
    arm.add_vm(SUB_A, "web-1")
    arm.subscription(SUB_A).throttle = 1
    started = time.monotonic()
    result = collect(arm, certificate)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert outcomes(result)[Scope("azure", SUB_A, "westeurope")] == (Outcome.OK, 1)


def test_throttling_beyond_max_attempts_fails_the_subscription_without_deletions(
        arm, certificate):
    arm.add_vm(SUB_A, "web-1")
    arm.subscription(SUB_A).throttle = 100
    arm.retry_after = "0"
    result = collect(arm, certificate, attempts=3)
    assert result.records == []
    [failed] = result.scopes
    assert failed.scope == Scope("azure", SUB_A, ALL) and failed.outcome is Outcome.FAILED
    assert "SubscriptionRequestsThrottled (HTTP 429)" in failed.detail
    listings = [c for c in arm.requests_for(SUB_A) if c.path.endswith("/virtualMachines")]
    assert len(listings) == 3


def test_authorization_failed_subscription_fails_alone(arm, certificate):
    arm.add_vm(SUB_A, "web-1")
    arm.add_vm(SUB_B, "secret-vm")
    arm.subscription(SUB_B).error = "AuthorizationFailed"
    result = collect(arm, certificate, subscriptions=(SUB_A, SUB_B))
    by_scope = {s.scope: s for s in result.scopes}
    failed = by_scope[Scope("azure", SUB_B, ALL)]
    assert failed.outcome is Outcome.FAILED
    assert failed.detail.startswith(f"subscription {SUB_B}: AuthorizationFailed (HTTP 403): ")
    assert failed.detail.endswith("grant the credential the Reader role on the subscription")
    assert by_scope[Scope("azure", SUB_A, "westeurope")].outcome is Outcome.OK
    assert [r.name for r in result.records] == ["web-1"]
    assert not any(s.scope.account == SUB_B and s.outcome is Outcome.OK for s in result.scopes)


def test_unknown_subscription_fails_with_subscription_not_found(arm, certificate):
    result = collect(arm, certificate, subscriptions=(SUB_C,))
    [failed] = result.scopes
    assert failed.scope == Scope("azure", SUB_C, ALL) and failed.outcome is Outcome.FAILED
    assert "SubscriptionNotFound (HTTP 404)" in failed.detail
    assert "not in the credential's tenant" in failed.detail


def test_unregistered_provider_fails_and_is_never_registered(arm, certificate):
    arm.subscription(SUB_A).error = "MissingSubscriptionRegistration"
    result = collect(arm, certificate)
    [failed] = result.scopes
    assert failed.outcome is Outcome.FAILED
    assert "not registered for Microsoft.Compute" in failed.detail
    assert "never registers resource providers" in failed.detail
    assert {c.method for c in arm.requests} == {"GET"}  # the SDK's POST .../register was refused


def test_discovery_lists_readable_subscriptions_and_skips_disabled_ones(arm, certificate):
    arm.add_vm(SUB_A, "web-1")
    arm.subscription(SUB_B, state="Warned")
    arm.subscription(SUB_C, state="Disabled")
    result = collect(arm, certificate, subscriptions=())
    by_scope = outcomes(result)
    assert by_scope[Scope("azure", SUB_A, "westeurope")] == (Outcome.OK, 1)
    assert by_scope[Scope("azure", SUB_B, "westeurope")] == (Outcome.OK, 0)
    assert by_scope[Scope("azure", SUB_C, ALL)] == (Outcome.SKIPPED, 0)
    skipped = next(s for s in result.scopes if s.scope.account == SUB_C)
    assert skipped.detail == "subscription is Disabled"
    assert arm.requests_for(SUB_C) == []


def test_failed_discovery_is_one_failed_scope_for_all_of_azure(arm, certificate):
    arm.discovery_error = "AuthorizationFailed"
    result = collect(arm, certificate, subscriptions=())
    [failed] = result.scopes
    assert failed.scope == Scope("azure", ALL, ALL) and failed.outcome is Outcome.FAILED
    assert failed.detail.startswith("subscription discovery failed: AuthorizationFailed")


def test_a_credential_that_sees_no_subscription_is_a_skipped_scope(arm, certificate):
    result = collect(arm, certificate, subscriptions=())
    assert [(s.scope, s.outcome) for s in result.scopes] == [
        (Scope("azure", ALL, ALL), Outcome.SKIPPED)]


SECRETS = {
    "custom": "IyEvYmluL2Jhc2gKZXhwb3J0IERCX1BBU1M9aHVudGVyMg==",
    "admin": "Adm1n-P@ssw0rd-never-stored",
    "user": "dXNlci1kYXRhLXdpdGgtYS1zZWNyZXQ=",
    "protected": "protected-settings-secret-value",
    "tag": "password=Tag-Secret-42",
}


def vm_with_secrets(arm: FakeArm) -> None:
    arm.add_vm(SUB_A, "leaky", tags={"note": SECRETS["tag"]}, extra={
        "properties.osProfile.customData": SECRETS["custom"],
        "properties.osProfile.adminPassword": SECRETS["admin"],
        "properties.userData": SECRETS["user"],
        "resources": [{
            "id": f"/subscriptions/{SUB_A}/resourceGroups/rg-prod/providers/Microsoft.Compute/"
                  "virtualMachines/leaky/extensions/CustomScript",
            "name": "CustomScript", "type": "Microsoft.Compute/virtualMachines/extensions",
            "location": "westeurope",
            "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                           "typeHandlerVersion": "2.1", "settings": {"skipDos2Unix": False},
                           "protectedSettings": {"commandToExecute": SECRETS["protected"]}},
        }],
    })


def test_secrets_in_vm_documents_never_reach_records(arm, certificate):
    vm_with_secrets(arm)
    [record] = collect(arm, certificate).records
    text = json.dumps(record.to_dict())
    for secret in SECRETS.values():
        assert secret not in text
    props = record.raw["properties"]
    assert is_marker(props["osProfile"]["customData"])
    assert is_marker(props["osProfile"]["adminPassword"])
    assert is_marker(props["userData"])
    assert is_marker(record.raw["resources"][0]["properties"]["protectedSettings"])
    assert is_marker(record.tags["note"])


REDACTION_GAPS = {
    "windows unattend AutoLogon password": ("Unattend-Secret-9", {
        "properties.osProfile.windowsConfiguration": {"additionalUnattendContent": [
            {"passName": "OobeSystem", "componentName": "Microsoft-Windows-Shell-Setup",
             "settingName": "AutoLogon",
             "content": "<AutoLogon><Password><Value>Unattend-Secret-9</Value></Password>"
                        "<Enabled>true</Enabled><Username>appadmin</Username></AutoLogon>"}]},
    }),
    "SAS signature in an extension's fileUris": ("Zm9vYmFyLXNhcy1zaWduYXR1cmU", {
        "resources": [{"name": "CustomScript", "properties": {"settings": {"fileUris": [
            "https://ops.blob.core.windows.net/scripts/setup.sh?sv=2022-11-02&sp=r"
            "&sig=Zm9vYmFyLXNhcy1zaWduYXR1cmU%3D"]}}}],
    }),
    "storage account key in a connection string": ("c2VjcmV0LWFjY291bnQta2V5", {
        "resources": [{"name": "Diagnostics", "properties": {"settings": {
            "connectionString": "DefaultEndpointsProtocol=https;AccountName=diag;"
                                "AccountKey=c2VjcmV0LWFjY291bnQta2V5;"
                                "EndpointSuffix=core.windows.net"}}}],
    }),
}


@pytest.mark.parametrize("gap", sorted(REDACTION_GAPS))
def test_formerly_missed_secrets_are_redacted(arm, certificate, gap):
    secret, extra = REDACTION_GAPS[gap]
    arm.add_vm(SUB_A, "leaky", extra=extra)
    [record] = collect(arm, certificate).records
    assert secret in json.dumps(extra)  # planted in the VM document the fake ARM serves
    assert secret not in json.dumps(record.to_dict())
    assert "[redacted:" in json.dumps(record.raw)


# ---------------------------------------------------------------- credentials and config


def test_client_secret_comes_from_the_environment_with_the_cloud_authority(monkeypatch):
    import azure.identity

    calls = []
    monkeypatch.setattr(azure.identity, "ClientSecretCredential",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or "credential")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "from-env")
    config = AzureConfig(tenant_id="t-1", client_id="c-1", cloud="china")
    assert azure_provider.build_credential(config, azure_provider.CLOUDS["china"]) == "credential"
    assert calls == [(("t-1", "c-1", "from-env"), {"authority": "login.chinacloudapi.cn"})]


def test_missing_client_secret_fails_all_of_azure_without_any_request(monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "")
    config = Config(azure=AzureConfig(subscriptions=(SUB_A,), tenant_id="t", client_id="c",
                                      endpoint="https://127.0.0.1:9"))
    plan = azure_provider.plan(config)
    assert plan.units == []
    [failed] = plan.results
    assert failed.scope == Scope("azure", ALL, ALL) and failed.outcome is Outcome.FAILED
    assert "AZURE_CLIENT_SECRET is not set" in failed.detail


def test_cli_credential_is_chosen_by_name():
    from azure.identity import AzureCliCredential

    config = AzureConfig(credential="cli")
    credential = azure_provider.build_credential(config, azure_provider.CLOUDS["public"])
    assert isinstance(credential, AzureCliCredential)


@pytest.mark.parametrize(("toml", "message"), [
    ({"client_secret": "s3cret"}, "azure.client_secret: never read from a file"),
    ({"credential": "password"}, "azure.credential: expected one of default, client_secret"),
    ({"credential": "client_secret", "client_id": "c"}, "needs tenant_id and client_id"),
    ({"endpoint": "http://127.0.0.1:8080"}, "azure.endpoint: expected an https:// URL"),
    ({"cloud": "germany"}, "azure.cloud: expected one of public, china, usgov"),
])
def test_bad_azure_configuration_names_the_key(toml, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse({"azure": toml}, "baseliner.toml")


def test_sovereign_clouds_use_their_own_arm_endpoint_and_token_scope():
    config = parse({"azure": {"cloud": "usgov"}}, "baseliner.toml").azure
    options = azure_provider._client_options(config, azure_provider.CLOUDS[config.cloud], {})
    assert options["base_url"] == "https://management.usgovcloudapi.net"
    assert options["credential_scopes"] == ["https://management.core.usgovcloudapi.net/.default"]
    assert options["retry_total"] == 4  # max_attempts 5 = 1 try + 4 retries


def test_importing_the_provider_loads_no_azure_sdk():
    code = ("import sys, baseliner.providers.azure; "
            "print(any(m.startswith('azure') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(SAMPLE.parent.parent)})
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the command, end to end


@pytest.fixture
def az_login(tmp_path, monkeypatch, certificate) -> None:
    install_az_cli(tmp_path, monkeypatch, certificate[0])


def write_config(tmp_path: Path, arm: FakeArm) -> Path:
    path = tmp_path / "baseliner.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'store.db'}"

[azure]
subscriptions = ["{SUB_A}", "{SUB_B}"]
credential = "cli"
endpoint = "{arm.base_url}"
max_attempts = 2
""")
    return path


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--quiet", *argv])
    return code, capsys.readouterr().out


def diff_kinds(capsys, config: Path) -> tuple[dict[str, set[str]], list[dict[str, Any]]]:
    code, out = run(capsys, "--config", str(config), "diff", "--format", "json")
    assert code == 0, out
    findings = json.loads(out)["findings"]
    kinds: dict[str, set[str]] = {}
    for finding in findings:
        kinds.setdefault(finding["kind"], set()).add(finding["instance_id"] or finding["account"])
    return kinds, findings


def vm_ids(arm: FakeArm, sub: str) -> dict[str, str]:
    return {name: vm["properties"]["vmId"] for name, vm in arm.subscriptions[sub].vms.items()}


def test_cli_collect_change_collect_diff(arm, az_login, tmp_path, capsys):
    arm.add_vm(SUB_A, "web-1", "westeurope")
    arm.add_vm(SUB_A, "web-2", "westeurope")
    arm.add_vm(SUB_A, "db-1", "northeurope")
    arm.add_vm(SUB_B, "batch-1", "eastus")
    arm.add_vm(SUB_B, "batch-2", "eastus")
    config = write_config(tmp_path, arm)
    code, out = run(capsys, "--config", str(config), "collect", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["instance_count"] == 5
    ids_a, ids_b = vm_ids(arm, SUB_A), vm_ids(arm, SUB_B)

    # Drift: a VM created, the last VM of a location deleted, one resized, one deallocated.
    created = arm.add_vm(SUB_A, "miner", "uksouth", size="Standard_NC24ads_A100_v4")
    arm.delete_vm(SUB_A, "db-1")
    arm.resize(SUB_A, "web-1", "Standard_D8s_v5")
    arm.set_power(SUB_A, "web-2", "deallocated")
    assert run(capsys, "--config", str(config), "collect")[0] == 0

    kinds, findings = diff_kinds(capsys, config)
    assert kinds == {
        "instance_created": {created["properties"]["vmId"]},
        "instance_deleted": {ids_a["db-1"]},
        "instance_modified": {ids_a["web-1"]},
        "instance_stopped": {ids_a["web-2"]},
    }
    resize = next(f for f in findings if f["kind"] == "instance_modified")
    assert {"path": "instance_type", "old": "Standard_B2s", "new": "Standard_D8s_v5"} in (
        resize["changes"])
    deleted = next(f for f in findings if f["kind"] == "instance_deleted")
    assert (deleted["account"], deleted["region"]) == (SUB_A, "northeurope")

    # Subscription B fails while one of its VMs is gone: a coverage gap, never a deletion.
    arm.delete_vm(SUB_B, "batch-2")
    arm.subscription(SUB_B).error = "AuthorizationFailed"
    code, out = run(capsys, "--config", str(config), "collect", "--format", "json")
    assert code == 3, out
    kinds, findings = diff_kinds(capsys, config)
    assert "instance_deleted" not in kinds
    gaps = [f for f in findings if f["kind"] == "coverage_gap"]
    assert gaps and {g["account"] for g in gaps} == {SUB_B}
    assert all("AuthorizationFailed" in g["detail"] for g in gaps)
    assert ids_b["batch-2"] not in {f["instance_id"] for f in findings}
