#!/usr/bin/python3
"""arm-mock.py: a local Azure Resource Manager for the azure provider's tests. It issues tokens
(Entra ID client credentials: secret or federated assertion; IMDS managed identity), checks the
bearer token on every ARM call, validates VM bodies with the official SDK's models
(azure_models.py), runs long-running operations the way ARM does (201/202 with
Azure-AsyncOperation, Location and Retry-After, InProgress polls, a terminal status), and models
VMs with their inline NIC, public IP and OS disk. A successful create boots the "VM" through
mockbase.VMBooter; a delete kills it.

Controls beyond mockbase's (all POST with a JSON body unless noted):
  /_mock/config      {"inprogress_polls", "retry_after", "delete_missing_status", "token_ttl",
                      "page_size", "lro_max_seconds"}: change behaviour
  /_mock/fail-create {"count": 1, "code": "...", "message": "..."}: the next creates' operations
                     end Failed (the VM stays in provisioningState Failed with its NIC and disk,
                     as in Azure)
  /_mock/vm          {"name", "tags", "size"}: a VM that exists already (Succeeded)
  /_mock/delete-vm   {"name"}: the VM and its resources vanish (behind the client's back)
"""

import base64
import datetime
import json
import os
import re
import secrets
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, quote

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mockbase  # noqa: E402
from mockbase import Reply  # noqa: E402

import azure_models  # noqa: E402

COMPUTE_API = azure_models.COMPUTE_API
NETWORK_API = azure_models.NETWORK_API

ARM_AUDIENCES = {
    "https://management.azure.com", "https://management.azure.com/",
    "https://management.core.windows.net", "https://management.core.windows.net/",
}

# A realistic part of a region's size list (name, cores, memory MiB, max data disks, resource
# disk MiB); the confidential sizes first.
VM_SIZES = [
    ("Standard_DC2as_v5", 2, 8192, 4, 0), ("Standard_DC4as_v5", 4, 16384, 8, 0),
    ("Standard_DC8as_v5", 8, 32768, 16, 0), ("Standard_DC16as_v5", 16, 65536, 32, 0),
    ("Standard_DC32as_v5", 32, 131072, 32, 0), ("Standard_DC2ads_v5", 2, 8192, 4, 76800),
    ("Standard_DC4ads_v5", 4, 16384, 8, 153600), ("Standard_DC8ads_v5", 8, 32768, 16, 307200),
    ("Standard_DC2es_v5", 2, 8192, 4, 0), ("Standard_DC4es_v5", 4, 16384, 8, 0),
    ("Standard_DC8es_v5", 8, 32768, 16, 0), ("Standard_DC16es_v5", 16, 65536, 32, 0),
    ("Standard_EC2as_v5", 2, 16384, 4, 0), ("Standard_EC4as_v5", 4, 32768, 8, 0),
    ("Standard_EC8as_v5", 8, 65536, 16, 0), ("Standard_B1s", 1, 1024, 2, 4096),
    ("Standard_B2s", 2, 4096, 4, 8192), ("Standard_D2s_v3", 2, 8192, 4, 16384),
    ("Standard_D4s_v3", 4, 16384, 8, 32768), ("Standard_D2as_v5", 2, 8192, 4, 0),
    ("Standard_D4as_v5", 4, 16384, 8, 0), ("Standard_D8as_v5", 8, 32768, 16, 0),
    ("Standard_E2as_v5", 2, 16384, 4, 0), ("Standard_F2s_v2", 2, 4096, 4, 16384),
    ("Standard_NC4as_T4_v3", 4, 28672, 8, 180224), ("Standard_NC6s_v3", 6, 114688, 12, 344064),
]
CVM_SIZE = re.compile(r"^Standard_(DC|EC)\d+(a|e)d?s_v5$", re.I)
IMAGE_SIZE_GB = 30
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$")
COMPUTER_NAME_BAD = re.compile(r"[`~!@#$%^&*()=+\[\]{}\\|;:'\",<>/?_ ]")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def arm_error(status, code, message, target=None, headers=None):
    e = {"code": code, "message": message}
    if target:
        e["target"] = target
    return Reply(status, {"error": e}, headers)


