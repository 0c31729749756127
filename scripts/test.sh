#!/usr/bin/env bash
# `make test`: unit tests, the same under ASan+UBSan, fuzz corpus replay, interop with Go and Rust
# ttRPC peers, the cloud providers against local ARM/EC2 mocks, install/ and the Kubernetes
# integration against an API mock, and end-to-end runs. Prints one final summary line.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rm -f build/results build/asan/results build/fuzz/results
status=0
step() {
	echo "==== $*"
	"$@" || status=1
}
step make --no-print-directory unit
step make --no-print-directory unit-asan
step make --no-print-directory fuzz-replay
step make --no-print-directory interop
step make --no-print-directory cloud
# Debian's kubectl beside another one (scripts/deps.sh): install/ must render with both
if [[ -x /opt/pp-kubectl/usr/bin/kubectl ]]; then
	export KUBECTL_EXTRA=/opt/pp-kubectl/usr/bin/kubectl
fi
step make --no-print-directory k8s
step make --no-print-directory e2e
pass=$(cat build/results build/asan/results build/fuzz/results 2>/dev/null | grep -c ' pass$')
fail=$(cat build/results build/asan/results build/fuzz/results 2>/dev/null | grep -c ' fail$')
skip=$(cat build/results build/asan/results build/fuzz/results 2>/dev/null | grep -c ' skip$')
if ((status != 0 && fail == 0)); then fail=1; fi
echo "$pass passed, $fail failed, $skip skipped"
exit $((fail > 0))
