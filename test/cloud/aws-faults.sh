#!/usr/bin/env bash
# The aws provider under EC2's failure modes: throttling (503 RequestLimitExceeded) retried with
# a fresh signature each time and the same ClientToken, 5xx on TerminateInstances retried, and a
# RunInstances that EC2 carried out but whose answer was lost (connection dropped): the retry
# must not start a second instance.
source "$(dirname "$0")/aws-lib.sh"
aws_need_botocore
aws_need_provider
start_standin
start_mock
aws_env
aws_static_keys
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG"

runs_for() { # SID: the RunInstances log entries of one sandbox
	q "[{'status': e['status'], 'sig': e.get('sig'), 'date': e['headers'].get('X-Amz-Date'), 't': e['t'], 'auth': e['headers'].get('Authorization'), 'token': dict(__import__('urllib.parse').parse.parse_qsl(e['body'])).get('ClientToken'), 'replay': e.get('idempotent_replay'), 'dropped': e.get('dropped_after_processing', False)} for e in ec2 if e['action'] == 'RunInstances' and '$1' in e['body']]"
}

# ---- throttling ----
mockctl /_mock/ec2-faults '[{"action": "RunInstances", "code": "RequestLimitExceeded", "count": 3}]'
s1=$(new_sid)
start_pod "$s1" throttled >/dev/null || fail "StartVM failed under 3 throttled RunInstances"
runs=$(runs_for "$s1")
"$PY" - "$runs" <<'EOP' || fail "throttled RunInstances attempts: $runs"
import json, sys, calendar, time
r = json.loads(sys.argv[1])
assert [x["status"] for x in r] == [503, 503, 503, 200], [x["status"] for x in r]
assert all(x["sig"] == "ok" for x in r), "an attempt was not validly signed"
assert len({x["token"] for x in r}) == 1 and r[0]["token"], "ClientToken changed between attempts"
for prev, cur in zip(r, r[1:]):
    d = calendar.timegm(time.strptime(cur["date"], "%Y%m%dT%H%M%SZ"))
    # a retry is signed after the previous answer arrived, never reused from before it
    assert d >= int(prev["t"]), f"attempt signed at {cur['date']}, before the previous answer"
EOP
[[ $(q "len([i for i in live if i['tags'].get('peerpod-sandbox-id') == '$s1'])") == 1 ]] ||
	fail "expected one instance after throttling"
ok "RequestLimitExceeded x3: retried, each attempt re-signed, one instance"

# ---- 5xx on TerminateInstances ----
mockctl /_mock/ec2-faults '[{"action": "TerminateInstances", "status": 500, "count": 2}]'
ctl stop "$s1" >/dev/null || fail "StopVM failed under two 500s"
[[ $(q '[e["status"] for e in ec2 if e["action"] == "TerminateInstances"]') == "[500, 500, 200]" ]] ||
	fail "TerminateInstances attempts: $(q '[e["status"] for e in ec2 if e["action"] == "TerminateInstances"]')"
ok "InternalError x2 on TerminateInstances: retried, instance terminated"

# ---- RunInstances carried out, answer lost ----
mockctl /_mock/ec2-faults '[{"action": "RunInstances", "after": "drop", "count": 1}]'
s2=$(new_sid)
start_pod "$s2" dropped >/dev/null || fail "StartVM failed after a dropped RunInstances answer"
runs=$(runs_for "$s2")
"$PY" - "$runs" <<'EOP' || fail "RunInstances attempts after a drop: $runs"
import json, sys
r = json.loads(sys.argv[1])
assert len(r) >= 2 and r[0]["dropped"], "the first attempt was not the dropped one"
assert len({x["token"] for x in r}) == 1 and r[0]["token"], "the retry used another ClientToken"
assert all(x["replay"] for x in r[1:]), "a retry was not an idempotent replay"
EOP
n=$(q "len([i for i in state['instances'] if i['tags'].get('peerpod-sandbox-id') == '$s2'])")
[[ $n == 1 ]] || fail "a retried create left $n instances"
ctl stop "$s2" >/dev/null || fail "stop"
ok "a RunInstances whose answer was lost is retried with its ClientToken: exactly one instance"

# ---- a connection dropped before EC2 saw the call ----
mockctl /_mock/faults '[{"path": "^/$", "drop": true, "count": 2}]'
s3=$(new_sid)
start_pod "$s3" reset >/dev/null || fail "StartVM failed after two dropped connections"
ctl stop "$s3" >/dev/null || fail "stop"
ok "dropped connections are retried"

assert_all_signed
assert_nothing_running
ok "nothing left running"