def not_found(rtype, name, rg):
    return arm_error(404, "ResourceNotFound",
                     f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
                     "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def qget(query, name, default=None):
    v = parse_qs(query, keep_blank_values=True).get(name)
    return v[0] if v else default


class Operation:
    def __init__(self, kind, name, polls, max_s, fail=None):
        self.id = str(uuid.uuid4())
        self.kind = kind  # "create" | "delete"
        self.name = name
        self.remaining = polls
        self.deadline = time.monotonic() + max_s
        self.fail = fail  # None or {"code", "message"}
        self.status = "InProgress"
        self.start = now_iso()
        self.end = None


class ArmMock(mockbase.Mock):
    def __init__(self, args):
        super().__init__(args)
        self.vms.provider = "azure"
        self.vms.env_name = "AZURE_IMDS_ENDPOINT"
        self.public_pool = mockbase.AddressPool()
        self.cfg = {
            "inprogress_polls": args.inprogress_polls, "retry_after": args.retry_after,
            "delete_missing_status": args.delete_missing_status, "token_ttl": args.token_ttl,
            "page_size": args.page_size, "lro_max_seconds": args.lro_max_seconds,
        }
        self.sub = args.subscription.lower()
        self.rg = args.resource_group
        self.location = args.location
        self.tokens = {}  # token -> {"expires": epoch, "via": "secret"|"assertion"|"imds"}
        self.token_log = []  # (via, detail)
        self.vm = {}  # lower name -> record
        self.nics = {}
        self.pips = {}
        self.disks = {}
        self.ops = {}
        self.fail_creates = []
        self.static = {}  # lower id -> (kind, body) for subnet, nsg, image, resource groups
        self._add_static()
        threading.Thread(target=self._ticker, daemon=True).start()

    def log(self, entry):
        entry["time"] = time.time()  # when answered: tests check Retry-After was honoured
        super().log(entry)

    # ---- fixed resources ----
    def _add_static(self):
        a = self.args
        for rg in {a.resource_group} | {m.group(1) for m in (
                re.search(r"/resourceGroups/([^/]+)", x or "", re.I)
                for x in (a.subnet_id, a.image_id, a.nsg_id)) if m}:
            rid = f"/subscriptions/{self.sub}/resourceGroups/{rg}"
            self.static[rid.lower()] = ("rg", {
                "id": rid, "name": rg, "type": "Microsoft.Resources/resourceGroups",
                "location": self.location, "properties": {"provisioningState": "Succeeded"}})
        if a.subnet_id:
            vnet = a.subnet_id.rsplit("/subnets/", 1)[0]
            self.static[a.subnet_id.lower()] = ("subnet", {
                "id": a.subnet_id, "name": a.subnet_id.rsplit("/", 1)[1],
                "etag": f'W/"{uuid.uuid4()}"', "type": "Microsoft.Network/virtualNetworks/subnets",
                "properties": {"provisioningState": "Succeeded", "addressPrefix": "127.2.0.0/16",
                               "ipConfigurations": [], "delegations": [],
                               "privateEndpointNetworkPolicies": "Disabled",
                               "privateLinkServiceNetworkPolicies": "Enabled"}})
            self.static[vnet.lower()] = ("vnet", {
                "id": vnet, "name": vnet.rsplit("/", 1)[1], "location": self.location,
                "type": "Microsoft.Network/virtualNetworks",
                "properties": {"provisioningState": "Succeeded",
                               "addressSpace": {"addressPrefixes": ["127.2.0.0/16"]},
                               "subnets": [{"id": a.subnet_id}]}})
        if a.nsg_id:
            self.static[a.nsg_id.lower()] = ("nsg", {
                "id": a.nsg_id, "name": a.nsg_id.rsplit("/", 1)[1], "location": self.location,
                "type": "Microsoft.Network/networkSecurityGroups",
                "properties": {"provisioningState": "Succeeded", "securityRules": []}})
        if a.image_id:
            self.static[a.image_id.lower()] = ("image", {
                "id": a.image_id, "name": a.image_id.rsplit("/", 1)[1], "location": self.location,
                "type": "Microsoft.Compute/images",
                "properties": {"provisioningState": "Succeeded", "hyperVGeneration": "V2",
                               "storageProfile": {"osDisk": {
                                   "osType": "Linux", "osState": "Generalized",
                                   "diskSizeGB": IMAGE_SIZE_GB, "caching": "ReadWrite",
                                   "storageAccountType": "Standard_LRS"}, "dataDisks": []}}})

    def rid(self, rg, provider, rtype, name):
        return f"/subscriptions/{self.sub}/resourceGroups/{rg}/providers/{provider}/{rtype}/{name}"

    # ---- long-running operations ----
    def _ticker(self):
        while True:
            time.sleep(0.2)
            with self.lock:
                for op in list(self.ops.values()):
                    if op.status == "InProgress" and time.monotonic() >= op.deadline:
                        self._finish(op)

    def _finish(self, op):
        """Completes an operation (under self.lock)."""
        op.end = now_iso()
        rec = self.vm.get(op.name)
        if op.kind == "create":
            if rec is None or rec.get("op") is not op:
                op.status = "Canceled"
                return
            rec["op"] = None
            if op.fail:
                op.status = "Failed"
                rec["state"] = "Failed"
            else:
                op.status = "Succeeded"
                rec["state"] = "Succeeded"
        else:
            op.status = "Succeeded"
            if rec is not None and rec.get("op") is op:
                self._remove_vm(rec)

    def _poll(self, op):
        with self.lock:
            if op.status == "InProgress":
                if op.remaining > 0:
                    op.remaining -= 1
                else:
                    self._finish(op)
            return op.status

    def _new_op(self, kind, name, fail=None):
        op = Operation(kind, name, self.cfg["inprogress_polls"], self.cfg["lro_max_seconds"], fail)
        self.ops[op.id] = op
        return op

    def _op_headers(self, op):
        base = (f"{self.base_url}/subscriptions/{self.sub}/providers/Microsoft.Compute/"
                f"locations/{self.location}/operations/{op.id}")
        return {
            "Azure-AsyncOperation": f"{base}?p={uuid.uuid4()}&api-version={COMPUTE_API}",
            "Location": f"{base}?p={uuid.uuid4()}&monitor=true&api-version={COMPUTE_API}",
            "Retry-After": str(self.cfg["retry_after"]),
        }

    # ---- control ----
    def control(self, req):
        body = json.loads(req.body or b"null")
        if req.path == "/_mock/config" and req.method == "POST":
            with self.lock:
                for k, v in body.items():
                    if k not in self.cfg:
                        return Reply(400, {"error": f"unknown setting {k}"})
                    self.cfg[k] = v
            return Reply(204)
        if req.path == "/_mock/fail-create" and req.method == "POST":
            with self.lock:
                for _ in range(int(body.get("count", 1))):
                    self.fail_creates.append({
                        "code": body.get("code", "OSProvisioningInternalError"),
                        "message": body.get("message", "OS Provisioning failed for VM due to "
                                            "an internal error.")})
            return Reply(204)
        if req.path == "/_mock/vm" and req.method == "POST":
            return self._seed_vm(body)
        if req.path == "/_mock/delete-vm" and req.method == "POST":
            with self.lock:
                rec = self.vm.get(body["name"].lower())
                if rec:
                    self._remove_vm(rec, everything=True)
            return Reply(204 if rec else 404)
        return super().control(req)

    def state(self):
        with self.lock:
            vms = {r["name"]: {"id": r["id"], "provisioningState": r["state"],
                               "tags": r["body"].get("tags", {}),
                               "vmSize": r["body"]["properties"]["hardwareProfile"]["vmSize"],
                               "privateIp": r["private_ip"], "publicIp": r["public_ip"]}
                   for r in self.vm.values()}
            return {
                "vms": vms,
                "nics": sorted(n["name"] for n in self.nics.values()),
                "publicIPs": sorted(p["name"] for p in self.pips.values()),
                "disks": sorted(d["name"] for d in self.disks.values()),
                "tokens": [{"via": v, "detail": d} for v, d in self.token_log],
                "operations": {s: sum(1 for o in self.ops.values() if o.status == s)
                               for s in ("InProgress", "Succeeded", "Failed", "Canceled")},
            }

    # ---- dispatch ----
    def api(self, req):
        p = req.path
        m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", p)
        if m and req.method == "POST":
            return self.token(req, m.group(1))
        if p == "/metadata/identity/oauth2/token" and req.method == "GET":
            return self.imds_token(req)
        m = re.fullmatch(r"/vm/([^/]+)/metadata/instance/compute/userData", p)
        if m and req.method == "GET":
            return self.vm_user_data(req, m.group(1))
        if not p.lower().startswith("/subscriptions/"):
            return arm_error(404, "NotFound", f"No route for {req.method} {p}")
        bad = self.check_auth(req)
        if bad:
            return bad
        if not qget(req.query, "api-version"):
            return arm_error(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for "
                             "all requests.")
        return self.arm(req)

    # ---- identity ----
    def _issue(self, via, detail, ttl):
        now = int(time.time())
        claims = {"aud": "https://management.azure.com/", "iss":
                  f"https://sts.windows.net/{self.args.tenant}/", "iat": now, "nbf": now,
                  "exp": now + ttl, "tid": self.args.tenant, "appid": self.args.client_id,
                  "jti": str(uuid.uuid4())}
        tok = ".".join([b64url(b'{"typ":"JWT","alg":"RS256"}'),
                        b64url(json.dumps(claims).encode()), b64url(secrets.token_bytes(32))])
        with self.lock:
            self.tokens[tok] = {"expires": now + ttl, "via": via}
            self.token_log.append((via, detail))
        return tok, now

    def token(self, req, tenant):
        def aad_err(status, err, desc):
            return Reply(status, {"error": err, "error_description": desc,
                                  "error_codes": [int(c) for c in
                                                  re.findall(r"^AADSTS(\d+)", desc)], "timestamp": now_iso(),
                                  "trace_id": str(uuid.uuid4()),
                                  "correlation_id": str(uuid.uuid4())})
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return aad_err(400, "invalid_request", "AADSTS900144: The request body must contain "
                           "the following parameter: 'grant_type'.")
        f = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
        if tenant != self.args.tenant:
            return aad_err(400, "invalid_request", f"AADSTS900023: Specified tenant identifier "
                           f"'{tenant}' is neither a valid DNS name, nor a valid external domain.")
        if f.get("grant_type") != "client_credentials":
            return aad_err(400, "unsupported_grant_type", "AADSTS70003: The app requested an "
                           "unsupported grant type.")
        if f.get("client_id") != self.args.client_id:
            return aad_err(400, "unauthorized_client", f"AADSTS700016: Application with "
                           f"identifier '{f.get('client_id')}' was not found in the directory.")
        scope = f.get("scope", "")
        if not scope.endswith("/.default") or scope[:-len("/.default")] not in self.audiences():
            return aad_err(400, "invalid_scope", f"AADSTS70011: The provided value for the "
                           f"input parameter 'scope' is not valid: {scope!r}.")
        if "client_secret" in f:
            if not self.args.client_secret or f["client_secret"] != self.args.client_secret:
                return aad_err(401, "invalid_client", "AADSTS7000215: Invalid client secret "
                               "provided.")
            via, detail = "secret", ""
        elif "client_assertion" in f:
            if f.get("client_assertion_type") != \
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return aad_err(400, "invalid_request", "AADSTS50027: client_assertion_type "
                               "must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
            want = self.args.client_assertion
            if self.args.client_assertion_file:
                with open(self.args.client_assertion_file) as fh:
                    want = fh.read().strip()
            if not want or f["client_assertion"] != want:
                return aad_err(401, "invalid_client", "AADSTS700213: No matching federated "
                               "identity record found for presented assertion.")
            via, detail = "assertion", f["client_assertion"]
        else:
            return aad_err(401, "invalid_client", "AADSTS7000218: The request body must contain "
                           "the following parameter: 'client_assertion' or 'client_secret'.")
        ttl = int(self.cfg["token_ttl"])
        tok, _ = self._issue(via, detail, ttl)
        return Reply(200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                           "access_token": tok})

    def imds_token(self, req):
        if (req.header("Metadata") or "").lower() != "true":
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Required metadata header not specified"})
        if req.header("X-Forwarded-For"):
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Request contains X-Forwarded-For header"})
        if not qget(req.query, "api-version"):
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Required query variable 'api-version' "
                               "is missing"})
        resource = qget(req.query, "resource", "")
        if resource not in self.audiences():
            return Reply(400, {"error": "invalid_resource", "error_description":
                               f"AADSTS500011: The resource principal named {resource} was not "
                               "found in the tenant."})
        if not self.args.managed_identity:
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Identity not found"})
        cid = qget(req.query, "client_id")
        if cid is not None and cid != self.args.managed_identity:
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Identity not found"})
        ttl = int(self.cfg["token_ttl"])
        tok, now = self._issue("imds", cid or "", ttl)
        return Reply(200, {"access_token": tok, "client_id": self.args.managed_identity,
                           "expires_in": str(ttl), "expires_on": str(now + ttl),
                           "ext_expires_in": str(ttl), "not_before": str(now),
                           "resource": resource, "token_type": "Bearer"})

    def audiences(self):
        """ARM's audiences, and this endpoint's own URL: a client pointed at a custom ARM
        endpoint (Azure Stack style) may ask for a token for that endpoint."""
        return ARM_AUDIENCES | {self.base_url, self.base_url + "/"}

    def check_auth(self, req):
        h = req.header("Authorization") or ""
        www = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                   'error="invalid_token", error_description="The authentication '
                                   'failed because of missing \'Authorization\' header."'}
        if not h:
            return arm_error(401, "AuthenticationFailed", "Authentication failed. The "
                             "'Authorization' header is missing.", headers=www)
        if not h.startswith("Bearer "):
            return arm_error(401, "AuthenticationFailed", "Authentication failed. The "
                             "'Authorization' header is not in a valid format.", headers=www)
        with self.lock:
            t = self.tokens.get(h[7:])
        if t is None:
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                             headers=www)
        if time.time() >= t["expires"]:
            exp = datetime.datetime.fromtimestamp(t["expires"], datetime.timezone.utc)
            return arm_error(401, "ExpiredAuthenticationToken",
                             f"The access token expiry UTC time '{exp:%m/%d/%Y %H:%M:%S}' is "
                             f"earlier than current UTC time '{datetime.datetime.now(datetime.timezone.utc):%m/%d/%Y %H:%M:%S}'.",
                             headers=www)
        return None

    # ---- the VM's own IMDS ----
    def vm_user_data(self, req, name):
        if (req.header("Metadata") or "").lower() != "true":
            return Reply(400, {"error": "Bad request. Required metadata header not specified"})
        with self.lock:
            rec = self.vm.get(name.lower())
            ud = rec["body"]["properties"].get("userData", "") if rec else None
        if rec is None:
            return Reply(404, "no such VM", content_type="text/plain")
        return Reply(200, ud, content_type="text/plain; charset=utf-8")

    # ---- ARM ----
    def arm(self, req):
        p = req.path.rstrip("/")
        sub = re.match(r"/subscriptions/([^/]+)", p, re.I).group(1)
        if sub.lower() != self.sub:
            return arm_error(404, "SubscriptionNotFound",
                             f"The subscription '{sub}' could not be found.")
        rest = p[len("/subscriptions/") + len(sub):]
        ver = qget(req.query, "api-version")
        m = re.fullmatch(r"/providers/Microsoft\.Compute/locations/([^/]+)/operations/([^/]+)",
                         rest, re.I)
        if m and req.method == "GET":
            return self.operation(req, m.group(2))
        m = re.fullmatch(r"/providers/Microsoft\.Compute/locations/([^/]+)/vmSizes", rest, re.I)
        if m and req.method == "GET":
            if (bad := self.check_version(ver, COMPUTE_API)):
                return bad
            if m.group(1).lower() != self.location.lower():
                return arm_error(400, "NoRegisteredProviderFound", f"No registered resource "
                                 f"provider found for location '{m.group(1)}'.")
            return Reply(200, {"value": [
                {"name": n, "numberOfCores": c, "osDiskSizeInMB": 1047552,
                 "resourceDiskSizeInMB": r, "memoryInMB": mem, "maxDataDiskCount": d}
                for n, c, mem, d, r in VM_SIZES]})
        if re.fullmatch(r"/providers/Microsoft\.Compute/virtualMachines", rest, re.I) \
                and req.method == "GET":
            if (bad := self.check_version(ver, COMPUTE_API)):
                return bad
            return self.list_vms(req, None)
        m = re.fullmatch(r"/resourceGroups/([^/]+)(/.*)?", rest, re.I)
        if not m:
            return arm_error(404, "NotFound", f"No route for {req.method} {req.path}")
        rg, tail = m.group(1), m.group(2) or ""
        rgid = f"/subscriptions/{self.sub}/resourceGroups/{rg}".lower()
        if rgid not in self.static:
            return arm_error(404, "ResourceGroupNotFound",
                             f"Resource group '{rg}' could not be found.")
        if tail == "":
            if req.method != "GET":
                return arm_error(405, "MethodNotAllowed", "The mock only reads resource groups.")
            return Reply(200, self.static[rgid][1])
        if re.fullmatch(r"/providers/Microsoft\.Compute/virtualMachines", tail, re.I) \
                and req.method == "GET":
            if (bad := self.check_version(ver, COMPUTE_API)):
                return bad
            return self.list_vms(req, rg)
        m = re.fullmatch(r"/providers/Microsoft\.Compute/virtualMachines/([^/]+)", tail, re.I)
        if m:
            if (bad := self.check_version(ver, COMPUTE_API)):
                return bad
            name = m.group(1)
            if rg.lower() != self.rg.lower():
                if req.method == "GET":
                    return not_found("Microsoft.Compute/virtualMachines", name, rg)
                return arm_error(403, "AuthorizationFailed", f"The client does not have "
                                 f"authorization to write in resource group '{rg}' (the mock "
                                 f"serves '{self.rg}').")
            if req.method == "PUT":
                return self.put_vm(req, rg, name)
            if req.method == "GET":
                return self.get_vm(req, rg, name)
            if req.method == "DELETE":
                return self.delete_vm(req, rg, name)
            return arm_error(405, "MethodNotAllowed", f"{req.method} is not supported here.")
        if req.method != "GET":
            return arm_error(405, "MethodNotAllowed", f"{req.method} is not supported here.")
        m = re.fullmatch(r"/providers/Microsoft\.Network/(networkInterfaces|publicIPAddresses)"
                         r"/([^/]+)", tail, re.I)
        if m:
            if (bad := self.check_version(ver, NETWORK_API)):
                return bad
            table = self.nics if m.group(1).lower() == "networkinterfaces" else self.pips
            with self.lock:
                r = table.get((rg.lower(), m.group(2).lower()))
                if r is None:
                    return not_found(f"Microsoft.Network/{m.group(1)}", m.group(2), rg)
                return Reply(200, r["render"]())
        m = re.fullmatch(r"/providers/Microsoft\.Compute/disks/([^/]+)", tail, re.I)
        if m:
            with self.lock:
                d = self.disks.get((rg.lower(), m.group(1).lower()))
                if d is None:
                    return not_found("Microsoft.Compute/disks", m.group(1), rg)
                return Reply(200, d["body"])
        full = f"/subscriptions/{self.sub}/resourceGroups/{rg}{tail}".lower()
        if full in self.static:
            kind, body = self.static[full]
            if kind in ("subnet", "vnet", "nsg") and (bad := self.check_version(ver, NETWORK_API)):
                return bad
            return Reply(200, body)
        parts = tail.strip("/").split("/")
        return not_found("/".join(parts[1:-1]), parts[-1], rg)

    def check_version(self, ver, want):
        if ver != want:
            return arm_error(400, "InvalidApiVersionParameter",
                             f"The api-version '{ver}' is invalid. The supported versions in "
                             f"this mock are '{want}'.")
        return None

    def operation(self, req, opid):
        with self.lock:
            op = self.ops.get(opid)
        if op is None:
            return arm_error(404, "NotFound", f"Operation {opid} was not found.")
        status = self._poll(op)
        monitor = qget(req.query, "monitor") == "true"
        if monitor:  # the Location URL: 202 while running, then 200 (create) / 204 (delete)
            if status == "InProgress":
                return Reply(202, b"", {"Location": self._op_headers(op)["Location"],
                                        "Retry-After": str(self.cfg["retry_after"])})
            if status == "Failed":
                return arm_error(400, op.fail["code"], op.fail["message"])
            if op.kind == "create":
                with self.lock:
                    rec = self.vm.get(op.name)
                    if rec:
                        return Reply(200, self.render_vm(rec))
            return Reply(204)
        body = {"startTime": op.start, "status": status, "name": op.id}
        if status != "InProgress":
            body["endTime"] = op.end
        if status == "Failed":
            body["error"] = {"code": op.fail["code"], "message": op.fail["message"]}
        headers = {"Retry-After": str(self.cfg["retry_after"])} if status == "InProgress" else {}
        return Reply(200, body, headers)

    # ---- VMs ----
    def put_vm(self, req, rg, name):
        try:
            raw = json.loads(req.body or b"null")
        except ValueError as e:
            return arm_error(400, "InvalidRequestContent",
                             f"The request content was invalid and could not be deserialized: {e}")
        body, problems = azure_models.check_body(raw, "VirtualMachine")
        if problems:
            return arm_error(400, "InvalidRequestContent",
                             "The request content was invalid and could not be deserialized: "
                             + "; ".join(problems))
        bad = self.check_vm(body, name)
        if bad:
            return bad
        with self.lock:
            rec = self.vm.get(name.lower())
            if rec is not None:
                if rec["state"] == "Deleting":
                    return arm_error(409, "OperationNotAllowed", f"Operation 'PUT' is not "
                                     f"allowed on VM '{name}' since the VM is marked for "
                                     "deletion.")
                return Reply(200, self.render_vm(rec))  # an update that changes nothing here
            fail = self.fail_creates.pop(0) if self.fail_creates else None
            rec = self._create(rg, name, body)
            op = self._new_op("create", name.lower(), fail)
            rec["op"] = op
            reply = Reply(201, self.render_vm(rec), self._op_headers(op))
        if fail is None:
            self.vms.boot(name, rec["public_ip"] or rec["private_ip"], f"{self.base_url}/vm/{name}")
        return reply

    def check_vm(self, body, name):
        """Semantic checks ARM makes beyond the schema."""
        if not NAME_RE.match(name):
            return arm_error(400, "InvalidResourceName", f"The resource name '{name}' is invalid.")
        props = body.get("properties", {})
        if body.get("location", "").replace(" ", "").lower() != self.location.lower():
            return arm_error(400, "InvalidParameter", f"The location '{body.get('location')}' "
                             f"does not match the subnet's location '{self.location}'.", "location")
        tags = body.get("tags") or {}
        if len(tags) > 50:
            return arm_error(400, "InvalidTagNameCharacters", "At most 50 tags are allowed.")
        for k, v in tags.items():
            if len(k) > 512 or len(str(v)) > 256 or re.search(r"[<>%&\\?/]", k):
                return arm_error(400, "InvalidTagNameCharacters", f"The tag {k!r} is invalid.")
        size = props.get("hardwareProfile", {}).get("vmSize", "")
        known = {n.lower(): n for n, *_ in VM_SIZES}
        if size.lower() not in known:
            return arm_error(409, "SkuNotAvailable", f"The requested VM size '{size}' is not "
                             f"available in location '{self.location}'.")
        sp = props.get("storageProfile", {})
        img = sp.get("imageReference", {}).get("id", "")
        if img.lower() not in self.static or self.static[img.lower()][0] != "image":
            return arm_error(404, "NotFound", f"The Image '{img}' cannot be found in "
                             f"'{self.location}' region.", "imageReference")
        od = sp.get("osDisk") or {}
        if od.get("createOption", "").lower() != "fromimage":
            return arm_error(400, "InvalidParameter", "osDisk.createOption must be FromImage "
                             "for an image.", "osDisk.createOption")
        if od.get("diskSizeGB") is not None and od["diskSizeGB"] < IMAGE_SIZE_GB:
            return arm_error(400, "OperationNotAllowed", f"The specified disk size "
                             f"{od['diskSizeGB']} GB is smaller than the size of the "
                             f"corresponding disk in the VM image: {IMAGE_SIZE_GB} GB.")
        sec = props.get("securityProfile") or {}
        enc = ((od.get("managedDisk") or {}).get("securityProfile") or {}).get(
            "securityEncryptionType")
        if (sec.get("securityType") or "").lower() == "confidentialvm":
            if not CVM_SIZE.match(size):
                return arm_error(400, "BadRequest", f"The VM size '{size}' is not supported for "
                                 "creation of VMs and Virtual Machine Scale Set with "
                                 "'ConfidentialVM' security type.")
            if not enc:
                return arm_error(400, "InvalidParameter", "Required parameter "
                                 "'securityEncryptionType' is missing (null).",
                                 "osDisk.managedDisk.securityProfile.securityEncryptionType")
            if not (sec.get("uefiSettings") or {}).get("vTpmEnabled"):
                return arm_error(400, "InvalidParameter", "vTpmEnabled must be true for "
                                 "ConfidentialVM.", "securityProfile.uefiSettings.vTpmEnabled")
        elif enc:
            return arm_error(400, "InvalidParameter", "securityEncryptionType is only allowed "
                             "with securityType ConfidentialVM.",
                             "osDisk.managedDisk.securityProfile.securityEncryptionType")
        osp = props.get("osProfile") or {}
        user = osp.get("adminUsername", "")
        if not user:
            return arm_error(400, "InvalidParameter", "Required parameter 'adminUsername' is "
                             "missing (null).", "adminUsername")
        cn = osp.get("computerName") or name
        if len(cn) > 64 or COMPUTER_NAME_BAD.search(cn) or cn.isdigit():
            return arm_error(400, "InvalidParameter", f"Linux host name '{cn}' is invalid.",
                             "computerName")
        lin = osp.get("linuxConfiguration") or {}
        keys = ((lin.get("ssh") or {}).get("publicKeys")) or []
        if lin.get("disablePasswordAuthentication") and not keys:
            return arm_error(400, "InvalidParameter", "Authentication using either SSH or by "
                             "user name and password must be enabled in Linux profile.",
                             "linuxConfiguration")
        for k in keys:
            if k.get("path") != f"/home/{user}/.ssh/authorized_keys":
                return arm_error(400, "InvalidParameter", "Destination path for SSH public keys "
                                 f"is currently limited to its default value /home/{user}/.ssh/"
                                 "authorized_keys due to a known issue in Linux provisioning "
                                 "agent.", "linuxConfiguration.ssh.publicKeys.path")
            kd = (k.get("keyData") or "").split()
            try:
                ok = len(kd) >= 2 and kd[0] in ("ssh-rsa", "ssh-ed25519") and \
                    len(base64.b64decode(kd[1], validate=True)) > 32
            except ValueError:
                ok = False
            if not ok:
                return arm_error(400, "InvalidParameter", "The value of parameter "
                                 "linuxConfiguration.ssh.publicKeys.keyData is invalid.",
                                 "linuxConfiguration.ssh.publicKeys.keyData")
        ud = props.get("userData")
        if ud is not None:
            try:
                base64.b64decode(ud, validate=True)
            except ValueError:
                return arm_error(400, "InvalidParameter", "The value of parameter userData is "
                                 "invalid: not base64.", "userData")
            if len(ud) > 65536:
                return arm_error(400, "InvalidParameter", "The value of parameter userData is "
                                 "too long: at most 65536 characters.", "userData")
        net = props.get("networkProfile") or {}
        cfgs = net.get("networkInterfaceConfigurations") or []
        if not cfgs:
            return arm_error(400, "InvalidParameter", "The VM needs a network interface.",
                             "networkProfile")
        if not net.get("networkApiVersion"):
            return arm_error(400, "InvalidParameter", "networkApiVersion is required with "
                             "networkInterfaceConfigurations.", "networkProfile.networkApiVersion")
        for c in cfgs:
            cp = c.get("properties") or {}
            nsg = (cp.get("networkSecurityGroup") or {}).get("id")
            if nsg and nsg.lower() not in self.static:
                return arm_error(400, "InvalidResourceReference", f"Resource {nsg} referenced "
                                 f"by resource {name} was not found.")
            for ipc in cp.get("ipConfigurations") or []:
                sn = ((ipc.get("properties") or {}).get("subnet") or {}).get("id", "")
                if not sn or sn.lower() not in self.static:
                    return arm_error(400, "InvalidResourceReference", f"Resource {sn} "
                                     f"referenced by resource {name} was not found.")
        return None

    def _create(self, rg, name, body):
        """Records the VM and its NIC, public IP and disk (under self.lock)."""
        key = name.lower()
        props = body["properties"]
        vmid = self.rid(rg, "Microsoft.Compute", "virtualMachines", name)
        rec = {"name": name, "rg": rg, "id": vmid, "body": body, "state": "Creating",
               "vmId": str(uuid.uuid4()), "created": now_iso(), "nics": [], "pips": [],
               "disk": None, "private_ip": None, "public_ip": None, "op": None}
        od = props["storageProfile"]["osDisk"]
        dname = od.get("name") or f"{name}_OsDisk_1_{uuid.uuid4().hex}"
        did = self.rid(rg, "Microsoft.Compute", "disks", dname)
        size_gb = od.get("diskSizeGB") or IMAGE_SIZE_GB
        self.disks[(rg.lower(), dname.lower())] = {"name": dname, "body": {
            "id": did, "name": dname, "type": "Microsoft.Compute/disks",
            "location": self.location, "managedBy": vmid,
            "sku": {"name": (od.get("managedDisk") or {}).get("storageAccountType",
                                                               "Standard_LRS")},
            "properties": {"osType": "Linux", "diskSizeGB": size_gb, "diskState": "Attached",
                           "provisioningState": "Succeeded", "timeCreated": now_iso()}},
            "delete": (od.get("deleteOption") or "Detach").lower() == "delete"}
        rec["disk"] = (rg.lower(), dname.lower(), did, size_gb)
        for i, c in enumerate(props["networkProfile"]["networkInterfaceConfigurations"]):
            cp = c.get("properties") or {}
            nic_name = c["name"]
            nic_id = self.rid(rg, "Microsoft.Network", "networkInterfaces", nic_name)
            ipcs = []
            for ipc in cp.get("ipConfigurations") or []:
                ip = self.addresses.take()
                rec["private_ip"] = rec["private_ip"] or ip
                ipp = ipc.get("properties") or {}
                pipc = ipp.get("publicIPAddressConfiguration")
                pip_id = None
                if pipc:
                    pub = self.public_pool.take().replace("127.2.", "127.3.", 1)
                    rec["public_ip"] = rec["public_ip"] or pub
                    pname = pipc["name"]
                    pip_id = self.rid(rg, "Microsoft.Network", "publicIPAddresses", pname)
                    ipc_id = f"{nic_id}/ipConfigurations/{ipc['name']}"
                    pprops = pipc.get("properties") or {}
                    self.pips[(rg.lower(), pname.lower())] = {
                        "name": pname, "render": self._pip_renderer(pip_id, pname, pub, ipc_id,
                                                                     pipc),
                        "delete": (pprops.get("deleteOption") or "Detach").lower() == "delete"}
                    rec["pips"].append((rg.lower(), pname.lower()))
                ipcs.append((ipc["name"], ip, ipp["subnet"]["id"], pip_id,
                             ipp.get("primary", len(ipcs) == 0)))
            self.nics[(rg.lower(), nic_name.lower())] = {
                "name": nic_name, "vm": vmid,
                "render": self._nic_renderer(nic_id, nic_name, ipcs, cp, rec),
                "delete": (cp.get("deleteOption") or "Detach").lower() == "delete",
                "primary": cp.get("primary", i == 0)}
            rec["nics"].append((rg.lower(), nic_name.lower()))
        self.vm[key] = rec
        return rec

    def _nic_renderer(self, nic_id, name, ipcs, cp, rec):
        mac = "00-0D-3A-" + "-".join(f"{b:02X}" for b in secrets.token_bytes(3))
        guid = str(uuid.uuid4())

        def render():
            out = []
            for ipc_name, ip, subnet, pip, primary in ipcs:
                ipp = {"provisioningState": "Succeeded", "privateIPAddress": ip,
                       "privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet},
                       "primary": bool(primary), "privateIPAddressVersion": "IPv4"}
                if pip and (rec["rg"].lower(), pip.rsplit("/", 1)[1].lower()) in self.pips:
                    ipp["publicIPAddress"] = {"id": pip}
                out.append({"name": ipc_name, "id": f"{nic_id}/ipConfigurations/{ipc_name}",
                            "etag": f'W/"{guid}"',
                            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                            "properties": ipp})
            props = {"provisioningState": "Succeeded", "resourceGuid": guid,
                     "ipConfigurations": out, "dnsSettings": {"dnsServers": [],
                                                              "appliedDnsServers": []},
                     "macAddress": mac, "enableAcceleratedNetworking":
                         bool(cp.get("enableAcceleratedNetworking", False)),
                     "enableIPForwarding": bool(cp.get("enableIPForwarding", False)),
                     "primary": True, "nicType": "Standard"}
            if (cp.get("networkSecurityGroup") or {}).get("id"):
                props["networkSecurityGroup"] = {"id": cp["networkSecurityGroup"]["id"]}
            if rec["name"].lower() in self.vm:
                props["virtualMachine"] = {"id": rec["id"]}
            return {"name": name, "id": nic_id, "etag": f'W/"{guid}"',
                    "type": "Microsoft.Network/networkInterfaces", "location": self.location,
                    "kind": "Regular", "properties": props}
        return render

    def _pip_renderer(self, pip_id, name, addr, ipc_id, cfg):
        guid = str(uuid.uuid4())
        sku = cfg.get("sku") or {"name": "Basic", "tier": "Regional"}
        alloc = (cfg.get("properties") or {}).get("publicIPAllocationMethod") or "Dynamic"

        def render():
            return {"name": name, "id": pip_id, "etag": f'W/"{guid}"',
                    "type": "Microsoft.Network/publicIPAddresses", "location": self.location,
                    "sku": sku,
                    "properties": {"provisioningState": "Succeeded", "resourceGuid": guid,
                                   "ipAddress": addr, "publicIPAddressVersion": "IPv4",
                                   "publicIPAllocationMethod": alloc,
                                   "idleTimeoutInMinutes": (cfg.get("properties") or {}).get(
                                       "idleTimeoutInMinutes") or 4,
                                   "ipTags": [], "ipConfiguration": {"id": ipc_id}}}
        return render

    def render_vm(self, rec, expand_user_data=False):
        body = json.loads(json.dumps(rec["body"]))
        props = body["properties"]
        ud = props.pop("userData", None)
        if expand_user_data and ud is not None:
            props["userData"] = ud
        osp = props.get("osProfile")
        if osp is not None:
            osp.pop("adminPassword", None)
            osp.pop("customData", None)
            osp.setdefault("computerName", rec["name"])
            osp.setdefault("secrets", [])
            osp.setdefault("allowExtensionOperations", True)
            osp.setdefault("requireGuestProvisionSignal", True)
        od = props["storageProfile"]["osDisk"]
        _, dname, did, size_gb = rec["disk"]
        od["name"] = self.disks.get((rec["disk"][0], dname), {}).get("name", od.get("name"))
        od.setdefault("osType", "Linux")
        od.setdefault("caching", "ReadWrite")
        od.setdefault("diskSizeGB", size_gb)
        od.setdefault("deleteOption", "Detach")
        od.setdefault("managedDisk", {})["id"] = did
        props["storageProfile"].setdefault("dataDisks", [])
        net = props["networkProfile"]
        net["networkInterfaces"] = [
            {"id": self.rid(rec["rg"], "Microsoft.Network", "networkInterfaces", c["name"]),
             "properties": {"primary": (c.get("properties") or {}).get("primary", i == 0),
                            "deleteOption": (c.get("properties") or {}).get("deleteOption",
                                                                           "Detach")}}
            for i, c in enumerate(net.get("networkInterfaceConfigurations") or [])]
        props["vmId"] = rec["vmId"]
        props["provisioningState"] = rec["state"]
        props["timeCreated"] = rec["created"]
        out = {"name": rec["name"], "id": rec["id"], "type": "Microsoft.Compute/virtualMachines",
               "location": self.location}
        if body.get("tags") is not None:
            out["tags"] = body["tags"]
        if body.get("zones"):
            out["zones"] = body["zones"]
        out["properties"] = props
        return out

    def get_vm(self, req, rg, name):
        with self.lock:
            rec = self.vm.get(name.lower())
        if rec is None:
            return not_found("Microsoft.Compute/virtualMachines", name, rg)
        op = rec.get("op")
        if op is not None:
            self._poll(op)  # a client that watches the VM itself also moves it along
        with self.lock:
            if name.lower() not in self.vm:
                return not_found("Microsoft.Compute/virtualMachines", name, rg)
            expand = (qget(req.query, "$expand") or "").lower() == "userdata"
            return Reply(200, self.render_vm(rec, expand))

    def list_vms(self, req, rg):
        size = max(1, int(self.cfg["page_size"]))
        skip = int(qget(req.query, "$skiptoken", "0") or 0)
        with self.lock:
            recs = sorted((r for r in self.vm.values()
                           if rg is None or r["rg"].lower() == rg.lower()),
                          key=lambda r: r["created"] + r["name"])
            page = [self.render_vm(r) for r in recs[skip:skip + size]]
        out = {"value": page}
        if skip + size < len(recs):
            path = req.path.rstrip("/")
            out["nextLink"] = (f"{self.base_url}{path}?api-version={COMPUTE_API}"
                               f"&%24skiptoken={quote(str(skip + size))}")
        return Reply(200, out)

    def delete_vm(self, req, rg, name):
        fd = qget(req.query, "forceDeletion")
        if fd is not None and fd.lower() not in ("true", "false"):
            return arm_error(400, "InvalidParameter", f"forceDeletion '{fd}' is not a boolean.")
        with self.lock:
            rec = self.vm.get(name.lower())
            if rec is None:
                st = int(self.cfg["delete_missing_status"])
                if st == 404:
                    return not_found("Microsoft.Compute/virtualMachines", name, rg)
                return Reply(st)
            if rec["state"] == "Deleting":
                return Reply(202, b"", self._op_headers(rec["op"]))
            old = rec.get("op")
            if old is not None and old.status == "InProgress":
                old.status, old.end = "Canceled", now_iso()
            rec["state"] = "Deleting"
            op = self._new_op("delete", name.lower())
            rec["op"] = op
        self.vms.kill(rec["name"])
        return Reply(202, b"", self._op_headers(op))

    def _remove_vm(self, rec, everything=False):
        """The VM is gone; resources with deleteOption Delete go with it (under self.lock)."""
        self.vm.pop(rec["name"].lower(), None)
        for k in rec["nics"]:
            n = self.nics.get(k)
            if n and (everything or n["delete"]):
                del self.nics[k]
        for k in rec["pips"]:
            n = self.pips.get(k)
            if n and (everything or n["delete"]):
                del self.pips[k]
        dk = rec["disk"][:2]
        d = self.disks.get(dk)
        if d and (everything or d["delete"]):
            del self.disks[dk]
        elif d:
            d["body"].pop("managedBy", None)
            d["body"]["properties"]["diskState"] = "Unattached"
        threading.Thread(target=self.vms.kill, args=(rec["name"],), daemon=True).start()

    def _seed_vm(self, spec):
        name = spec["name"]
        user = "peerpod"
        key = "ssh-rsa " + base64.b64encode(secrets.token_bytes(279)).decode()
        body = {
            "location": self.location, "tags": spec.get("tags", {}),
            "properties": {
                "hardwareProfile": {"vmSize": spec.get("size", "Standard_DC2as_v5")},
                "storageProfile": {
                    "imageReference": {"id": self.args.image_id},
                    "osDisk": {"name": f"{name}-disk", "createOption": "FromImage",
                               "caching": "ReadWrite", "deleteOption": "Delete",
                               "managedDisk": {"storageAccountType": "Standard_LRS"}}},
                "osProfile": {"adminUsername": user, "computerName": name,
                              "linuxConfiguration": {
                                  "disablePasswordAuthentication": True,
                                  "ssh": {"publicKeys": [{
                                      "path": f"/home/{user}/.ssh/authorized_keys",
                                      "keyData": key}]}}},
                "networkProfile": {"networkApiVersion": "2020-11-01",
                                   "networkInterfaceConfigurations": [{
                                       "name": f"{name}-net", "properties": {
                                           "deleteOption": "Delete", "ipConfigurations": [{
                                               "name": f"{name}-ipConfig", "properties": {
                                                   "subnet": {"id": self.args.subnet_id}}}]}}]},
                "userData": mockbase.b64("#cloud-config\n")}}
        body, problems = azure_models.check_body(body)
        if problems:
            return Reply(500, {"error": problems})
        with self.lock:
            if name.lower() in self.vm:
                return Reply(409, {"error": "exists"})
            rec = self._create(self.rg, name, body)
            rec["state"] = "Succeeded"
            return Reply(201, self.render_vm(rec))


