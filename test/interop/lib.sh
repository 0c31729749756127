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
		kill -TERM -- "-${PIDS[$i]}" 2>/dev/null
	done
	for i in "${!PIDS[@]}"; do
		local n=0
		while kill -0 "${PIDS[$i]}" 2>/dev/null && ((n < 50)); do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL -- "-${PIDS[$i]}" 2>/dev/null
		wait "${PIDS[$i]}" 2>/dev/null
	done
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

# need_peers [all|go|rust]: build (or reuse) the third-party peers.
need_peers() {
	"$PP_ROOT/test/interop/build.sh" "${1:-all}"
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

# hex_of TEXT: the bytes of TEXT in lowercase hex.
hex_of() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

# pb_str FIELD TEXT: a protobuf string field (TEXT shorter than 128 bytes) in hex.
pb_str() {
	local len=${#2}
	((len < 128)) || fail "pb_str: text too long"
	printf '%02x%02x%s' $((($1 << 3) | 2)) "$len" "$(hex_of "$2")"
}

# start_adaptor NAME: our adaptor with the local provider, agent requests going through our
# forwarder to $T/agent.sock. Sets HV_SOCK, PODS_DIR and ADAPTOR_PID.
start_adaptor() {
	HV_SOCK=$T/hypervisor.sock
	PODS_DIR=$T/pods
	mkdir -p "$T/data"
	start "${1:-adaptor}" "$BIN/cloud-api-adaptor" local -socket "$HV_SOCK" -pods-dir "$PODS_DIR" \
		-data-dir "$T/data" -local-agent-socket "$T/agent.sock" \
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
