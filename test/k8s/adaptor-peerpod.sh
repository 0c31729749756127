#!/usr/bin/env bash
# The adaptor (local provider) against the Kubernetes API mock: a pod VM's start creates a
# PeerPod with the finalizer and an owner reference to the pod, and puts the pod's and its
# service account's image pull secrets into auth.json of the user data; its stop releases the
# finalizer; a release the API server refuses is persisted and retried.
source "$(dirname "$0")/k8s-lib.sh"

start_mock
seed_node
b64() { printf '%s' "$1" | base64 -w0; }
dcj=$(b64 '{"auths":{"registry.example.com":{"auth":"cG9kOnNlY3JldA=="}}}')
dcfg=$(b64 '{"old.example.com":{"auth":"b2xkOnB3"},"registry.example.com":{"auth":"bG9zZXI6eA=="}}')
seed secrets "{\"metadata\": {\"name\": \"regcred\", \"namespace\": \"default\"},
	\"type\": \"kubernetes.io/dockerconfigjson\", \"data\": {\".dockerconfigjson\": \"$dcj\"}}"
seed secrets "{\"metadata\": {\"name\": \"legacy\", \"namespace\": \"default\"},
	\"type\": \"kubernetes.io/dockercfg\", \"data\": {\".dockercfg\": \"$dcfg\"}}"
seed secrets "{\"metadata\": {\"name\": \"opaque\", \"namespace\": \"default\"},
	\"type\": \"Opaque\", \"data\": {\"x\": \"eA==\"}}"
seed serviceaccounts '{"metadata": {"name": "builder", "namespace": "default"},
	"imagePullSecrets": [{"name": "legacy"}, {"name": "regcred"}, {"name": "opaque"}]}'
seed_pod default web '"serviceAccountName": "builder", "imagePullSecrets": [{"name": "regcred"}]'
seed_pod default api
uid=$(state | jq -r '.pods["default/web"].metadata.uid')

start_standin
start_k8s_adaptor

sid=$(new_sid)
ctl create "$sid" --pod web --namespace default >/dev/null || fail "create"
ctl start "$sid" || fail "start"
pp=$(jq -r '.peerpod // empty' "$PODS/$sid/state.json")
[[ $pp =~ ^web-resource-[a-z0-9]{5}$ ]] || fail "state.json has no PeerPod name: $(cat "$PODS/$sid/state.json")"
inst=$(jq -r '."instance-id"' "$PODS/$sid/state.json")
jq_state ".peerpods[\"default/$pp\"] | .metadata.finalizers == [\"peer.pod/finalizer\"]
	and .metadata.ownerReferences == [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"name\": \"web\",
		\"uid\": \"$uid\", \"controller\": true, \"blockOwnerDeletion\": true}]
	and .spec == {\"cloudProvider\": \"local\", \"instanceID\": \"$inst\"}
	and .metadata.labels[\"kata.peerpods.io/node\"] == \"$NODE\"" >/dev/null ||
	fail "PeerPod: $(state | jq -c .peerpods)"
ok "PeerPod created with the finalizer and an owner reference to the pod"

name=$(jq -r '."instance-name"' "$PODS/$sid/state.json")
ud=$DATA/local/$name/user-data
[[ -f $ud ]] || fail "no user data recorded at $ud"
"$PY" - "$ud" <<'EOP' || fail "auth.json in the user data"
import json, sys
text = open(sys.argv[1]).read()
paths = [l.split("path: ", 1)[1] for l in text.splitlines() if l.startswith("  - path: ")]
assert paths[:2] == ["/run/peerpod/apf.json", "/run/peerpod/auth.json"], paths
block = text.split("  - path: /run/peerpod/auth.json\n    content: |\n", 1)[1]
lines = []
for l in block.splitlines():
    if not l.startswith("      "):
        break
    lines.append(l[6:])
auth = json.loads("\n".join(lines))
# the pod's secret first, the service account's after; the first to name a registry wins
assert list(auth) == ["auths"], auth
assert list(auth["auths"]) == ["registry.example.com", "old.example.com"], auth
assert auth["auths"]["registry.example.com"]["auth"] == "cG9kOnNlY3JldA==", auth
assert auth["auths"]["old.example.com"]["auth"] == "b2xkOnB3", auth
EOP
[[ $(stat -c %a "$ud") == 600 ]] || fail "user data with credentials must be 0600"
ok "image pull secrets of the pod and its service account merged into auth.json"

ctl stop "$sid" || fail "stop"
jq_state ".peerpods[\"default/$pp\"] | (.metadata.finalizers // []) == []" >/dev/null ||
	fail "finalizer not released: $(state | jq -c .peerpods)"
requests | jq -e "map(select(.method == \"PATCH\" and (.path | endswith(\"/peerpods/$pp\"))))
	| length == 1 and (.[0].headers[\"Content-Type\"] == \"application/json-patch+json\")
	and (.[0].body | fromjson) == [{\"op\": \"remove\", \"path\": \"/metadata/finalizers\"}]" \
	>/dev/null || fail "release request: $(requests | jq -c '.[] | select(.method == "PATCH")')"
ok "finalizer released after the instance was deleted"

# A refused release is kept in the pods dir and retried (K8S_RETRY_INTERVAL=1s).
sid2=$(new_sid)
ctl create "$sid2" --pod api --namespace default >/dev/null || fail "create api"
ctl start "$sid2" || fail "start api"
pp2=$(jq -r '.peerpod' "$PODS/$sid2/state.json")
mock POST /_mock/faults '[{"method": "PATCH", "path": "/peerpods/", "status": 503, "count": 2,
	"body": "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"ServiceUnavailable\",\"message\":\"etcd is sad\",\"code\":503}"}]' >/dev/null
ctl stop "$sid2" || fail "stop api must succeed while the API server fails"
[[ -e $PODS/.k8s-release/default_$pp2 ]] || fail "pending release not persisted: $(ls -a "$PODS")"
grep -q "etcd is sad" "$T/adaptor.log" || fail "the Status message is not in the log"
wait_until 20 jq_state ".peerpods[\"default/$pp2\"] | (.metadata.finalizers // []) == []" ||
	fail "release not retried: $(state | jq -c .peerpods)"
wait_until 5 test ! -e "$PODS/.k8s-release/default_$pp2" || fail "pending file left"
ok "a refused release is persisted and retried"

kill -TERM "$ADAPTOR_PID"
wait "$ADAPTOR_PID" || fail "adaptor exit status"
ok "SIGTERM exits 0"
