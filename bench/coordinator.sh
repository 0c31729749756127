#!/usr/bin/env bash
# The coordinator under load, simulated TEE, as ratios against baselines measured in the same run:
#   1. CLIENTS workloads attesting at once for BENCH_SECONDS (aTLS handshake + NewMeshCert, as the
#      pod VM's attestation client does): issuances/s, handshake and total latency p50/p99.
#   2. Baselines: lib/atls verification of the same simulated evidence (one thread, with and
#      without the chain cache) and `openssl speed ecdsap384` (each issuance costs the coordinator
#      at least two P-384 signatures: its own evidence and the leaf; one P-384 verification).
#   3. The coordinator's memory (VmRSS/VmHWM) idle with a manifest and at the peak of the load.
# Usage: bench/coordinator.sh [BUILD_DIR]; writes bench/results/coordinator.json and .txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin=$build/bin
CLIENTS=${BENCH_MESH_CLIENTS:-16}
SECS=${BENCH_SECONDS:-10}
for b in coordinator peerpodctl pp-bench; do
	[[ -x $bin/$b ]] || { echo "bench/coordinator.sh: $bin/$b missing; skipping" >&2; exit 77; }
done
for t in openssl jq gzip base64 sha256sum; do
	command -v "$t" >/dev/null || { echo "bench/coordinator.sh: $t missing; skipping" >&2; exit 77; }
