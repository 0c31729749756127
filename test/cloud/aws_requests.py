"""Our EC2 requests (from the EC2 mock's log) against what botocore's serializer produces for the
same parameters, plus the parameters the test configured.

Usage: aws_requests.py MOCK_URL EXPECT_JSON
EXPECT_JSON: {"image", "instance_types": {sid: type}, "subnet", "sgs", "key", "tags": {..},
"root_size", "sev_snp", "catalog": [types]}. Exit 1 with a diff on any difference."""

import base64
import json
import sys
import urllib.request
from urllib.parse import parse_qsl

import aws_model
from aws_model import QueryError

URL, EXPECT = sys.argv[1], json.loads(sys.argv[2])
ACTIONS = ("RunInstances", "TerminateInstances", "DescribeInstances", "DescribeInstanceTypes")
problems = []


def get(path):
    with urllib.request.urlopen(URL + path, timeout=10) as r:
        return json.loads(r.read())


def problem(entry, text):
    problems.append(f"{entry['action']} (request #{entry['n']}): {text}")


def same(entry, what, ours, want):
    if ours != want:
        problem(entry, f"{what}: ours {ours!r}, expected {want!r}")


log = get("/_mock/requests")
state = get("/_mock/state")
by_sid = {i["tags"].get("peerpod-sandbox-id"): i for i in state["instances"]}
seen = {a: 0 for a in ACTIONS}
for n, e in enumerate(log):
    e["n"] = n
    if e.get("action") not in ACTIONS:
        continue
    seen[e["action"]] += 1
    pairs = parse_qsl(e["query"], keep_blank_values=True) + \
        parse_qsl(e["body"], keep_blank_values=True)
    ours = dict(pairs)
    try:
        op, params = aws_model.parse_form(pairs, "ec2")
        aws_model.validate(op, params)
    except QueryError as err:
        problem(e, f"not a form botocore could have produced: {err.code}: {err.message}")
        continue
    botocore_form = aws_model.to_form(op, params)
    diff = aws_model.form_diff(ours, botocore_form)
    if diff:
        problem(e, "form differs from botocore's serialization of the same parameters:\n" +
                "\n".join(diff))
    a = e["action"]
    if a == "RunInstances":
        tags = {}
        for spec in params.get("TagSpecifications", []):
            if spec["ResourceType"] == "instance":
                tags = {t["Key"]: t.get("Value", "") for t in spec.get("Tags", [])}
        sid = tags.get("peerpod-sandbox-id")
        same(e, "ImageId", params.get("ImageId"), EXPECT["image"])
        same(e, "MinCount/MaxCount", (params.get("MinCount"), params.get("MaxCount")), (1, 1))
        if sid in EXPECT["instance_types"]:
            same(e, "InstanceType", params.get("InstanceType"), EXPECT["instance_types"][sid])
        else:
            problem(e, f"sandbox {sid!r} was not expected to be created")
        same(e, "KeyName", params.get("KeyName"), EXPECT["key"])
        nis = params.get("NetworkInterfaces")
        subnet = nis[0].get("SubnetId") if nis else params.get("SubnetId")
        sgs = nis[0].get("Groups") if nis else params.get("SecurityGroupIds")
        same(e, "subnet", subnet, EXPECT["subnet"])
        same(e, "security groups", sgs, EXPECT["sgs"])
        want_tags = dict(EXPECT["tags"], **{"peerpod-node": EXPECT["node"]})
        for k, v in want_tags.items():
            same(e, f"tag {k}", tags.get(k), v)
        if "peerpod-pod" not in tags or not tags["peerpod-pod"].startswith("aws-test/"):
            problem(e, f"tag peerpod-pod missing or wrong: {tags.get('peerpod-pod')!r}")
        root = [b for b in params.get("BlockDeviceMappings", []) if b.get("DeviceName") ==
                "/dev/xvda"]
        same(e, "root volume size", root[0]["Ebs"].get("VolumeSize") if root else None,
             EXPECT["root_size"])
        same(e, "CpuOptions.AmdSevSnp", params.get("CpuOptions", {}).get("AmdSevSnp"),
             "enabled" if EXPECT["sev_snp"] else None)
        tok = params.get("ClientToken")
        if not tok:
            problem(e, "no ClientToken: a retried RunInstances would start a second instance")
        ud = base64.b64decode(params.get("UserData", ""))
        if not ud.startswith(b"#cloud-config\n") or b"/run/peerpod/apf.json" not in ud:
            problem(e, f"UserData is not the cloud-config of WIRE.md 5.1: {ud[:80]!r}")
    elif a == "TerminateInstances":
        ids = params.get("InstanceIds", [])
        known = {i["id"] for i in state["instances"]}
        if len(ids) != 1 or ids[0] not in known:
            problem(e, f"InstanceIds {ids} are not one instance we created")
    elif a == "DescribeInstanceTypes":
        asked = params.get("InstanceTypes")
        if asked is not None and not set(EXPECT["catalog"]) <= set(asked):
            problem(e, f"InstanceTypes {asked} lacks some of {EXPECT['catalog']}")

for a, n in seen.items():
    if n == 0:
        problems.append(f"no {a} request in the mock's log")
for p in problems:
    print("FAIL: " + p)
print(f"compared {sum(seen.values())} requests ({seen}); {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
