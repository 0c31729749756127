#!/usr/bin/env bash
# The third-party peers checked against each other and against WIRE 1.10's golden frames, so that
# the other interop tests rest on witnesses that are known to speak the format (no programs of
# ours involved): Go ttrpc client and server byte for byte, ttrpc-rust's server answers, the
# shims' connection patterns (Go: a connection per call; runtime-rs: one connection, ids 1, 3, 5,
# StopVM 1 s), and the agent-path checker passing through a reference relay and failing without
# the rewrites.
source "$(dirname "$0")/lib.sh"

need_peers all

peer go-golden || fail "Go ttrpc does not match the golden frames"
pass "Go ttrpc client and server = WIRE 1.10 golden frames"

start go-hvserver "$PEERS/go-hvserver" -socket "$T/go-hv.sock" -pods-dir "$T/pods" -record "$T/go-hv.jsonl"
wait_socket "$T/go-hv.sock" "$LAST_PID" go-hvserver
start rust-hvserver "$PEERS/rust-hvserver" -socket "$T/rust-hv.sock" -pods-dir "$T/pods" -record "$T/rust-hv.jsonl"
wait_socket "$T/rust-hv.sock" "$LAST_PID" rust-hvserver

peer go-golden -server "$T/rust-hv.sock" || fail "ttrpc-rust server answers to golden requests"
pass "ttrpc-rust server answers golden requests"

# runtime-rs pattern, recorded by the Go server.
sid=$(new_sid)
out=$(peer rust-hvclient -socket "$T/go-hv.sock" -metadata k=v lifecycle -id "$sid") || fail "rust-hvclient: $out"
expect_eq "rust-hvclient calls" "$(jq -r .method "$T/go-hv.jsonl" | tr '\n' ' ')" "CreateVM StartVM StopVM "
expect_eq "rust-hvclient stream ids" "$(jq -r .stream_id "$T/go-hv.jsonl" | tr '\n' ' ')" "1 3 5 "
expect_eq "rust-hvclient uses one connection" "$(jq -r .conn "$T/go-hv.jsonl" | sort -u | wc -l)" 1
expect_eq "rust-hvclient deadlines" "$(jq -r .timeout_nano "$T/go-hv.jsonl" | tr '\n' ' ')" "0 600000000000 1000000000 "
expect_eq "rust-hvclient metadata" "$(jq -c .metadata "$T/go-hv.jsonl" | sort -u)" '[["k","v"]]'

# Go shim pattern, recorded by the Rust server (which appends: drop the golden checks' requests).
: >"$T/rust-hv.jsonl"
out=$(peer go-hvclient -socket "$T/rust-hv.sock" lifecycle -id "$sid") || fail "go-hvclient: $out"
expect_eq "go-hvclient calls" "$(jq -r .method "$T/rust-hv.jsonl" | tr '\n' ' ')" "CreateVM StartVM StopVM "
expect_eq "go-hvclient stream ids" "$(jq -r .stream_id "$T/rust-hv.jsonl" | tr '\n' ' ')" "1 1 1 "
start_vm=$(jq -r 'select(.method=="StartVM").timeout_nano' "$T/rust-hv.jsonl")
((start_vm > 0 && start_vm <= 600000000000)) || fail "go-hvclient StartVM timeout_nano $start_vm"
pass "go-hvclient StartVM deadline 600 s"
expect_eq "go-hvclient CreateVM/StopVM without deadline" \
	"$(jq -r 'select(.method!="StartVM").timeout_nano' "$T/rust-hv.jsonl" | tr '\n' ' ')" "0 0 "

# The agent-path checker through a Go reference relay: passes with the rewrites, fails without.
start go-agent "$PEERS/go-agent" -socket "$T/agent.sock" -record "$T/agent.jsonl"
wait_socket "$T/agent.sock" "$LAST_PID" go-agent
start go-agentproxy "$PEERS/go-agentproxy" -listen "$T/proxy.sock" -upstream "$T/agent.sock"
wait_socket "$T/proxy.sock" "$LAST_PID" go-agentproxy
peer go-agentclient run -socket "$T/proxy.sock" -sent "$T/sent.jsonl" -metadata k=v >"$T/run.jsonl" ||
	fail "go-agentclient through go-agentproxy: $(tail -n 2 "$T/run.jsonl")"
peer go-agentclient verify -sent "$T/sent.jsonl" -recorded "$T/agent.jsonl" || fail "verify through the reference relay"
pass "agent-path checker accepts a correct relay"

start go-agent2 "$PEERS/go-agent" -socket "$T/agent2.sock" -record "$T/agent2.jsonl"
wait_socket "$T/agent2.sock" "$LAST_PID" go-agent2
peer go-agentclient run -socket "$T/agent2.sock" -sent "$T/sent2.jsonl" >/dev/null || fail "go-agentclient direct"
if out=$(peer go-agentclient verify -sent "$T/sent2.jsonl" -recorded "$T/agent2.jsonl"); then
	fail "verify accepted requests that were not rewritten"
fi
if ! grep -q 'dns entries reached the agent' <<<"$out" || ! grep -q 'network:/run/netns/podns' <<<"$out"; then
	fail "verify did not name the missing rewrites: $out"
fi
pass "agent-path checker rejects a relay without rewrites"
echo "peers: all checks passed"
