#!/usr/bin/env bash
# `make demo`: run one pod's life on this machine with the embedded default provider (local:
# the pod "VM" is an agent-protocol-forwarder process on its own loopback address, talking
# mutual TLS), with an agent stand-in behind it. Everything lives in a scratch directory.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
bin=$build/bin
t=$(mktemp -d "${TMPDIR:-/tmp}/pp-demo.XXXXXX")
export PROBE_PORT=$((40000 + RANDOM % 20000))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	pkill -TERM -f -- "-config $t/data/local/" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
wait_sock() { for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "no socket $1" >&2; return 1; }

step "agent stand-in (plays the kata-agent) on $t/agent.sock"
"$bin/agent-standin" --socket "$t/agent.sock" --record "$t/agent.jsonl" >"$t/agent.log" 2>&1 &
pids+=($!)
wait_sock "$t/agent.sock"

step "cloud-api-adaptor local (mutual TLS to each pod's forwarder)"
"$bin/cloud-api-adaptor" local -socket "$t/hypervisor.sock" -pods-dir "$t/pods" \
	-data-dir "$t/data" -forwarder-port 15150 -local-agent-socket "$t/agent.sock" \
	-local-forwarder "$bin/agent-protocol-forwarder" 2>&1 | sed 's/^/    adaptor| /' &
pids+=($!)
wait_sock "$t/hypervisor.sock"
ctl() { "$bin/peerpodctl" --socket "$t/hypervisor.sock" "$@"; }

step "peerpodctl lifecycle: CreateVM, StartVM, agent Health.Check through the proxy, StopVM"
ctl lifecycle --pod demo --namespace default

sid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
step "a pod step by step (sandbox $sid)"
sock=$(ctl create "$sid" --pod nginx --namespace default)
echo "agent socket: $sock"
ctl start "$sid"
ctl info --pod nginx --namespace default
a() { "$bin/peerpodctl" agent --agent-socket "$sock" "$@"; }
a health
a create-sandbox --sandbox-id "$sid" --hostname nginx --dns "nameserver 10.96.0.10"
a create-container --id pause --sandbox-id "$sid"
a start-container --id pause
a destroy-sandbox
ctl stop "$sid"

step "what the agent received (the forwarder cleared dns and added the pod network namespace)"
jq -c '{method, bytes: (.payload_hex | length / 2)}' "$t/agent.jsonl"
step "left behind: $(find "$t/pods" "$t/data/local" -mindepth 1 2>/dev/null | wc -l) files"
