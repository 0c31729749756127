#!/usr/bin/env bash
# Startup cleanup of PeerPods (WIRE.md 8.7): a PeerPod of this node whose pod is gone and whose
# instance no sandbox owns gets its instance deleted and its finalizer released; one being
# deleted likewise; others (live pod, other node) are left alone.
source "$(dirname "$0")/k8s-lib.sh"

start_mock
seed_node
seed_pod default ghost
seed_pod default alive
alive_uid=$(state | jq -r '.pods["default/alive"].metadata.uid')
peerpod() { # NAME OWNER OWNER-UID NODE [extra metadata members]
	seed peerpods "{\"apiVersion\": \"confidentialcontainers.org/v1alpha1\", \"kind\": \"PeerPod\",
		\"metadata\": {\"name\": \"$1\", \"namespace\": \"default\", \"finalizers\": [\"peer.pod/finalizer\"],
			\"labels\": {\"kata.peerpods.io/node\": \"$4\"},
			\"ownerReferences\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"name\": \"$2\", \"uid\": \"$3\",
				\"controller\": true, \"blockOwnerDeletion\": true}]${5:+, $5}},
		\"spec\": {\"cloudProvider\": \"local\", \"instanceID\": \"local-podvm-$1\"}}"
}
peerpod alive-resource-bbbbb alive "$alive_uid" "$NODE"
peerpod deleting-resource-ccccc alive "$alive_uid" "$NODE" '"deletionTimestamp": "2024-01-01T00:00:00Z"'
peerpod gone-resource-ddddd gone uid-gone other-node

start_standin
start_k8s_adaptor
sid=$(new_sid)
ctl create "$sid" --pod ghost --namespace default >/dev/null || fail "create"
ctl start "$sid" || fail "start"
pp=$(jq -r '.peerpod' "$PODS/$sid/state.json")
name=$(jq -r '."instance-name"' "$PODS/$sid/state.json")
[[ -d $DATA/local/$name ]] || fail "no instance"
# the adaptor dies and forgets the sandbox; meanwhile the pod is deleted
kill -KILL "$ADAPTOR_PID"
wait "$ADAPTOR_PID" 2>/dev/null
rm -rf "${PODS:?}/$sid"
mock POST /_mock/delete '{"kind": "pods", "namespace": "default", "name": "ghost"}' >/dev/null

start_k8s_adaptor
wait_until 20 jq_state ".peerpods[\"default/$pp\"] == null" ||
	fail "PeerPod of the deleted pod left: $(state | jq -c .peerpods)"
wait_until 10 test ! -d "$DATA/local/$name" || fail "instance $name not deleted"
ok "PeerPod of a deleted pod: instance deleted, finalizer released"
jq_state '.peerpods["default/deleting-resource-ccccc"] == null' >/dev/null ||
	fail "PeerPod being deleted not released: $(state | jq -c .peerpods)"
grep -q 'deleting-resource-ccccc: being deleted; deleting instance local-podvm-deleting-resource-ccccc' \
	"$T/adaptor.log" || fail "no instance deletion for the PeerPod being deleted"
ok "PeerPod being deleted: instance deleted, finalizer released"
jq_state '.peerpods["default/alive-resource-bbbbb"].metadata.finalizers == ["peer.pod/finalizer"]
	and .peerpods["default/gone-resource-ddddd"].metadata.finalizers == ["peer.pod/finalizer"]' \
	>/dev/null || fail "PeerPods of a live pod or another node touched: $(state | jq -c .peerpods)"
ok "PeerPods of live pods and other nodes left alone"
