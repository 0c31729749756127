"""Checks the EC2 mock against botocore itself (a real botocore client signs, serializes and
parses): SigV4 verification, model validation, EC2 XML shapes, idempotency, paging, faults,
STS and IMDSv2. Usage: aws_mockcheck.py MOCK_URL (the mock started with its defaults)."""

import json
import sys
import time
import urllib.error
import urllib.request

import botocore.session
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

URL = sys.argv[1]
REGION = "us-east-2"
AKID, SECRET = "AKIAMOCKSTATIC000001", "mock/static/secret/key/0000000000000000"
AMI, SUBNET, SG = "ami-0123456789abcdef0", "subnet-0a1b2c3d4e5f60718", "sg-0123456789abcdef0"
failures = []
SESSION = botocore.session.get_session()


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def ctl(path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(URL + path, data=data, method=method or ("POST" if data else "GET"))
    with urllib.request.urlopen(r, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def client(service="ec2", key=AKID, secret=SECRET, token=None, region=REGION, attempts=1,
           unsigned=False):
    s = SESSION
    cfg = Config(retries={"mode": "standard", "max_attempts": attempts},
                 signature_version=UNSIGNED if unsigned else None, connect_timeout=5,
                 read_timeout=10)
    return s.create_client(service, region_name=region, endpoint_url=URL,
                           aws_access_key_id=key, aws_secret_access_key=secret,
                           aws_session_token=token, config=cfg)


def code_of(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def raw_call(form, key=AKID, secret=SECRET, region=REGION):
    """A hand-made Query request signed by botocore: (status, body text)."""
    body = "&".join(f"{k}={urllib.request.quote(str(v), safe='-_.~')}" for k, v in form)
    req = AWSRequest(method="POST", url=URL + "/", data=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded; "
                                              "charset=utf-8"})
    SigV4Auth(Credentials(key, secret), "ec2", region).add_auth(req)
    r = urllib.request.Request(URL + "/", data=body.encode(), method="POST",
                               headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def imds(path, token=None, method="GET", ttl=None):
    h = {}
    if token:
        h["X-aws-ec2-metadata-token"] = token
    if ttl:
        h["X-aws-ec2-metadata-token-ttl-seconds"] = str(ttl)
    r = urllib.request.Request(URL + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def tags(d):
    return [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in d.items()]}]


ec2 = client()

# ---- catalogs ----
r = ec2.describe_instance_types(InstanceTypes=["m6a.large", "g5.xlarge", "c6a.large"])
got = {t["InstanceType"]: t for t in r["InstanceTypes"]}
check(set(got) == {"m6a.large", "g5.xlarge", "c6a.large"}, "DescribeInstanceTypes by name")
check(got["m6a.large"]["VCpuInfo"]["DefaultVCpus"] == 2 and
      got["m6a.large"]["MemoryInfo"]["SizeInMiB"] == 8192, "m6a.large is 2 vCPU / 8 GiB")
check(got["g5.xlarge"]["GpuInfo"]["Gpus"][0]["Count"] == 1 and
      got["g5.xlarge"]["GpuInfo"]["Gpus"][0]["Name"] == "A10G", "g5.xlarge has one A10G")
check("GpuInfo" not in got["c6a.large"], "c6a.large has no GpuInfo")
pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={
    "PageSize": 5}))
names = [t["InstanceType"] for p in pages for t in p["InstanceTypes"]]
check(len(pages) >= 3 and len(names) == len(set(names)) and "m6a.2xlarge" in names,
      f"DescribeInstanceTypes pages of 5 ({len(pages)} pages, {len(names)} types)")
check(code_of(ec2.describe_instance_types, InstanceTypes=["m9z.huge"])[0] ==
      "InvalidInstanceType", "unknown instance type -> InvalidInstanceType")
