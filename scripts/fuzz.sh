#!/usr/bin/env bash
# `make fuzz`: run each libFuzzer target for a bounded time, growing its corpus in a scratch copy
# and keeping new inputs that add coverage in test/fuzz/corpus/<target> (minimised merge).
set -euo pipefail
build=$1
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in "$build"/fuzz/fuzz-*; do
	name=$(basename "$t")
	corpus=$root/test/fuzz/corpus/${name#fuzz-}
	mkdir -p "$corpus"
	work=$(mktemp -d)
	cp -r "$corpus"/. "$work"/ 2>/dev/null || true
	echo "fuzz: $name for ${seconds}s"
	"$t" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 "$work" 2>&1 | tail -n 5
	"$t" -merge=1 "$corpus" "$work" >/dev/null 2>&1 || true
	rm -rf "$work"
done
