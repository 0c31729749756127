#!/usr/bin/env bash
# A pod's life through the adaptor with the azure provider against the ARM mock, the "VM" booted
# by the mock (process-user-data reads the userData from the VM's IMDS, the real forwarder
# serves it): create, start, agent calls through adaptor -> forwarder (mutual TLS) -> stand-in,
# PodVMInfo, stop, nothing left in the cloud. Then: a VM that vanished behind our back still
# stops cleanly (DELETE answered 204 as Azure does, and 404), instance sizes chosen from the
# region's vmSizes list by the pod's annotations, and WIRE.md 7's error texts.
source "$(dirname "$0")/azure_lib.bash"
need_azure_provider

start_standin
start_mock
start_azure_adaptor -instance-sizes Standard_DC2as_v5,Standard_DC4as_v5,Standard_DC8as_v5,Standard_DC4es_v5

pod_up web
name=$(instance_name web "$SID")
vmid=/subscriptions/$AZ_SUB/resourceGroups/$AZ_RG/providers/Microsoft.Compute/virtualMachines/$name
jq -e --arg id "$vmid" '.state == "running" and (."instance-id" | ascii_downcase) == ($id | ascii_downcase)' \
	"$PODS/$SID/state.json" >/dev/null || fail "state.json: $(cat "$PODS/$SID/state.json")"
st=$(mock_get /_mock/state)
jq -e --arg n "$name" --arg sid "$SID" --arg node "$AZ_NODE" '.vms[$n] |
	.provisioningState == "Succeeded" and .vmSize == "Standard_DC2as_v5" and
	.tags["peerpod-sandbox-id"] == $sid and .tags["peerpod-node"] == $node and
	.tags["peerpod-pod"] == "default/web"' <<<"$st" >/dev/null || fail "mock VM: $st"
ok "create + start: VM $name Succeeded with our tags; state.json has its ARM id"

info=$(ctl info --pod web --namespace default) || fail "PodVMInfo"
grep -qi "$name" <<<"$info" || fail "PodVMInfo: $info"
A() { "$BIN/peerpodctl" agent --agent-socket "$SOCK" "$@"; }
A health || fail "agent health through the adaptor"
A create-sandbox --sandbox-id "$SID" --hostname web || fail "create-sandbox"
jq -s -e 'map(select(.method == "CreateSandbox")) | length == 1' "$RECORD" >/dev/null ||
	fail "CreateSandbox did not reach the agent stand-in"
ok "agent calls through adaptor -> forwarder in the VM -> agent"

# every ARM call carried a valid token and was answered without a client error
log=$(mock_get /_mock/requests)
jq -e "[.[] | $ARM_SEL | select(.status >= 400)] | length == 0" <<<"$log" >/dev/null ||
	fail "ARM errors: $(jq -c "[.[] | $ARM_SEL | select(.status >= 400) | {method, path, status}]" <<<"$log")"
jq -e '[.[] | select(.path | test("/vmSizes$"))] | length >= 1' <<<"$log" >/dev/null ||
	fail "the provider never read the region's vmSizes"
ok "no ARM call was refused; sizes came from vmSizes"

ctl stop "$SID" || fail "StopVM"
assert_mock_empty
[[ ! -e $PODS/$SID ]] || fail "sandbox dir left"
ok "stop: VM, NIC, disk deleted (deleteOption Delete)"

# a VM deleted behind the adaptor's back: DELETE answers 204 (Azure), then 404 (some proxies)
for status in 204 404; do
	mock_post /_mock/config "{\"delete_missing_status\": $status}" >/dev/null
	pod_up gone
	mock_post /_mock/delete-vm "{\"name\": \"$(instance_name gone "$SID")\"}" >/dev/null
	ctl stop "$SID" || fail "StopVM of a VM that vanished (DELETE answered $status)"
	grep -q "$(instance_name gone "$SID")" <<<"$(mock_get /_mock/requests | jq -c '[.[] | select(.method == "DELETE") | .path]')" ||
		fail "no DELETE was sent for the vanished VM"
	assert_mock_empty
done
mock_post /_mock/config '{"delete_missing_status": 204}' >/dev/null
ok "StopVM of a VM that no longer exists succeeds (DELETE 204 and 404)"

# instance size from annotations: 4 vCPUs / 16 GiB -> the smallest fitting allowed size
vc=io.katacontainers.config.hypervisor.default_vcpus
mem=io.katacontainers.config.hypervisor.default_memory
mt=io.katacontainers.config.hypervisor.machine_type
pod_up sized --annotation "$vc=4" --annotation "$mem=16384"
size=$(mock_get /_mock/state | jq -r --arg n "$(instance_name sized "$SID")" '.vms[$n].vmSize')
[[ $size == Standard_DC4as_v5 ]] || fail "4 vCPUs / 16384 MiB chose $size, expected Standard_DC4as_v5"
ctl stop "$SID" || fail "StopVM sized"
pod_up typed --annotation "$mt=Standard_DC4es_v5"
size=$(mock_get /_mock/state | jq -r --arg n "$(instance_name typed "$SID")" '.vms[$n].vmSize')
[[ $size == Standard_DC4es_v5 ]] || fail "machine_type Standard_DC4es_v5 chose $size"
ctl stop "$SID" || fail "StopVM typed"
assert_mock_empty
ok "sizes: annotations 4 vCPU/16 GiB -> Standard_DC4as_v5; machine_type honoured"

expect_start_error() {
	local what=$1 text=$2
	shift 2
	local sid out
	sid=$(new_sid)
	ctl create "$sid" --pod bad --namespace default "$@" >/dev/null || fail "CreateVM ($what)"
	if out=$(ctl start "$sid" 2>&1); then
		fail "StartVM succeeded for $what"
	fi
	grep -qF "creating an instance : $text" <<<"$out" || fail "$what: StartVM error: $out (expected: $text)"
	ctl stop "$sid" >/dev/null 2>&1 || fail "StopVM after a failed start ($what)"
}
n_puts() { count_requests 'select(.method == "PUT")'; }
before=$(n_puts)
expect_start_error "64 vCPUs" \
	"failed to get instance type based on vCPU and memory annotations: no instance type found for the given vcpus (64) and memory (1024)" \
	--annotation "$vc=64" --annotation "$mem=1024"
expect_start_error "machine_type outside the list" \
	'failed to verify instance type: requested instance type ("Standard_D2s_v3") is not part of supported instance types list' \
	--annotation "$mt=Standard_D2s_v3"
[[ $(n_puts) == "$before" ]] || fail "a VM was PUT although no size fits"
assert_mock_empty
ok "instance-type selection errors carry WIRE.md 7's texts; nothing created"

stop_azure_adaptor
assert_mock_empty
ok "adaptor stopped; nothing left in the mock"
