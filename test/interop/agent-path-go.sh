#!/usr/bin/env bash
# The agent protocol end to end through our programs: go-agentclient (the Go shim's calls, one
# connection, the shim's deadlines, metadata) -> our adaptor's agent socket -> our forwarder ->
# go-agent (containerd's Go ttrpc), which records every Request as it arrived. Checks (WIRE 3, 4.1):
# CreateSandbox reaches the agent without dns, CreateContainer with
# {Type:"network", Path:"/run/netns/podns"} appended to OCI.Linux.Namespaces and every other field
# kept (unknown fields, packed AdditionalGids, devices, string_user, ports), every other request
# byte-identical, metadata unchanged, deadlines passed on (never longer, none added), and agent
# errors returned with their status.
source "$(dirname "$0")/lib.sh"

need_peers go
need_ours cloud-api-adaptor agent-protocol-forwarder

start_go_agent
start_adaptor
sid=$(new_sid)
out=$(peer go-hvclient -socket "$HV_SOCK" create -id "$sid" -shim-annotations) || fail "CreateVM: $out"
agent_path=$(jget "$out" .agentSocketPath)
out=$(peer go-hvclient -socket "$HV_SOCK" start -id "$sid") || fail "StartVM: $out"
pass "sandbox created and started"

peer go-agentclient run -socket "$agent_path" -sid "$sid" -sent "$T/sent.jsonl" \
	-metadata k=v -metadata k=w -metadata traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \
	-copy-size 1572864 >"$T/run.jsonl" 2>&1 || fail "agent calls through the proxy path: $(tail -n 3 "$T/run.jsonl")"
pass "$(wc -l <"$T/sent.jsonl") agent calls answered through adaptor and forwarder"

peer go-agentclient verify -sent "$T/sent.jsonl" -recorded "$T/agent-record.jsonl" ||
	fail "what the agent received differs from what the client sent"
pass "agent received exactly the expected requests"

out=$(peer go-hvclient -socket "$HV_SOCK" stop -id "$sid") || fail "StopVM: $out"
pass "StopVM"
out=$(peer go-agentclient health -socket "$agent_path" -dial-timeout 0 2>&1) &&
	fail "the agent socket still answers after StopVM: $out"
pass "agent socket closed by StopVM"

alive "$ADAPTOR_PID" cloud-api-adaptor
alive "$AGENT_PID" go-agent
echo "agent-path-go: all checks passed"
