"""The official Azure SDK for Python (Debian's python3-azure) driving the ARM mock, for the
azure-*.sh tests:

  azure_sdk.py reference MOCK --ours BODY.json --settings SETTINGS.json --name VM
      builds the VM the provider's settings describe with the SDK's models (copying the random
      parts and free naming choices from our body), creates and deletes it through
      ComputeManagementClient (api 2022-08-01), takes the SDK's PUT body from the mock's log and
      compares it with ours field for field; exit 1 with a diff on mismatch.
  azure_sdk.py selftest MOCK --settings SETTINGS.json
      the mock against the SDK: create with InProgress polls, get, list paging, a failed
      operation, throttling, a misspelled field, delete; nothing left.

SETTINGS: {"tenant", "client_id", "secret", "subscription", "resource_group", "region", "size",
"image", "subnet", "nsg", "ssh_user", "disable_cvm", "secure_boot", "public_ip",
"root_volume_gb", "zone", "tags": {...} (the tags the VM must carry)}.
"""

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.v2022_08_01 import models as m

API = "2022-08-01"


class MockCredential:
    """A TokenCredential that asks the mock's Entra ID token endpoint (client secret)."""

    def __init__(self, mock, s):
        self.mock, self.s = mock, s

    def get_token(self, *scopes, **kwargs):
        form = urlencode({"grant_type": "client_credentials", "client_id": self.s["client_id"],
                          "client_secret": self.s["secret"], "scope": scopes[0]}).encode()
        req = urllib.request.Request(f"{self.mock}/{self.s['tenant']}/oauth2/v2.0/token", form,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as r:
            t = json.load(r)
        return AccessToken(t["access_token"], int(time.time()) + int(t["expires_in"]))


class PlainHttpBearer(ARMChallengeAuthenticationPolicy):
    """The SDK's ARM bearer policy, allowed over the mock's plain http."""

    def on_request(self, request):
        request.context.options["enforce_https"] = False
        super().on_request(request)


def client(mock, s):
    cred = MockCredential(mock, s)
    return ComputeManagementClient(
        cred, s["subscription"], api_version=API, base_url=mock,
        authentication_policy=PlainHttpBearer(cred, "https://management.azure.com/.default"))


def mock_json(mock, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(mock + path, data, {"Content-Type": "application/json"},
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def image_reference(image):
    low = image.lower()
    if low.startswith("/communitygalleries/"):
        return m.ImageReference(community_gallery_image_id=image)
    if low.startswith("/sharedgalleries/"):
        return m.ImageReference(shared_gallery_image_id=image)
    return m.ImageReference(id=image)


def reference_vm(s, ours):
    """The VM the settings describe, as SDK models. From our body come only the random parts
    (ssh key, userData, computer name) and the names and free choices of the provider (NIC,
    IP configuration, public IP and disk names, storage account type, primary flags)."""
    p = ours["properties"]
    od = p["storageProfile"]["osDisk"]
    nicc = p["networkProfile"]["networkInterfaceConfigurations"][0]
    ipc = nicc["properties"]["ipConfigurations"][0]
    cvm = not s.get("disable_cvm")
    user = s.get("ssh_user") or "peerpod"
    keys = p["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]

    managed = m.ManagedDiskParameters(
        storage_account_type=od.get("managedDisk", {}).get("storageAccountType"),
        security_profile=m.VMDiskSecurityProfile(security_encryption_type="VMGuestStateOnly")
        if cvm else None)
    os_disk = m.OSDisk(create_option="FromImage", delete_option="Delete", managed_disk=managed,
                       name=od.get("name"), caching=od.get("caching"),
                       disk_size_gb=s.get("root_volume_gb") or None)
    pip = None
    if s.get("public_ip"):
        pipc = ipc["properties"].get("publicIPAddressConfiguration") or {}
        pip = m.VirtualMachinePublicIPAddressConfiguration(
            name=pipc.get("name", "(missing)"),
            sku=m.PublicIPAddressSku(name="Standard", tier="Regional"),
            delete_option="Delete", public_ip_allocation_method="Static")
    nic = m.VirtualMachineNetworkInterfaceConfiguration(
        name=nicc["name"], primary=nicc["properties"].get("primary"), delete_option="Delete",
        network_security_group=m.SubResource(id=s["nsg"]) if s.get("nsg") else None,
        ip_configurations=[m.VirtualMachineNetworkInterfaceIPConfiguration(
            name=ipc["name"], primary=ipc["properties"].get("primary"),
            subnet=m.SubResource(id=s["subnet"]), public_ip_address_configuration=pip)])
    return m.VirtualMachine(
        location=s["region"], tags=s["tags"], zones=[s["zone"]] if s.get("zone") else None,
        hardware_profile=m.HardwareProfile(vm_size=s["size"]),
        storage_profile=m.StorageProfile(image_reference=image_reference(s["image"]),
                                         os_disk=os_disk),
        os_profile=m.OSProfile(
            computer_name=p["osProfile"]["computerName"], admin_username=user,
            linux_configuration=m.LinuxConfiguration(
                disable_password_authentication=True,
                ssh=m.SshConfiguration(public_keys=[m.SshPublicKey(
                    path=f"/home/{user}/.ssh/authorized_keys",
                    key_data=keys[0]["keyData"])]))),
        network_profile=m.NetworkProfile(network_api_version="2020-11-01",
                                         network_interface_configurations=[nic]),
        security_profile=m.SecurityProfile(
            security_type="ConfidentialVM",
            uefi_settings=m.UefiSettings(secure_boot_enabled=bool(s.get("secure_boot")),
                                         v_tpm_enabled=True)) if cvm else None,
        user_data=p.get("userData"))


def flatten(doc, path="", out=None):
    out = {} if out is None else out
    if isinstance(doc, dict):
        if not doc:
            out[path] = {}
        for k, v in doc.items():
            flatten(v, f"{path}.{k}" if path else k, out)
    elif isinstance(doc, list):
        if not doc:
            out[path] = []
        for i, v in enumerate(doc):
            flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = doc
    return out


def diff(ours, sdk):
    a, b = flatten(ours), flatten(sdk)
    lines = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            lines.append(f"  only ours: {k} = {json.dumps(a[k])}")
        elif k not in a:
            lines.append(f"  only SDK:  {k} = {json.dumps(b[k])}")
        elif a[k] != b[k] or type(a[k]) is not type(b[k]):
            lines.append(f"  differs:   {k}: ours {json.dumps(a[k])}, SDK {json.dumps(b[k])}")
    return lines


def sdk_puts(mock, name):
    log = mock_json(mock, "/_mock/requests")
    return [e for e in log if e["method"] == "PUT" and e["path"].endswith("/" + name)
            and "azsdk-python" in e["headers"].get("User-Agent", "")]


def cmd_reference(a):
    s = json.load(open(a.settings))
    ours = json.load(open(a.ours))
    problems = []
    # what the settings imply that the comparison cannot see (copied parts)
    ud = ours.get("properties", {}).get("userData", "")
    try:
        text = base64.b64decode(ud, validate=True).decode()
        if not text.startswith("#cloud-config\n") or "/run/peerpod/apf.json" not in text:
            problems.append("userData is not the cloud-config document with apf.json")
    except ValueError:
        problems.append("userData is not base64")
    cn = ours.get("properties", {}).get("osProfile", {}).get("computerName")
    if cn != a.name:
        problems.append(f"computerName {cn!r} is not the VM name {a.name!r}")
    try:
        vm = reference_vm(s, ours)
    except (KeyError, IndexError, TypeError) as e:
        print(f"FAIL: our body lacks a part the reference needs: {e!r}")
        print(json.dumps(ours, indent=1))
        return 1
    c = client(a.mock, s)
    c.virtual_machines.begin_create_or_update(s["resource_group"], a.name, vm).result()
    got = c.virtual_machines.get(s["resource_group"], a.name)
    assert got.provisioning_state == "Succeeded", got.provisioning_state
    c.virtual_machines.begin_delete(s["resource_group"], a.name).result()
    puts = sdk_puts(a.mock, a.name)
    if len(puts) != 1:
        print(f"FAIL: expected one SDK PUT of {a.name} in the mock's log, found {len(puts)}")
        return 1
    sdk = json.loads(puts[0]["body"])
    lines = diff(ours, sdk)
    if lines or problems:
        print(f"FAIL: our PUT body differs from the SDK's for the same parameters ({a.label}):")
        print("\n".join(lines + ["  " + p for p in problems]))
        print("ours:", json.dumps(ours, sort_keys=True))
        print("SDK: ", json.dumps(sdk, sort_keys=True))
        return 1
    print(f"ok: {a.label}: our body equals the SDK's field for field ({len(flatten(ours))} "
          "fields)")
    return 0


def cmd_selftest(a):
    s = json.load(open(a.settings))
    c = client(a.mock, s)
    rg = s["resource_group"]
    key = "ssh-rsa " + base64.b64encode(bytes(range(256)) + b"x" * 23).decode()

    def vm_model(name):
        ours = {"properties": {
            "storageProfile": {"osDisk": {"name": f"{name}-disk",
                                          "managedDisk": {"storageAccountType": "Premium_LRS"}}},
            "networkProfile": {"networkInterfaceConfigurations": [{
                "name": f"{name}-nic", "properties": {"primary": True, "ipConfigurations": [{
                    "name": f"{name}-ipc", "properties": {"primary": True}}]}}]},
            "osProfile": {"computerName": name, "linuxConfiguration": {
                "ssh": {"publicKeys": [{"keyData": key}]}}},
            "userData": base64.b64encode(b"#cloud-config\n").decode()}}
        return reference_vm(dict(s, tags={"peerpod-sandbox-id": name, "peerpod-node": "n"}),
                            ours)

    # create: 201, InProgress polls, Succeeded, final GET
    mock_json(a.mock, "/_mock/reset", {})
    vm = c.virtual_machines.begin_create_or_update(rg, "self-1", vm_model("self-1")).result()
    assert vm.provisioning_state == "Succeeded", vm.provisioning_state
    assert vm.network_profile.network_interfaces[0].id.endswith("/networkInterfaces/self-1-nic")
    log = mock_json(a.mock, "/_mock/requests")
    polls = [e for e in log if "/operations/" in e["path"]]
    assert len(polls) >= 2, f"expected InProgress polls, saw {len(polls)}"
    assert all("x-ms-request-id" not in e for e in log)  # (the log has request headers only)
    print(f"ok: SDK create through {len(polls)} operation polls")

    # list with paging (page size 1 in the selftest mock) and throttling on the list
    c.virtual_machines.begin_create_or_update(rg, "self-2", vm_model("self-2")).result()
    mock_json(a.mock, "/_mock/faults", [{"method": "GET", "path": "virtualMachines$",
                                         "status": 429, "headers": {"Retry-After": "1"},
                                         "body": json.dumps({"error": {
                                             "code": "TooManyRequests",
                                             "message": "throttled"}}), "count": 1}])
    names = sorted(v.name for v in c.virtual_machines.list(rg))
    assert names == ["self-1", "self-2"], names
    log = mock_json(a.mock, "/_mock/requests")
    assert any("skiptoken" in e["query"] for e in log), "no nextLink page was fetched"
    assert any(e["status"] == 429 for e in log), "no 429 was served"
    print("ok: SDK list follows nextLink and retries a 429")

    # a misspelled field is refused with an ARM error body
    body = c.virtual_machines._serialize.body(vm_model("self-3"), "VirtualMachine")
    body["properties"]["storageProfile"]["osDisk"]["cachng"] = "ReadWrite"
    tok = MockCredential(a.mock, s).get_token("https://management.azure.com/.default").token
    req = urllib.request.Request(
        f"{a.mock}/subscriptions/{s['subscription']}/resourceGroups/{rg}/providers/"
        f"Microsoft.Compute/virtualMachines/self-3?api-version={API}",
        json.dumps(body).encode(), {"Content-Type": "application/json",
                                    "Authorization": f"Bearer {tok}"}, method="PUT")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("a misspelled field was accepted")
    except urllib.error.HTTPError as e:
        err = json.load(e)
        assert e.code == 400 and err["error"]["code"] == "InvalidRequestContent" and \
            "cachng" in err["error"]["message"], err
        assert e.headers.get("x-ms-request-id"), "no x-ms-request-id"
    print("ok: a misspelled field -> 400 InvalidRequestContent")

    # an operation that ends Failed leaves the VM Failed, with its NIC and disk
    mock_json(a.mock, "/_mock/fail-create", {"count": 1, "code": "OSProvisioningTimedOut",
                                              "message": "OS provisioning did not finish"})
    try:
        c.virtual_machines.begin_create_or_update(rg, "self-4", vm_model("self-4")).result()
        raise AssertionError("a Failed operation was reported as success")
    except HttpResponseError as e:
        assert "OSProvisioningTimedOut" in str(e), e
    st = mock_json(a.mock, "/_mock/state")
    assert st["vms"]["self-4"]["provisioningState"] == "Failed", st
    assert "self-4-nic" in st["nics"] and "self-4-disk" in st["disks"], st
    print("ok: a Failed operation surfaces its error; the VM stays Failed with NIC and disk")

    for n in ("self-1", "self-2", "self-4"):
        c.virtual_machines.begin_delete(rg, n).result()
    try:
        c.virtual_machines.get(rg, "self-1")
        raise AssertionError("a deleted VM is still there")
    except ResourceNotFoundError as e:
        assert "ResourceNotFound" in str(e), e
    st = mock_json(a.mock, "/_mock/state")
    assert not st["vms"] and not st["nics"] and not st["disks"] and not st["publicIPs"], st
    print("ok: SDK delete removes the VMs with their NICs and disks (deleteOption Delete)")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference")
    r.add_argument("mock")
    r.add_argument("--ours", required=True)
    r.add_argument("--settings", required=True)
    r.add_argument("--name", required=True)
    r.add_argument("--label", default="")
    t = sub.add_parser("selftest")
    t.add_argument("mock")
    t.add_argument("--settings", required=True)
    a = ap.parse_args()
    return cmd_reference(a) if a.cmd == "reference" else cmd_selftest(a)


if __name__ == "__main__":
    sys.exit(main())
