#!/usr/bin/env bash
# Three coordinators sharing one etcd prefix (simulated TEE): the manifest set on one, the other
# two become active through peer recovery; a workload attests to each; one is killed with
# SIGKILL; an update through a survivor rotates the mesh CA, and the other survivor follows
# (stale, then peer recovery) and issues certificates under the new mesh CA.
source "$(dirname "$0")/coordinator-lib.sh"
source "$(dirname "$0")/etcd-lib.sh"
skip_unless_tools openssl curl jq gzip base64 sha256sum timeout
etcd_available || {
	echo "skip: etcd is not installed ($ETCD_BIN)"
	exit 77
}
need_bins coordinator attestation-client peerpodctl

progress "test PKI, keys, workloads, manifest"
make_keys
declare -A MESH
for c in c1 c2 c3; do
	MESH[$c]=$(free_port)
done
for w in coordinator web; do
	make_initdata "$w" "127.0.0.1:${MESH[c1]}"
done
pod_yaml coordinator StatefulSet coordinator
pod_yaml web Deployment
YAMLS=("$W/coordinator.yaml" "$W/web.yaml")
pctl manifest generate -o "$W/manifest.json" --snp-measurement "$MEAS" \
	--workload-owner-key "$W/owner-pub.pem" --seedshare-owner-key "$W/seedshare-pub.pem" \
	"${YAMLS[@]}" >"$W/generate.log" 2>&1 || {
	cat "$W/generate.log"
	fail "manifest generate"
}
ok "manifest.json"

progress "etcd and three coordinators"
etcd_start "$T/etcd" || fail "etcd did not start"
PREFIX=/pp-e2e-$$/
for c in c1 c2 c3; do
	peers=()
	for o in c1 c2 c3; do
		[[ $o == "$c" ]] || peers+=("127.0.0.1:${MESH[$o]}")
	done
	coord_start "$c" "$T/data-$c" "${MESH[$c]}" -etcd-endpoints "$ETCD_ENDPOINT" \
		-etcd-prefix "$PREFIX" -peers "$(
			IFS=,
			echo "${peers[*]}"
		)" -peer-recovery-interval 1s
done
for c in c1 c2 c3; do
	coord_ready "$c" && fail "$c ready before any manifest"
done
ok "three coordinators on $ETCD_ENDPOINT$PREFIX, none ready"

progress "set the manifest on c1"
pctl set -c "$(coord_user c1)" -m "$W/manifest.json" --seedshare-dir "$W/seeds" \
	--test-trust-anchor "$PKI/ark.pem" "${YAMLS[@]}" >"$W/set.log" 2>&1 || {
	cat "$W/set.log"
	fail "peerpodctl set"
}
wait_until 10 "c1 ready" coord_ready c1
wait_until 30 "c2 ready through peer recovery" coord_ready c2
wait_until 30 "c3 ready through peer recovery" coord_ready c3
ok "c2 and c3 active through peer recovery"

pctl verify -c "$(coord_user c1)" -m "$W/manifest.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify" >"$W/verify.log" 2>&1 || {
	cat "$W/verify.log"
	fail "peerpodctl verify"
}
for c in c1 c2 c3; do
	vm_root web "$T/vm-$c"
	attest_once "$T/vm-$c" -coordinator "$(coord_mesh "$c")" || {
		tail -n 5 "$T/vm-$c.log"
		fail "attestation to $c"
	}
	check_chain "$T/vm-$c/run/peerpod/mesh" "$W/verify/mesh-root.pem" || fail "$c: chain to the root"
	# peer recovery hands over the mesh key: leaves of all three verify against c1's mesh CA
	[[ $(root_id "$T/vm-$c/run/peerpod/mesh/mesh-ca.pem") == "$(root_id "$W/verify/mesh-ca.pem")" ]] ||
		fail "$c issued under a mesh CA with another key"
	openssl verify -partial_chain -CAfile "$W/verify/mesh-ca.pem" \
		"$T/vm-$c/run/peerpod/mesh.leaf.pem" >/dev/null 2>&1 ||
		fail "$c: leaf does not verify against c1's mesh CA"
done
ok "a workload attested to each coordinator, one mesh CA"

progress "kill -9 c3, update through c2"
coord_stop c3 KILL
web_digest=$(digest web)
jq --arg d "$web_digest" '.Policies[$d].SANs += ["web-v2.example"]' "$W/manifest.json" >"$W/manifest-2.json"
pctl set -c "$(coord_user c2)" -m "$W/manifest-2.json" --workload-owner-key "$W/owner-key.pem" \
	--test-trust-anchor "$PKI/ark.pem" "${YAMLS[@]}" >"$W/set-2.log" 2>&1 || {
	cat "$W/set-2.log"
	fail "owner update through c2"
}
pctl verify -c "$(coord_user c2)" -m "$W/manifest-2.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify-2" >"$W/verify-2.log" 2>&1 || {
	cat "$W/verify-2.log"
	fail "verify through c2"
}
[[ $(root_id "$W/verify/mesh-root.pem") == "$(root_id "$W/verify-2/mesh-root.pem")" ]] ||
	fail "the root CA key changed"
[[ $(root_id "$W/verify/mesh-ca.pem") == "$(root_id "$W/verify-2/mesh-ca.pem")" ]] &&
	fail "the mesh CA key did not change"
ok "update through c2: mesh CA rotated"

# c1 notices that latest moved, becomes stale and recovers from c2
c1_follows() {
	rm -rf "$T/vm-c1b"
	vm_root web "$T/vm-c1b"
	attest_once "$T/vm-c1b" -coordinator "$(coord_mesh c1)" -timeout 3s &&
		[[ $(root_id "$T/vm-c1b/run/peerpod/mesh/mesh-ca.pem") == "$(root_id "$W/verify-2/mesh-ca.pem")" ]]
}
wait_until 40 "c1 to issue under the new mesh CA" c1_follows
d=$T/vm-c1b/run/peerpod/mesh
check_chain "$d" "$W/verify-2/mesh-root.pem" || fail "c1's new leaf does not chain to the root"
openssl verify -partial_chain -CAfile "$W/verify-2/mesh-ca.pem" "$d.leaf.pem" >/dev/null 2>&1 ||
	fail "c1's new leaf does not verify against the new mesh CA"
openssl x509 -in "$d.leaf.pem" -noout -ext subjectAltName 2>/dev/null | grep -q web-v2.example ||
	fail "c1 issued without the new SAN"
coord_ready c1 || fail "c1 not ready after following"
ok "c1 followed the update (peer recovery) and issues under the new mesh CA"
