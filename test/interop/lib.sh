# Shared helpers of the interop test scripts (sourced, not run). Each script gets a private temp
# dir, starts its processes in their own sessions and stops them (and only them) on exit.
# Exit codes: 0 pass, 1 fail, 77 skip.

set -uo pipefail

PP_ROOT=${PP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PP_BUILD=${PP_BUILD:-$PP_ROOT/build}
PEERS=$PP_BUILD/interop
BIN=$PP_BUILD/bin
T=$(mktemp -d "${TMPDIR:-/tmp}/pp-interop.XXXXXX")
PIDS=()
NAMES=()

cleanup() {
	local rc=$?
	local i
	for i in "${!PIDS[@]}"; do
		# The session (setsid) takes the children too; the pid itself in case it is no leader.
		kill -TERM -- "-${PIDS[$i]}" 2>/dev/null || kill -TERM "${PIDS[$i]}" 2>/dev/null
	done
	for i in "${!PIDS[@]}"; do
		local n=0
		while kill -0 "${PIDS[$i]}" 2>/dev/null && ((n < 50)); do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL -- "-${PIDS[$i]}" 2>/dev/null || kill -KILL "${PIDS[$i]}" 2>/dev/null
		wait "${PIDS[$i]}" 2>/dev/null
	done
	# The local provider's forwarders run in sessions of their own, like VMs outlive the
	# adaptor: end those of this test's data directory explicitly.
	pkill -TERM -f -- "-config $T/data/local/" 2>/dev/null && sleep 0.2
	pkill -KILL -f -- "-config $T/data/local/" 2>/dev/null
	if ((rc != 0 && rc != 77)); then
		for i in "${!NAMES[@]}"; do
			echo "---- last lines of ${NAMES[$i]}.log"
			tail -n 25 "$T/${NAMES[$i]}.log" 2>/dev/null
		done
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	exit 1
}

skip() {
	echo "skip: $*"
	exit 77
}

pass() { echo "ok: $*"; }

# peer NAME ARGS...: run a client peer, bounded so that a hung server fails the test quickly.
CALL_LIMIT=${PP_INTEROP_CALL_LIMIT:-120}
peer() { timeout -k 5 "$CALL_LIMIT" "$PEERS/$1" "${@:2}"; }

# need_peers [all|go|rust]: build (or reuse) the third-party peers.
need_peers() {
	bash "$PP_ROOT/test/interop/build.sh" "${1:-all}"
	local rc=$?
	((rc == 77)) && skip "interop peers cannot be built here"
	((rc == 0)) || fail "building the interop peers failed (exit $rc)"
}

# need_ours NAME...: our programs must have been built by `make`.
need_ours() {
	local b
	for b in "$@"; do
		[[ -x $BIN/$b ]] || skip "$BIN/$b not built (run make first)"
	done
}

# start NAME CMD...: run CMD in its own session, output in $T/NAME.log; sets LAST_PID.
start() {
	local name=$1
	shift
	setsid "$@" >"$T/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	NAMES+=("$name")
}

# alive PID NAME: fail when a started process has died.
alive() {
	kill -0 "$1" 2>/dev/null || fail "$2 exited early"
}

# wait_socket PATH PID NAME [SECONDS]: wait until PATH is a listening socket.
wait_socket() {
	local path=$1 pid=$2 name=$3 limit=${4:-20}
	local n=0
	while ! [[ -S $path ]]; do
		alive "$pid" "$name"
		((n >= limit * 10)) && fail "$name did not create $path within ${limit}s"
		sleep 0.1
		n=$((n + 1))
	done
	sleep 0.2 # bind() creates the file just before listen()
}

# new_sid: a random sandbox id (64 lowercase hex digits).
new_sid() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# jget JSON FILTER: one value from a JSON text.
jget() { jq -r "$2" <<<"$1"; }

# expect_eq WHAT GOT WANT
expect_eq() {
	[[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
	pass "$1"
}

# expect_error WHAT JSON CODE MESSAGE: a failed call's JSON line carries the adaptor's documented
# message (WIRE 2.3) and the status code the issue specifies: INVALID_ARGUMENT (3) for a bad
# request, NOT_FOUND (5) for an unknown sandbox, ALREADY_EXISTS (6) for a duplicate. Shims treat
# any non-zero code as failure and show the message, which matches the Go adaptor's exactly.
# Wrong codes are collected in CODE_ERRORS so the remaining checks still run.
CODE_ERRORS=()
expect_error() {
	expect_eq "$1" "$(jget "$2" .message)" "$4"
	local code
	code=$(jget "$2" .code)
	[[ $code == "$3" ]] || CODE_ERRORS+=("$1: code $code, want $3")
}

check_codes() {
	((${#CODE_ERRORS[@]} == 0)) && return 0
	printf '  %s\n' "${CODE_ERRORS[@]}"
	fail "${#CODE_ERRORS[@]} adaptor errors carry another status code than expected"
}

# hex_of TEXT: the bytes of TEXT in lowercase hex.
hex_of() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

# pb_str FIELD TEXT: a protobuf string field (TEXT shorter than 128 bytes) in hex.
pb_str() {
	local len=${#2}
	((len < 128)) || fail "pb_str: text too long"
	printf '%02x%02x%s' $((($1 << 3) | 2)) "$len" "$(hex_of "$2")"
}

# start_adaptor: our adaptor with the local provider, agent requests going through our
# forwarder to $T/agent.sock. Sets HV_SOCK, PODS_DIR and ADAPTOR_PID.
start_adaptor() {
	HV_SOCK=$T/hypervisor.sock
	export PROBE_PORT=$((40000 + RANDOM % 20000))
	PODS_DIR=$T/pods
	mkdir -p "$T/data"
	start adaptor "$BIN/cloud-api-adaptor" local -socket "$HV_SOCK" -pods-dir "$PODS_DIR" \
		-data-dir "$T/data" -local-agent-socket "$T/agent.sock" \
		-forwarder-port "$((20000 + RANDOM % 20000))" \
		-local-forwarder "$BIN/agent-protocol-forwarder"
	ADAPTOR_PID=$LAST_PID
	wait_socket "$HV_SOCK" "$ADAPTOR_PID" "cloud-api-adaptor"
}

# start_go_agent: the Go stand-in agent on $T/agent.sock, recording to $T/agent-record.jsonl.
start_go_agent() {
	start go-agent "$PEERS/go-agent" -socket "$T/agent.sock" -record "$T/agent-record.jsonl"
	AGENT_PID=$LAST_PID
	wait_socket "$T/agent.sock" "$AGENT_PID" go-agent
}

echo "interop: temp dir $T, build $PP_BUILD"

# varint N: protobuf varint of N in hex.
varint() {
	local v=$1 out=""
	while ((v >= 128)); do
		out+=$(printf '%02x' $(((v & 127) | 128)))
		v=$((v >> 7))
	done
	printf '%s%02x' "$out" "$v"
}

# pb_field FIELD HEX: a length-delimited protobuf field around HEX bytes.
pb_field() { printf '%s%s%s' "$(varint $((($1 << 3) | 2)))" "$(varint $((${#2} / 2)))" "$2"; }

# ctl_call SOCKET SERVICE METHOD PAYLOAD_HEX: our generic client; sets CALL_OUT and CALL_RC.
ctl_call() {
	CALL_OUT=$(timeout -k 5 "$CALL_LIMIT" "$BIN/peerpodctl" call --address "$1" --service "$2" --method "$3" --payload-hex "$4" 2>&1)
	CALL_RC=$?
}

# expect_call WHAT WANT_HEX SOCKET SERVICE METHOD PAYLOAD_HEX: the call succeeds with WANT_HEX.
expect_call() {
	local what=$1 want=$2
	shift 2
	ctl_call "$@"
	((CALL_RC == 0)) || fail "$what: exit $CALL_RC: $CALL_OUT"
	local got
	got=$(tr -d ' \n' <<<"$CALL_OUT")
	[[ $got == "$want" ]] || fail "$what: response '$got', want '$want'"
	pass "$what"
}

# expect_call_error WHAT CODE SOCKET SERVICE METHOD PAYLOAD_HEX: the call fails with status CODE.
expect_call_error() {
	local what=$1 code=$2
	shift 2
	ctl_call "$@"
	((CALL_RC != 0)) || fail "$what: succeeded ($CALL_OUT), want status $code"
	local names=(OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS
		PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED
		INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED)
	grep -qwE -- "$code|${names[$code]}" <<<"$CALL_OUT" ||
		fail "$what: output does not name status $code (${names[$code]}): $CALL_OUT"
	if [[ -n ${WANT_MESSAGE:-} ]]; then
		grep -qF -- "$WANT_MESSAGE" <<<"$CALL_OUT" || fail "$what: output lacks '$WANT_MESSAGE': $CALL_OUT"
	fi
	pass "$what (status $code ${names[$code]})"
}

# client_checks SOCKET RECORD: our peerpodctl against a third-party hypervisor server.
client_checks() {
	local sock=$1 record=$2
	local version_req version_resp
	version_req=$(pb_str 1 0.0.0)
	version_resp=$version_req
	expect_call "Version" "$version_resp" "$sock" hypervisor.Hypervisor Version "$version_req"
	local first
	first=$(head -n 1 "$record")
	expect_eq "recorded Version service" "$(jget "$first" .service)" hypervisor.Hypervisor
	expect_eq "recorded Version method" "$(jget "$first" .method)" Version
	expect_eq "recorded Version payload" "$(jget "$first" .payload_hex)" "$version_req"
	expect_eq "first call of a connection uses stream 1" "$(jget "$first" .stream_id)" 1

	# Golden CreateVM payload (WIRE 1.10) and its answer.
	local create_req
	create_req=$(pb_str 1 abc)$(pb_field 2 "$(pb_str 1 io.kubernetes.cri.sandbox-name)$(pb_str 2 nginx)")$(pb_str 3 /var/run/netns/x)
	expect_eq "CreateVM payload = WIRE 1.10 golden" "$create_req" \
		0a0361626312270a1e696f2e6b756265726e657465732e6372692e73616e64626f782d6e616d6512056e67696e781a102f7661722f72756e2f6e65746e732f78
	expect_call "CreateVM" "$(pb_str 1 "$T/pods/abc/agent.ttrpc")" "$sock" hypervisor.Hypervisor CreateVM "$create_req"
	expect_call "StartVM (empty answer)" "" "$sock" hypervisor.Hypervisor StartVM "$(pb_str 1 abc)"
	expect_call "StopVM (empty answer)" "" "$sock" hypervisor.Hypervisor StopVM "$(pb_str 1 abc)"
	expect_call "grpc.Health/Check" "0801" "$sock" grpc.Health Check ""

	# A 50 000-byte id: multi-byte lengths in request and answer.
	local long
	long=$(printf 'a%.0s' $(seq 50000))
	expect_call "CreateVM with a 50 kB id" "$(pb_field 1 "$(hex_of "$T/pods/$long/agent.ttrpc")")" \
		"$sock" hypervisor.Hypervisor CreateVM "$(pb_field 1 "$(hex_of "$long")")"
	grep -q "\"payload_hex\":\"$(pb_field 1 "$(hex_of "$long")")\"" "$record" ||
		fail "the server did not record the long CreateVM payload unchanged"
	pass "long payload arrived unchanged"

	WANT_MESSAGE="empty sandbox id" expect_call_error "server error is reported" 2 "$sock" hypervisor.Hypervisor CreateVM ""
	WANT_MESSAGE=$UNKNOWN_METHOD_TEXT expect_call_error "unknown method" "$UNKNOWN_CODE" "$sock" hypervisor.Hypervisor NoSuchMethod ""
	WANT_MESSAGE=$UNKNOWN_SERVICE_TEXT expect_call_error "unknown service" "$UNKNOWN_CODE" "$sock" no.Such Version ""

	out=$(timeout -k 5 "$CALL_LIMIT" "$BIN/peerpodctl" --socket "$sock" version 2>&1) || fail "peerpodctl version: $out"
	grep -q '0\.0\.0' <<<"$out" || fail "peerpodctl version did not print 0.0.0: $out"
	pass "peerpodctl version"
}
