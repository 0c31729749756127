#!/usr/bin/env bash
# The aws provider through the adaptor against the EC2 mock, with pod VMs booted for real
# (process-user-data reads the user data from the mock's per-VM IMDS, then the real forwarder):
# leak sweep at start, region/subnet/security groups from IMDS, create/start, agent calls into
# the "VM", GetInfo, stop (instance terminated), StopVM of an instance EC2 no longer knows,
# the instance-type selection errors of WIRE.md 7, and USE_PUBLIC_IP.
source "$(dirname "$0")/aws-lib.sh"
aws_need_botocore
aws_need_provider
start_standin
SG2=sg-0fedcba9876543210
start_mock --security-group-id "$SG" --security-group-id "$SG2"
aws_env
aws_static_keys
A=io.katacontainers.config.hypervisor

# ---- leak sweep with no instance at all (DescribeInstances answers an empty reservationSet) ----
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG"
wait_q 'any(e["action"] == "DescribeInstances" for e in ec2)' 10 || fail "no leak sweep at start"
sleep 0.5
assert_sweep_ok
stop_aws_adaptor
ok "leak sweep over an empty account"

# ---- leak sweep: instances exist before the adaptor starts ----
seed() { "$PY" "$CLOUD/aws_q.py" "$MOCK" seed "$@"; }
leak=$(seed "peerpod-node=$NODE_NAME" "peerpod-sandbox-id=$(new_sid)" peerpod-pod=ns/leaked) ||
	fail "seed"
other=$(seed peerpod-node=other-node "peerpod-sandbox-id=$(new_sid)" peerpod-pod=ns/other)
foreign=$(seed Name=not-a-peerpod)
# region, subnet and security groups are left to IMDS
start_aws_adaptor -instance-types m6a.large,m6a.xlarge
wait_q "[i['state'] for i in state['instances'] if i['id'] == '$leak'] in (['shutting-down'], ['terminated'])" 20 ||
	fail "the leaked instance $leak of this node was not terminated at start"
sleep 1
[[ $(q "[i['state'] for i in state['instances'] if i['id'] in ('$other', '$foreign')]") == '["running", "running"]' ]] ||
	fail "the sweep touched instances that are not this node's: $(q "[(i['id'], i['state']) for i in state['instances']]")"
assert_sweep_ok
ok "leak sweep: this node's unowned instance terminated, others left alone"

[[ $(q 'any(e["path"] == "/latest/meta-data/placement/region" and e["status"] == 200 for e in log)') == true ]] ||
	fail "the region was not read from IMDS"
[[ $(q 'all(e["status"] != 401 for e in log if e["path"].startswith("/latest/meta-data"))') == true ]] ||
	fail "IMDS GETs without a valid IMDSv2 token"