class ArmHandler(mockbase.MockHandler):
    def _send(self, reply):
        if not self.path.startswith("/_mock/"):
            reply.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
            reply.headers.setdefault("x-ms-correlation-request-id", str(uuid.uuid4()))
        super()._send(reply)


def main():
    p = mockbase.main_args("Local Azure Resource Manager mock")
    p.add_argument("--tenant", default="00000000-0000-0000-0000-00000000aaaa")
    p.add_argument("--client-id", default="00000000-0000-0000-0000-00000000bbbb")
    p.add_argument("--client-secret", help="the accepted client_secret")
    p.add_argument("--client-assertion", help="the accepted client_assertion")
    p.add_argument("--client-assertion-file", help="the accepted client_assertion, read per "
                   "request (a projected service account token)")
    p.add_argument("--managed-identity", help="client id of the node's managed identity "
                   "(IMDS answers 'Identity not found' without one)")
    p.add_argument("--subscription", default="00000000-0000-0000-0000-00000000cccc")
    p.add_argument("--resource-group", default="pp-rg")
    p.add_argument("--location", default="eastus")
    p.add_argument("--subnet-id")
    p.add_argument("--nsg-id")
    p.add_argument("--image-id")
    p.add_argument("--token-ttl", type=int, default=3599)
    p.add_argument("--inprogress-polls", type=int, default=2)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--lro-max-seconds", type=float, default=20,
                   help="an operation nobody polls completes after this long")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--delete-missing-status", type=int, default=204,
                   help="DELETE of a missing VM: 204 (what Azure answers) or 404")
    args = p.parse_args()
    sub = args.subscription
    args.subnet_id = args.subnet_id or (f"/subscriptions/{sub}/resourceGroups/pp-net/providers/"
                                        "Microsoft.Network/virtualNetworks/pp-vnet/subnets/default")
    args.image_id = args.image_id or (f"/subscriptions/{sub}/resourceGroups/pp-images/providers/"
                                      "Microsoft.Compute/images/podvm-image")
    mockbase.serve(ArmMock(args), ArmHandler)


if __name__ == "__main__":
    main()
