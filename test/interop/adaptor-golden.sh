#!/usr/bin/env bash
# Our ttRPC servers against WIRE 1.10's golden frames, sent as raw bytes. The adaptor's hypervisor
# socket: exact answers, Go-style error texts for unknown names, oversized frames answered on
# their stream with the connection kept, stream-id rules, unknown frame types ignored (WIRE 1.3,
# 1.4, 1.7). A sandbox's agent socket: the golden grpc.Health/Check through adaptor and forwarder.
source "$(dirname "$0")/lib.sh"

need_peers go
need_ours cloud-api-adaptor agent-protocol-forwarder

start_go_agent
start_adaptor
peer go-golden -server "$HV_SOCK" -strict -health=false || fail "hypervisor socket answers differ from WIRE 1"
pass "hypervisor socket answers golden frames"

sid=$(new_sid)
out=$(peer go-hvclient -socket "$HV_SOCK" create -id "$sid" -shim-annotations) || fail "CreateVM: $out"
agent_path=$(jget "$out" .agentSocketPath)
out=$(peer go-hvclient -socket "$HV_SOCK" start -id "$sid") || fail "StartVM: $out"
peer go-golden -server "$agent_path" -hypervisor=false || fail "agent socket answers differ from WIRE 1"
pass "agent socket answers the golden health check"
out=$(peer go-hvclient -socket "$HV_SOCK" stop -id "$sid") || fail "StopVM: $out"

alive "$ADAPTOR_PID" cloud-api-adaptor
echo "adaptor-golden: all checks passed"
