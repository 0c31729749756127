#!/usr/bin/env bash
# Print bench/results/latest.json (or the file given) as the README's Markdown table.
set -euo pipefail
jq -r '
 "| measurement | result | baseline | ratio |",
 "|---|---|---|---|",
 "| Version p50 (µs) | \(.version_roundtrip.adaptor.p50_us) | Go ttRPC \(.version_roundtrip.go_reference.p50_us) | \(.version_roundtrip.p50_ratio*100|round/100) |",
 "| Version calls/s | \(.version_roundtrip.adaptor.calls_per_s) | Go ttRPC \(.version_roundtrip.go_reference.calls_per_s) | \(.version_roundtrip.calls_per_s_ratio*100|round/100) |",
 "| agent 1 KiB p50 (µs) | \(.agent_1k_roundtrip.through_proxy.p50_us) | direct \(.agent_1k_roundtrip.direct.p50_us) | +\(.agent_1k_roundtrip.added_p50_us*10|round/10) µs |",
 "| CopyFile 1 MiB (MiB/s) | \(.agent_copyfile_1mib.through_proxy.mib_per_s) | direct \(.agent_copyfile_1mib.direct.mib_per_s) | \(.agent_copyfile_1mib.throughput_ratio*100|round/100) |",
 "| \(.concurrent_pods.pods) pods, 1 s create each (s) | \(.concurrent_pods.total_s) | 1 s (one create) | \(.concurrent_pods.total_s*100|round/100) |",
 "| adaptor RSS, \(.concurrent_pods.pods) pods (MiB) | \(.adaptor_rss_mib_with_pods*10|round/10) | | |"
' "${1:-$(dirname "$0")/results/latest.json}"