img = ec2.describe_images(ImageIds=[AMI])["Images"][0]
check(img["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 8 and
      img["RootDeviceName"] == "/dev/xvda", "DescribeImages root snapshot 8 GiB on /dev/xvda")
check(code_of(ec2.describe_images, ImageIds=["ami-00000000000000000"])[0] ==
      "InvalidAMIID.NotFound", "unknown AMI -> InvalidAMIID.NotFound")

# ---- RunInstances, idempotency ----
run = dict(ImageId=AMI, InstanceType="m6a.large", MinCount=1, MaxCount=1, SubnetId=SUBNET,
           SecurityGroupIds=[SG], UserData="#cloud-config\n", ClientToken="check-token-1",
           TagSpecifications=tags({"peerpod-node": "n1", "peerpod-sandbox-id": "s1"}),
           BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30}}])
r1 = ec2.run_instances(**run)
i1 = r1["Instances"][0]
check(i1["State"]["Name"] == "pending" and i1["PrivateIpAddress"].startswith("127.2."),
      f"RunInstances: pending, private address {i1['PrivateIpAddress']}")
check("PublicIpAddress" not in i1, "no public address in RunInstances' answer")
r2 = ec2.run_instances(**run)
check(r2["ReservationId"] == r1["ReservationId"] and
      r2["Instances"][0]["InstanceId"] == i1["InstanceId"], "same ClientToken, same reservation")
st = ctl("/_mock/state")
check(len(st["instances"]) == 1, "idempotent replay created no second instance")
check(st["instances"][0]["user_data"] == "#cloud-config\n" and
      st["instances"][0]["root_size"] == 30, "user data decoded, root volume 30 GiB")
check(code_of(ec2.run_instances, **dict(run, InstanceType="c6a.large"))[0] ==
      "IdempotentParameterMismatch", "same token, other parameters -> mismatch")
check(code_of(ec2.run_instances, **dict(run, ClientToken="t2", BlockDeviceMappings=[
    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 4}}]))[0] == "InvalidBlockDeviceMapping",
      "root volume below the snapshot -> InvalidBlockDeviceMapping")
check(code_of(ec2.run_instances, **dict(run, ClientToken="t3", SubnetId="subnet-0000000000"))[0]
      == "InvalidSubnetID.NotFound", "unknown subnet")
check(code_of(ec2.run_instances, **dict(run, ClientToken="t4", TagSpecifications=tags(
    {"aws:x": "1"})))[0] == "InvalidParameterValue", "aws: tag keys refused")
ni = dict(run, ClientToken="t5", NetworkInterfaces=[{
    "DeviceIndex": 0, "AssociatePublicIpAddress": True, "SubnetId": SUBNET, "Groups": [SG]}])
check(code_of(ec2.run_instances, **ni)[0] == "InvalidParameterCombination",
      "subnet both top-level and in NetworkInterfaces -> InvalidParameterCombination")
del ni["SubnetId"], ni["SecurityGroupIds"]
rp = ec2.run_instances(**ni)["Instances"][0]
time.sleep(0.7)
dp = ec2.describe_instances(InstanceIds=[rp["InstanceId"]])["Reservations"][0]["Instances"][0]
check(dp["State"]["Name"] == "running" and dp["PublicIpAddress"].startswith("127.2.") and
      dp["PublicIpAddress"] != dp["PrivateIpAddress"], "public IP once running")

# SEV-SNP is newer than Debian's botocore model: a hand-made, botocore-signed request
form = [("Action", "RunInstances"), ("Version", "2016-11-15"), ("ImageId", AMI),
        ("InstanceType", "m6a.large"), ("MinCount", 1), ("MaxCount", 1), ("SubnetId", SUBNET),
        ("CpuOptions.AmdSevSnp", "enabled")]
status, body = raw_call(form)
check(status == 200 and "<amdSevSnp>enabled</amdSevSnp>" in body, "CpuOptions.AmdSevSnp accepted")
status, body = raw_call([(k, "g5.xlarge" if k == "InstanceType" else v) for k, v in form])
check(status == 400 and "UnsupportedOperation" in body, "SEV-SNP on g5 -> UnsupportedOperation")
status, body = raw_call(form[:-1] + [("TagSpecification.1.Tags.1.Key", "a")])
check(status == 400 and "UnknownParameter" in body, "a non-EC2 name -> UnknownParameter")
status, body = raw_call([(k, "01" if k == "MinCount" else v) for k, v in form])
check(status == 400 and "serialization" in body, "MinCount=01 differs from botocore's form")
status, body = raw_call([f for f in form if f[0] != "MaxCount"])
check(status == 400 and "<Code>MissingParameter</Code>" in body and body.startswith("<?xml")
      and "<Response><Errors><Error>" in body and "<RequestID>" in body,
      "missing MaxCount -> MissingParameter in EC2's error XML")
