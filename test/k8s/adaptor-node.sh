#!/usr/bin/env bash
# The node's kata.peerpods.io/vm extended resource and the owner handshake (WIRE.md 8.7) during
# a rolling update: two adaptors with in-cluster configuration (service-account dir + API server
# override). The new one takes ownership; the old one's shutdown leaves the capacity; the last
# owner's shutdown removes it. The old one's token is rotated meanwhile and still works.
source "$(dirname "$0")/k8s-lib.sh"

start_mock
seed_node
sa=$T/sa
mkdir -p "$sa"
echo "$TOKEN" >"$sa/token"
echo default >"$sa/namespace"
unset KUBECONFIG
export K8S_SERVICEACCOUNT_DIR=$sa K8S_API_SERVER=$MOCK_URL NODE_NAME=$NODE

cap() { state | jq -r ".nodes[\"$NODE\"].status.capacity[\"kata.peerpods.io/vm\"] // \"none\""; }
owner() { state | jq -r ".nodes[\"$NODE\"].metadata.annotations[\"kata.peerpods.io/caa-owner\"] // \"none\""; }

start_standin
POD_UID=uid-old PEERPODS_LIMIT_PER_NODE=7 start_adaptor
old=$ADAPTOR_PID
wait_until 10 test "$(cap)" = 7 || fail "capacity not advertised: $(state | jq -c .nodes)"
[[ $(owner) == uid-old ]] || fail "owner annotation: $(owner)"
requests | jq -e 'map(select(.method == "PATCH")) | map(.headers["Content-Type"]) ==
	["application/merge-patch+json", "application/json-patch+json"]' >/dev/null ||
	fail "patch content types: $(requests | jq -c 'map(select(.method == "PATCH"))')"
ok "extended resource advertised after the owner annotation"

# the rolling update's new pod: its own socket, pods dir and probe port
HV2=$T/hv2.sock
POD_UID=uid-new PEERPODS_LIMIT_PER_NODE=9 PROBE_PORT=$((PROBE_PORT + 1)) \
	"$BIN/cloud-api-adaptor" local -socket "$HV2" -pods-dir "$T/pods2" -data-dir "$T/data2" \
	-forwarder-port "$FWD_PORT" -local-agent-socket "$AGENT" >>"$T/adaptor2.log" 2>&1 &
new=$!
PIDS+=("$new")
wait_until 10 test "$(owner)" = uid-new || fail "the new adaptor did not take ownership"
wait_until 10 test "$(cap)" = 9 || fail "capacity of the new adaptor: $(cap)"
ok "the new adaptor took ownership"

# kubelet rotates the old pod's token; the API server accepts only the new one
echo "rotated-$RANDOM" >"$T/tokens"
cp "$T/tokens" "$sa/token.new" && mv "$sa/token.new" "$sa/token"
mock POST /_mock/reset >/dev/null
kill -TERM "$old"
wait "$old" || fail "old adaptor exit status"
[[ $(cap) == 9 ]] || fail "the old adaptor's shutdown removed the capacity: $(cap)"
requests | jq -e "map(select(.method == \"GET\" and .path == \"/api/v1/nodes/$NODE\"))[0].status == 200" \
	>/dev/null || fail "the old adaptor did not follow the rotated token: $(requests | jq -c .)"
requests | jq -e 'map(select(.method == "PATCH")) | length == 0' >/dev/null ||
	fail "the old adaptor patched the node"
ok "the old adaptor's shutdown left the capacity (and used the rotated token)"

kill -TERM "$new"
wait "$new" || fail "new adaptor exit status"
[[ $(cap) == none ]] || fail "the last owner's shutdown did not remove the capacity: $(cap)"
ok "the last owner's shutdown removed the capacity"

# a negative limit advertises nothing
mock POST /_mock/reset >/dev/null
POD_UID=uid-x PEERPODS_LIMIT_PER_NODE=-1 start_adaptor
wait_until 10 sh -c "test \"\$(curl -s 127.0.0.1:$PROBE_PORT/startup)\" = ok" || true
requests | jq -e 'map(select(.method == "PATCH")) | length == 0' >/dev/null ||
	fail "a negative limit patched the node"
ok "a negative limit is not advertised"
