#!/usr/bin/env bash
# The azure provider under ARM's failure modes, against the mock: throttling (429 + Retry-After
# on the PUT and on the operation polls: the pod still starts, the retries are in the log and
# waited for), a 503 and a dropped connection on reads, and a create whose long-running
# operation ends Failed half way (StartVM fails with the operation's error and the provider
# leaves no VM, NIC, disk or public IP behind).
source "$(dirname "$0")/azure_lib.bash"
need_azure_provider

start_standin
start_mock
start_azure_adaptor

err() { jq -cn --arg c "$1" --arg m "$2" '{error: {code: $c, message: $m}}'; }
# ---- throttling ----
mock_post /_mock/reset '{}' >/dev/null
mock_post /_mock/faults "$(jq -cn --arg b "$(err TooManyRequests 'The request is being throttled.')" '[
	{method: "PUT", path: "/virtualMachines/podvm-", status: 429, headers: {"Retry-After": "2"}, body: $b, count: 2},
	{method: "GET", path: "/operations/", status: 429, headers: {"Retry-After": "1"}, body: $b, count: 1}]')" >/dev/null
pod_up throttled
name=$(instance_name throttled "$SID")
log=$(mock_get /_mock/requests)
puts=$(jq -c --arg n "$name" '[.[] | select(.method == "PUT" and (.path | endswith($n)))]' <<<"$log")
[[ $(jq -c 'map(.status)' <<<"$puts") == '[429,429,201]' ]] || fail "PUT statuses: $(jq -c 'map(.status)' <<<"$puts")"
# Retry-After: 2 was waited for before each retry (the log stamps each answer)
jq -e '(.[1].time - .[0].time) >= 1.9 and (.[2].time - .[1].time) >= 1.9' <<<"$puts" >/dev/null ||
	fail "PUT retried before Retry-After: $(jq -c 'map(.time)' <<<"$puts")"
polls=$(jq -c '[.[] | select(.path | test("/operations/")) | .status]' <<<"$log")
jq -e 'index(429) != null and .[-1] == 200' <<<"$polls" >/dev/null || fail "operation polls: $polls"
"$BIN/peerpodctl" agent --agent-socket "$SOCK" health || fail "agent health after throttling"
ctl stop "$SID" || fail "StopVM"
assert_mock_empty
ok "429 with Retry-After on PUT (x2) and on a poll: retried after the wait, pod started"

# ---- a 503 and a dropped connection on reads ----
mock_post /_mock/reset '{}' >/dev/null
mock_post /_mock/faults "$(jq -cn --arg b "$(err ServiceUnavailable 'Try again.')" '[
	{method: "GET", path: "/operations/", drop: true, count: 1},
	{method: "GET", path: "/(networkInterfaces|virtualMachines)/podvm-", status: 503, body: $b, count: 1}]')" >/dev/null
pod_up flaky
log=$(mock_get /_mock/requests)
jq -e 'any(.status == "dropped") and any(.status == 503)' <<<"$log" >/dev/null ||
	fail "faults not served: $(jq -c '[.[] | {method, path, status}]' <<<"$log")"
ctl stop "$SID" || fail "StopVM"
assert_mock_empty
ok "a dropped poll and a 503 read are retried"

# ---- a create whose operation ends Failed ----
mock_post /_mock/reset '{}' >/dev/null
mock_post /_mock/fail-create '{"count": 1, "code": "OSProvisioningTimedOut", "message": "OS Provisioning for VM did not finish in the allotted time."}' >/dev/null
sid=$(new_sid)
ctl create "$sid" --pod doomed --namespace default >/dev/null || fail "CreateVM"
if out=$(ctl start "$sid" 2>&1); then fail "StartVM succeeded although the create operation failed"; fi
grep -q "creating an instance : " <<<"$out" || fail "StartVM error without the adaptor's prefix: $out"
grep -q "OSProvisioningTimedOut\|did not finish in the allotted time" <<<"$out" ||
	fail "StartVM error does not say why the operation failed: $out"
echo "StartVM error: $out"
# the provider cleans up what the failed create left (Azure keeps a Failed VM with its NIC/disk)
assert_mock_empty
jq -e --arg n "$(instance_name doomed "$sid")" 'any(.method == "DELETE" and (.path | endswith($n)))' \
	<<<"$(mock_get /_mock/requests)" >/dev/null || fail "no DELETE of the failed VM"
ctl stop "$sid" >/dev/null || fail "StopVM after the failed start"
ok "LRO Failed: StartVM fails with the operation's error; VM, NIC and disk deleted"

stop_azure_adaptor
