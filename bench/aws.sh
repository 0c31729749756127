#!/usr/bin/env bash
# bench/aws.sh [BUILD]: the aws provider's costs, each against a baseline measured in the same run.
#   1. SigV4: `pp-bench sigv4 N` signatures/s next to the plain OpenSSL HMAC-SHA256 rate.
#   2. One pod against the EC2 mock with BENCH_AWS_LATENCY_MS (200) per EC2 call: EC2 calls
#      and wall time of StartVM and StopVM (median of BENCH_AWS_RUNS).
#   3. BENCH_AWS_PODS (50) pods created+started at once through the adaptor: total wall time
#      against one pod's, EC2 calls, and that every instance is gone after the stops.
# Pod VMs boot for real (process-user-data + forwarder on 127.2.x.y) as in test/cloud.
# Results: bench/results/aws.json and a table on stdout.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 1
bin=$build/bin
PY=${PYTHON:-/usr/bin/python3}
N_SIG=${BENCH_SIGV4:-200000}
PODS=${BENCH_AWS_PODS:-50}
LAT=${BENCH_AWS_LATENCY_MS:-200}
RUNS=${BENCH_AWS_RUNS:-3}
OUT=${BENCH_AWS_OUT:-$root/bench/results/aws.json}
"$PY" -c 'import botocore' 2>/dev/null || { echo "skip: $PY cannot import botocore"; exit 77; }
t=$(mktemp -d "${TMPDIR:-/tmp}/pp-bench-aws.XXXXXX")
export PROBE_PORT=$((40000 + RANDOM % 20000))
FWD_PORT=$((20000 + RANDOM % 20000))
adaptor= mock= standin=
say() { echo "bench: $*" >&2; }
die() { echo "bench: FAIL: $*" >&2; tail -n 20 "$t/adaptor.log" >&2 2>/dev/null; exit 1; }
cleanup() {
	[[ -n $adaptor ]] && kill -TERM "$adaptor" 2>/dev/null && wait "$adaptor" 2>/dev/null
	if [[ -n $mock ]]; then
		kill -TERM "$mock" 2>/dev/null
		for _ in $(seq 400); do kill -0 "$mock" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$mock" 2>/dev/null
		wait "$mock" 2>/dev/null
	fi
	for p in $(pgrep -f -- "-config $t/vms/" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	[[ -n $standin ]] && kill -TERM "$standin" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
wait_sock() { for _ in $(seq 400); do [[ -S $1 ]] && return 0; sleep 0.05; done; die "no socket $1"; }
ctl() { "$bin/peerpodctl" --socket "$t/hv.sock" "$@"; }
q() { "$PY" "$root/test/cloud/aws_q.py" "$MOCK" q "$1"; }
mockctl() { "$PY" "$root/test/cloud/aws_q.py" "$MOCK" json "$@" >/dev/null; }
now() { echo "$EPOCHREALTIME"; }
EC2_CALLS='len([e for e in ec2 if e["status"] == 200])'

# ---- 1. SigV4 ----
say "1/3 SigV4: $N_SIG signatures and as many HMAC-SHA256"
sig=$("$bin/pp-bench" sigv4 "$N_SIG") || die "pp-bench sigv4"
jq -e . >/dev/null 2>&1 <<<"$sig" || sig=$(jq -Rn --arg s "$sig" '{raw: $s}')

# ---- mock + adaptor ----
"$bin/agent-standin" --socket "$t/agent.sock" >"$t/agent.log" 2>&1 &
standin=$!
wait_sock "$t/agent.sock"
"$PY" "$root/test/cloud/ec2-mock.py" --port-file "$t/mock.port" --ec2-latency-ms "$LAT" \
	--process-user-data "$bin/process-user-data" --forwarder "$bin/agent-protocol-forwarder" \
	--agent-socket "$t/agent.sock" --forwarder-port "$FWD_PORT" --vm-dir "$t/vms" \
	>"$t/mock.log" 2>&1 &
mock=$!
for _ in $(seq 200); do [[ -s $t/mock.port ]] && break; sleep 0.05; done
[[ -s $t/mock.port ]] || die "mock did not start"
MOCK=http://127.0.0.1:$(cat "$t/mock.port")
env -u AWS_PROFILE -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE -u AWS_SESSION_TOKEN \
	AWS_ENDPOINT_URL="$MOCK" AWS_EC2_METADATA_SERVICE_ENDPOINT="$MOCK" \
	AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent NODE_NAME=bench-node \
	AWS_ACCESS_KEY_ID=AKIAMOCKSTATIC000001 \
	AWS_SECRET_ACCESS_KEY=mock/static/secret/key/0000000000000000 \
	"$bin/cloud-api-adaptor" aws -socket "$t/hv.sock" -pods-dir "$t/pods" -data-dir "$t/data" \
	-forwarder-port "$FWD_PORT" -imageid ami-0123456789abcdef0 -aws-region us-east-2 \
	-subnetid subnet-0a1b2c3d4e5f60718 -securitygroupids sg-0123456789abcdef0 \
	-log-level warning >"$t/adaptor.log" 2>&1 &
adaptor=$!
wait_sock "$t/hv.sock"

# ---- 2. one pod ----
say "2/3 one pod, ${LAT} ms per EC2 call, $RUNS runs"
one=()
for ((r = 1; r <= RUNS; r++)); do
	mockctl /_mock/reset '{}'
	sid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	t0=$(now)
	ctl create "$sid" --pod "one-$r" --namespace bench >/dev/null || die "create"
	ctl start "$sid" >/dev/null || die "start"
	t1=$(now)
	start_calls=$(q "$EC2_CALLS")
	ctl stop "$sid" >/dev/null || die "stop"
	t2=$(now)
	all_calls=$(q "$EC2_CALLS")
	one+=("$(jq -n --argjson s "$(bc <<<"$t1 - $t0")" --argjson p "$(bc <<<"$t2 - $t1")" \
		--argjson sc "$start_calls" --argjson ac "$all_calls" \
		'{start_s: $s, stop_s: $p, ec2_calls_start: $sc, ec2_calls_stop: ($ac - $sc)}')")
done
one_json=$(printf '%s\n' "${one[@]}" | jq -s '{runs: ., median_start_s: (map(.start_s) | sort | .[length/2|floor]),
  median_stop_s: (map(.stop_s) | sort | .[length/2|floor]),
  ec2_calls_start: (map(.ec2_calls_start) | max), ec2_calls_stop: (map(.ec2_calls_stop) | max)}')

# ---- 3. many pods at once ----
say "3/3 $PODS pods created+started at once"
mockctl /_mock/reset '{}'
pods=$("$bin/pp-bench" pods "$t/hv.sock" "$PODS" 2>"$t/sids") || die "pp-bench pods: $(tail -n 3 "$t/sids")"
calls_start=$(q "$EC2_CALLS")
throttled=$(q 'len([e for e in ec2 if e["status"] != 200])')
# RunInstances answered first to last: near the latency if the provider calls EC2 concurrently
# most RunInstances in flight at once at the mock
run_conc=$(q 'max([sum(1 for f in r if f["t_arrival"] <= e["t_arrival"] < f["t"]) for e in r] or [0]) if (r := [e for e in ec2 if e["action"] == "RunInstances"]) else 0')
run_span=$(q 'round(max(ts) - min(ts), 3) if (ts := [e["t"] for e in ec2 if e["action"] == "RunInstances"]) else 0')
t0=$(now)
grep '^sid ' "$t/sids" | cut -d' ' -f2 | xargs -P 16 -I{} "$bin/peerpodctl" --socket "$t/hv.sock" stop {} >/dev/null ||
	die "stops"
t1=$(now)
calls_all=$(q "$EC2_CALLS")
for _ in $(seq 100); do
	left=$(q 'len([i for i in state["instances"] if i["state"] not in ("terminated", "shutting-down")])')
	[[ $left == 0 ]] && break
	sleep 0.1
done

date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$(dirname "$OUT")"
jq -n --arg date "$date" --arg host "$(uname -srm), $(nproc) cores" --argjson sig "$sig" \
	--argjson one "$one_json" --argjson pods "$pods" --argjson lat "$LAT" \
	--argjson cs "$calls_start" --argjson ca "$calls_all" --argjson left "$left" \
	--argjson errs "$throttled" --argjson span "$run_span" --argjson conc "$run_conc" --argjson stop_s "$(bc <<<"$t1 - $t0")" '{
  date: $date, machine: $host,
  sigv4: $sig,
  ec2_latency_ms_per_call: $lat,
  one_pod: $one,
  concurrent: ($pods + {ec2_calls_start: $cs, ec2_calls_stop: ($ca - $cs), ec2_non_200: $errs,
    run_instances_first_to_last_s: $span, run_instances_max_in_flight: $conc,
    stop_all_s: $stop_s, instances_left: $left,
    total_vs_one_pod: (($pods.total_s / $one.median_start_s) * 100 | round / 100)})
}' >"$OUT" || die "writing $OUT"
jq -r '
 "| measurement | result | baseline | ratio |",
 "|---|---|---|---|",
 (if .sigv4.sign_per_s then
  "| SigV4 signatures/s (RunInstances, \(.sigv4.body_bytes) B) | \(.sigv4.sign_per_s) | OpenSSL HMAC-SHA256/s \(.sigv4.hmac_sha256_per_s) | \(.sigv4.hmac_per_sign) HMACs per signature |"
  else "| SigV4 | \(.sigv4) | | |" end),
 "| one pod StartVM (s), \(.ec2_latency_ms_per_call) ms/EC2 call | \(.one_pod.median_start_s) | \(.one_pod.ec2_calls_start) EC2 calls | |",
 "| one pod StopVM (s) | \(.one_pod.median_stop_s) | \(.one_pod.ec2_calls_stop) EC2 calls | |",
 "| \(.concurrent.pods) pods at once, all started (s) | \(.concurrent.total_s) | one pod \(.one_pod.median_start_s) s | \(.concurrent.total_vs_one_pod) |",
 "| \(.concurrent.pods) pods: EC2 calls start / stop | \(.concurrent.ec2_calls_start) / \(.concurrent.ec2_calls_stop) | errors \(.concurrent.errors), non-200 \(.concurrent.ec2_non_200) | |",
 "| \(.concurrent.pods) RunInstances answered, first to last (s) | \(.concurrent.run_instances_first_to_last_s) | \(.ec2_latency_ms_per_call) ms per call | at most \(.concurrent.run_instances_max_in_flight) in flight |",
 "| instances left after stops | \(.concurrent.instances_left) | | |"
' "$OUT"
