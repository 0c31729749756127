#!/usr/bin/env bash
# The adaptor survives its own kill -9: a running pod's agent socket works again after the
# restart, and an instance that no sandbox owns any more is deleted by the start-up sweep.
source "$(dirname "$0")/lib.sh"
start_standin
start_adaptor

sid=$(new_sid)
sock=$(ctl create "$sid" --pod keep --namespace default) || fail "create"
ctl start "$sid" || fail "start"
"$BIN/peerpodctl" agent --agent-socket "$sock" health || fail "health before restart"
fwd_before=$(forwarder_pids)
[[ -n $fwd_before ]] || fail "no forwarder"

# a second pod whose state we lose while the adaptor is down: its instance becomes a stray
stray=$(new_sid)
ctl create "$stray" --pod stray --namespace default >/dev/null || fail "create stray"
ctl start "$stray" || fail "start stray"
ok "two pods running"

# a probe connection, so the restarted adaptor binds a port with connections in TIME_WAIT
[[ $(http_get /startup) == "200 ok" ]] || fail "/startup before the restart"
kill -KILL "$ADAPTOR_PID"
wait "$ADAPTOR_PID" 2>/dev/null
rm -rf "${PODS:?}/$stray"
ok "adaptor killed with SIGKILL, stray's state removed"

start_adaptor
# the shim reconnects to the same path
for i in $(seq 1 50); do
	"$BIN/peerpodctl" agent --agent-socket "$sock" health >/dev/null 2>&1 && break
	sleep 0.1
done
"$BIN/peerpodctl" agent --agent-socket "$sock" health || fail "health after restart"
ok "agent socket works again after the restart"
[[ $(http_get /startup) == "200 ok" ]] || fail "/startup after the restart"
grep -q '^cloud_api_adaptor_sandboxes_running 1$' <<<"$(http_get /metrics)" ||
	fail "restored running sandbox not counted"

for i in $(seq 1 100); do
	[[ ! -d $DATA/local/podvm-stray-${stray:0:8} ]] && break
	sleep 0.1
done
[[ ! -d $DATA/local/podvm-stray-${stray:0:8} ]] || fail "stray instance not swept"
[[ $(forwarder_pids | wc -l) == 1 ]] || fail "expected one forwarder, got: $(forwarder_pids)"
ok "stray instance swept, owned one kept"

ctl stop "$sid" || fail "stop"
assert_clean
ok "stop after restart cleans up"
