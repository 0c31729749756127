#!/usr/bin/env bash
# Full pod lifecycle through peerpodctl with the local provider and mutual TLS: create, start,
# the shim's agent calls through adaptor -> forwarder -> agent stand-in (checking the forwarder's
# rewrites arrived), stop, and nothing left behind.
source "$(dirname "$0")/lib.sh"

start_standin
start_adaptor

ctl version | grep -q 0.0.0 || fail "version"
ok "version"

# the one-shot lifecycle command
ctl lifecycle --pod web --namespace default >"$T/lc.out" 2>&1 || { cat "$T/lc.out"; fail "lifecycle"; }
assert_clean
ok "peerpodctl lifecycle left nothing behind"

sid=$(new_sid)
sock=$(ctl create "$sid" --pod nginx --namespace default --netns /var/run/netns/test) || fail "create"
[[ $sock == "$PODS/$sid/agent.ttrpc" ]] || fail "agent socket path $sock"
[[ -f $PODS/$sid/state.json && -f $PODS/$sid/apf.json ]] || fail "state files"
[[ $(stat -c %a "$PODS/$sid/apf.json") == 600 ]] || fail "apf.json holds a key and must be 0600"
ok "create"

ctl start "$sid" || fail "start"
[[ -S $sock ]] || fail "agent socket not listening after StartVM"
jq -e '.state == "running" and (."instance-id" | startswith("local-"))' "$PODS/$sid/state.json" >/dev/null || fail "state.json: $(cat "$PODS/$sid/state.json")"
[[ -n $(forwarder_pids) ]] || fail "no forwarder process"
ok "start"

info=$(ctl info --pod nginx --namespace default) || fail "info"
grep -q "local-podvm-nginx-" <<<"$info" || fail "info: $info"
ok "podvminfo"

[[ $(http_get /startup) == "200 ok" ]] || fail "/startup: $(http_get /startup)"
[[ $(http_get /readyz) == "200 ok" ]] || fail "/readyz"
[[ $(http_get /livez) == "200 ok" ]] || fail "/livez"
metrics=$(http_get /metrics)
grep -q '^cloud_api_adaptor_sandboxes_running 1$' <<<"$metrics" || fail "metrics: $metrics"
grep -q '^cloud_api_adaptor_startvm_total{result="ok"} 2$' <<<"$metrics" || fail "startvm counter: $metrics"
grep -q '^cloud_api_adaptor_startvm_seconds_count 2$' <<<"$metrics" || fail "startvm histogram"
[[ $(http_get /nope | cut -d' ' -f1) == 404 ]] || fail "unknown path"
ok "/metrics, /startup, /readyz, /livez"

A() { "$BIN/peerpodctl" agent --agent-socket "$sock" "$@"; }
A health || fail "health"
A create-sandbox --sandbox-id "$sid" --hostname nginx --dns "nameserver 10.96.0.10" || fail "create-sandbox"
A create-container --id c1 --sandbox-id "$sid" || fail "create-container"
A start-container --id c1 || fail "start-container"
A copy-file --path /run/kata-containers/shared/containers/c1-hosts --size 3000000 || fail "copy-file"
A destroy-sandbox || fail "destroy-sandbox"
ok "agent calls through the proxy"

jq -s -e 'map(select(.method == "CreateSandbox")) | length == 1' "$RECORD" >/dev/null || fail "CreateSandbox not recorded"
# the forwarder cleared dns: the recorded payload has no field 2 (tag 0x12) carrying the nameserver
csb=$(jq -r -s 'map(select(.method == "CreateSandbox"))[0].payload_hex' "$RECORD")
grep -q "$(printf 'nameserver' | od -An -tx1 | tr -d ' \n')" <<<"$csb" && fail "dns reached the agent"
# the network namespace entry was appended to CreateContainer
ccc=$(jq -r -s 'map(select(.method == "CreateContainer"))[0].payload_hex' "$RECORD")
grep -q "$(printf '/run/netns/podns' | od -An -tx1 | tr -d ' \n')" <<<"$ccc" || fail "network namespace not added"
ok "rewrites arrived at the agent"

ctl stop "$sid" || fail "stop"
ctl stop "$sid" || fail "repeated stop must succeed"
assert_clean
[[ ! -S $sock ]] || fail "agent socket left"
ok "stop, repeated stop, nothing left behind"

kill -TERM "$ADAPTOR_PID"
wait "$ADAPTOR_PID" || fail "adaptor did not exit 0 on SIGTERM"
ok "SIGTERM exits 0"
