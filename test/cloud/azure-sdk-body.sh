#!/usr/bin/env bash
# The body our azure provider PUTs for a pod VM equals, field for field, what the official Azure
# SDK for Python (ComputeManagementClient, compute 2022-08-01) sends for the same parameters.
# For each case the adaptor creates one pod VM against the ARM mock (which also validates the
# body with the SDK's models), the pod is stopped, then azure_sdk.py builds the same VM with the
# SDK's models (random parts and names copied from our body), creates it through the SDK and
# compares the two PUT bodies from the mock's log.
#   cvm:    confidential VM, secure boot, NSG, TAGS (one trying to override ours), root volume
#   nocvm:  DISABLECVM, public IP (the adaptor must dial the public address), zone
source "$(dirname "$0")/azure_lib.bash"
need_azure_provider

start_standin
start_mock

run_case() {
	local label=$1 pod=$2 settings=$3
	shift 3
	start_azure_adaptor "$@"
	pod_up "$pod"
	local name
	name=$(instance_name "$pod" "$SID")
	mock_get /_mock/requests | jq --arg n "$name" \
		'[.[] | select(.method == "PUT" and (.path | endswith("/virtualMachines/" + $n)))]' >"$T/puts.json"
	[[ $(jq length "$T/puts.json") -ge 1 ]] || fail "$label: no PUT of $name in the mock's log"
	jq -e 'all(.status == 201 or .status == 200)' "$T/puts.json" >/dev/null ||
		fail "$label: the mock refused our PUT: $(jq -c '.[].status' "$T/puts.json")"
	jq -r '.[-1].body' "$T/puts.json" >"$T/ours-$label.json"
	# the agent is reachable through the address the provider returned
	"$BIN/peerpodctl" agent --agent-socket "$SOCK" health || fail "$label: agent health"
	ctl stop "$SID" || fail "$label: StopVM"
	assert_mock_empty
	stop_azure_adaptor
	jq --arg sid "$SID" --arg pod "default/$pod" --arg node "$AZ_NODE" \
		'.tags += {"peerpod-sandbox-id": $sid, "peerpod-pod": $pod, "peerpod-node": $node}' \
		"$settings" >"$T/settings-$label.json"
	"$PY" "$CLOUD/azure_sdk.py" reference "$MOCK" --ours "$T/ours-$label.json" \
		--settings "$T/settings-$label.json" --name "$name" --label "$label" ||
		fail "$label: our body is not the SDK's"
	assert_mock_empty
}

base() {
	jq -n --arg t "$AZ_TENANT" --arg c "$AZ_CLIENT" --arg s "$AZ_SECRET" --arg sub "$AZ_SUB" \
		--arg rg "$AZ_RG" --arg r "$AZ_REGION" --arg img "$AZ_IMAGE" --arg sn "$AZ_SUBNET" \
		'{tenant: $t, client_id: $c, secret: $s, subscription: $sub, resource_group: $rg,
		  region: $r, image: $img, subnet: $sn, ssh_user: "peerpod", tags: {}}'
}

base | jq --arg nsg "$AZ_NSG" '. + {size: "Standard_DC2as_v5", nsg: $nsg, secure_boot: true,
	root_volume_gb: 40, tags: {team: "blue"}}' >"$T/cvm.json"
run_case cvm web "$T/cvm.json" -securitygroupid "$AZ_NSG" -enable-secure-boot \
	-root-volume-size 40 -tags "team=blue,peerpod-node=spoofed"
ok "confidential VM body equals the SDK's"

base | jq '. + {size: "Standard_D2as_v5", disable_cvm: true, public_ip: true, zone: "2",
	ssh_user: "azureuser"}' >"$T/nocvm.json"
run_case nocvm api "$T/nocvm.json" -disable-cvm -use-public-ip -instance-size Standard_D2as_v5 \
	-zone 2 -ssh-username azureuser
ok "DISABLECVM + public IP body equals the SDK's"
