#!/usr/bin/env bash
# Our RunInstances, TerminateInstances, DescribeInstances and DescribeInstanceTypes requests,
# taken from the EC2 mock's log after driving the adaptor, equal botocore's serialization of the
# same parameters field by field, and carry the parameters the adaptor was configured with.
source "$(dirname "$0")/aws-lib.sh"
aws_need_botocore
aws_need_provider
start_standin
# DescribeInstanceTypes answers 2 types a page: the provider must follow NextToken
start_mock --types-page-size 2
aws_env
aws_static_keys
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG" \
	-keyname peerpod-key -instance-types m6a.large,m6a.xlarge,c6a.large \
	-tags "team=peerpods,env=ci"

s1=$(new_sid)
s2=$(new_sid)
start_pod "$s1" default-pod >/dev/null || fail "pod 1 did not start"
start_pod "$s2" big-pod --annotation io.katacontainers.config.hypervisor.default_vcpus=4 \
	--annotation io.katacontainers.config.hypervisor.default_memory=16384 >/dev/null ||
	fail "pod 2 did not start"
ctl stop "$s1" >/dev/null || fail "stop 1"
ctl stop "$s2" >/dev/null || fail "stop 2"
assert_nothing_running
# a restart runs the leak sweep (DescribeInstances) again, now with terminated instances around
stop_aws_adaptor
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG" \
	-keyname peerpod-key -instance-types m6a.large,m6a.xlarge,c6a.large \
	-tags "team=peerpods,env=ci"
wait_q 'len([e for e in ec2 if e["action"] == "DescribeInstances"]) >= 2' 20 ||
	fail "no DescribeInstances after the restart"

expect=$(printf '{"image": "%s", "subnet": "%s", "sgs": ["%s"], "key": "peerpod-key",
 "tags": {"team": "peerpods", "env": "ci"}, "node": "%s", "root_size": 30, "sev_snp": true,
 "catalog": ["m6a.large", "m6a.xlarge", "c6a.large"],
 "instance_types": {"%s": "m6a.large", "%s": "m6a.xlarge"}}' \
	"$AMI" "$SUBNET" "$SG" "$NODE_NAME" "$s1" "$s2")
(cd "$CLOUD" && "$PY" aws_requests.py "$MOCK" "$expect") || fail "our requests differ from botocore's"
assert_all_signed
ok "RunInstances, TerminateInstances, DescribeInstances, DescribeInstanceTypes equal botocore's"
