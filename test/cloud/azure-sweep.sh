#!/usr/bin/env bash
# The leak sweep with the azure provider: VMs tagged for this node that no sandbox owns (e.g. a
# crash between create and recording it) are deleted when the adaptor starts; VMs of another
# node and VMs without our tags are left alone. The list is paged (nextLink) by the mock.
source "$(dirname "$0")/azure_lib.bash"
need_azure_provider

start_standin
start_mock --page-size 2
seed() {
	mock_post /_mock/vm "$(jq -cn --arg n "$1" --argjson t "$2" '{name: $n, tags: $t}')" >/dev/null
}
seed podvm-ghost-aaaa0001 "$(jq -cn --arg node "$AZ_NODE" '{"peerpod-node": $node, "peerpod-sandbox-id": "aaaa0001", "peerpod-pod": "default/ghost"}')"
seed podvm-ghost-aaaa0002 "$(jq -cn --arg node "$AZ_NODE" '{"peerpod-node": $node, "peerpod-sandbox-id": "aaaa0002", "peerpod-pod": "default/ghost2", team: "x"}')"
seed podvm-other-bbbb0001 '{"peerpod-node": "some-other-node", "peerpod-sandbox-id": "bbbb0001", "peerpod-pod": "default/other"}'
seed unrelated-vm '{"owner": "someone"}'
seed podvm-nosid-cccc0001 "$(jq -cn --arg node "$AZ_NODE" '{"peerpod-node": $node}')"

start_azure_adaptor
wait_state '(.vms | keys) == ["podvm-nosid-cccc0001", "podvm-other-bbbb0001", "unrelated-vm"]'
wait_state '(.nics | map(select(startswith("podvm-ghost"))) | length) == 0 and (.disks | map(select(startswith("podvm-ghost"))) | length) == 0'
log=$(mock_get /_mock/requests)
jq -e '[.[] | select(.method == "GET" and (.path | test("/virtualMachines$")) and (.query | test("skiptoken")))] | length >= 1' <<<"$log" >/dev/null ||
	fail "the VM list was not followed through its nextLink pages"
jq -e '[.[] | select(.method == "DELETE") | .path | split("/") | last] | sort == ["podvm-ghost-aaaa0001", "podvm-ghost-aaaa0002"]' <<<"$log" >/dev/null ||
	fail "DELETEs: $(jq -c '[.[] | select(.method == "DELETE") | .path]' <<<"$log")"
ok "sweep deleted this node's two stray VMs (and their NICs, disks), kept the others"

# a pod the adaptor owns survives a restart of the adaptor (not swept)
pod_up kept
stop_azure_adaptor
mock_post /_mock/reset '{}' >/dev/null
start_azure_adaptor
# the sweep lists (all pages), then deletes at once: wait for the last page, then a moment
for ((i = 0; i < 150; i++)); do
	mock_get /_mock/requests | jq -e '[.[] | select(.method == "GET" and (.path | test("/virtualMachines$")) and .status == 200)] | length >= 2' >/dev/null && break
	sleep 0.2
done
((i < 150)) || fail "the restarted adaptor did not list the VMs"
sleep 1
[[ $(count_requests 'select(.method == "DELETE")') == 0 ]] || fail "the restarted adaptor deleted something"
mock_get /_mock/state | jq -e --arg n "$(instance_name kept "$SID")" '.vms[$n].provisioningState == "Succeeded"' >/dev/null ||
	fail "the sweep deleted a VM a restored sandbox owns"
ctl stop "$SID" || fail "StopVM kept"
wait_state '(.vms | keys) == ["podvm-nosid-cccc0001", "podvm-other-bbbb0001", "unrelated-vm"]'
ok "a restored sandbox's VM is not swept; StopVM deletes it"
