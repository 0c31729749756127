#!/usr/bin/env bash
# runtime-rs's hypervisor calls against our adaptor: rust-hvclient (ttrpc-rust 0.5) keeps ONE
# connection for CreateVM, StartVM and StopVM (stream ids 1, 3, 5), StopVM with a 1 s deadline
# (WIRE 2.4), default_vcpus as a float ("1.5"). After StartVM the agent socket must answer
# grpc.Health/Check through our forwarder.
source "$(dirname "$0")/lib.sh"

need_peers all
need_ours cloud-api-adaptor agent-protocol-forwarder

start_go_agent
start_adaptor
hv() { peer rust-hvclient -socket "$HV_SOCK" "$@"; }

out=$(hv version) || fail "Version: $out"
expect_eq "Version" "$(jget "$out" .version)" "0.0.0"

sid=$(new_sid)
out=$(hv start -id "$sid" -timeout 5s) && fail "StartVM of an unknown sandbox succeeded: $out"
expect_error "StartVM unknown sandbox" "$out" 5 "sandbox $sid does not exist"

out=$(hv lifecycle -id "$sid" -name nginx -namespace default -timeout 600s -check-agent) ||
	fail "lifecycle on one connection: $out"
expect_eq "lifecycle calls" "$(jq -r .call <<<"$out" | tr '\n' ' ')" \
	"CreateVM StartVM grpc.Health/Check StopVM "
expect_eq "CreateVM agentSocketPath" "$(jq -r 'select(.call=="CreateVM").agentSocketPath' <<<"$out")" \
	"$PODS_DIR/$sid/agent.ttrpc"
pass "StopVM answered within its 1 s deadline"

out=$(hv start -id "$sid" -timeout 10s) && fail "StartVM after StopVM succeeded: $out"
expect_error "StopVM forgets the sandbox" "$out" 5 "sandbox $sid does not exist"

# runtime-rs may send CRI-O style names; the adaptor takes the pod name from k8s_<pod>_<ns>_...
sid2=$(new_sid)
out=$(hv lifecycle -id "$sid2" -name k8s_nginx_default_0b7c_0 -namespace default) ||
	fail "lifecycle with a CRI-O sandbox name: $out"
pass "lifecycle with a CRI-O sandbox name"

alive "$ADAPTOR_PID" cloud-api-adaptor
check_codes
echo "hypervisor-rust-client: all checks passed"