# ---- lifecycle ----
sid=$(new_sid)
sock=$(start_pod "$sid" lc) || fail "create/start"
[[ -S $sock ]] || fail "no agent socket at $sock"
inst=$(q "[i['id'] for i in live if i['tags'].get('peerpod-sandbox-id') == '$sid']")
[[ $inst =~ ^\[\"(i-[0-9a-f]+)\"\]$ ]] || fail "expected one instance for the sandbox, got $inst"
inst=${BASH_REMATCH[1]}
[[ $(q "[(i['subnet'], i['security_groups'], i['tags'].get('peerpod-node'), i['tags'].get('peerpod-pod')) for i in live if i['id'] == '$inst'][0]") == "[\"$SUBNET\", [\"$SG\", \"$SG2\"], \"$NODE_NAME\", \"aws-test/lc\"]" ]] ||
	fail "subnet/security groups not from IMDS or tags wrong: $(q "[i for i in live if i['id'] == '$inst']")"
ok "instance $inst in IMDS's subnet with IMDS's two security groups, tagged"
"$BIN/peerpodctl" agent --agent-socket "$sock" health >/dev/null || fail "agent health through the VM"
"$BIN/peerpodctl" agent --agent-socket "$sock" create-sandbox --sandbox-id "$sid" >/dev/null ||
	fail "create-sandbox through the VM"
grep -q CreateSandbox "$RECORD" || fail "the stand-in agent did not see CreateSandbox"
ok "agent calls reach the agent through the booted VM's forwarder"
got=$(ctl info --pod lc --namespace aws-test) || fail "GetInfo"
grep -q "$inst" <<<"$got" || fail "GetInfo does not name $inst: $got"
# an adaptor restart keeps the pod: the start-up sweep must spare instances of restored sandboxes
stop_aws_adaptor
start_aws_adaptor -instance-types m6a.large,m6a.xlarge
wait_q 'len([e for e in ec2 if e["action"] == "DescribeInstances"]) >= 3' 20 || fail "no sweep after the restart"
sleep 1
[[ $(q "[i['state'] for i in state['instances'] if i['id'] == '$inst']") == '["running"]' ]] ||
	fail "the restart's leak sweep terminated the running pod's instance $inst"
"$BIN/peerpodctl" agent --agent-socket "$sock" health >/dev/null || fail "agent health after the restart"
ok "adaptor restart: the pod's instance survives the sweep and still answers"
ctl stop "$sid" >/dev/null || fail "stop"
wait_q "[i['state'] for i in state['instances'] if i['id'] == '$inst'] in (['shutting-down'], ['terminated'])" 10 ||
	fail "instance not terminated by StopVM"
ok "StopVM terminated $inst"

# ---- StopVM of an instance EC2 no longer knows ----
sid=$(new_sid)
start_pod "$sid" gone >/dev/null || fail "create/start (gone)"
gone=$(q "[i['id'] for i in live if i['tags'].get('peerpod-sandbox-id') == '$sid'][0]")
"$PY" "$CLOUD/aws_q.py" "$MOCK" forget "$gone"
ctl stop "$sid" >/dev/null || fail "StopVM of a vanished instance failed"
[[ $(q "[e.get('error') for e in ec2 if e['action'] == 'TerminateInstances' and '$gone' in e['body']]") == '["InvalidInstanceID.NotFound"]' ]] ||
	fail "expected one TerminateInstances answered InvalidInstanceID.NotFound"
ok "StopVM succeeds when EC2 answers InvalidInstanceID.NotFound"

# ---- the longest names Kubernetes allows (namespace 63, pod 253) still make a valid instance ----
sid=$(new_sid)
long_ns=$(printf 'n%.0s' $(seq 63))
long_pod=$(printf 'p%.0s' $(seq 253))
ctl create "$sid" --pod "$long_pod" --namespace "$long_ns" >/dev/null || fail "create (long names)"
out=$(ctl start "$sid" 2>&1) || fail "StartVM with a 253-character pod name in a 63-character namespace: $out"
[[ $(q "[max(len(v) for v in i['tags'].values()) <= 256 for i in live if i['tags'].get('peerpod-sandbox-id') == '$sid']") == "[true]" ]] ||
	fail "no instance for the long-named pod"
ctl stop "$sid" >/dev/null || fail "stop (long names)"
ok "a 253-character pod name in a 63-character namespace fits EC2's tag limits"

# ---- instance type selection errors (WIRE.md 7) ----
runs_before=$(q 'len([e for e in ec2 if e["action"] == "RunInstances"])')
expect_start_error() { # TEXT create-args...
	local text=$1 s out
	shift
	s=$(new_sid)
	ctl create "$s" --pod sel --namespace aws-test "$@" >/dev/null || fail "create (selection)"
	if out=$(ctl start "$s" 2>&1); then fail "StartVM succeeded, expected: $text"; fi
	grep -qF "creating an instance : $text" <<<"$out" || fail "expected \"creating an instance : $text\", got: $out"
	ctl stop "$s" >/dev/null || fail "stop after a failed start"
}
expect_start_error "failed to get instance type based on vCPU and memory annotations: no instance type found for the given vcpus (64) and memory (1024)" \
	--annotation "$A.default_vcpus=64" --annotation "$A.default_memory=1024"
expect_start_error "failed to get instance type based on GPU, vCPU, and memory annotations: no instance type found for the given GPUs (1), vCPUs (0), and memory (0)" \
	--annotation "$A.default_gpus=1"
expect_start_error 'failed to verify instance type: requested instance type ("c6a.large") is not part of supported instance types list' \
	--annotation "$A.machine_type=c6a.large"
[[ $(q 'len([e for e in ec2 if e["action"] == "RunInstances"])') == "$runs_before" ]] ||
	fail "a refused instance type still reached RunInstances"
ok "instance type selection errors are WIRE.md 7's texts, nothing launched"
assert_all_signed
stop_aws_adaptor

# ---- USE_PUBLIC_IP: the VM listens on its public address only, assigned once running ----
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG" -use-public-ip
sid=$(new_sid)
sock=$(start_pod "$sid" pub) || fail "create/start with a public IP"
"$BIN/peerpodctl" agent --agent-socket "$sock" health >/dev/null || fail "agent health via the public IP"
[[ $(q "[i['public_ip'] is not None for i in live if i['tags'].get('peerpod-sandbox-id') == '$sid']") == "[true]" ]] ||
	fail "no public IP instance for the sandbox"
ctl stop "$sid" >/dev/null || fail "stop (public)"
ok "USE_PUBLIC_IP: StartVM dials the public address"
assert_all_signed
stop_aws_adaptor
mockctl /_mock/forget "{\"id\": \"$other\"}" >/dev/null
mockctl /_mock/forget "{\"id\": \"$foreign\"}" >/dev/null
assert_nothing_running
ok "nothing left running"
