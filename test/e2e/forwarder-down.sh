#!/usr/bin/env bash
# A pod VM whose forwarder never comes up: StartVM fails after PROXY_TIMEOUT with a clear error,
# and the instance is deleted (no process, no record, no socket left).
source "$(dirname "$0")/lib.sh"
start_standin
# a "forwarder" that starts but never listens
cat >"$T/silent-forwarder" <<EOS
#!/bin/sh
echo \$\$ >"$T/silent.pid"
exec sleep 600
EOS
chmod +x "$T/silent-forwarder"
rm -f "$HV"
"$BIN/cloud-api-adaptor" local -socket "$HV" -pods-dir "$PODS" -data-dir "$DATA" \
	-forwarder-port "$FWD_PORT" -local-agent-socket "$AGENT" \
	-local-forwarder "$T/silent-forwarder" -proxy-timeout 2s >>"$T/adaptor.log" 2>&1 &
ADAPTOR_PID=$!
PIDS+=("$ADAPTOR_PID")
wait_for_socket "$HV"

sid=$(new_sid)
ctl create "$sid" --pod never --namespace default >/dev/null || fail "create"
if out=$(ctl start "$sid" 2>&1); then fail "StartVM succeeded without a forwarder"; fi
grep -q "failed to connect to the agent-protocol-forwarder" <<<"$out" || fail "error text: $out"
ok "StartVM failed: $out"

for i in $(seq 1 100); do
	[[ -z $(ls -A "$DATA/local" 2>/dev/null) ]] && break
	sleep 0.1
done
[[ -z $(ls -A "$DATA/local") ]] || fail "instance left after the failed start"
[[ -s $T/silent.pid ]] || fail "the forwarder was never started"
kill -0 "$(cat "$T/silent.pid")" 2>/dev/null && fail "forwarder process left"
jq -e '.state == "created" and (has("instance-id") | not)' "$PODS/$sid/state.json" >/dev/null || fail "state after failed start: $(cat "$PODS/$sid/state.json")"
ok "instance deleted after the failed start"

ctl stop "$sid" || fail "stop"
assert_clean
ok "stop after a failed start"
