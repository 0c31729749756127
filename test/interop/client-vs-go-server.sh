#!/usr/bin/env bash
# Our generic ttRPC client (peerpodctl call) against containerd's Go ttrpc server (go-hvserver):
# golden payloads, OK answers with the status omitted, empty answers, a 50 kB payload, server
# errors and the Go server's UNIMPLEMENTED for unknown names; the server records what arrived.
source "$(dirname "$0")/lib.sh"

need_peers go
need_ours peerpodctl

start go-hvserver "$PEERS/go-hvserver" -socket "$T/hv.sock" -pods-dir "$T/pods" -record "$T/record.jsonl"
wait_socket "$T/hv.sock" "$LAST_PID" go-hvserver
UNKNOWN_CODE=12 UNKNOWN_METHOD_TEXT="method NoSuchMethod" UNKNOWN_SERVICE_TEXT="service no.Such"
client_checks "$T/hv.sock" "$T/record.jsonl"

# A Go server answers OK with no status at all; the exact Version frame our client sent on a
# fresh connection without deadline or metadata must be the golden one.
first=$(head -n 1 "$T/record.jsonl")
if [[ $(jget "$first" .timeout_nano) == 0 && $(jget "$first" '.metadata|length') == 0 ]]; then
	expect_eq "Version frame = WIRE 1.10 golden" "$(jget "$first" .frame_hex)" \
		000000290000000101000a1568797065727669736f722e48797065727669736f72120756657273696f6e1a070a05302e302e30
fi
echo "client-vs-go-server: all checks passed"
