#!/usr/bin/env bash
# install/entrypoint.sh with each overlay's container environment, built from the rendered
# manifests as the kubelet would (envFrom peer-pods-cm then peer-pods-secret, env NODE_NAME and
# POD_UID, the Secret volumes with their modes, what the Azure/EKS identity webhooks inject): it
# must exec the adaptor (a stub here, ENTRYPOINT_EXEC) as `<CLOUD_PROVIDER>` with exactly those
# values, and refuse missing or wrong settings with errors that name them. The real adaptor must
# accept every value of the overlays of the providers it has and know every key.
set -euo pipefail
# shellcheck source=test/k8s/install-lib.sh
source "$(dirname "$0")/install-lib.sh"

ADAPTOR=$BUILD/bin/cloud-api-adaptor
[[ -x $ADAPTOR ]] || {
	echo "FAIL: no $ADAPTOR (run make)" >&2
	exit 1
}
HELP=$("$ADAPTOR" --help)
EP=$TMP/install/entrypoint.sh
cp -r "$ROOT/install" "$TMP/install"
STUB=$TMP/stub-adaptor
cat >"$STUB" <<'STUB'
#!/bin/bash
mkdir -p "$STUB_RECORD"
printf '%s\0' "$@" >"$STUB_RECORD/argv"
env -0 >"$STUB_RECORD/env"
STUB
chmod +x "$STUB"

# The operator's step for libvirt: a real key pair instead of the placeholder files.
key=$TMP/install/overlays/libvirt/id_rsa
rm -f "$key" "$key.pub"
ssh-keygen -q -t ed25519 -N '' -C peerpods -f "$key" 2>/dev/null || {
	printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n' >"$key"
	echo 'ssh-ed25519 AAAA peerpods' >"$key.pub"
}

