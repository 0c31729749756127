#!/usr/bin/env bash
# SEV-SNP verification rate: `peerpodctl attest bench` verifies one real report again and again
# with the chain cached (one ECDSA P-384 verification per report) and is compared with
# `openssl speed ecdsap384` on the same machine. Target: at least 80% of OpenSSL's verify rate.
# Usage: bench/attest.sh [BUILD_DIR]; writes bench/results/attest.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
vectors=${PP_VECTORS:-$root/../shared/attestation-vectors}
v=$vectors/snp-genoa-v5-routex
SECONDS_RUN=${BENCH_SECONDS:-3}
if [[ ! -f $v/report.bin ]]; then
	echo "bench/attest.sh: no vectors at $vectors; skipping" >&2
	exit 77
fi
t=$(mktemp -d "${TMPDIR:-/tmp}/pp-attest-bench.XXXXXX")
trap 'rm -rf "$t"' EXIT
cat "$v/ask.pem" "$v/ark.pem" >"$t/chain.pem"

ours=$("$build/bin/peerpodctl" attest bench --type snp --evidence "$v/report.bin" \
	--vcek "$v/vcek.pem" --chain "$t/chain.pem" --at 2026-06-01T00:00:00Z --skip-crl \
	--seconds "$SECONDS_RUN" --json)
ours_rate=$(jq -r .verifications_per_second <<<"$ours")

# "384 bits ecdsa (nistp384)   sign_s verify_s sign/s verify/s": the last column.
ossl_rate=$(openssl speed -seconds "$SECONDS_RUN" ecdsap384 2>/dev/null |
	awk '/nistp384/ && $1 == "384" { print $NF }' | tail -1)
if [[ -z $ossl_rate ]]; then
	echo "bench/attest.sh: cannot read openssl speed output" >&2
	exit 1
fi
ratio=$(awk -v a="$ours_rate" -v b="$ossl_rate" 'BEGIN { printf "%.3f", a / b }')
meets=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "true" : "false" }')
mkdir -p "$root/bench/results"
jq -n --argjson ours "$ours_rate" --argjson ossl "$ossl_rate" --argjson ratio "$ratio" \
	--argjson meets "$meets" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg vector "snp-genoa-v5-routex" \
	'{date: $date, vector: $vector, snp_verifications_per_second: $ours,
	  openssl_ecdsap384_verifies_per_second: $ossl, ratio: $ratio, target_ratio: 0.8,
	  meets_target: $meets}' >"$root/bench/results/attest.json"
printf 'SNP verify: %.1f/s  openssl ecdsap384 verify: %.1f/s  ratio %s (target 0.8)\n' \
	"$ours_rate" "$ossl_rate" "$ratio"
