#!/usr/bin/env bash
# The coordinator end to end with a simulated TEE: manifest from workload YAMLs, SetManifest and
# verification by the user, pod VMs of the local provider booting through process-user-data and
# the attestation client to mesh certificates, TLS between workloads with those certificates,
# the refusals (unknown policy, debug policy, wrong measurement, replayed certificate, update by
# a stranger), an owner update rotating the mesh CA, and user recovery after a restart.
source "$(dirname "$0")/coordinator-lib.sh"
skip_unless_tools openssl curl jq gzip base64 sha256sum timeout
need_bins coordinator attestation-client peerpodctl process-user-data cloud-api-adaptor \
	agent-standin agent-protocol-forwarder

progress "test PKI and keys"
make_keys
MESH_PORT=$(free_port)
for w in coordinator web db stranger; do
	make_initdata "$w" "127.0.0.1:$MESH_PORT"
done
pod_yaml coordinator StatefulSet coordinator
pod_yaml web Deployment
pod_yaml db Pod
YAMLS=("$W/coordinator.yaml" "$W/web.yaml" "$W/db.yaml")
ok "workloads: coordinator $(digest coordinator), web $(digest web), db $(digest db)"

progress "manifest generate"
pctl manifest generate -o "$W/manifest.json" --snp-measurement "$MEAS" \
	--workload-owner-key "$W/owner-pub.pem" --seedshare-owner-key "$W/seedshare-pub.pem" "${YAMLS[@]}" \
	>"$W/generate.log" 2>&1 || {
	cat "$W/generate.log"
	fail "manifest generate"
}
for w in coordinator web db; do
	jq -e --arg d "$(digest $w)" '.Policies[$d]' "$W/manifest.json" >/dev/null ||
		fail "manifest has no policy for $w"
done
jq -e --arg d "$(digest coordinator)" '.Policies[$d].Role == "coordinator"' "$W/manifest.json" \
	>/dev/null || fail "the coordinator policy has no coordinator role"
jq -e --arg d "$(digest stranger)" '.Policies[$d] == null' "$W/manifest.json" >/dev/null ||
	fail "stranger must not be in the manifest"
jq -e --arg m "$MEAS" '.ReferenceValues.snp[0].TrustedMeasurement == $m' "$W/manifest.json" \
	>/dev/null || fail "measurement not in the manifest"
WEB_SAN=$(first_dns_san "$W/manifest.json" web)
[[ -n $WEB_SAN ]] || fail "web has no DNS SAN: $(jq -c . "$W/manifest.json")"
ok "manifest.json (web SAN $WEB_SAN)"

progress "coordinator"
coord_start c1 "$T/coord-data" "$MESH_PORT"
coord_ready c1 && fail "an uninitialized coordinator must not be ready"
[[ $(coord_metric c1 coordinator_state) == 0 ]] || fail "coordinator_state not 0 before SetManifest"
[[ $(coord_metric c1 coordinator_test_mode) == 1 ]] || fail "coordinator_test_mode not 1"
grep -qi "test mode" <<<"$(coord_get c1 /startup)$(coord_get c1 /readyz)" ||
	fail "probes do not say test mode: $(coord_get c1 /startup)"
ok "coordinator up, uninitialized, test mode"

progress "peerpodctl set"
pctl set -c "$(coord_user c1)" -m "$W/manifest.json" --seedshare-dir "$W/seeds" \
	--test-trust-anchor "$PKI/ark.pem" "${YAMLS[@]}" >"$W/set.log" 2>&1 || {
	cat "$W/set.log"
	fail "peerpodctl set"
}
SEEDFILE=$(find "$W/seeds" -type f | head -1)
[[ -n $SEEDFILE ]] || fail "no seed share written"
wait_until 10 "/readyz after SetManifest" coord_ready c1
[[ $(coord_metric c1 coordinator_state) == 1 ]] || fail "coordinator_state not 1"
ok "manifest set, coordinator active, seed share in ${SEEDFILE#"$W"/}"

