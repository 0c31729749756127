#!/usr/bin/env bash
# Evidence verification rates against what OpenSSL's verify speed allows, measured in the same run:
# SEV-SNP with the chain cached (one ECDSA P-384 verification per report) against
# `openssl speed ecdsap384`; TDX with chain and collateral cached (two P-256 verifications per
# quote) against half of `openssl speed ecdsap256`. Target: at least 80% of that rate.
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
tdx=$vectors/tdx-v4-phala
tdx_ours=$("$build/bin/peerpodctl" attest bench --type tdx --evidence "$tdx/quote.bin" \
	--collateral "$tdx" --at 2025-07-01T00:00:00Z --seconds "$SECONDS_RUN" --json)
tdx_rate=$(jq -r .verifications_per_second <<<"$tdx_ours")
p256_rate=$(openssl speed -seconds "$SECONDS_RUN" ecdsap256 2>/dev/null |
	awk '/nistp256/ && $1 == "256" { print $NF }' | tail -1)
[[ -n $p256_rate ]] || { echo "bench/attest.sh: cannot read openssl speed output" >&2; exit 1; }

ratio=$(awk -v a="$ours_rate" -v b="$ossl_rate" 'BEGIN { printf "%.3f", a / b }')
tdx_ratio=$(awk -v a="$tdx_rate" -v b="$p256_rate" 'BEGIN { printf "%.3f", a / (b / 2) }')
mkdir -p "$root/bench/results"
jq -n --argjson ours "$ours_rate" --argjson ossl "$ossl_rate" --argjson ratio "$ratio" \
	--argjson tdx "$tdx_rate" --argjson p256 "$p256_rate" --argjson tdx_ratio "$tdx_ratio" \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{date: $date, target_ratio: 0.8,
	  snp: {vector: "snp-genoa-v5-routex", verifications_per_second: $ours,
	        openssl_ecdsap384_verifies_per_second: $ossl, ratio: $ratio},
	  tdx: {vector: "tdx-v4-phala", verifications_per_second: $tdx,
	        openssl_ecdsap256_verifies_per_second: $p256, signatures_per_quote: 2,
	        ratio: $tdx_ratio}}' >"$root/bench/results/attest.json"
printf 'SNP verify: %.1f/s  openssl ecdsap384 verify: %.1f/s  ratio %s (target 0.8)\n' \
	"$ours_rate" "$ossl_rate" "$ratio"
printf 'TDX verify: %.1f/s  openssl ecdsap256 verify: %.1f/s (2 per quote)  ratio %s (target 0.8)\n' \
	"$tdx_rate" "$p256_rate" "$tdx_ratio"