fails=0
failed() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# run_ep DIR RECORD [VAR=value | -VAR ...] -- [ARGS]: the entrypoint in DIR's environment, with
# variables set or (-VAR) removed; stdout+stderr in RECORD.log, the stub's record in RECORD/.
run_ep() {
	local dir=$1 rec=$2
	shift 2
	local -a vars=() drop=()
	mapfile -d '' vars <"$dir/env"
	while (($#)) && [[ $1 != -- ]]; do
		if [[ $1 == -* ]]; then drop+=("${1#-}"); else vars+=("$1"); fi
		shift
	done
	[[ ${1:-} == -- ]] && shift
	local -a envv=() v d keep
	for v in "${vars[@]}"; do
		keep=1
		for d in "${drop[@]}"; do [[ ${v%%=*} == "$d" ]] && keep=0; done
		((keep)) && envv+=("$v")
	done
	rm -rf "$rec" "$rec.log"
	env -i PATH=/usr/local/bin:/usr/bin:/bin ENTRYPOINT_EXEC="$STUB" STUB_RECORD="$rec" \
		"${envv[@]}" bash "$EP" "$@" >"$rec.log" 2>&1
}

# refused NAME DIR WANT [VAR=value | -VAR ...] -- [ARGS]: exit 2, WANT in the output, no adaptor.
refused() {
	local name=$1 dir=$2 want=$3
	shift 3
	local rec=$TMP/neg-$name rc=0
	run_ep "$dir" "$rec" "$@" || rc=$?
	if ((rc != 2)); then
		failed "$name: exit $rc, want 2: $(cat "$rec.log")"
	elif [[ -e $rec/argv ]]; then
		failed "$name: the adaptor was started"
	elif ! grep -q -- "$want" "$rec.log"; then
		failed "$name: no \"$want\" in: $(cat "$rec.log")"
	else
		echo "refused $name: $(grep -m1 -- "$want" "$rec.log")"
	fi
}

# accepted NAME DIR WANT-ARGV [VAR=value | -VAR ...] -- [ARGS]: the adaptor runs with WANT-ARGV
# (space-separated) as its arguments.
accepted() {
	local name=$1 dir=$2 want=$3
	shift 3
	local rec=$TMP/pos-$name rc=0
	run_ep "$dir" "$rec" "$@" || rc=$?
	if ((rc != 0)) || [[ ! -e $rec/argv ]]; then
		failed "$name: not started (exit $rc): $(cat "$rec.log")"
		return
	fi
	local got
	got=$(tr '\0' ' ' <"$rec/argv")
	[[ $got == "$want " ]] || failed "$name: adaptor arguments [$got], want [$want]"
}

for o in "${OVERLAYS[@]}"; do
	p=${o%%-*}
	dir=$TMP/$o
	mkdir -p "$dir"
	render "$TMP/install/overlays/$o" "$dir/rendered.yaml"
	"$PY" "$CHECK" env "$dir/rendered.yaml" "$o" "$dir" || {
		failed "$o: environment"
		continue
	}
	rc=0
	run_ep "$dir" "$dir/record" || rc=$?
	if ((rc != 0)); then
		failed "$o: the entrypoint refused the overlay's settings (exit $rc): $(cat "$dir/record.log")"
		continue
	fi
	"$PY" "$CHECK" compare "$dir/expected.json" "$dir/record" || failed "$o: adaptor environment"
	"$PY" "$CHECK" adaptor-keys "$dir/rendered.yaml" "$p" "$ADAPTOR" || failed "$o: keys"
	# The real adaptor parses every value (a bad number, port, duration, list... is an error
	# naming the variable); the extra argument stops it right after parsing.
	if [[ " $(grep -m1 '^Providers:' <<<"$HELP") " == *" $p "* ]]; then
		mapfile -d '' vars <"$dir/env"
		rc=0
		(cd "$TMP" && env -i PATH=/usr/bin:/bin "${vars[@]}" "$ADAPTOR" "$p" parse-only) \
			>"$dir/adaptor.log" 2>&1 || rc=$?
		if ((rc != 2)) || [[ $(cat "$dir/adaptor.log") != 'error: unexpected argument "parse-only"' ]]; then
			failed "$o: the adaptor did not accept the overlay's values (exit $rc): $(cat "$dir/adaptor.log")"
		else
			echo "$o: the $p adaptor accepts every value"
		fi
		# and reads each one as the Go adaptor would (-print-config: what it would run with)
		if (cd "$TMP" && env -i PATH=/usr/bin:/bin "${vars[@]}" "$ADAPTOR" "$p" -print-config) \
			>"$dir/config.txt" 2>"$dir/config.err"; then
			"$PY" "$CHECK" config-values "$dir/expected.json" "$dir/config.txt" ||
				failed "$o: the adaptor read the overlay's values differently"
		else
			failed "$o: -print-config failed: $(cat "$dir/config.err")"
		fi
		# and the probe can tell: a wrong value is named
		if [[ $p == libvirt ]]; then
			bad=$(env -i PATH=/usr/bin:/bin "${vars[@]}" LIBVIRT_CPU=two "$ADAPTOR" "$p" \
				parse-only 2>&1 || true)
			[[ $bad == *LIBVIRT_CPU* ]] ||
				failed "$o: the adaptor's parse probe does not report a bad LIBVIRT_CPU: $bad"
		fi
	fi
done

L=$TMP/libvirt A=$TMP/azure W=$TMP/azure-workload-identity S=$TMP/aws I=$TMP/aws-irsa

# libvirt: the SSH key behind qemu+ssh
mkdir -p "$TMP/placeholder"
render "$ROOT/install/overlays/libvirt" "$TMP/placeholder/rendered.yaml"
"$PY" "$CHECK" env "$TMP/placeholder/rendered.yaml" libvirt "$TMP/placeholder"
refused libvirt-placeholder-key "$TMP/placeholder" 'not a private key'
refused libvirt-no-key "$L" 'no key at' HOME="$TMP/nohome"
cp -r "$L/fs/root" "$TMP/loosekey"
chmod 644 "$TMP/loosekey/.ssh/id_rsa"
refused libvirt-key-mode "$L" 'mode 644' HOME="$TMP/loosekey"
refused libvirt-unix-socket "$L" "libvirtd's socket" LIBVIRT_URI=qemu:///system
refused libvirt-scheme "$L" 'unsupported scheme' LIBVIRT_URI=vbox:///session
refused libvirt-keyfile "$L" "no key at /nonexistent/key" \
	"LIBVIRT_URI=qemu+ssh://root@10.0.0.1/system?keyfile=/nonexistent/key&no_verify=1"
accepted libvirt-keyfile-ok "$L" libvirt HOME="$TMP/nohome" \
	"LIBVIRT_URI=qemu+ssh://root@10.0.0.1/system?keyfile=$L/fs/root/.ssh/id_rsa"
accepted libvirt-tcp "$L" libvirt HOME="$TMP/nohome" LIBVIRT_URI=qemu+tcp://10.0.0.1/system
accepted libvirt-uri-flag "$L" "libvirt -uri qemu:///system" -- -uri qemu:///system
# common: TLS files from certs-for-tls
refused cacert-missing "$L" 'certs-for-tls' CACERT_FILE=/etc/certificates/ca.crt
refused cert-without-key "$L" 'CERT_FILE and CERT_KEY' CERT_FILE="$L/fs/root/.ssh/id_rsa.pub"

# azure: every required setting, named, all reported at once
for v in AZURE_SUBSCRIPTION_ID AZURE_REGION AZURE_RESOURCE_GROUP AZURE_SUBNET_ID AZURE_IMAGE_ID; do
	refused "azure-no-$v" "$A" "$v is not set" "-$v"
done
refused azure-all-missing "$A" '5 setting(s) missing' -AZURE_SUBSCRIPTION_ID -AZURE_REGION \
	-AZURE_RESOURCE_GROUP -AZURE_SUBNET_ID -AZURE_IMAGE_ID
refused azure-empty-value "$A" 'AZURE_REGION is not set' AZURE_REGION=
refused azure-subnet-form "$A" 'not a subnet resource id' AZURE_SUBNET_ID=peerpods-subnet
refused azure-secret-no-client "$A" 'AZURE_CLIENT_ID is not' -AZURE_CLIENT_ID
refused azure-secret-no-tenant "$A" 'AZURE_TENANT_ID is not' -AZURE_TENANT_ID
accepted azure-imageid-flag "$A" "azure -imageid /subscriptions/x/images/y" -AZURE_IMAGE_ID -- \
	-imageid /subscriptions/x/images/y
accepted azure-managed-identity "$A" azure -AZURE_CLIENT_ID -AZURE_CLIENT_SECRET -AZURE_TENANT_ID
refused wi-token-missing "$W" 'AZURE_FEDERATED_TOKEN_FILE=/nonexistent' \
	AZURE_FEDERATED_TOKEN_FILE=/nonexistent/token
refused wi-no-client-id "$W" 'azure.workload.identity/client-id' -AZURE_CLIENT_ID

# aws: the AMI; region and subnet may come from the instance metadata; coherent credentials
refused aws-no-ami "$S" 'PODVM_AMI_ID is not set' -PODVM_AMI_ID
refused aws-ami-form "$S" 'not an AMI id' PODVM_AMI_ID=podvm-image
refused aws-key-no-secret "$S" 'AWS_SECRET_ACCESS_KEY is not' -AWS_SECRET_ACCESS_KEY
refused aws-secret-no-key "$S" 'AWS_ACCESS_KEY_ID is not' -AWS_ACCESS_KEY_ID
refused irsa-no-token "$I" 'AWS_WEB_IDENTITY_TOKEN_FILE is not' -AWS_WEB_IDENTITY_TOKEN_FILE
refused irsa-token-missing "$I" 'no such readable file' AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent
refused irsa-no-role "$I" 'eks.amazonaws.com/role-arn' -AWS_ROLE_ARN
accepted aws-instance-profile "$S" aws -AWS_ACCESS_KEY_ID -AWS_SECRET_ACCESS_KEY
accepted aws-ami-flag "$S" "aws -imageid=ami-0abc" -PODVM_AMI_ID -- -imageid=ami-0abc

# the provider itself
refused no-provider "$S" 'CLOUD_PROVIDER is not set' -CLOUD_PROVIDER
refused unknown-provider "$S" 'not a provider of this image' CLOUD_PROVIDER=gcp
accepted provider-argument "$S" "aws" CLOUD_PROVIDER=azure -- aws
accepted help-without-settings "$S" "aws --help" -PODVM_AMI_ID -- --help

((fails == 0)) || exit 1
echo "install-entrypoint: ${#OVERLAYS[@]} overlays start the adaptor as rendered; bad settings refused"
