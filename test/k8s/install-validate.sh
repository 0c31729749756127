#!/usr/bin/env bash
# install/: each overlay's rendered objects against the Kubernetes API models (Debian's
# python3-kubernetes, strict: unknown fields and wrong types fail), the DaemonSet against WIRE.md
# 8.5, RBAC against what the adaptor calls, the PeerPod CRD (8.7) and the RuntimeClass (8.6).
# Then the same checks on broken copies of the rendering, which must fail.
set -euo pipefail
# shellcheck source=test/k8s/install-lib.sh
source "$(dirname "$0")/install-lib.sh"

fails=0
for o in "${OVERLAYS[@]}"; do
	render "$ROOT/install/overlays/$o" "$TMP/$o.yaml"
	if ! "$PY" "$CHECK" validate "$TMP/$o.yaml" "$o"; then
		echo "FAIL: overlay $o" >&2
		fails=$((fails + 1))
	fi
done

# mutant NAME SED-EXPR WANT: the check must fail on the libvirt rendering edited by SED-EXPR, with
# a message containing WANT.
mutant() {
	local f=$TMP/mutant-$1.yaml
	sed -e "$2" "$TMP/libvirt.yaml" >"$f"
	if cmp -s "$f" "$TMP/libvirt.yaml"; then
		echo "FAIL: mutant $1: the edit changed nothing" >&2
		fails=$((fails + 1))
		return
	fi
	if "$PY" "$CHECK" validate "$f" libvirt >"$f.out" 2>&1; then
		echo "FAIL: mutant $1 passed the checks" >&2
		fails=$((fails + 1))
	elif ! grep -q -- "$3" "$f.out"; then
		echo "FAIL: mutant $1: no \"$3\" in:" >&2
		cat "$f.out" >&2
		fails=$((fails + 1))
	else
		echo "mutant $1 caught: $(grep -m1 -- "$3" "$f.out")"
	fi
}
mutant misspelled-field 's/mountPropagation:/mountPropogation:/' 'unknown field'
mutant unknown-top-field 's/^  updateStrategy:/  updateStrategey:/' 'unknown field'
mutant wrong-type 's/hostNetwork: true/hostNetwork: "true"/' 'is not a bool'
mutant required-field '/^        name: cloud-api-adaptor-con$/d' 'name'
mutant no-propagation '/mountPropagation: HostToContainer/d' 'mountPropagation'
mutant privileged 's/privileged: false/privileged: true/' 'not privileged'
mutant extra-capability 's/- SYS_ADMIN/- SYS_ADMIN\n            - SYS_PTRACE/' 'capabilities'
mutant surge 's/maxSurge: 1/maxSurge: 2/' 'maxSurge'
mutant probe-host 's/host: 127.0.0.1/host: 0.0.0.0/' 'startup probe'
mutant xtables-type 's/type: FileOrCreate/type: File/' 'FileOrCreate'
mutant rbac-extra-verb '0,/- list/s//- list\n  - watch/' 'RBAC differs'
mutant crd-status 's/cleand:/cleaned:/' 'status schema'
mutant rc-handler 's/^handler: kata-remote/handler: kata/' 'handler'
mutant node-name-field 's/fieldPath: spec.nodeName/fieldPath: metadata.name/' 'NODE_NAME'
mutant ssh-mode '0,/defaultMode: 384/s//defaultMode: 420/' 'mode 0600'

((fails == 0)) || exit 1
echo "install-validate: ${#OVERLAYS[@]} overlays valid, 15 broken copies refused"
