# shellcheck shell=bash disable=SC2034
# test/k8s/install-lib.sh: sourced by the install-*.sh tests (not a test itself: not executable).
# Finds kubectl ($KUBECTL, else kubectl on PATH; skips without one) and renders the overlays.
set -euo pipefail
ROOT=${PP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${PP_BUILD:-$ROOT/build}
PY=${PYTHON:-/usr/bin/python3}
CHECK=$ROOT/test/k8s/install_check.py
OVERLAYS=(libvirt azure azure-workload-identity aws aws-irsa)

if [[ -n ${KUBECTL:-} ]]; then
	if [[ ! -x $KUBECTL ]]; then
		echo "FAIL: KUBECTL=$KUBECTL is not executable" >&2
		exit 1
	fi
else
	KUBECTL=$(command -v kubectl || true)
	if [[ -z $KUBECTL ]]; then
		echo "skip: no kubectl (set KUBECTL, or install Debian's kubernetes-client)"
		exit 77
	fi
fi
if ! "$PY" -c 'import kubernetes, yaml' 2>/dev/null; then
	echo "skip: $PY has no kubernetes module (Debian's python3-kubernetes)"
	exit 77
fi
echo "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | head -n1))"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pp-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# render DIR OUT: kubectl kustomize DIR > OUT; deprecation warnings of newer kustomize are fine.
render() {
	if ! "$KUBECTL" kustomize "$1" >"$2" 2>"$2.err"; then
		echo "FAIL: kubectl kustomize $1:" >&2
		cat "$2.err" >&2
		return 1
	fi
	if [[ ! -s $2 ]]; then
		echo "FAIL: kubectl kustomize $1 rendered nothing" >&2
		return 1
	fi
}
