#!/usr/bin/env bash
# `make bench`: the adaptor's performance as ratios against baselines measured in the same run.
#   1. Version round trip on the hypervisor socket vs the Go ttRPC reference server.
#   2. Agent path (shim -> adaptor -> forwarder over mutual TLS -> agent) vs the same client
#      talking straight to the agent: 1 KiB round trip and 1 MiB CopyFile throughput.
#   3. 100 pods started at once with the local provider delayed 1 s each.
#   4. The adaptor's resident memory with those 100 pods running.
# Results: bench/results/latest.json (and a dated copy); a table on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin=$build/bin
N=${BENCH_CALLS:-20000}
PODS=${BENCH_PODS:-100}
t=$(mktemp -d "${TMPDIR:-/tmp}/pp-bench.XXXXXX")
export PROBE_PORT=$((40000 + RANDOM % 20000))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	pkill -TERM -f -- "-config $t/" 2>/dev/null || true
	sleep 0.5
	pkill -KILL -f -- "-config $t/" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT
wait_sock() { for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

say "building the Go reference peers"
PP_BUILD=$build bash "$root/test/interop/build.sh" >&2
go_hvserver=$build/interop/go-hvserver

# ---- 1. Version round trip ----
version_hex=0a05302e302e30
"$go_hvserver" -socket "$t/go-hv.sock" >"$t/go-hv.log" 2>&1 &
pids+=($!)
wait_sock "$t/go-hv.sock"
"$bin/agent-standin" --socket "$t/agent.sock" >"$t/agent.log" 2>&1 &
pids+=($!)
wait_sock "$t/agent.sock"
start_adaptor() {
	rm -f "$t/hv.sock"
	"$bin/cloud-api-adaptor" local -socket "$t/hv.sock" -pods-dir "$t/pods" -data-dir "$t/data" \
		-forwarder-port 15150 -local-agent-socket "$t/agent.sock" \
		-local-forwarder "$bin/agent-protocol-forwarder" -log-level warning "$@" \
		>>"$t/adaptor.log" 2>&1 &
	adaptor=$!
	pids+=($adaptor)
	wait_sock "$t/hv.sock"
}
start_adaptor
say "1/4 Version round trips ($N each)"
ours_version=$("$bin/pp-bench" rtt "$t/hv.sock" hypervisor.Hypervisor Version $version_hex "$N")
go_version=$("$bin/pp-bench" rtt "$t/go-hv.sock" hypervisor.Hypervisor Version $version_hex "$N")

# ---- 2. agent path ----
say "2/4 agent path: 1 KiB round trips and 1 MiB CopyFile"
sid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
sock=$("$bin/peerpodctl" --socket "$t/hv.sock" create "$sid" --pod bench --namespace bench)
"$bin/peerpodctl" --socket "$t/hv.sock" start "$sid" >/dev/null
proxy_rtt=$("$bin/pp-bench" rtt "$sock" grpc.AgentService ReadStdout @1024 "$N")
direct_rtt=$("$bin/pp-bench" rtt "$t/agent.sock" grpc.AgentService ReadStdout @1024 "$N")
COPY_TOTAL=$((512 << 20))
proxy_copy=$("$bin/pp-bench" copy "$sock" 1048576 $COPY_TOTAL)
direct_copy=$("$bin/pp-bench" copy "$t/agent.sock" 1048576 $COPY_TOTAL)
"$bin/peerpodctl" --socket "$t/hv.sock" stop "$sid" >/dev/null
kill -TERM "$adaptor"
wait "$adaptor" || true

# ---- 3. many pods at once ----
say "3/4 $PODS pods started at once, local provider delayed 1 s each"
start_adaptor -local-create-delay 1s
pods=$("$bin/pp-bench" pods "$t/hv.sock" "$PODS" 2>"$t/sids")

# ---- 4. memory ----
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$adaptor/status")
say "4/4 adaptor RSS with $PODS pods: $rss_kib KiB; stopping the pods"
grep '^sid ' "$t/sids" | cut -d' ' -f2 |
	xargs -P 16 -I{} "$bin/peerpodctl" --socket "$t/hv.sock" stop {} >/dev/null
left=$(find "$t/pods" -mindepth 1 -maxdepth 1 | wc -l)

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$root/bench/results"
jq -n --arg date "$now" --arg host "$(uname -srm), $(nproc) cores" \
	--argjson ours_version "$ours_version" --argjson go_version "$go_version" \
	--argjson proxy_rtt "$proxy_rtt" --argjson direct_rtt "$direct_rtt" \
	--argjson proxy_copy "$proxy_copy" --argjson direct_copy "$direct_copy" \
	--argjson pods "$pods" --argjson rss_kib "$rss_kib" --argjson left "$left" '{
  date: $date, machine: $host,
  version_roundtrip: {adaptor: $ours_version, go_reference: $go_version,
    p50_ratio: ($ours_version.p50_us / $go_version.p50_us),
    calls_per_s_ratio: ($ours_version.calls_per_s / $go_version.calls_per_s)},
  agent_1k_roundtrip: {through_proxy: $proxy_rtt, direct: $direct_rtt,
    added_p50_us: ($proxy_rtt.p50_us - $direct_rtt.p50_us),
    p50_ratio: ($proxy_rtt.p50_us / $direct_rtt.p50_us)},
  agent_copyfile_1mib: {through_proxy: $proxy_copy, direct: $direct_copy,
    throughput_ratio: ($proxy_copy.mib_per_s / $direct_copy.mib_per_s)},
  concurrent_pods: $pods,
  adaptor_rss_mib_with_pods: ($rss_kib / 1024), sandboxes_left_after_stop: $left
}' >"$root/bench/results/latest.json"
cp "$root/bench/results/latest.json" "$root/bench/results/${now%%T*}.json"
bash "$root/bench/table.sh" "$root/bench/results/latest.json"
