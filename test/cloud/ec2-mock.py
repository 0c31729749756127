#!/usr/bin/env python3
"""A local EC2 (+ STS AssumeRoleWithWebIdentity + IMDSv2) for the aws provider's tests.

Every EC2 call's SigV4 signature is recomputed with botocore from what arrived; its parameters
are parsed back into botocore's EC2 model, validated and re-serialized (the form must equal what
botocore sends). Instances boot for real through mockbase.VMBooter. Beyond mockbase's /_mock/:

  POST /_mock/ec2-faults   [{"action": "RunInstances" (regex), "code": "RequestLimitExceeded",
                             "status": 503, "message": "..", "count": 2}]   answer an EC2 error
                           {"action": "..", "after": "drop", "count": 1}    process, then drop
                           {"action": "..", "status": 500, "count": 1}      5xx (InternalError)
  POST /_mock/ec2-latency  {"ms": 200}: every EC2/STS call (not IMDS) waits this long first
  POST /_mock/forget       {"id": "i-.."}: the instance vanishes (terminated long ago)
  POST /_mock/sts          {"tokens": [".."], "expiry_s": 20}: accepted web identity tokens
  GET  /_mock/state        {"instances": [...], "sts_issued": [...], "region": ..}
"""

import base64
import fnmatch
import hashlib
import json
import os
import random
import re
import string
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mockbase  # noqa: E402
from mockbase import Reply  # noqa: E402

import aws_model  # noqa: E402
from aws_model import QueryError  # noqa: E402

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
               "stopping": 64, "stopped": 80}
OWNER = "123456789012"
SEV_SNP_FAMILIES = ("m6a.", "c6a.", "r6a.")


def _gpu(name, maker, count, mib):
    return {"Gpus": [{"Name": name, "Manufacturer": maker, "Count": count,
                      "MemoryInfo": {"SizeInMiB": mib}}],
            "TotalGpuMemoryInMiB": count * mib}


# (type, vcpus, memory MiB, gpu info or None); listed in no useful order on purpose: EC2 does
# not sort, the provider must.
CATALOG = [
    ("g5.xlarge", 4, 16384, _gpu("A10G", "NVIDIA", 1, 24576)),
    ("m6a.2xlarge", 8, 32768, None),
    ("c6a.large", 2, 4096, None),
    ("p3.2xlarge", 8, 62464, _gpu("V100", "NVIDIA", 1, 16384)),
    ("m6a.large", 2, 8192, None),
    ("r6a.large", 2, 16384, None),
    ("g5.12xlarge", 48, 196608, _gpu("A10G", "NVIDIA", 4, 24576)),
    ("m6a.xlarge", 4, 16384, None),
    ("c6a.xlarge", 4, 8192, None),
    ("t3.small", 2, 2048, None),
    ("m6a.4xlarge", 16, 65536, None),
    ("c6a.2xlarge", 8, 16384, None),
    ("g5.2xlarge", 8, 32768, _gpu("A10G", "NVIDIA", 1, 24576)),
    ("t3.medium", 2, 4096, None),
]


def _rand(alphabet, n):
    return "".join(random.choice(alphabet) for _ in range(n))


def _hexid(prefix):
    return prefix + _rand("0123456789abcdef", 17)


def type_info(name, vcpus, mib, gpu):
    info = {
        "InstanceType": name, "CurrentGeneration": True, "FreeTierEligible": False,
        "SupportedUsageClasses": ["on-demand", "spot"], "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"], "BareMetal": False, "Hypervisor": "nitro",
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"], "SustainedClockSpeedInGhz": 3.6},
        "VCpuInfo": {"DefaultVCpus": vcpus, "DefaultCores": max(1, vcpus // 2),
                     "DefaultThreadsPerCore": 2 if vcpus > 1 else 1},
        "MemoryInfo": {"SizeInMiB": mib}, "InstanceStorageSupported": False,
        "EbsInfo": {"EbsOptimizedSupport": "default", "EncryptionSupport": "supported",
                    "NvmeSupport": "required"},
        "NetworkInfo": {"NetworkPerformance": "Up to 12.5 Gigabit", "MaximumNetworkInterfaces": 3,
                        "Ipv4AddressesPerInterface": 10, "Ipv6Supported": True,
                        "EnaSupport": "required"},
        "PlacementGroupInfo": {"SupportedStrategies": ["cluster", "partition", "spread"]},
        "HibernationSupported": False, "BurstablePerformanceSupported": name.startswith("t3."),
        "DedicatedHostsSupported": True, "AutoRecoverySupported": True,
        "SupportedBootModes": ["legacy-bios", "uefi"],
    }
    if name.startswith(SEV_SNP_FAMILIES):
        info["ProcessorInfo"]["SupportedFeatures"] = ["amd-sev-snp"]
    if gpu:
        info["GpuInfo"] = gpu
    return info


class FixedDateSigV4(SigV4Auth):
    """botocore's SigV4 with the request's own X-Amz-Date instead of the clock."""

    def __init__(self, credentials, service, region, timestamp):
        super().__init__(credentials, service, region)
        self.timestamp = timestamp
        self.canonical = self.sts = None

    def add_auth(self, request):
        request.context["timestamp"] = self.timestamp
        self._modify_request_before_signing(request)
        self.canonical = self.canonical_request(request)
        self.sts = self.string_to_sign(request, self.canonical)
        self._inject_signature_to_request(request, self.signature(self.sts, request))