pctl verify -c "$(coord_user c1)" -m "$W/manifest.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify" >"$W/verify.log" 2>&1 || {
	cat "$W/verify.log"
	fail "peerpodctl verify"
}
[[ -s $W/verify/mesh-root.pem && -s $W/verify/mesh-ca.pem ]] || fail "verify wrote: $(ls "$W/verify")"
# a user verifying against another manifest (other measurement) must refuse the coordinator
jq --arg m "$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	'.ReferenceValues.snp[0].TrustedMeasurement = $m' "$W/manifest.json" >"$W/other-manifest.json"
pctl verify -c "$(coord_user c1)" -m "$W/other-manifest.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify-bad" >"$W/verify-bad.log" 2>&1 && fail "verify accepted a coordinator with another measurement"
ok "peerpodctl verify (and a refusal with another measurement)"

progress "pod VMs through the adaptor (local provider, boot chain)"
write_boot_script
start_standin
start_adaptor -local-boot-command "$W/boot.sh"
declare -A SID
for w in web db; do
	SID[$w]=$(new_sid)
	ctl create "${SID[$w]}" --pod "$w" --namespace default \
		--annotation "io.katacontainers.config.hypervisor.cc_init_data=$(cat "$W/$w.b64")" \
		>/dev/null || fail "create $w"
	ctl start "${SID[$w]}" >/dev/null || fail "start $w"
done
for w in web db; do
	d=$(instance_dir "${SID[$w]}" "$w")
	wait_until 60 "the mesh certificate of $w ($(tail -n 3 "$d/boot.log" 2>/dev/null | tr '\n' ' '))" \
		test -s "$d/run/peerpod/mesh/cert-chain.pem"
	[[ $(cat "$d/run/peerpod/initdata.digest") == "$(digest $w)" ]] || fail "$w: initdata digest"
	for f in mesh-ca.pem root-ca.pem key.pem; do
		[[ -s $d/run/peerpod/mesh/$f ]] || fail "$w: no $f"
	done
	[[ $(stat -c %a "$d/run/peerpod/mesh/key.pem") == 600 ]] || fail "$w: key.pem not 0600"
	cmp -s "$d/run/peerpod/mesh/root-ca.pem" "$W/verify/mesh-root.pem" || fail "$w: root CA differs"
	check_chain "$d/run/peerpod/mesh" "$W/verify/mesh-root.pem" || fail "$w: chain to the root"
	sid_id=$(jq -r --arg d "$(digest $w)" '.Policies[$d].WorkloadSecretID // ""' "$W/manifest.json")
	if [[ -n $sid_id ]]; then
		[[ $(wc -c <"$d/run/peerpod/mesh/workload-secret") -ge 128 ]] || fail "$w: workload secret"
	fi
done
ok "both pods booted, attested and hold mesh certificates ($(coord_metric c1 mesh_certs_issued_total) issued)"

progress "TLS between workloads with mesh certificates"
webd=$(instance_dir "${SID[web]}" web)/run/peerpod/mesh
TLS_PORT=$(free_port)
openssl s_server -quiet -accept "127.0.0.1:$TLS_PORT" -cert "$webd.leaf.pem" \
	-cert_chain "$webd.inter.pem" -key "$webd/key.pem" -www >"$T/s_server.log" 2>&1 &
PIDS+=($!)
wait_until 10 "openssl s_server" bash -c "exec 3<>/dev/tcp/127.0.0.1/$TLS_PORT"
curl -sS --max-time 10 --cacert "$W/verify/mesh-root.pem" \
	--resolve "$WEB_SAN:$TLS_PORT:127.0.0.1" "https://$WEB_SAN:$TLS_PORT/" >"$T/curl.out" 2>&1 || {
	cat "$T/curl.out"
	fail "curl with the mesh root CA"
}
curl -sS --max-time 10 --cacert "$W/verify/mesh-ca.pem" \
	--resolve "$WEB_SAN:$TLS_PORT:127.0.0.1" "https://$WEB_SAN:$TLS_PORT/" >"$T/curl.out" 2>&1 || {
	cat "$T/curl.out"
	fail "curl with the mesh CA"
}
curl -sS --max-time 10 --cacert "$PKI/ark.pem" \
	--resolve "$WEB_SAN:$TLS_PORT:127.0.0.1" "https://$WEB_SAN:$TLS_PORT/" >/dev/null 2>&1 &&
	fail "curl accepted the server with a wrong CA"
