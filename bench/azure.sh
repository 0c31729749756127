#!/usr/bin/env bash
# bench/azure.sh [BUILD]: the azure provider against the local ARM mock (test/cloud/arm-mock.py)
# with 200 ms of latency on every call, Retry-After 1 and two InProgress polls per operation:
# ARM calls and wall time for one pod (CreateVM+StartVM until the agent is reachable through the
# VM's forwarder), then BENCH_AZ_PODS (50) pods at once through one connection (pp-bench pods):
# total wall time, per-pod wall time and ARM calls, and total / one-pod time (1 = perfect overlap).
# Stopping: one pod, then all N at once (DELETE + its operation polls). The mock, the 50 "VMs"
# (process-user-data + forwarder each) and the adaptor share this machine's cores.
# Results: bench/results/azure.json and a table on stdout. Exit 77 without python3-azure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 1
export PP_ROOT=$root PP_BUILD=$build
PODS_N=${BENCH_AZ_PODS:-50}
ONE_RUNS=${BENCH_AZ_RUNS:-3}
LATENCY_MS=${BENCH_AZ_LATENCY_MS:-200}
OUT=${BENCH_AZ_OUT:-$root/bench/results/azure.json}
# shellcheck source=test/cloud/azure_lib.bash
source "$root/test/cloud/azure_lib.bash"
need_azure_provider
say() { echo "bench: $*" >&2; }

start_standin
start_mock --latency-ms "$LATENCY_MS"
start_azure_adaptor -log-level warning

# ARM calls of a request log, by kind
classify='def kind: if (.path | test("oauth2")) then "token"
	elif .method == "PUT" then "put_vm"
	elif .method == "DELETE" then "delete_vm"
	elif (.path | test("/operations/")) then "poll"
	elif (.path | test("/networkInterfaces/")) then "get_nic"
	elif (.path | test("/publicIPAddresses/")) then "get_public_ip"
	elif (.path | test("/virtualMachines/[^/]+$")) then "get_vm"
	elif (.path | test("/vmSizes$")) then "vm_sizes"
	elif (.path | test("/virtualMachines$")) then "list_vms"
	elif (.path | test("^/vm/")) then "vm_imds"
	else "other" end;
	[.[] | select(kind != "vm_imds")] as $arm
	| {total: ($arm | length), by_kind: ($arm | group_by(kind) | map({key: (.[0] | kind), value: length}) | from_entries)}'

stop_all() {
	grep '^sid ' "$1" | cut -d' ' -f2 | xargs -r -P "$2" -I{} "$BIN/peerpodctl" --socket "$HV" stop {} >/dev/null
}

# ---- one pod at a time ----
ones=()
for ((r = 0; r < ONE_RUNS; r++)); do
	mock_post /_mock/reset '{}' >/dev/null
	one=$("$BIN/pp-bench" pods "$HV" 1 2>"$T/one.sids") || { cat "$T/one.sids"; fail "one pod"; }
	calls=$(mock_get /_mock/requests | jq -c "$classify")
	mock_post /_mock/reset '{}' >/dev/null
	t0=$(date +%s.%N)
	stop_all "$T/one.sids" 1
	stop_s=$(echo "$(date +%s.%N) - $t0" | bc)
	del_calls=$(mock_get /_mock/requests | jq -c "$classify")
	ones+=("$(jq -cn --argjson one "$one" --argjson calls "$calls" --argjson del "$del_calls" --arg stop "$stop_s" \
		'{wall_s: $one.total_s, arm_calls: $calls, stop_wall_s: ($stop | tonumber * 1000 | round / 1000), stop_arm_calls: $del}')")
	say "one pod, run $((r + 1)): $(jq -r .total_s <<<"$one") s, $(jq -r .total <<<"$calls") ARM calls"
done
assert_mock_empty

