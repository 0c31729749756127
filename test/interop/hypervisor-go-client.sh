#!/usr/bin/env bash
# The Go shim's hypervisor calls against our adaptor: go-hvclient (containerd's Go ttrpc, a new
# connection per call) drives Version, CreateVM, StartVM, StopVM and the documented errors
# (WIRE 2.2-2.4) on cloud-api-adaptor's local provider; after StartVM the agent socket must
# answer grpc.Health/Check through our forwarder to the Go stand-in agent.
source "$(dirname "$0")/lib.sh"

need_peers go
need_ours cloud-api-adaptor agent-protocol-forwarder

start_go_agent
start_adaptor
hv() { peer go-hvclient -socket "$HV_SOCK" "$@"; }

out=$(hv version) || fail "Version: $out"
expect_eq "Version" "$(jget "$out" .version)" "0.0.0"

# Errors the shim surfaces in pod events (code UNKNOWN = 2).
out=$(hv create -id "" -shim-annotations) && fail "CreateVM with empty id succeeded: $out"
expect_error "CreateVM empty id" "$out" 3 "empty sandbox id"

sid=$(new_sid)
out=$(hv create -id "$sid" -annotation io.kubernetes.cri.sandbox-namespace=default) &&
	fail "CreateVM without pod name succeeded: $out"
expect_error "CreateVM without pod name" "$out" 3 \
	"pod name io.kubernetes.cri.sandbox-name is missing in annotations"
out=$(hv create -id "$sid" -annotation io.kubernetes.cri.sandbox-name=nginx) &&
	fail "CreateVM without namespace succeeded: $out"
expect_error "CreateVM without namespace" "$out" 3 \
	"namespace name io.kubernetes.cri.sandbox-namespace is missing in annotations"

# StopVM of an unknown sandbox: OK (idempotent teardown) or the documented error, nothing else.
if ! out=$(hv stop -id "$sid"); then
	expect_error "StopVM unknown sandbox" "$out" 5 "sandbox $sid does not exist"
fi
out=$(hv start -id "$sid" -timeout 10s) && fail "StartVM of an unknown sandbox succeeded: $out"
expect_error "StartVM unknown sandbox" "$out" 5 "sandbox $sid does not exist"

# The shim's sequence, one call per connection.
out=$(hv create -id "$sid" -shim-annotations -name nginx -namespace default -netns /var/run/netns/cni-test) ||
	fail "CreateVM: $out"
agent_path=$(jget "$out" .agentSocketPath)
expect_eq "CreateVM agentSocketPath" "$agent_path" "$PODS_DIR/$sid/agent.ttrpc"

out=$(hv create -id "$sid" -shim-annotations) && fail "second CreateVM succeeded: $out"
expect_error "CreateVM twice" "$out" 6 "sandbox $sid already exists"

out=$(hv start -id "$sid" -timeout 600s) || fail "StartVM: $out"
pass "StartVM (600 s deadline)"
[[ -S $agent_path ]] || fail "StartVM answered but $agent_path is not a socket"
pass "agent socket listens when StartVM answers"

out=$(peer go-agentclient health -socket "$agent_path" -dial-timeout 5s) ||
	fail "grpc.Health/Check through adaptor and forwarder: $out"
pass "grpc.Health/Check through adaptor -> forwarder -> go-agent"
grep -q '"service":"grpc.Health","method":"Check"' "$T/agent-record.jsonl" ||
	fail "go-agent never saw the health check"

out=$(hv stop -id "$sid") || fail "StopVM: $out"
pass "StopVM"
out=$(hv start -id "$sid" -timeout 10s) && fail "StartVM after StopVM succeeded: $out"
expect_error "StopVM forgets the sandbox" "$out" 5 "sandbox $sid does not exist"

# The whole lifecycle again with a new sandbox, in the lifecycle helper.
sid2=$(new_sid)
out=$(hv lifecycle -id "$sid2" -check-agent) || fail "lifecycle: $out"
expect_eq "lifecycle calls" "$(jq -r .call <<<"$out" | tr '\n' ' ')" \
	"CreateVM StartVM grpc.Health/Check StopVM "

alive "$ADAPTOR_PID" cloud-api-adaptor
check_codes
alive "$AGENT_PID" go-agent
echo "hypervisor-go-client: all checks passed"
