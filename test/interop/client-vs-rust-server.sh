#!/usr/bin/env bash
# Our generic ttRPC client (peerpodctl call) against ttrpc-rust 0.5's server (rust-hvserver), the
# kata-agent's library family: OK answers carry an explicit empty status (0a 00), unknown names
# are INVALID_ARGUMENT; golden payloads, empty answers, a 50 kB payload, server errors.
source "$(dirname "$0")/lib.sh"

need_peers all
need_ours peerpodctl

start rust-hvserver "$PEERS/rust-hvserver" -socket "$T/hv.sock" -pods-dir "$T/pods" -record "$T/record.jsonl"
wait_socket "$T/hv.sock" "$LAST_PID" rust-hvserver
UNKNOWN_CODE=3 UNKNOWN_METHOD_TEXT="/hypervisor.Hypervisor/NoSuchMethod does not exist"
UNKNOWN_SERVICE_TEXT="/no.Such/Version does not exist"
client_checks "$T/hv.sock" "$T/record.jsonl"
expect_call "grpc.Health/Version" "$(pb_str 1 1.0.0)$(pb_str 2 rust-hvserver)" "$T/hv.sock" grpc.Health Version ""
echo "client-vs-rust-server: all checks passed"