done
t=$(mktemp -d "${TMPDIR:-/tmp}/pp-coord-bench.XXXXXX")
coord=
sampler=
cleanup() {
	[[ -n $sampler ]] && kill "$sampler" 2>/dev/null
	[[ -n $coord ]] && kill -TERM "$coord" 2>/dev/null && wait "$coord" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
say() { echo "bench: $*" >&2; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

say "test PKI, workloads, manifest"
"$bin/peerpodctl" atls-cert --new-pki "$t/pki" >/dev/null
meas=$(hex 48)
# the mesh port is in the workloads' initdata, so it is chosen first
mesh_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for w in coordinator web; do
	printf 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = %s\n"coordinator" = "127.0.0.1:%s"\n' \
		"'''# $w'''" "$mesh_port" >"$t/$w.toml"
	gzip -n -c "$t/$w.toml" | base64 -w0 >"$t/$w.b64"
	sha256sum "$t/$w.toml" | cut -d' ' -f1 >"$t/$w.digest"
done
cat >"$t/workloads.yaml" <<EOF
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: coordinator, namespace: default}
spec:
  template:
    metadata:
      annotations:
        io.katacontainers.config.hypervisor.cc_init_data: "$(cat "$t/coordinator.b64")"
        peerpod.io/coordinator-role: coordinator
    spec:
      runtimeClassName: kata-remote
      containers: [{name: coordinator, image: coordinator}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations:
    io.katacontainers.config.hypervisor.cc_init_data: "$(cat "$t/web.b64")"
spec:
  runtimeClassName: kata-remote
  containers: [{name: web, image: web}]
EOF
"$bin/peerpodctl" manifest generate -o "$t/manifest.json" --snp-measurement "$meas" \
	"$t/workloads.yaml" >/dev/null
# the simulated reports set PLATFORM_INFO SMT|TSME; a generated manifest may not allow them yet
jq '.ReferenceValues.snp[].PlatformInfo += {"SMTEnabled": true, "TSMEEnabled": true}' \
	"$t/manifest.json" >"$t/m.json" && mv "$t/m.json" "$t/manifest.json"

say "coordinator"
"$bin/coordinator" -listen-address 127.0.0.1 -user-api-port 0 -mesh-api-port "$mesh_port" \
	-http-port 0 -probe-address 127.0.0.1 -probe-port 0 -ports-file "$t/ports.json" \
	-data-dir "$t/data" -evidence sim -sim-pki "$t/pki" -sim-measurement "$meas" \
	-sim-host-data "$(cat "$t/coordinator.digest")" -test-trust-anchor "$t/pki/ark.pem" \
	-offline -log-level warning >"$t/coordinator.log" 2>&1 &
coord=$!
for _ in $(seq 100); do [[ -s $t/ports.json ]] && break; sleep 0.1; done
[[ -s $t/ports.json ]] || { cat "$t/coordinator.log" >&2; echo "coordinator did not start" >&2; exit 1; }
user_port=$(jq -r .user "$t/ports.json")
"$bin/peerpodctl" set -c "127.0.0.1:$user_port" -m "$t/manifest.json" --seedshare-dir "$t/seeds" \
	--test-trust-anchor "$t/pki/ark.pem" "$t/workloads.yaml" >/dev/null
# a first issuance, so the idle figure includes everything a running coordinator has loaded
"$bin/pp-bench" mesh "127.0.0.1:$mesh_port" "$t/pki" "$meas" "$(cat "$t/web.digest")" 1 1 >/dev/null
sleep 1
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$coord/status"; }
idle_rss=$(kib VmRSS)

say "1/3 $CLIENTS workloads attesting for ${SECS}s"
(
	peak=0
	while kill -0 "$coord" 2>/dev/null; do
		v=$(kib VmRSS 2>/dev/null || echo 0)
		((v > peak)) && peak=$v && echo "$peak" >"$t/peak"
		sleep 0.1
	done
) &
sampler=$!
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$coord/stat"; }
cpu0=$(cpu_ticks)
mesh=$("$bin/pp-bench" mesh "127.0.0.1:$mesh_port" "$t/pki" "$meas" "$(cat "$t/web.digest")" \
	"$CLIENTS" "$SECS")
cpu_s=$(awk -v a="$cpu0" -v b="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz }')
load_rss=$(cat "$t/peak" 2>/dev/null || kib VmRSS)
hwm=$(kib VmHWM)
kill "$sampler" 2>/dev/null
sampler=

say "2/3 baselines: evidence verification, openssl speed ecdsap384"
evidence=$("$bin/pp-bench" evidence "$t/pki" "$meas" "$(cat "$t/web.digest")" 3)
# "384 bits ecdsa (nistp384)   sign_s verify_s sign/s verify/s"
read -r p384_sign p384_verify < <(openssl speed -seconds 3 ecdsap384 2>/dev/null |
	awk '/nistp384/ && $1 == "384" { print $(NF-1), $NF }' | tail -1)
[[ -n ${p384_sign:-} ]] || { echo "bench/coordinator.sh: cannot read openssl speed output" >&2; exit 1; }

say "3/3 memory: idle $idle_rss KiB, under load $load_rss KiB (HWM $hwm KiB)"
mkdir -p "$root/bench/results"
jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(uname -srm), $(nproc) cores" \
	--argjson mesh "$mesh" --argjson ev "$evidence" --argjson sign "$p384_sign" \
	--argjson verify "$p384_verify" --argjson idle "$idle_rss" --argjson load "$load_rss" \
	--argjson hwm "$hwm" --argjson cpu_s "$cpu_s" '{
  date: $date, machine: $host, evidence: "simulated SNP (test PKI)",
  mesh: $mesh,
  evidence_rates: $ev,
  openssl_ecdsap384: {sign_per_s: $sign, verify_per_s: $verify},
  coordinator_cpu: {seconds: $cpu_s, ms_per_issuance: ($cpu_s * 1000 / $mesh.issued),
    # the crypto an issuance cannot avoid: its own evidence and the leaf (two P-384
    # signatures) and the client evidence verified with a cached chain, as the mesh
    # listener does
    floor_ms_per_issuance: (2000 / $sign + 1000 / $ev.verified_cached_per_s)},
  ratios: {
    issued_per_s_over_p384_sign_per_s_half: ($mesh.issued_per_s / ($sign / 2)),
    issued_per_s_over_evidence_verify_per_s: ($mesh.issued_per_s / $ev.verified_cached_per_s),
    evidence_verify_cached_over_p384_verify: ($ev.verified_cached_per_s / $verify),
    crypto_floor_over_cpu_per_issuance: ((2000 / $sign + 1000 / $ev.verified_cached_per_s) /
      ($cpu_s * 1000 / $mesh.issued))
  },
  coordinator_memory_kib: {idle_rss: $idle, load_peak_rss: $load, hwm: $hwm}
}' >"$root/bench/results/coordinator.json"
jq -r '
 "| measurement | result | baseline | ratio |",
 "|---|---|---|---|",
 "| mesh issuances/s, \(.mesh.clients) clients | \(.mesh.issued_per_s*10|round/10) | openssl P-384 sign \(.openssl_ecdsap384.sign_per_s) / 2 | \(.ratios.issued_per_s_over_p384_sign_per_s_half*1000|round/1000) |",
 "| mesh issuances/s | \(.mesh.issued_per_s*10|round/10) | lib/atls verify of the same evidence (chain cached), 1 thread \(.evidence_rates.verified_cached_per_s) | \(.ratios.issued_per_s_over_evidence_verify_per_s*100|round/100) |",
 "| coordinator CPU per issuance (ms) | \(.coordinator_cpu.ms_per_issuance*100|round/100) | 2 P-384 signs + 1 evidence verify: \(.coordinator_cpu.floor_ms_per_issuance*100|round/100) | \(.ratios.crypto_floor_over_cpu_per_issuance*100|round/100) |",
 "| aTLS handshake p50 / p99 (ms) | \(.mesh.handshake_p50_ms*10|round/10) / \(.mesh.handshake_p99_ms*10|round/10) | | |",
 "| handshake + NewMeshCert p50 / p99 (ms) | \(.mesh.total_p50_ms*10|round/10) / \(.mesh.total_p99_ms*10|round/10) | | |",
 "| evidence verify, chain cached / uncached (/s) | \(.evidence_rates.verified_cached_per_s) / \(.evidence_rates.verified_per_s) | openssl P-384 verify \(.openssl_ecdsap384.verify_per_s) | \(.ratios.evidence_verify_cached_over_p384_verify*100|round/100) |",
 "| coordinator RSS idle / under load (MiB) | \(.coordinator_memory_kib.idle_rss/1024*10|round/10) / \(.coordinator_memory_kib.load_peak_rss/1024*10|round/10) | | |"
' "$root/bench/results/coordinator.json" | tee "$root/bench/results/coordinator.txt"
[[ $(jq -r .mesh.failed "$root/bench/results/coordinator.json") == 0 ]] ||
	say "warning: $(jq -r '"\(.mesh.failed) failed attempts, first: \(.mesh.first_error)"' "$root/bench/results/coordinator.json")"
