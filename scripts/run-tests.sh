#!/usr/bin/env bash
# Run one group of tests and print a summary line. Usage: run-tests.sh GROUP BUILD_DIR
#   unit         every cmocka binary in BUILD_DIR/test
#   fuzz-replay  every fuzz target over its corpus in test/fuzz/corpus/<target>
#   interop      test/interop/*.sh
#   cloud        test/cloud/*.sh (providers against the ARM and EC2 mocks)
#   k8s          test/k8s/*.sh (install/ manifests, the adaptor against a Kubernetes API mock)
#   e2e          test/e2e/*.sh
# Each test program counts once; exit code 77 means skipped. Results are appended to
# BUILD_DIR/results (one "group name status" line each) for scripts/test.sh.
set -uo pipefail
group=$1
build=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
results=$build/results
pass=0 fail=0 skip=0
TEST_TIMEOUT=${TEST_TIMEOUT:-900}

run_one() {
	local name=$1
	shift
	local log=$build/logs/$group-$name.log
	mkdir -p "$build/logs"
	local start=$SECONDS
	timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1
	local rc=$?
	local took=$((SECONDS - start))
	if ((rc == 0)); then
		pass=$((pass + 1))
		echo "PASS  $group/$name (${took}s)"
		echo "$group $name pass" >>"$results"
	elif ((rc == 77)); then
		skip=$((skip + 1))
		echo "SKIP  $group/$name: $(grep -m1 -i 'skip' "$log" || true)"
		echo "$group $name skip" >>"$results"
	else
		fail=$((fail + 1))
		echo "FAIL  $group/$name (exit $rc, ${took}s); last lines of $log:"
		tail -n 40 "$log" | sed 's/^/    /'
		echo "$group $name fail" >>"$results"
	fi
}

export PP_BUILD=$build PP_ROOT=$root
case $group in
unit)
	for t in "$build"/test/test-*; do
		[[ -x $t ]] || continue
		run_one "$(basename "$t")" "$t"
	done
	;;
fuzz-replay)
	for t in "$build"/fuzz/fuzz-*; do
		[[ -x $t ]] || continue
		name=$(basename "$t")
		corpus=$root/test/fuzz/corpus/${name#fuzz-}
		if [[ ! -d $corpus ]] || [[ -z $(ls -A "$corpus") ]]; then
			echo "FAIL  fuzz-replay/$name: no corpus in ${corpus#$root/}"
			fail=$((fail + 1))
			echo "$group $name fail" >>"$results"
			continue
		fi
		run_one "$name" "$t" -runs=0 "$corpus"
	done
	;;
interop | cloud | k8s | e2e)
	for t in "$root"/test/$group/*.sh; do
		[[ -x $t ]] || continue
		run_one "$(basename "$t" .sh)" "$t"
	done
	;;
*)
	echo "unknown group $group" >&2
	exit 2
	;;
esac
echo "$group: $pass passed, $fail failed, $skip skipped"
((fail == 0))
