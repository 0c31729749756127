#!/usr/bin/env bash
# End to end: `peerpodctl agent` drives agent-standin the way the shim drives a pod's agent; the
# stand-in's recording must show each call with the right service, method, payload and deadline,
# and its validation and blocking WaitProcess must behave. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${PP_BUILD:-build}
[[ $build == /* ]] || build=$root/$build
ctl=$build/bin/peerpodctl
standin=$build/bin/agent-standin

if [[ ! -x $ctl || ! -x $standin ]]; then
	echo "SKIP: $ctl or $standin not built"
	exit 77
fi
if ! command -v jq >/dev/null; then
	echo "SKIP: jq is not installed"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/standin-agent.XXXXXX")
standin_pid=
wait_pid=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	[[ -n $wait_pid ]] && kill "$wait_pid" 2>/dev/null
	[[ -n $standin_pid ]] && kill "$standin_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sock=$tmp/agent.sock
rec=$tmp/record.jsonl
sid=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

fail() {
	echo "FAIL: $*"
	echo "--- stand-in log:"
	cat "$tmp/standin.log" 2>/dev/null
	echo "--- recording:"
	cat "$rec" 2>/dev/null
	exit 1
}
step() { echo "== $*"; }
agent() { "$ctl" agent --agent-socket "$sock" "$@"; }
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

"$standin" --socket "$sock" --record "$rec" --wait-blocks >"$tmp/standin.log" 2>&1 &
standin_pid=$!
for _ in $(seq 100); do
	[[ -S $sock ]] && break
	kill -0 "$standin_pid" 2>/dev/null || fail "agent-standin exited early"
	sleep 0.1
done
[[ -S $sock ]] || fail "agent-standin did not create $sock"

step "health and version"
out=$(agent health) || fail "health: $out"
[[ $out == *SERVING* ]] || fail "health output: $out"
out=$(agent --json version) || fail "version: $out"
[[ $(jq -r .agent_version <<<"$out") == agent-standin* ]] || fail "version output: $out"

step "CreateContainer before CreateSandbox is refused"
if err=$(agent create-container --id "$sid" 2>&1); then
	fail "create-container without a sandbox succeeded"
fi
[[ $err == *FAILED_PRECONDITION* ]] || fail "create-container without sandbox: $err"

step "sandbox, pause container, one container"
agent create-sandbox --sandbox-id "$sid" --hostname web-0 --dns "nameserver 10.96.0.10" \
	--dns "search default.svc.cluster.local" --timeout 300s || fail "create-sandbox"
agent create-container --id "$sid" || fail "create-container (pause)"
agent start-container --id "$sid" || fail "start-container (pause)"
agent create-container --id c1 --sandbox-id "$sid" -- sh -c 'echo hi' || fail "create-container c1"
if err=$(agent create-container --id c2 --sandbox-id other 2>&1); then
	fail "create-container for an unknown sandbox succeeded"
fi
[[ $err == *FAILED_PRECONDITION* ]] || fail "unknown sandbox: $err"
agent start-container --id c1 || fail "start-container c1"
if err=$(agent start-container --id nope 2>&1); then
	fail "start-container of an unknown container succeeded"
fi
[[ $err == *NOT_FOUND* ]] || fail "start unknown container: $err"

step "copy-file in 1 MiB chunks"
out=$(agent --json copy-file --path /etc/resolv.conf --size 2621440) || fail "copy-file: $out"
[[ $(jq -r .code <<<"$out") == 0 ]] || fail "copy-file output: $out"

step "ReadStdout echoes len bytes, WriteStdin returns len"
# ReadStreamRequest{container_id:"c1", len:1024}
out=$(agent call --service grpc.AgentService --method ReadStdout --payload-hex 0a026331188008) ||
	fail "ReadStdout: $out"
want="0a8008$(printf 'x%.0s' $(seq 1024) | od -An -v -tx1 | tr -d ' \n')"
[[ $out == "$want" ]] || fail "ReadStdout answer: ${out:0:40}..."
# WriteStreamRequest{container_id:"c1", data:"hello"} -> WriteStreamResponse{len:5}
out=$(agent call --service grpc.AgentService --method WriteStdin \
	--payload-hex "0a0263311a05$(hex hello)") || fail "WriteStdin: $out"
[[ $out == 0805 ]] || fail "WriteStdin answer: $out"

step "methods without a handler answer an empty OK; unknown methods fail"
out=$(agent call --service grpc.AgentService --method GetGuestDetails) || fail "GetGuestDetails"
[[ -z $out ]] || fail "GetGuestDetails answer: $out"
if err=$(agent call --service grpc.AgentService --method NoSuchMethod 2>&1); then
	fail "unknown method succeeded"
fi
[[ $err == "error: "* ]] || fail "unknown method: $err"

step "WaitProcess blocks until the container is removed"
agent --json --timeout 30s wait-process --id c1 >"$tmp/wait.json" 2>&1 &
wait_pid=$!
for _ in $(seq 100); do
	grep -q '"method":"WaitProcess"' "$rec" && break
	sleep 0.05
done
grep -q '"method":"WaitProcess"' "$rec" || fail "WaitProcess never reached the stand-in"
# Other calls are served while WaitProcess is parked.
agent health >/dev/null || fail "health while WaitProcess is parked"
kill -0 "$wait_pid" 2>/dev/null || fail "wait-process returned before RemoveContainer: $(cat "$tmp/wait.json")"
agent remove-container --id c1 || fail "remove-container"
wait "$wait_pid" || fail "wait-process failed: $(cat "$tmp/wait.json")"
wait_pid=
[[ $(jq -r .status "$tmp/wait.json") == 0 ]] || fail "wait-process output: $(cat "$tmp/wait.json")"

step "destroy-sandbox"
agent destroy-sandbox || fail "destroy-sandbox"

step "SIGTERM exits 0"
kill -TERM "$standin_pid"
wait "$standin_pid"
rc=$?
standin_pid=
((rc == 0)) || fail "agent-standin exited $rc on SIGTERM"
[[ ! -e $sock ]] || fail "socket left behind"

step "recording"
jq -e -s 'length > 0' "$rec" >/dev/null || fail "empty or invalid recording"
# Every line has exactly the documented fields with the right types; no metadata was sent.
jq -e -s 'all(.[]; (keys == ["metadata","method","payload_hex","service","timeout_nano"])
	and (.service|type) == "string" and (.method|type) == "string"
	and (.payload_hex|test("^([0-9a-f]{2})*$")) and (.timeout_nano|type) == "number"
	and .metadata == [])' "$rec" >/dev/null || fail "malformed record lines"

got=$(jq -r '.service + "/" + .method' "$rec" | paste -sd' ')
want="grpc.Health/Check grpc.Health/Version grpc.AgentService/CreateContainer"
want+=" grpc.AgentService/CreateSandbox grpc.AgentService/CreateContainer"
want+=" grpc.AgentService/StartContainer grpc.AgentService/CreateContainer"
want+=" grpc.AgentService/CreateContainer grpc.AgentService/StartContainer"
want+=" grpc.AgentService/StartContainer"
want+=" grpc.AgentService/CopyFile grpc.AgentService/CopyFile grpc.AgentService/CopyFile"
want+=" grpc.AgentService/ReadStdout grpc.AgentService/WriteStdin"
want+=" grpc.AgentService/GetGuestDetails grpc.AgentService/WaitProcess grpc.Health/Check"
want+=" grpc.AgentService/RemoveContainer grpc.AgentService/DestroySandbox"
[[ $got == "$want" ]] || fail "recorded calls differ:
 got:  $got
 want: $want"

# Deadlines: 60 s by default, 300 s where given, 30 s for the WaitProcess (ms precision).
near() { jq -e -s --arg m "$1" --argjson i "$2" --argjson t "$3" \
	'[.[] | select(.method == $m)][$i].timeout_nano | (. - $t | fabs) < 1000000000' "$rec" \
	>/dev/null; }
near Check 0 60000000000 || fail "Check timeout_nano"
near CreateSandbox 0 300000000000 || fail "CreateSandbox timeout_nano"
near WaitProcess 0 30000000000 || fail "WaitProcess timeout_nano"

# Payloads carry what the shim would send.
rec_payload() { jq -r -s --arg m "$1" --argjson i "$2" '[.[] | select(.method == $m)][$i].payload_hex' "$rec"; }
p=$(rec_payload CreateSandbox 0)
[[ $p == *"$(hex "$sid")"* && $p == *"$(hex web-0)"* && $p == *"$(hex "search default.svc.cluster.local")"* ]] ||
	fail "CreateSandbox payload $p"
p=$(rec_payload CreateContainer 2)
[[ $p == *"$(hex /run/kata-containers/c1/rootfs)"* && $p == *"$(hex "echo hi")"* &&
	$p == *"$(hex io.kubernetes.cri.container-type)"*"$(hex container)"* ]] ||
	fail "CreateContainer payload $p"
p=$(rec_payload StartContainer 1)
[[ $p == "0a02$(hex c1)" ]] || fail "StartContainer payload $p"
p=$(rec_payload CopyFile 2)
[[ $p == *"$(hex /etc/resolv.conf)"* ]] || fail "CopyFile payload"
# The last chunk: offset 2 MiB (field 7 varint 0x200000 = 80 80 80 01) and 512 KiB of data.
[[ $p == *388080800142808020* ]] || fail "CopyFile last chunk offset/size: ${p:0:120}"
[[ $(rec_payload ReadStdout 0) == 0a026331188008 ]] || fail "ReadStdout payload"

echo "PASS"
exit 0