class EC2Mock(mockbase.Mock):
    def __init__(self, args):
        super().__init__(args)
        self.vms.provider = "aws"
        self.vms.env_name = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
        self.tl = threading.local()
        self.region = args.region
        self.throttle_status = args.throttle_status
        self.ec2_latency_ms = args.ec2_latency_ms
        self.pending_s = args.pending_ms / 1000
        self.shutdown_s = args.shutdown_ms / 1000
        self.types_page = args.types_page_size
        self.action_faults = []
        self.creds = {}  # access key id -> {secret, token, expires, source}
        self.add_creds(args.access_key_id, args.secret_access_key, None, None, "static")
        self.sts_tokens = list(args.web_identity_token or [])
        self.sts_expiry_s = args.sts_expiry_s
        self.role_arn = args.role_arn
        self.sts_issued = []
        self.imds_role = args.imds_role
        self.imds_expiry_s = args.imds_creds_expiry_s
        self.imds_creds = None
        self.imds_tokens = {}  # token -> (expires, vm name or None)
        self.subnets = {args.subnet_id: args.vpc_id}
        self.sgs = set(args.security_group_id or [])
        self.keys = set(args.key_name or [])
        self.templates = set(args.launch_template or [])
        self.images = {}
        for spec in args.image or []:
            iid, size, dev = (spec.split(":") + ["", ""])[:3]
            self.images[iid] = {"size": int(size or 8), "dev": dev or "/dev/xvda",
                                "snap": _hexid("snap-")}
        self.catalog = [type_info(*c) for c in CATALOG]
        self.types = {t["InstanceType"]: t for t in self.catalog}
        self.instances = {}  # id -> dict, in launch order
        self.tokens = {}  # client token -> (params digest, reservation id)
        self.reservations = {}

    # ---- plumbing ----

    def add_creds(self, akid, secret, token, expires, source):
        with self.lock:
            self.creds[akid] = {"secret": secret, "token": token, "expires": expires,
                                "source": source}

    def log(self, entry):
        entry["t"] = time.time()
        entry.update(getattr(self.tl, "extra", None) or {})
        self.tl.extra = {}
        super().log(entry)

    def note(self, **kw):
        if getattr(self.tl, "extra", None) is None:
            self.tl.extra = {}
        self.tl.extra.update(kw)

    def control(self, req):
        body = json.loads(req.body or b"null")
        if req.path == "/_mock/ec2-faults" and req.method == "POST":
            with self.lock:
                self.action_faults += body if isinstance(body, list) else [body]
            return Reply(204)
        if req.path == "/_mock/ec2-latency" and req.method == "POST":
            self.ec2_latency_ms = int(body.get("ms", 0))
            return Reply(204)
        if req.path == "/_mock/sts" and req.method == "POST":
            with self.lock:
                if "tokens" in body:
                    self.sts_tokens = list(body["tokens"])
                if "expiry_s" in body:
                    self.sts_expiry_s = int(body["expiry_s"])
            return Reply(204)
        if req.path == "/_mock/forget" and req.method == "POST":
            # an instance terminated long ago: EC2 no longer knows it at all
            with self.lock:
                inst = self.instances.pop(body["id"], None)
            if inst is not None:
                self.vms.kill(inst["id"])
            return Reply(204 if inst else 404)
        if req.path == "/_mock/reset" and req.method == "POST":
            with self.lock:
                self.action_faults = []
        return super().control(req)

    def take_fault(self, action):
        with self.lock:
            for r in self.action_faults:
                if not re.fullmatch(r.get("action", ".*"), action):
                    continue
                if "count" in r:
                    if r["count"] <= 0:
                        continue
                    r["count"] -= 1
                return r
        return None

    def ec2_error(self, code, message, status=400):
        rid = str(uuid.uuid4())
        self.note(error=code)
        return Reply(status, aws_model.ec2_error_xml(code, message, rid),
                     content_type="text/xml;charset=UTF-8")

    def sts_error(self, code, message, status=400):
        self.note(error=code)
        return Reply(status, aws_model.sts_error_xml(code, message, str(uuid.uuid4())),
                     content_type="text/xml")

    # ---- routing ----

    def api(self, req):
        self.tl.extra = {"t_arrival": time.time()}
        m = re.match(r"^/vm/([^/]+)(/latest/.*)$", req.path)
        if m:
            return self.imds(req, m.group(2), m.group(1))
        if req.path.startswith("/latest/"):
            return self.imds(req, req.path, None)
        if req.method not in ("POST", "GET"):
            return self.ec2_error("InvalidAction", f"{req.method} is not supported", 400)
        body = req.body.decode("utf-8", "replace")
        if req.method == "POST" and body:
            ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                return self.ec2_error("InvalidParameterValue",
                                      f"mock: unsupported Content-Type {ctype!r} for a Query "
                                      "request")
        try:
            pairs = parse_qsl(req.query, keep_blank_values=True, strict_parsing=False) + \
                parse_qsl(body, keep_blank_values=True, strict_parsing=False)
        except ValueError as e:
            return self.ec2_error("InvalidParameterValue", f"malformed form: {e}")
        action = dict(pairs).get("Action", "")
        self.note(action=action)
        if self.ec2_latency_ms:
            time.sleep(self.ec2_latency_ms / 1000)
        if action == "AssumeRoleWithWebIdentity":
            return self.sts(req, pairs)
        return self.ec2(req, pairs, action)

    # ---- SigV4 ----

    def verify(self, req):
        """None when the request is signed by credentials the mock knows, else the error."""
        auth = req.header("Authorization")
        if not auth:
            if "X-Amz-Signature" in req.query:
                return self.ec2_error("AuthFailure", "mock: presigned query auth not modelled",
                                      401)
            return self.ec2_error("MissingAuthenticationToken",
                                  "Request is missing Authentication Token", 401)
        algo, _, rest = auth.strip().partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            return self.ec2_error("IncompleteSignature",
                                  f"Unsupported AWS 'algorithm': '{algo}'", 400)
        parts = {}
        for p in rest.split(","):
            k, _, v = p.strip().partition("=")
            parts[k] = v
        for k in ("Credential", "SignedHeaders", "Signature"):
            if not parts.get(k):
                return self.ec2_error("IncompleteSignature",
                                      f"Authorization header requires '{k}' parameter.", 400)
        scope = parts["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return self.ec2_error("IncompleteSignature", "Credential is malformed", 400)
        akid, day, region, service, _ = scope
        amz_date = req.header("X-Amz-Date")
        if not amz_date or not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", amz_date):
            return self.ec2_error("IncompleteSignature",
                                  "Authorization header requires existence of either a "
                                  "'X-Amz-Date' or a 'Date' header.", 400)
        if day != amz_date[:8]:
            return self.ec2_error("SignatureDoesNotMatch",
                                  f"Date in Credential scope does not match YYYYMMDD from "
                                  f"ISO-8601 version of date from HTTP: '{day}' != "
                                  f"'{amz_date[:8]}'", 403)
        if service != "ec2":
            return self.ec2_error("SignatureDoesNotMatch",
                                  f"Credential should be scoped to correct service: 'ec2'. "
                                  f"(got '{service}')", 403)
        if region != self.region:
            return self.ec2_error("AuthFailure",
                                  f"Credential should be scoped to a valid region, not "
                                  f"'{region}'. (mock region '{self.region}')", 401)
        signed = parts["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return self.ec2_error("SignatureDoesNotMatch",
                                  "'Host' and 'X-Amz-Date' must be SignedHeaders", 403)
        ts = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if abs(ts.timestamp() - time.time()) > 300:
            return self.ec2_error("RequestExpired",
                                  f"Request has expired. (X-Amz-Date {amz_date})", 400)
        with self.lock:
            cred = self.creds.get(akid)
        self.note(akid=akid)
        if cred is None:
            return self.ec2_error("AuthFailure",
                                  "AWS was not able to validate the provided access "
                                  "credentials", 401)
        if cred["token"] is not None and req.header("X-Amz-Security-Token") != cred["token"]:
            return self.ec2_error("AuthFailure",
                                  "AWS was not able to validate the provided access "
                                  "credentials (session token missing or wrong)", 401)
        if cred["token"] is None and req.header("X-Amz-Security-Token"):
            return self.ec2_error("AuthFailure",
                                  "The security token included in the request is invalid", 401)
        if cred["expires"] is not None and time.time() >= cred["expires"]:
            return self.ec2_error("RequestExpired",
                                  "Request has expired. (credentials expired at "
                                  f"{aws_model.iso8601(cred['expires'])})", 400)
        host = req.header("Host") or f"127.0.0.1:{self.port}"
        url = f"http://{host}{req.path}" + (f"?{req.query}" if req.query else "")
        r = AWSRequest(method=req.method, url=url, data=req.body)
        for name in signed:
            values = req.headers.get_all(name)
            if not values:
                return self.ec2_error("SignatureDoesNotMatch",
                                      f"signed header {name} is not in the request", 403)
            for v in values:
                r.headers[name] = v
        token = cred["token"] if "x-amz-security-token" in signed else None
        signer = FixedDateSigV4(Credentials(akid, cred["secret"], token), "ec2", region, amz_date)
        signer.add_auth(r)
        want = dict(p.strip().split("=", 1)
                    for p in r.headers["Authorization"].split(" ", 1)[1].split(","))
        if want["Signature"] != parts["Signature"] or want["SignedHeaders"] != parts[
                "SignedHeaders"]:
            self.note(sig="mismatch", canonical_request=signer.canonical,
                      string_to_sign=signer.sts)
            return self.ec2_error("SignatureDoesNotMatch",
                                  "The request signature we calculated does not match the "
                                  "signature you provided. Check your AWS Secret Access Key "
                                  "and signing method. Consult the service documentation for "
                                  "details.", 403)
        self.note(sig="ok", akid_source=cred["source"])
        return None

    # ---- EC2 ----

    def ec2(self, req, pairs, action):
        bad = self.verify(req)
        if bad is not None:
            return bad
        fault = self.take_fault(action)
        if fault and fault.get("after") != "drop":
            code = fault.get("code") or ("InternalError" if fault.get("status", 500) >= 500
                                         else "InvalidParameterValue")
            status = fault.get("status") or (self.throttle_status
                                             if code == "RequestLimitExceeded" else 500)
            msg = fault.get("message") or {
                "RequestLimitExceeded": "Request limit exceeded.",
                "InternalError": "An internal error has occurred"}.get(code, "injected")
            return self.ec2_error(code, msg, status)
        try:
            op, params = aws_model.parse_form(pairs, "ec2")
            aws_model.validate(op, params)
            sent = {k: v for k, v in pairs}
            expected = aws_model.to_form(op, params)
            diff = aws_model.form_diff(sent, expected)
            if diff:
                raise QueryError("InvalidParameterValue",
                                 "mock: the form differs from botocore's serialization of the "
                                 "same parameters:\n" + "\n".join(diff))
            handler = getattr(self, "op_" + action, None)
            if handler is None:
                raise QueryError("InvalidAction", f"mock: {action} is not implemented")
            if params.get("DryRun"):
                raise QueryError("DryRunOperation",
                                 "Request would have succeeded, but DryRun flag is set.", 412)
            result = handler(params)
        except QueryError as e:
            return self.ec2_error(e.code, e.message, e.status)
        xml = aws_model.render_response(op, result, str(uuid.uuid4()))
        reply = Reply(200, xml, content_type="text/xml;charset=UTF-8")
        if fault and fault.get("after") == "drop":
            reply.drop = True
            self.note(dropped_after_processing=True)
        return reply

    def state_of(self, inst, now=None):
        now = now or time.time()
        if inst["terminated_at"] is not None:
            return "terminated" if now - inst["terminated_at"] >= self.shutdown_s \
                else "shutting-down"
        return "running" if now - inst["launched"] >= self.pending_s else "pending"

    def view(self, inst):
        st = self.state_of(inst)
        v = {
            "AmiLaunchIndex": inst["index"], "ImageId": inst["image"],
            "InstanceId": inst["id"], "InstanceType": inst["type"],
            "LaunchTime": inst["launched"], "Monitoring": {"State": "disabled"},
            "Placement": {"AvailabilityZone": self.args.availability_zone, "GroupName": "",
                          "Tenancy": "default"},
            "PrivateDnsName": "ip-" + inst["private_ip"].replace(".", "-") + ".ec2.internal",
            "PublicDnsName": "", "ProductCodes": [], "StateTransitionReason": "",
            "State": {"Code": STATE_CODES[st], "Name": st},
            "Architecture": "x86_64", "RootDeviceType": "ebs",
            "RootDeviceName": inst["root_dev"], "VirtualizationType": "hvm",
            "Hypervisor": "xen", "ClientToken": inst["client_token"], "EbsOptimized": False,
            "EnaSupport": True, "SourceDestCheck": True,
            "Tags": [{"Key": k, "Value": v} for k, v in inst["tags"]],
            "CpuOptions": dict(inst["cpu"]), "BootMode": "uefi",
        }
        if st != "terminated":
            v.update({
                "PrivateIpAddress": inst["private_ip"], "SubnetId": inst["subnet"],
                "VpcId": self.subnets[inst["subnet"]],
                "SecurityGroups": [{"GroupId": g, "GroupName": g} for g in inst["sgs"]],
                "NetworkInterfaces": [{
                    "NetworkInterfaceId": inst["eni"], "SubnetId": inst["subnet"],
                    "VpcId": self.subnets[inst["subnet"]], "OwnerId": OWNER,
                    "Status": "in-use", "PrivateIpAddress": inst["private_ip"],
                    "SourceDestCheck": True,
                    "Groups": [{"GroupId": g, "GroupName": g} for g in inst["sgs"]],
                    "Attachment": {"AttachmentId": "eni-attach-" + inst["eni"][4:],
                                   "DeviceIndex": 0, "Status": "attached",
                                   "DeleteOnTermination": True},
                }],
                "BlockDeviceMappings": [{"DeviceName": inst["root_dev"], "Ebs": {
                    "AttachTime": inst["launched"], "DeleteOnTermination": True,
                    "Status": "attached", "VolumeId": inst["volume"]}}],
            })
            if inst["key"]:
                v["KeyName"] = inst["key"]
            if inst["public_ip"] and st == "running":
                v["PublicIpAddress"] = inst["public_ip"]
                v["PublicDnsName"] = "ec2-" + inst["public_ip"].replace(".", "-") + \
                    f".{self.region}.compute.amazonaws.com"
                v["NetworkInterfaces"][0]["Association"] = {
                    "PublicIp": inst["public_ip"], "IpOwnerId": "amazon"}
        else:
            v["StateTransitionReason"] = "User initiated"
            v["StateReason"] = {"Code": "Client.UserInitiatedShutdown",
                                "Message": "Client.UserInitiatedShutdown: User initiated "
                                           "shutdown"}
        return v

    def reservation(self, rid, instances):
        return {"ReservationId": rid, "OwnerId": OWNER, "Groups": [],
                "Instances": [self.view(i) for i in instances]}

    def op_RunInstances(self, p):
        token = p.get("ClientToken")
        if token is not None and (len(token) > 64 or not token.isascii()):
            raise QueryError("InvalidParameterValue",
                             "Value for parameter ClientToken is invalid (at most 64 ASCII "
                             "characters).")
        digest = hashlib.sha256(json.dumps({k: v for k, v in p.items() if k != "ClientToken"},
                                           sort_keys=True, default=str).encode()).hexdigest()
        with self.lock:
            if token:
                seen = self.tokens.get(token)
                if seen:
                    if seen[0] != digest:
                        raise QueryError("IdempotentParameterMismatch",
                                         "Arguments on this idempotent request are "
                                         "inconsistent with arguments used in previous "
                                         "request(s).")
                    self.note(idempotent_replay=seen[1])
                    rid = seen[1]
                    insts = [i for i in self.instances.values() if i["reservation"] == rid]
                    return self.reservation(rid, insts)
            insts = self.launch(p, token)
            rid = insts[0]["reservation"]
            if token:
                self.tokens[token] = (digest, rid)
            out = self.reservation(rid, insts)
        for i in insts:
            dial = i["public_ip"] or i["private_ip"]
            self.vms.boot(i["id"], dial, f"{self.base_url}/vm/{i['id']}")
        return out

    def launch(self, p, token):
        lt = p.get("LaunchTemplate")
        if lt:
            name = lt.get("LaunchTemplateName") or lt.get("LaunchTemplateId")
            if name not in self.templates:
                raise QueryError("InvalidLaunchTemplateName.NotFoundException",
                                 f"The specified launch template, with template name {name}, "
                                 "does not exist.")
        image = p.get("ImageId") or (self.args.template_image if lt else None)
        if not image:
            raise QueryError("MissingParameter", "The request must contain the parameter ImageId")
        if not re.fullmatch(r"ami-[0-9a-f]{8,17}", image):
            raise QueryError("InvalidAMIID.Malformed", f'Invalid id: "{image}" (expecting '
                                                       '"ami-...")')
        if image not in self.images:
            raise QueryError("InvalidAMIID.NotFound", f"The image id '[{image}]' does not exist")
        img = self.images[image]
        itype = p.get("InstanceType") or ("m6a.large" if lt else "m1.small")
        if itype not in self.types:
            raise QueryError("InvalidParameterValue",
                             f"Invalid value '{itype}' for InstanceType.")
        lo, hi = p["MinCount"], p["MaxCount"]
        if lo < 1 or hi < lo:
            raise QueryError("InvalidParameterValue",
                             f"Value ({lo}) for parameter minCount is invalid. Expected a "
                             "value between 1 and maxCount.")
        nis = p.get("NetworkInterfaces") or []
        public = self.args.subnet_public
        subnet = p.get("SubnetId")
        sgs = p.get("SecurityGroupIds") or []
        if p.get("SecurityGroups"):
            raise QueryError("InvalidParameterCombination",
                             "mock: security group names (SecurityGroup.N) are for EC2-Classic "
                             "and default VPCs; use SecurityGroupId.N")
        if nis:
            if subnet:
                raise QueryError("InvalidParameterCombination",
                                 "Network interfaces and an instance-level subnet ID may not "
                                 "be specified on the same request")
            if sgs:
                raise QueryError("InvalidParameterCombination",
                                 "Network interfaces and an instance-level security groups may "
                                 "not be specified on the same request")
            for ni in nis:
                if "DeviceIndex" not in ni:
                    raise QueryError("InvalidParameterValue",
                                     "Each network interface requires a device index.")
                if ni.get("AssociatePublicIpAddress") is not None and (
                        ni["DeviceIndex"] != 0 or len(nis) != 1):
                    raise QueryError("InvalidParameterCombination",
                                     "The associatePublicIPAddress parameter can only be "
                                     "specified for a single, new network interface with "
                                     "DeviceIndex 0.")
            first = [ni for ni in nis if ni["DeviceIndex"] == 0]
            if not first:
                raise QueryError("InvalidParameterValue",
                                 "mock: no network interface with DeviceIndex 0")
            subnet = first[0].get("SubnetId")
            sgs = first[0].get("Groups") or []
            if first[0].get("AssociatePublicIpAddress") is not None:
                public = first[0]["AssociatePublicIpAddress"]
        if not subnet:
            if lt:
                subnet = self.args.subnet_id
            else:
                raise QueryError("MissingInput",
                                 "mock: no subnet given (the mock's account has no default "
                                 "VPC)")
        if subnet not in self.subnets:
            raise QueryError("InvalidSubnetID.NotFound", f"The subnet ID '{subnet}' does not "
                                                         "exist")
        for g in sgs:
            if g not in self.sgs:
                raise QueryError("InvalidGroup.NotFound",
                                 f"The security group '{g}' does not exist in VPC "
                                 f"'{self.subnets[subnet]}'")
        if not sgs:
            sgs = ["sg-default0000000"]
        key = p.get("KeyName")
        if key and key not in self.keys:
            raise QueryError("InvalidKeyPair.NotFound", f"The key pair '{key}' does not exist")
        user_data = b""
        if "UserData" in p:
            try:
                user_data = base64.b64decode(p["UserData"], validate=True)
            except ValueError:
                raise QueryError("InvalidParameterValue",
                                 "Invalid BASE64 encoding of user data.") from None
            if len(user_data) > 16384:
                raise QueryError("InvalidParameterValue",
                                 "User data is limited to 16384 bytes")
        tags = []
        kinds = set()
        for spec in p.get("TagSpecifications") or []:
            kind = spec.get("ResourceType")
            if kind not in ("instance", "volume", "network-interface", "spot-instances-request",
                            "elastic-gpu"):
                raise QueryError("InvalidParameterValue",
                                 f"'{kind}' is not a valid taggable resource type for this "
                                 "operation.")
            if kind in kinds:
                raise QueryError("InvalidParameterValue",
                                 f"The same resource type may not be specified more than once "
                                 f"in tag specifications: {kind}")
            kinds.add(kind)
            keys = set()
            if len(spec.get("Tags") or []) > 50:
                raise QueryError("TagLimitExceeded", "The maximum number of tags is 50")
            for t in spec.get("Tags") or []:
                k, v = t.get("Key"), t.get("Value", "")
                if not k or len(k) > 128 or k.lower().startswith("aws:"):
                    raise QueryError("InvalidParameterValue",
                                     f"Tag key '{k}' is invalid (1..128 characters, not "
                                     "starting with aws:)")
                if len(v) > 256:
                    raise QueryError("InvalidParameterValue",
                                     f"Tag value for key '{k}' exceeds 256 characters")
                if k in keys:
                    raise QueryError("InvalidParameterValue", f"Duplicate tag key '{k}' "
                                                              "specified.")
                keys.add(k)
                if kind == "instance":
                    tags.append((k, v))
        root_size = img["size"]
        for bdm in p.get("BlockDeviceMappings") or []:
            dev = bdm.get("DeviceName")
            if not dev:
                raise QueryError("MissingParameter",
                                 "The request must contain the parameter "
                                 "BlockDeviceMapping.N.DeviceName")
            size = (bdm.get("Ebs") or {}).get("VolumeSize")
            if dev == img["dev"] and size is not None:
                if size < img["size"]:
                    raise QueryError("InvalidBlockDeviceMapping",
                                     f"Volume of size {size}GB is smaller than snapshot "
                                     f"'{img['snap']}', expect size >= {img['size']}GB")
                if size > 16384:
                    raise QueryError("InvalidParameterValue",
                                     f"Volume size {size}GB exceeds 16384GB")
                root_size = size
        cpu = {"CoreCount": max(1, self.types[itype]["VCpuInfo"]["DefaultVCpus"] // 2),
               "ThreadsPerCore": 2}
        snp = (p.get("CpuOptions") or {}).get("AmdSevSnp")
        if snp == "enabled":
            if not itype.startswith(SEV_SNP_FAMILIES):
                raise QueryError("UnsupportedOperation",
                                 f"The instance type {itype} does not support AMD SEV-SNP.")
            cpu["AmdSevSnp"] = "enabled"
        elif snp not in (None, "disabled"):
            raise QueryError("InvalidParameterValue",
                             f"Value ({snp}) for parameter cpuOptions.amdSevSnp is invalid.")
        rid = _hexid("r-")
        now = time.time()
        out = []
        for n in range(hi):
            iid = _hexid("i-")
            inst = {
                "id": iid, "reservation": rid, "index": n, "image": image, "type": itype,
                "launched": now, "terminated_at": None,
                "private_ip": self.addresses.take(),
                "public_ip": self.addresses.take() if public else None,
                "subnet": subnet, "sgs": list(sgs), "key": key, "tags": list(tags),
                "client_token": token or "", "user_data": user_data,
                "root_dev": img["dev"], "root_size": root_size, "cpu": cpu,
                "eni": _hexid("eni-"), "volume": _hexid("vol-"),
                "launch_template": (lt or {}).get("LaunchTemplateName"),
            }
            self.instances[iid] = inst
            out.append(inst)
        self.note(launched=[i["id"] for i in out])
        return out

    def lookup(self, ids):
        bad = [i for i in ids if not re.fullmatch(r"i-[0-9a-f]{8,17}", i)]
        if bad:
            raise QueryError("InvalidInstanceID.Malformed", f'Invalid id: "{bad[0]}"')
        missing = [i for i in ids if i not in self.instances]
        if len(missing) == 1:
            raise QueryError("InvalidInstanceID.NotFound",
                             f"The instance ID '{missing[0]}' does not exist")
        if missing:
            raise QueryError("InvalidInstanceID.NotFound",
                             f"The instance IDs '{', '.join(missing)}' do not exist")
        return [self.instances[i] for i in ids]

    def op_TerminateInstances(self, p):
        out = []
        kill = []
        with self.lock:
            now = time.time()
            for inst in self.lookup(p["InstanceIds"]):
                prev = self.state_of(inst, now)
                if inst["terminated_at"] is None:
                    inst["terminated_at"] = now
                    kill.append(inst["id"])
                cur = self.state_of(inst, now)
                out.append({"InstanceId": inst["id"],
                            "CurrentState": {"Code": STATE_CODES[cur], "Name": cur},
                            "PreviousState": {"Code": STATE_CODES[prev], "Name": prev}})
        for iid in kill:
            threading.Thread(target=self.vms.kill, args=(iid,), daemon=True).start()
        return {"TerminatingInstances": out}

    def filter_match(self, inst, name, values):
        def any_match(x):
            return x is not None and any(
                fnmatch.fnmatchcase(str(x), v.replace("[", "[[]")) for v in values)
        tags = dict(inst["tags"])
        if name.startswith("tag:"):
            k = name[4:]
            return k in tags and any_match(tags[k])
        if name == "tag-key":
            return any(any_match(k) for k in tags)
        if name == "tag-value":
            return any(any_match(v) for v in tags.values())
        st = self.state_of(inst)
        simple = {"instance-state-name": st, "instance-state-code": STATE_CODES[st],
                  "instance-id": inst["id"], "instance-type": inst["type"],
                  "image-id": inst["image"], "subnet-id": inst["subnet"],
                  "vpc-id": self.subnets[inst["subnet"]], "reservation-id": inst["reservation"],
                  "private-ip-address": inst["private_ip"], "client-token": inst["client_token"],
                  "key-name": inst["key"]}
        if name not in simple:
            raise QueryError("InvalidParameterValue", f"The filter '{name}' is invalid")
        return any_match(simple[name])

    def page(self, items, p, default, lo, hi, what):
        n = p.get("MaxResults")
        if n is not None and not lo <= n <= hi:
            raise QueryError("InvalidParameterValue",
                             f"Value ( {n} ) for parameter maxResults is invalid. Expecting a "
                             f"value between {lo} and {hi}.")
        size = n or default
        start = 0
        if p.get("NextToken"):
            try:
                tok = json.loads(base64.b64decode(p["NextToken"]))
                start = int(tok["o"])
                if tok["w"] != what:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise QueryError("InvalidParameterValue",
                                 f"The token '{p['NextToken']}' is invalid") from None
        chunk = items[start:start + size] if size else items[start:]
        nxt = None
        if size and start + size < len(items):
            nxt = base64.b64encode(json.dumps({"o": start + size, "w": what}).encode()).decode()
        return chunk, nxt

    def op_DescribeInstances(self, p):
        with self.lock:
            if p.get("InstanceIds") and p.get("MaxResults") is not None:
                raise QueryError("InvalidParameterCombination",
                                 "The parameter instancesSet cannot be used with the parameter "
                                 "maxResults")
            insts = self.lookup(p["InstanceIds"]) if p.get("InstanceIds") \
                else list(self.instances.values())
            for f in p.get("Filters") or []:
                if not f.get("Name"):
                    raise QueryError("InvalidParameterValue", "A filter has no name")
                insts = [i for i in insts
                         if self.filter_match(i, f["Name"], f.get("Values") or [])]
            chunk, nxt = self.page(insts, p, 0, 5, 1000, "di")
            res = []
            for inst in chunk:
                if res and res[-1]["ReservationId"] == inst["reservation"]:
                    res[-1]["Instances"].append(self.view(inst))
                else:
                    res.append(self.reservation(inst["reservation"], [inst]))
        out = {"Reservations": res}
        if nxt:
            out["NextToken"] = nxt
        return out

    def op_DescribeInstanceTypes(self, p):
        types = self.catalog
        want = p.get("InstanceTypes")
        if want:
            missing = [t for t in want if t not in self.types]
            if missing:
                raise QueryError("InvalidInstanceType",
                                 "The following supplied instance types do not exist: "
                                 f"[{', '.join(missing)}]")
            types = [t for t in self.catalog if t["InstanceType"] in want]
        for f in p.get("Filters") or []:
            name, values = f.get("Name"), f.get("Values") or []
            fields = {
                "instance-type": lambda t: t["InstanceType"],
                "current-generation": lambda t: "true",
                "vcpu-info.default-vcpus": lambda t: t["VCpuInfo"]["DefaultVCpus"],
                "memory-info.size-in-mib": lambda t: t["MemoryInfo"]["SizeInMiB"],
                "processor-info.supported-features":
                    lambda t: ",".join(t["ProcessorInfo"].get("SupportedFeatures", [])),
            }
            if name not in fields:
                raise QueryError("InvalidParameterValue", f"The filter '{name}' is invalid")
            types = [t for t in types
                     if any(fnmatch.fnmatchcase(str(fields[name](t)), v) for v in values)]
        chunk, nxt = self.page(types, p, self.types_page, 5, 100, "dit")
        out = {"InstanceTypes": chunk}
        if nxt:
            out["NextToken"] = nxt
        return out

    def op_DescribeImages(self, p):
        ids = p.get("ImageIds") or list(self.images)
        for i in ids:
            if not re.fullmatch(r"ami-[0-9a-f]{8,17}", i):
                raise QueryError("InvalidAMIID.Malformed", f'Invalid id: "{i}"')
        missing = [i for i in ids if i not in self.images]
        if missing:
            raise QueryError("InvalidAMIID.NotFound",
                             f"The image id '[{', '.join(missing)}]' does not exist")
        owners = p.get("Owners")
        if owners and not set(owners) & {"self", OWNER}:
            ids = []
        out = []
        for i in ids:
            img = self.images[i]
            out.append({
                "Architecture": "x86_64", "CreationDate": "2025-01-01T00:00:00.000Z",
                "ImageId": i, "ImageLocation": f"{OWNER}/podvm-{i}", "ImageType": "machine",
                "Public": False, "OwnerId": OWNER, "PlatformDetails": "Linux/UNIX",
                "UsageOperation": "RunInstances", "State": "available",
                "BlockDeviceMappings": [{"DeviceName": img["dev"], "Ebs": {
                    "DeleteOnTermination": True, "SnapshotId": img["snap"],
                    "VolumeSize": img["size"], "VolumeType": "gp3", "Encrypted": False}}],
                "EnaSupport": True, "Hypervisor": "xen", "Name": f"podvm-{i}",
                "RootDeviceName": img["dev"], "RootDeviceType": "ebs",
                "SriovNetSupport": "simple", "VirtualizationType": "hvm", "BootMode": "uefi",
                "TpmSupport": "v2.0",
            })
        return {"Images": out}

    # ---- STS ----

    def sts(self, req, pairs):
        fault = self.take_fault("AssumeRoleWithWebIdentity")
        if fault:
            return self.sts_error(fault.get("code", "InternalError"),
                                  fault.get("message", "injected"), fault.get("status", 500))
        try:
            op, p = aws_model.parse_form(pairs, "sts")
            aws_model.validate(op, p)
            diff = aws_model.form_diff(dict(pairs), aws_model.to_form(op, p))
            if diff:
                raise QueryError("ValidationError",
                                 "mock: the form differs from botocore's serialization:\n" +
                                 "\n".join(diff))
        except QueryError as e:
            code = "ValidationError" if e.code in ("InvalidParameterValue", "MissingParameter",
                                                   "UnknownParameter") else e.code
            return self.sts_error(code, e.message)
        self.note(web_identity_token=p["WebIdentityToken"], role_arn=p["RoleArn"],
                  role_session_name=p["RoleSessionName"])
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", p["RoleSessionName"]):
            return self.sts_error("ValidationError",
                                  "1 validation error detected: Value at 'roleSessionName' "
                                  r"failed to satisfy constraint: Member must satisfy regular "
                                  r"expression pattern: [\w+=,.@-]*")
        d = p.get("DurationSeconds")
        if d is not None and not 900 <= d <= 43200:
            return self.sts_error("ValidationError",
                                  "1 validation error detected: Value at 'durationSeconds' "
                                  "failed to satisfy constraint: Member must have value "
                                  "between 900 and 43200")
        if self.role_arn and p["RoleArn"] != self.role_arn:
            return self.sts_error("AccessDenied",
                                  "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        with self.lock:
            ok = p["WebIdentityToken"] in self.sts_tokens
            expiry_s = self.sts_expiry_s
        if not ok:
            return self.sts_error("InvalidIdentityToken",
                                  "Couldn't retrieve verification key from your identity "
                                  "provider, please reference AssumeRoleWithWebIdentity "
                                  "documentation for requirements")
        akid = "ASIA" + _rand(string.ascii_uppercase + string.digits, 16)
        secret = _rand(string.ascii_letters + string.digits + "+/", 40)
        token = base64.b64encode(os.urandom(96)).decode()
        expires = time.time() + expiry_s
        self.add_creds(akid, secret, token, expires, "sts")
        with self.lock:
            self.sts_issued.append({"akid": akid, "t": time.time(), "expires": expires,
                                    "token_used": p["WebIdentityToken"]})
        self.note(issued=akid)
        role = p["RoleArn"].rsplit("/", 1)[-1]
        result = {
            "Credentials": {"AccessKeyId": akid, "SecretAccessKey": secret,
                            "SessionToken": token, "Expiration": expires},
            "SubjectFromWebIdentityToken": "system:serviceaccount:confidential-containers-"
                                           "system:cloud-api-adaptor",
            "AssumedRoleUser": {
                "AssumedRoleId": "AROA" + _rand(string.ascii_uppercase + string.digits, 17) +
                                 ":" + p["RoleSessionName"],
                "Arn": f"arn:aws:sts::{OWNER}:assumed-role/{role}/{p['RoleSessionName']}"},
            "Provider": "arn:aws:iam::123456789012:oidc-provider/oidc.example",
            "Audience": "sts.amazonaws.com",
        }
        return Reply(200, aws_model.render_response(op, result, str(uuid.uuid4())),
                     content_type="text/xml")

    # ---- IMDS (node at /latest/..., VMs at /vm/<id>/latest/...) ----

    def imds(self, req, path, vm):
        text = "text/plain"
        if path == "/latest/api/token":
            if req.method != "PUT":
                return Reply(405, "", content_type=text)
            ttl = req.header("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not re.fullmatch(r"[0-9]+", ttl) or not 1 <= int(ttl) <= 21600:
                return Reply(400, "", content_type=text)
            tok = base64.b64encode(os.urandom(40)).decode()
            with self.lock:
                self.imds_tokens[tok] = (time.time() + int(ttl), vm)
            return Reply(200, tok, {"X-aws-ec2-metadata-token-ttl-seconds": ttl},
                         content_type=text)
        if req.method != "GET":
            return Reply(405, "", content_type=text)
        tok = req.header("X-aws-ec2-metadata-token")
        with self.lock:
            t = self.imds_tokens.get(tok or "")
        if t is None or t[0] < time.time() or t[1] != vm:
            self.note(imds="unauthorized")
            return Reply(401, "", content_type=text)
        if vm is not None:
            with self.lock:
                inst = self.instances.get(vm)
            if inst is None or inst["terminated_at"] is not None:
                return Reply(404, "", content_type=text)
            if path == "/latest/user-data":
                if not inst["user_data"]:
                    return Reply(404, "", content_type=text)
                return Reply(200, inst["user_data"], content_type="application/octet-stream")
            if path == "/latest/meta-data/instance-id":
                return Reply(200, vm, content_type=text)
            return Reply(404, "", content_type=text)
        a = self.args
        md = {
            "instance-id": a.node_instance_id, "instance-type": "m6a.large",
            "placement/region": self.region, "placement/availability-zone": a.availability_zone,
            "mac": a.mac, "local-ipv4": "10.0.1.10",
            "network/interfaces/macs/": f"{a.mac}/",
            f"network/interfaces/macs/{a.mac}/subnet-id": a.subnet_id,
            f"network/interfaces/macs/{a.mac}/vpc-id": a.vpc_id,
            f"network/interfaces/macs/{a.mac}/security-group-ids":
                "\n".join(a.security_group_id or []),
        }
        if a.key_name:
            md["public-keys/"] = "\n".join(f"{i}={k}" for i, k in enumerate(a.key_name))
            for i, k in enumerate(a.key_name):
                md[f"public-keys/{i}/"] = "openssh-key"
                md[f"public-keys/{i}/openssh-key"] = f"ssh-ed25519 AAAAC3Nza{i} {k}"
        if self.imds_role:
            md["iam/security-credentials/"] = self.imds_role
            md["iam/info"] = json.dumps({
                "Code": "Success", "LastUpdated": aws_model.iso8601(time.time()),
                "InstanceProfileArn": f"arn:aws:iam::{OWNER}:instance-profile/{self.imds_role}",
                "InstanceProfileId": "AIPA0000000000EXAMPLE"})
        if path.startswith("/latest/meta-data/"):
            key = path[len("/latest/meta-data/"):]
            if key == "":
                return Reply(200, "\n".join(sorted({k.split("/")[0] + ("/" if "/" in k else "")
                                                    for k in md})), content_type=text)
            if self.imds_role and key == f"iam/security-credentials/{self.imds_role}":
                return Reply(200, json.dumps(self.role_creds()), content_type=text)
            if key in md:
                return Reply(200, md[key], content_type=text)
            return Reply(404, "", content_type=text)
        if path == "/latest/dynamic/instance-identity/document":
            return Reply(200, json.dumps({
                "accountId": OWNER, "architecture": "x86_64",
                "availabilityZone": a.availability_zone, "imageId": "ami-0node0000000000",
                "instanceId": a.node_instance_id, "instanceType": "m6a.large",
                "privateIp": "10.0.1.10", "region": self.region, "version": "2017-09-30",
                "pendingTime": "2025-01-01T00:00:00Z"}), content_type=text)
        return Reply(404, "", content_type=text)

    def role_creds(self):
        """The instance profile's credentials, rotated when half their lifetime has passed."""
        now = time.time()
        with self.lock:
            c = self.imds_creds
            if c is None or c["expires"] - now < self.imds_expiry_s / 2:
                akid = "ASIA" + _rand(string.ascii_uppercase + string.digits, 16)
                c = {"akid": akid, "secret": _rand(string.ascii_letters + string.digits, 40),
                     "token": base64.b64encode(os.urandom(96)).decode(),
                     "expires": now + self.imds_expiry_s, "issued": now}
                self.imds_creds = c
                self.add_creds(akid, c["secret"], c["token"], c["expires"], "imds")
        self.note(imds_creds=c["akid"])
        return {"Code": "Success", "LastUpdated": aws_model.iso8601(c["issued"]),
                "Type": "AWS-HMAC", "AccessKeyId": c["akid"], "SecretAccessKey": c["secret"],
                "Token": c["token"], "Expiration": aws_model.iso8601(c["expires"])}

    def state(self):
        out = []
        for inst in self.instances.values():
            out.append({
                "id": inst["id"], "state": self.state_of(inst), "type": inst["type"],
                "image": inst["image"], "reservation": inst["reservation"],
                "private_ip": inst["private_ip"], "public_ip": inst["public_ip"],
                "subnet": inst["subnet"], "security_groups": inst["sgs"], "key": inst["key"],
                "tags": dict(inst["tags"]), "client_token": inst["client_token"],
                "root_size": inst["root_size"], "cpu_options": inst["cpu"],
                "launch_template": inst["launch_template"],
                "user_data": inst["user_data"].decode("utf-8", "replace"),
            })
        return {"region": self.region, "instances": out, "sts_issued": list(self.sts_issued),
                "imds_creds": (self.imds_creds or {}).get("akid")}


class EC2Handler(mockbase.MockHandler):
    def _send(self, reply):
        if getattr(reply, "drop", False):
            # the action was carried out; the client never hears about it
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        super()._send(reply)


def main():
    p = mockbase.main_args(__doc__.split("\n")[0])
    p.add_argument("--region", default="us-east-2")
    p.add_argument("--availability-zone", default="us-east-2a")
    p.add_argument("--access-key-id", default="AKIAMOCKSTATIC000001")
    p.add_argument("--secret-access-key", default="mock/static/secret/key/0000000000000000")
    p.add_argument("--web-identity-token", action="append",
                   help="accepted web identity token (repeatable)")
    p.add_argument("--role-arn", default="", help="the only RoleArn STS accepts (any if empty)")
    p.add_argument("--sts-expiry-s", type=int, default=3600)
    p.add_argument("--imds-role", default="peerpod-node-role",
                   help="instance profile role served by IMDS ('' for none)")
    p.add_argument("--imds-creds-expiry-s", type=int, default=3600)
    p.add_argument("--subnet-id", default="subnet-0a1b2c3d4e5f60718")
    p.add_argument("--vpc-id", default="vpc-0a1b2c3d4e5f60718")
    p.add_argument("--subnet-public", action="store_true",
                   help="the subnet maps public IPs on launch")
    p.add_argument("--security-group-id", action="append")
    p.add_argument("--key-name", action="append")
    p.add_argument("--launch-template", action="append")
    p.add_argument("--template-image", default="ami-0123456789abcdef0")
    p.add_argument("--image", action="append",
                   help="AMI as id[:root snapshot GiB[:root device]] (repeatable)")
    p.add_argument("--mac", default="0e:1a:2b:3c:4d:5e")
    p.add_argument("--node-instance-id", default="i-0aaaabbbbccccdddd")
    p.add_argument("--throttle-status", type=int, default=503,
                   help="HTTP status of RequestLimitExceeded (EC2 answers 503)")
    p.add_argument("--ec2-latency-ms", type=int, default=0)
    p.add_argument("--pending-ms", type=int, default=500)
    p.add_argument("--shutdown-ms", type=int, default=500)
    p.add_argument("--types-page-size", type=int, default=100,
                   help="DescribeInstanceTypes page size without MaxResults")
    args = p.parse_args()
    if args.security_group_id is None:
        args.security_group_id = ["sg-0123456789abcdef0"]
    if args.image is None:
        args.image = ["ami-0123456789abcdef0:8:/dev/xvda"]
    mock = EC2Mock(args)
    mockbase.serve(mock, EC2Handler)


if __name__ == "__main__":
    main()