status, body = raw_call(form + [("TagSpecification.1.ResourceType", "instance"),
                                ("TagSpecification.1.Tag.2.Key", "a")])
check(status == 400 and "indexes" in body, "list indexes with a gap refused")

# ---- DescribeInstances: filters, paging ----
for n in range(6):
    ec2.run_instances(**dict(run, ClientToken=f"page-{n}", TagSpecifications=tags(
        {"peerpod-node": "n2", "peerpod-sandbox-id": f"p{n}"})))
r = ec2.describe_instances(Filters=[{"Name": "tag:peerpod-node", "Values": ["n2"]}])
check(sum(len(x["Instances"]) for x in r["Reservations"]) == 6, "filter tag:peerpod-node")
r = ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["peerpod-sandbox-id"]},
                                    {"Name": "tag:peerpod-sandbox-id", "Values": ["p*"]}])
check(sum(len(x["Instances"]) for x in r["Reservations"]) == 6, "tag-key + wildcard filter")
pages = list(ec2.get_paginator("describe_instances").paginate(
    Filters=[{"Name": "tag:peerpod-node", "Values": ["n2"]}], PaginationConfig={"PageSize": 5}))
check(len(pages) == 2 and sum(len(x["Instances"]) for p in pages for x in p["Reservations"]) == 6,
      "DescribeInstances MaxResults/NextToken paging")
check(code_of(ec2.describe_instances, Filters=[{"Name": "colour", "Values": ["x"]}])[0] ==
      "InvalidParameterValue", "unknown filter refused")
check(code_of(ec2.describe_instances, InstanceIds=[i1["InstanceId"]], MaxResults=5)[0] ==
      "InvalidParameterCombination", "InstanceIds with MaxResults refused")

# ---- TerminateInstances ----
t = ec2.terminate_instances(InstanceIds=[i1["InstanceId"]])["TerminatingInstances"][0]
check(t["CurrentState"]["Name"] == "shutting-down", "terminate: shutting-down")
time.sleep(0.7)
d = ec2.describe_instances(InstanceIds=[i1["InstanceId"]])["Reservations"][0]["Instances"][0]
check(d["State"]["Name"] == "terminated", "then terminated, still described")
r = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])
check([i["InstanceId"] for x in r["Reservations"] for i in x["Instances"]] == [i1["InstanceId"]],
      "instance-state-name filter")
t = ec2.terminate_instances(InstanceIds=[i1["InstanceId"]])["TerminatingInstances"][0]
check(t["CurrentState"]["Name"] == "terminated", "terminating a terminated instance is OK")
check(code_of(ec2.terminate_instances, InstanceIds=["i-0123456789abcdef0"])[0] ==
      "InvalidInstanceID.NotFound", "unknown instance -> InvalidInstanceID.NotFound")
check(code_of(ec2.terminate_instances, InstanceIds=["nonsense"])[0] ==
      "InvalidInstanceID.Malformed", "malformed id")

# ---- signatures ----
check(code_of(client(secret="wrong").describe_images, ImageIds=[AMI]) ==
      ("SignatureDoesNotMatch", 403), "wrong secret -> 403 SignatureDoesNotMatch")
check(code_of(client(key="AKIAUNKNOWN000000000").describe_images)[0] == "AuthFailure",
      "unknown key -> AuthFailure")
check(code_of(client(region="eu-west-1").describe_images)[0] == "AuthFailure",
      "scope in another region -> AuthFailure")
log = ctl("/_mock/requests")
bad = [e for e in log if e.get("sig") == "mismatch"]
check(bad and "canonical_request" in bad[-1], "mismatches logged with the canonical request")

