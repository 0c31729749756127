#!/usr/bin/env bash
# Regenerate the README's flag sections from the programs' own --help, and its benchmark table
# from bench/results/latest.json. Each generated block sits between <!-- BEGIN name --> and
# <!-- END name --> markers. Usage: scripts/update-readme.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/build}" && pwd)/bin
readme=$root/README.md

block() { # block NAME: replace the marked block with stdin
	local content
	content=$(mktemp)
	cat >"$content"
	python3 - "$readme" "$1" "$content" <<'EOP'
import sys
path, name, content = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(path).read()
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(path, "w").write(text[:i] + "\n" + content + text[j:])
EOP
	rm -f "$content"
}

# the programs print their invocation path; show the bare name
fence() { echo '```'; sed "s|$bin/||g"; echo '```'; }
"$bin/cloud-api-adaptor" --help | fence | block adaptor-flags
"$bin/agent-protocol-forwarder" --help 2>&1 | fence | block forwarder-flags
"$bin/process-user-data" --help 2>&1 | fence | block process-user-data-flags
"$bin/peerpodctl" --help 2>&1 | fence | block peerpodctl-flags
"$bin/coordinator" --help 2>&1 | fence | block coordinator-flags
"$bin/attestation-client" --help 2>&1 | fence | block attestation-client-flags
if [[ -f $root/bench/results/libvirt.json && -f $root/bench/results/attest.json ]]; then
	jq -r -s '.[0] as $l | .[1] as $a |
	 "| measurement | result | baseline |",
	 "|---|---|---|",
	 "| one pod: StartVM to agent ready (s) | \($l.one_pod.median.startvm_s) (define \($l.one_pod.median.define_s), boot \($l.one_pod.median.boot_s), user-data \($l.one_pod.median.user_data_s), forwarder \($l.one_pod.median.forwarder_s)) | bare image boot \($l.baseline_boot_test.median_wall_to_forwarder_answer_s) |",
	 "| 4 pods at once: all ready (s) | \($l.concurrent.all_ready_s) (StartVM median \($l.concurrent.median.startvm_s)) | |",
	 "| SNP verifications/s | \($a.snp.verifications_per_second) | openssl P-384 verify \($a.snp.openssl_ecdsap384_verifies_per_second) (ratio \($a.snp.ratio)) |",
	 "| TDX verifications/s | \($a.tdx.verifications_per_second) | openssl P-256 verify \($a.tdx.openssl_ecdsap256_verifies_per_second) / 2 (ratio \($a.tdx.ratio)) |"
	' "$root/bench/results/libvirt.json" "$root/bench/results/attest.json" | block bench-extra
fi
if [[ -f $root/bench/results/azure.json && -f $root/bench/results/aws.json ]]; then
	jq -r -s '.[0] as $z | .[1] as $w |
	 "| measurement | result | baseline |",
	 "|---|---|---|",
	 "| Azure: one pod, StartVM (s) | \($z.one_pod.median_wall_s) (\($z.concurrent_pods.arm_calls_per_pod) ARM calls) | |",
	 "| Azure: 50 pods at once (s) | \($z.concurrent_pods.total_wall_s) (per pod p50 \($z.concurrent_pods.per_pod_p50_s)) | one pod \($z.one_pod.median_wall_s) (ratio \($z.overlap_ratio_total_over_one_pod)) |",
	 "| AWS: one pod, StartVM (s) | \($w.one_pod.median_start_s) (\($w.one_pod.ec2_calls_start) EC2 calls) | |",
	 "| AWS: 50 pods at once (s) | \($w.concurrent.total_s) (per pod p50 \($w.concurrent.p50_s)) | one pod \($w.one_pod.median_start_s) (ratio \($w.concurrent.total_vs_one_pod)) |",
	 "| SigV4 signatures/s | \($w.sigv4.sign_per_s) | openssl HMAC-SHA256 \($w.sigv4.hmac_sha256_per_s)/s (\($w.sigv4.hmac_per_sign) HMACs per signature) |"
	' "$root/bench/results/azure.json" "$root/bench/results/aws.json" | block bench-cloud
fi
if [[ -f $root/bench/results/coordinator.txt ]]; then
	block bench-coordinator <"$root/bench/results/coordinator.txt"
fi
if [[ -f $root/bench/results/latest.json ]]; then
	bash "$root/bench/table.sh" "$root/bench/results/latest.json" | block bench-table
fi