curl -sS --max-time 10 --cacert "$W/verify/mesh-root.pem" \
	--resolve "wrong.example:$TLS_PORT:127.0.0.1" "https://wrong.example:$TLS_PORT/" >/dev/null 2>&1 &&
	fail "curl accepted a name that is not a SAN"
ok "curl -> web ($WEB_SAN): leaf -> intermediate -> root; wrong CA and wrong name refused"

progress "refusals"
vm_root stranger "$T/vm-stranger"
attest_refused "$T/vm-stranger" POLICY_DIGEST c1
ok "unknown initdata digest refused"
vm_root web "$T/vm-debug"
attest_refused "$T/vm-debug" DEBUG c1 -sim-guest-policy 0xb0000
ok "debug guest policy refused"
vm_root web "$T/vm-meas"
attest_refused "$T/vm-meas" MEASUREMENT c1 \
	-sim-measurement "$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ok "wrong measurement refused"

before=$(failures c1 REPORT_DATA)
pctl atls-cert --pki "$PKI" --measurement "$MEAS" --host-data "$(digest web)" \
	--nonce "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
	-o "$W/replay-cert.pem" -k "$W/replay-key.pem" >"$W/atls-cert.log" 2>&1 || {
	cat "$W/atls-cert.log"
	fail "peerpodctl atls-cert --nonce"
}
present_cert 127.0.0.1 "$MESH_PORT" "$W/replay-cert.pem" "$W/replay-key.pem" ||
	fail "the coordinator accepted a replayed certificate"
wait_until 5 "attest_failures_total{code=~REPORT_DATA} to grow" failures_above c1 REPORT_DATA "$before"
ok "replayed certificate refused in the handshake"

progress "manifest updates"
web_digest=$(digest web)
jq --arg d "$web_digest" '.Policies[$d].SANs += ["web-v2.example"]' "$W/manifest.json" >"$W/manifest-2.json"
rejected_before=$(coord_metric c1 'manifest_updates_total\{result="[^"]*"\}')
pctl set -c "$(coord_user c1)" -m "$W/manifest-2.json" --workload-owner-key "$W/intruder-key.pem" \
	--test-trust-anchor "$PKI/ark.pem" "${YAMLS[@]}" >"$W/set-intruder.log" 2>&1 &&
	fail "an update by a key that is not an owner was accepted"
ok "update by a stranger's key refused: $(tail -n 1 "$W/set-intruder.log" | cut -c1-160)"
pctl set -c "$(coord_user c1)" -m "$W/manifest-2.json" --test-trust-anchor "$PKI/ark.pem" \
	"${YAMLS[@]}" >"$W/set-anon.log" 2>&1 && fail "an update without any key was accepted"
ok "update without an owner key refused"
pctl set -c "$(coord_user c1)" -m "$W/manifest-2.json" --workload-owner-key "$W/owner-key.pem" \
	--test-trust-anchor "$PKI/ark.pem" "${YAMLS[@]}" >"$W/set-owner.log" 2>&1 || {
	cat "$W/set-owner.log"
	fail "owner update"
}
after=$(coord_metric c1 'manifest_updates_total\{result="[^"]*"\}')
((after >= rejected_before + 2)) || fail "manifest_updates_total did not count the updates ($rejected_before -> $after)"
pctl verify -c "$(coord_user c1)" -m "$W/manifest-2.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify-2" >"$W/verify-2.log" 2>&1 || {
	cat "$W/verify-2.log"
	fail "verify after the update"
}
cmp -s "$W/verify/mesh-root.pem" "$W/verify-2/mesh-root.pem" || fail "the root CA changed"
cmp -s "$W/verify/mesh-ca.pem" "$W/verify-2/mesh-ca.pem" && fail "the mesh CA did not change"
vm_root web "$T/vm-web2"
attest_once "$T/vm-web2" || {
	tail "$T/vm-web2.log"
	fail "attestation after the update"
}
cmp -s "$T/vm-web2/run/peerpod/mesh/mesh-ca.pem" "$W/verify-2/mesh-ca.pem" || fail "new leaf under an old mesh CA"
openssl x509 -in "$T/vm-web2/run/peerpod/mesh/cert-chain.pem" -noout -ext subjectAltName 2>/dev/null |
	grep -q "web-v2.example" || fail "the new SAN is not in the new leaf"
