#!/usr/bin/env bash
# install/: every overlay renders with `kubectl kustomize` ($KUBECTL and $KUBECTL_EXTRA; it must pass with
# Debian 12's kubectl 1.20 and its kustomize v2.0.3 as with a current one), the kustomizations
# stick to what v2.0.3 understands, and the generated objects keep the fixed names of WIRE.md 8.5.
set -euo pipefail
# shellcheck source=test/k8s/install-lib.sh
source "$(dirname "$0")/install-lib.sh"

"$PY" "$CHECK" kustomization "$ROOT/install"
render "$ROOT/install/base" "$TMP/base.yaml"
grep -q '^kind: DaemonSet' "$TMP/base.yaml"
fails=0
for o in "${OVERLAYS[@]}"; do
	out=$TMP/$o.yaml
	if ! render "$ROOT/install/overlays/$o" "$out"; then
		fails=$((fails + 1))
		continue
	fi
	for want in 'name: peer-pods-cm' 'name: peer-pods-secret' 'name: cloud-api-adaptor-daemonset' \
		'name: kata-remote' 'name: peerpods.confidentialcontainers.org'; do
		if ! grep -q "^  $want\$" "$out"; then
			echo "FAIL: $o: no object with $want (name suffix hash?)" >&2
			fails=$((fails + 1))
		fi
	done
	echo "$o: $(grep -c '^kind:' "$out") objects"
done
# ssh-key-secret only where qemu+ssh is used
grep -q '^  name: ssh-key-secret$' "$TMP/libvirt.yaml" || {
	echo "FAIL: libvirt: no ssh-key-secret" >&2
	fails=$((fails + 1))
}
# the overlays are independent of the working directory
(cd / && "$KUBECTL" kustomize "$ROOT/install/overlays/aws-irsa" 2>/dev/null | cmp -s - "$TMP/aws-irsa.yaml") || {
	echo "FAIL: rendering depends on the working directory" >&2
	fails=$((fails + 1))
}
# KUBECTL_EXTRA: more kubectl binaries (say Debian's 1.20 unpacked beside a newer one); each
# must render the same objects.
for k in ${KUBECTL_EXTRA:-}; do
	for o in "${OVERLAYS[@]}"; do
		out=$TMP/$o.$(basename "$(dirname "$(dirname "$k")")").yaml
		if ! KUBECTL=$k render "$ROOT/install/overlays/$o" "$out"; then
			fails=$((fails + 1))
		elif ! "$PY" "$CHECK" same "$TMP/$o.yaml" "$out"; then
			echo "FAIL: $o: $KUBECTL and $k render different objects" >&2
			fails=$((fails + 1))
		fi
	done
	echo "$k: same objects"
done
((fails == 0)) || exit 1
echo "install-render: ${#OVERLAYS[@]} overlays render"
