#!/usr/bin/env bash
# /startup (WIRE.md 8.5) with a cluster: 500 until every pod on this node with runtime class
# kata-remote is Ready with a transition after the adaptor's start; other nodes' pods and other
# runtime classes do not count. /readyz does not wait for pods.
source "$(dirname "$0")/k8s-lib.sh"

start_mock
seed_node
ready() { # TIME
	echo "{\"phase\": \"Running\", \"conditions\": [{\"type\": \"Ready\", \"status\": \"True\", \"lastTransitionTime\": \"$1\"}]}"
}
seed_pod default web "" "$(ready 2020-01-01T00:00:00Z)"
seed_pod default elsewhere "" '{"phase": "Pending"}' other-node
seed_pod default plain '"runtimeClassName": "runc"' '{"phase": "Pending"}'
seed_pod default done "" '{"phase": "Succeeded"}'

start_standin
start_k8s_adaptor
wait_until 10 sh -c "curl -s 127.0.0.1:$PROBE_PORT/startup | grep -q 'not ready yet (web)'" ||
	fail "/startup: $(http_get /startup)"
[[ $(http_get /startup | cut -d' ' -f1) == 500 ]] || fail "/startup must fail"
[[ $(http_get /readyz) == "200 ok" ]] || fail "/readyz: $(http_get /readyz)"
ok "/startup waits for this node's kata-remote pods"

sleep 1 # a transition strictly after the adaptor's start second
seed_pod default web "" "$(ready "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
wait_until 15 sh -c "test \"\$(curl -s 127.0.0.1:$PROBE_PORT/startup)\" = ok" ||
	fail "/startup after the pod became Ready: $(http_get /startup)"
ok "/startup succeeds once they are Ready again"