# ---- faults ----
ctl("/_mock/ec2-faults", [{"action": "DescribeImages", "code": "RequestLimitExceeded",
                           "count": 2}])
check(code_of(ec2.describe_images) == ("RequestLimitExceeded", 503),
      "throttling is 503 RequestLimitExceeded")
ctl("/_mock/reset", {})
ctl("/_mock/ec2-faults", [{"action": "DescribeImages", "code": "RequestLimitExceeded",
                           "count": 2}])
client(attempts=5).describe_images()
log = [e for e in ctl("/_mock/requests") if e.get("action") == "DescribeImages"]
check([e["status"] for e in log] == [503, 503, 200] and all(e["sig"] == "ok" for e in log),
      "botocore retries a throttled call: 503, 503, 200, each signature valid")
ctl("/_mock/ec2-faults", [{"action": "RunInstances", "after": "drop", "count": 1}])
before = len(ctl("/_mock/state")["instances"])
c5 = client(attempts=3)
try:
    c5.run_instances(**dict(run, ClientToken="dropped-once"))
    dropped_ok = True
except (ConnectionClosedError, EndpointConnectionError):
    dropped_ok = False
after = len(ctl("/_mock/state")["instances"])
check(dropped_ok and after == before + 1,
      "processed-then-dropped RunInstances retried with its token: one instance")

# ---- STS web identity ----
sts = client("sts", unsigned=True)
check(code_of(sts.assume_role_with_web_identity, RoleArn="arn:aws:iam::123456789012:role/r",
              RoleSessionName="s1", WebIdentityToken="wrong")[0] == "InvalidIdentityToken",
      "wrong web identity token -> InvalidIdentityToken")
ctl("/_mock/sts", {"tokens": ["tok-1"], "expiry_s": 2})
c = sts.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/r",
                                      RoleSessionName="s1", WebIdentityToken="tok-1")["Credentials"]
check(c["AccessKeyId"].startswith("ASIA"), "AssumeRoleWithWebIdentity issues credentials")
e = client(key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
check(len(e.describe_images(ImageIds=[AMI])["Images"]) == 1, "session credentials sign EC2 calls")
check(code_of(client(key=c["AccessKeyId"], secret=c["SecretAccessKey"]).describe_images)[0] ==
      "AuthFailure", "session credentials without their token -> AuthFailure")
time.sleep(2.2)
check(code_of(e.describe_images)[0] == "RequestExpired", "expired credentials -> RequestExpired")

# ---- IMDSv2 ----
check(imds("/latest/meta-data/placement/region")[0] == 401, "IMDS GET without token -> 401")
check(imds("/latest/api/token", method="PUT")[0] == 400, "token PUT without TTL -> 400")
s, tok = imds("/latest/api/token", method="PUT", ttl=60)
check(s == 200 and tok, "IMDS token")
check(imds("/latest/meta-data/placement/region", tok) == (200, REGION), "IMDS region")
s, mac = imds("/latest/meta-data/mac", tok)
check(imds(f"/latest/meta-data/network/interfaces/macs/{mac}/subnet-id", tok) == (200, SUBNET),
      "IMDS subnet-id")
check(imds(f"/latest/meta-data/network/interfaces/macs/{mac}/security-group-ids", tok) ==
      (200, SG), "IMDS security-group-ids")
s, role = imds("/latest/meta-data/iam/security-credentials/", tok)
s, body = imds(f"/latest/meta-data/iam/security-credentials/{role}", tok)
rc = json.loads(body)
r = client(key=rc["AccessKeyId"], secret=rc["SecretAccessKey"], token=rc["Token"])
check(len(r.describe_images(ImageIds=[AMI])["Images"]) == 1, "IMDS role credentials sign EC2 calls")
iid = st["instances"][0]["id"]
check(imds(f"/vm/{iid}/latest/user-data", tok)[0] == 401, "a node token is no VM token")
s, vtok = imds(f"/vm/{rp['InstanceId']}/latest/api/token", method="PUT", ttl=60)
check(imds(f"/vm/{rp['InstanceId']}/latest/user-data", vtok) == (200, "#cloud-config\n"),
      "per-VM user-data")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
