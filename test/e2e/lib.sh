# test/e2e/lib.sh: shared helpers for the end-to-end scripts. Source it; it sets up a scratch
# directory, tears down every process it started on exit, and offers start/stop helpers.
# Everything listens on Unix sockets or 127.0.0.0/8 only.
set -uo pipefail

PP_ROOT=${PP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PP_BUILD=${PP_BUILD:-$PP_ROOT/build}
BIN=$PP_BUILD/bin
T=$(mktemp -d "${TMPDIR:-/tmp}/pp-e2e.XXXXXX")
PIDS=()
HV=$T/hypervisor.sock
PODS=$T/pods
DATA=$T/data
AGENT=$T/agent.sock
RECORD=$T/agent-record.jsonl
FWD_PORT=$((20000 + RANDOM % 20000))
# the adaptor's /metrics and probes (127.0.0.1:PROBE_PORT); one per test run
export PROBE_PORT=$((40000 + RANDOM % 20000))
ADAPTOR_PID=
STANDIN_PID=

cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	# forwarders of the local provider run in their own sessions
	pkill -TERM -f -- "-config $DATA/local/" 2>/dev/null
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	pkill -KILL -f -- "-config $DATA/local/" 2>/dev/null
	if ((rc != 0)) && [[ -d $T ]]; then
		echo "---- adaptor log (tail)"
		tail -n 30 "$T/adaptor.log" 2>/dev/null
		for f in "$DATA"/local/*/forwarder.log; do
			[[ -f $f ]] && { echo "---- $f"; tail -n 10 "$f"; }
		done
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ok() {
	echo "ok: $*"
}

# wait_for_socket PATH [SECONDS]
wait_for_socket() {
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		[[ -S $1 ]] && return 0
		sleep 0.05
	done
	fail "socket $1 did not appear"
}

start_standin() {
	"$BIN/agent-standin" --socket "$AGENT" --record "$RECORD" "$@" >"$T/standin.log" 2>&1 &
	STANDIN_PID=$!
	PIDS+=("$STANDIN_PID")
	wait_for_socket "$AGENT"
}

# start_adaptor [extra flags...]: local provider in front of the stand-in agent
start_adaptor() {
	rm -f "$HV"
	"$BIN/cloud-api-adaptor" local -socket "$HV" -pods-dir "$PODS" -data-dir "$DATA" \
		-forwarder-port "$FWD_PORT" -local-agent-socket "$AGENT" \
		-local-forwarder "$BIN/agent-protocol-forwarder" "$@" >>"$T/adaptor.log" 2>&1 &
	ADAPTOR_PID=$!
	PIDS+=("$ADAPTOR_PID")
	wait_for_socket "$HV"
}

# http_get PATH: "<status> <body>" of GET http://127.0.0.1:$PROBE_PORT/PATH
http_get() {
	python3 - "$PROBE_PORT" "$1" <<'EOP'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", sys.argv[2])
r = c.getresponse()
print(r.status, r.read().decode())
EOP
}

ctl() {
	"$BIN/peerpodctl" --socket "$HV" "$@"
}

new_sid() {
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# forwarder processes of this test's local provider
forwarder_pids() {
	pgrep -f -- "-config $DATA/local/" || true
}

# assert nothing of the sandbox is left: state dir, agent socket, instance, forwarder
assert_clean() {
	[[ -z $(ls -A "$PODS" 2>/dev/null) ]] || fail "pods dir not empty: $(ls "$PODS")"
	[[ -z $(ls -A "$DATA/local" 2>/dev/null) ]] || fail "local instances left: $(ls "$DATA/local")"
	local left
	left=$(forwarder_pids)
	[[ -z $left ]] || ps -o pid,ppid,stat,cmd -p $left >&2
	[[ -z $left ]] || fail "forwarder processes left: $left"
}