# ---- N pods at once ----
say "$PODS_N pods at once"
mock_post /_mock/reset '{}' >/dev/null
many=$("$BIN/pp-bench" pods "$HV" "$PODS_N" 2>"$T/many.sids") || { grep -v '^sid ' "$T/many.sids" | head; fail "$PODS_N pods"; }
mock_get /_mock/requests >"$T/many.log"
many_calls=$(jq -c "$classify" "$T/many.log")
# the ARM part alone: first request to the last NIC read (the provider has the address then)
arm_phase_s=$(jq '[.[] | select(.path | test("^/subscriptions/"))] | ((map(select(.path | test("/networkInterfaces/"))) | map(.time) | max) - (map(.time) | min)) * 1000 | round / 1000' "$T/many.log")
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$ADAPTOR_PID/status")
mock_post /_mock/reset '{}' >/dev/null
t0=$(date +%s.%N)
stop_all "$T/many.sids" "$PODS_N"
many_stop_s=$(echo "$(date +%s.%N) - $t0" | bc)
assert_mock_empty 120

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$(dirname "$OUT")"
printf '%s\n' "${ones[@]}" | jq -s --arg date "$now" --arg host "$(uname -srm), $(nproc) cores" \
	--argjson lat "$LATENCY_MS" --argjson many "$many" --argjson mc "$many_calls" \
	--argjson n "$PODS_N" --arg stop "$many_stop_s" --argjson rss "$rss_kib" --argjson arm "$arm_phase_s" '
	(map(.wall_s) | sort | .[length / 2 | floor]) as $one_s |
	{date: $date, machine: $host,
	 mock: {latency_ms_per_call: $lat, retry_after_s: 1, inprogress_polls_per_operation: 2,
	        vm_boot: "process-user-data + agent-protocol-forwarder per VM"},
	 one_pod: {runs: ., median_wall_s: $one_s},
	 concurrent_pods: {pods: $n, errors: $many.errors, total_wall_s: $many.total_s,
	   per_pod_p50_s: $many.p50_s, per_pod_max_s: $many.max_s,
	   arm_phase_wall_s: $arm, arm_calls: $mc, arm_calls_per_pod: (($mc.total / $n) * 100 | round / 100),
	   stop_all_wall_s: ($stop | tonumber * 1000 | round / 1000), adaptor_rss_mib: (($rss / 1024) * 10 | round / 10)},
	 overlap_ratio_total_over_one_pod: (($many.total_s / $one_s) * 100 | round / 100)}' >"$OUT"

jq -r '
 "| azure provider vs ARM mock (\(.mock.latency_ms_per_call) ms/call) | result |",
 "|---|---|",
 "| one pod: StartVM done (s, median of \(.one_pod.runs | length)) | \(.one_pod.median_wall_s) |",
 "| one pod: ARM calls (create) | \(.one_pod.runs[-1].arm_calls.total) \(.one_pod.runs[-1].arm_calls.by_kind | tostring) |",
 "| one pod: ARM calls (delete) | \(.one_pod.runs[-1].stop_arm_calls.total) \(.one_pod.runs[-1].stop_arm_calls.by_kind | tostring) |",
 "| \(.concurrent_pods.pods) pods at once: total (s) | \(.concurrent_pods.total_wall_s) (errors \(.concurrent_pods.errors)) |",
 "| \(.concurrent_pods.pods) pods: per pod p50 / max (s) | \(.concurrent_pods.per_pod_p50_s) / \(.concurrent_pods.per_pod_max_s) |",
 "| \(.concurrent_pods.pods) pods: ARM phase (first call to last NIC read, s) | \(.concurrent_pods.arm_phase_wall_s) |",
 "| \(.concurrent_pods.pods) pods: ARM calls per pod | \(.concurrent_pods.arm_calls_per_pod) |",
 "| total / one pod (1 = full overlap) | \(.overlap_ratio_total_over_one_pod) |",
 "| stopping all \(.concurrent_pods.pods) (s) | \(.concurrent_pods.stop_all_wall_s) |"
' "$OUT"