ok "owner update: new SAN issued, mesh CA rotated, root CA kept"

progress "restart and user recovery"
coord_stop c1 TERM
coord_start c1 "$T/coord-data" "$MESH_PORT"
sleep 1
coord_ready c1 && fail "a restarted coordinator must be stale, not ready"
[[ $(coord_metric c1 coordinator_state) == 2 ]] || fail "coordinator_state not 2 (stale) after restart"
vm_root web "$T/vm-stale"
timeout 30 "$BIN/attestation-client" -output-root "$T/vm-stale" -evidence sim -sim-pki "$PKI" \
	-sim-measurement "$MEAS" -once -timeout 3s -retry-max 1s >"$T/vm-stale.log" 2>&1 &&
	fail "a stale coordinator issued a certificate"
pctl recover -c "$(coord_user c1)" --seedshare-key "$W/seedshare-key.pem" \
	--seedshare-file "$SEEDFILE" --test-trust-anchor "$PKI/ark.pem" >"$W/recover.log" 2>&1 || {
	cat "$W/recover.log"
	fail "peerpodctl recover"
}
wait_until 10 "/readyz after recovery" coord_ready c1
pctl verify -c "$(coord_user c1)" -m "$W/manifest-2.json" --test-trust-anchor "$PKI/ark.pem" \
	-o "$W/verify-3" >"$W/verify-3.log" 2>&1 || {
	cat "$W/verify-3.log"
	fail "verify after recovery"
}
# the root CA key is derived from the seed: the recovered root has the same subject and key
# (the certificate itself is made afresh), so certificates from before the restart still chain
[[ $(root_id "$W/verify-2/mesh-root.pem") == "$(root_id "$W/verify-3/mesh-root.pem")" ]] ||
	fail "the root CA key or subject changed in recovery"
check_chain "$(instance_dir "${SID[web]}" web)/run/peerpod/mesh" "$W/verify-3/mesh-root.pem" ||
	fail "a certificate from before the restart does not chain to the recovered root"
# the same history: every manifest file verify wrote is the same
(cd "$W/verify-2" && find . -name 'manifest*' -type f | sort | xargs sha256sum) >"$W/h2"
(cd "$W/verify-3" && find . -name 'manifest*' -type f | sort | xargs sha256sum) >"$W/h3"
[[ -s $W/h2 ]] || fail "verify wrote no manifest files: $(ls "$W/verify-2")"
cmp -s "$W/h2" "$W/h3" || fail "history differs after recovery: $(diff "$W/h2" "$W/h3")"
attest_once "$T/vm-stale" || {
	tail "$T/vm-stale.log"
	fail "attestation after recovery"
}
check_chain "$T/vm-stale/run/peerpod/mesh" "$W/verify-3/mesh-root.pem" || fail "chain after recovery"
ok "restart: stale; recover with the seed share: active, same history and root"

progress "adaptor restart, then cleanup"
hooks=()
for w in web db; do
	hooks+=("$(jq -r '."hook-pid"' "$(instance_dir "${SID[$w]}" "$w")/instance.json")")
done
kill -KILL "$ADAPTOR_PID"
wait "$ADAPTOR_PID" 2>/dev/null
start_adaptor -local-boot-command "$W/boot.sh"
for g in "${hooks[@]}"; do
	pgrep -g "$g" -f attestation-client >/dev/null || fail "the boot chain (group $g) did not survive the adaptor's restart"
done
ok "the pods' attestation clients survived an adaptor kill -9"
for w in web db; do
	ctl stop "${SID[$w]}" >/dev/null || fail "stop $w"
done
assert_clean
for g in "${hooks[@]}"; do
	[[ -z $(live_group_members "$g") ]] || fail "boot chain processes left in group $g: $(live_group_members "$g")"
done
ok "pods stopped, their boot chains and forwarders gone"
