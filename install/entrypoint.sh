#!/bin/bash
# install/entrypoint.sh: the adaptor image's entrypoint. Checks that the settings the chosen
# provider cannot start without are there (peer-pods-cm, peer-pods-secret, the mounted key and
# token files) and says what to fix, then execs `cloud-api-adaptor "$CLOUD_PROVIDER" "$@"`.
# Arguments are passed on as flags; a setting given as a flag counts as set.
# ENTRYPOINT_EXEC replaces the adaptor binary (tests).
set -uo pipefail

adaptor=${ENTRYPOINT_EXEC:-cloud-api-adaptor}
errors=0

err() {
	echo "entrypoint: error: $*" >&2
	errors=$((errors + 1))
}
note() { echo "entrypoint: $*" >&2; }

# A provider as first argument wins over CLOUD_PROVIDER, as with the adaptor itself.
provider=${CLOUD_PROVIDER:-}
if (($# > 0)) && [[ $1 != -* ]]; then
	provider=$1
	shift
fi

has_flag() {
	local a
	for a in "${args[@]}"; do
		case $a in
		-"$1" | --"$1" | -"$1"=* | --"$1"=*) return 0 ;;
		esac
	done
	return 1
}
args=("$@")

# Help and version need no configuration.
for a in "$@"; do
	case $a in
	-h | -help | --help | -version | --version)
		if [[ -n $provider ]]; then exec "$adaptor" "$provider" "$@"; fi
		exec "$adaptor" "$@"
		;;
	esac
done

# need VAR FLAG WHAT: VAR (or -FLAG) must be non-empty.
need() {
	if [[ -z ${!1:-} ]] && ! has_flag "$2"; then
		err "$1 is not set ($3); add it to the ConfigMap peer-pods-cm"
		return 1
	fi
	return 0
}

# readable_file VAR WHAT: the file VAR names must be readable.
readable_file() {
	local f=${!1:-}
	[[ -z $f ]] && return 0
	if [[ ! -r $f || -d $f ]]; then
		err "$1=$f: no such readable file ($2)"
		return 1
	fi
	return 0
}

check_common() {
	readable_file CACERT_FILE "mount the Secret certs-for-tls with ca.crt at /etc/certificates"
	readable_file CERT_FILE "mount the Secret certs-for-tls with client.crt at /etc/certificates"
	readable_file CERT_KEY "mount the Secret certs-for-tls with client.key at /etc/certificates"
	if [[ -n ${CERT_FILE:-} && -z ${CERT_KEY:-} ]] || [[ -z ${CERT_FILE:-} && -n ${CERT_KEY:-} ]]; then
		err "CERT_FILE and CERT_KEY go together: set both or neither"
	fi
	if [[ -z ${NODE_NAME:-} ]] && ! has_flag node-name; then
		note "warning: NODE_NAME is not set: the node's kata.peerpods.io/vm capacity is not" \
			"advertised (the DaemonSet sets it from spec.nodeName)"
	fi
}

# The query parameter NAME of a libvirt URI, or empty.
uri_param() {
	local q=${2#*\?} kv
	[[ $q == "$2" ]] && return 0
	local IFS='&'
	for kv in $q; do
		if [[ ${kv%%=*} == "$1" ]]; then
			printf '%s' "${kv#*=}"
			return 0
		fi
	done
}

check_libvirt() {
	local uri=${LIBVIRT_URI:-qemu+ssh://root@192.168.122.1/system?no_verify=1}
	if has_flag uri; then
		return 0 # given on the command line: nothing to look at here
	fi
	local scheme=${uri%%://*}
	case $scheme in
	*+ssh | *+libssh | *+libssh2)
		local key
		key=$(uri_param keyfile "$uri")
		if [[ -z $key ]]; then
			local home=${HOME:-/root} k
			key=$home/.ssh/id_rsa
			# ssh tries each default identity; any of them will do
			for k in id_rsa id_ed25519 id_ecdsa; do
				if [[ -e $home/.ssh/$k ]]; then
					key=$home/.ssh/$k
					break
				fi
			done
		fi
		if [[ ! -e $key ]]; then
			err "LIBVIRT_URI=$uri logs in with SSH but there is no key at $key: create the" \
				"Secret ssh-key-secret (id_rsa, id_rsa.pub); the DaemonSet mounts it at /root/.ssh"
			return
		fi
		if [[ ! -r $key ]]; then
			err "SSH key $key is not readable"
			return
		fi
		if ! grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$key"; then
			err "SSH key $key is not a private key (still the placeholder?): put the output of" \
				"ssh-keygen in ssh-key-secret, and its .pub into the libvirt host's" \
				"authorized_keys"
			return
		fi
		local mode
		mode=$(stat -L -c %a "$key" 2>/dev/null || echo 600)
		if (((8#$mode & 8#077) != 0)); then
			err "SSH key $key has mode $mode; ssh refuses keys others can read: mount it with" \
				"defaultMode 0600 (384)"
		fi
		;;
	qemu | qemu+unix | test)
		if [[ $scheme != test ]]; then
			local sock
			sock=$(uri_param socket "$uri")
			[[ -n $sock ]] || sock=/run/libvirt/libvirt-sock
			if [[ ! -S $sock ]]; then
				err "LIBVIRT_URI=$uri needs libvirtd's socket $sock in the container: mount the" \
					"host's /run/libvirt, or use qemu+ssh://"
			fi
		fi
		;;
	qemu+tcp | qemu+tls) ;;
	*)
		err "LIBVIRT_URI=$uri: unsupported scheme \"$scheme\" (qemu+ssh://, qemu+tcp://," \
			"qemu+tls:// or qemu:///system)"
		;;
	esac
}

check_azure() {
	need AZURE_SUBSCRIPTION_ID subscriptionid "the subscription of the pod VMs"
	need AZURE_REGION region "the Azure region of the pod VMs, e.g. eastus"
	need AZURE_RESOURCE_GROUP resourcegroup "the resource group the pod VMs are created in"
	if need AZURE_SUBNET_ID subnetid "the subnet the pod VMs join" && [[ -n ${AZURE_SUBNET_ID:-} ]]; then
		shopt -s nocasematch
		if [[ $AZURE_SUBNET_ID != /subscriptions/*/subnets/* ]]; then
			err "AZURE_SUBNET_ID=$AZURE_SUBNET_ID is not a subnet resource id" \
				"(/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>)"
		fi
		shopt -u nocasematch
	fi
	if need AZURE_IMAGE_ID imageid "the pod VM image" && [[ -n ${AZURE_IMAGE_ID:-} ]]; then
		if [[ $AZURE_IMAGE_ID != /* ]]; then
			err "AZURE_IMAGE_ID=$AZURE_IMAGE_ID is not an image resource id (/subscriptions/...)"
		fi
	fi
	# Credentials: a client secret; else workload identity (the AKS webhook injects the token
	# file); else the node's managed identity through IMDS.
	if [[ -n ${AZURE_CLIENT_SECRET:-} ]]; then
		[[ -n ${AZURE_CLIENT_ID:-} ]] ||
			err "AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID is not: add the service principal's" \
				"application id to the Secret peer-pods-secret"
		[[ -n ${AZURE_TENANT_ID:-} ]] ||
			err "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID is not: add it to the Secret" \
				"peer-pods-secret"
		note "azure: authenticating with the client secret of ${AZURE_CLIENT_ID:-?}"
	elif [[ -n ${AZURE_FEDERATED_TOKEN_FILE:-} ]]; then
		readable_file AZURE_FEDERATED_TOKEN_FILE "the projected service account token of workload identity"
		[[ -n ${AZURE_CLIENT_ID:-} ]] ||
			err "workload identity: AZURE_CLIENT_ID is not set: annotate the ServiceAccount" \
				"cloud-api-adaptor with azure.workload.identity/client-id"
		[[ -n ${AZURE_TENANT_ID:-} ]] ||
			err "workload identity: AZURE_TENANT_ID is not set (the webhook sets it; or add it" \
				"to peer-pods-secret)"
		note "azure: authenticating with workload identity (client ${AZURE_CLIENT_ID:-?})"
	else
		note "azure: no AZURE_CLIENT_SECRET and no workload identity token" \
			"(AZURE_FEDERATED_TOKEN_FILE): using the node's managed identity. For workload" \
			"identity label the pod azure.workload.identity/use=\"true\" (overlays/azure-workload-identity)"
	fi
}

check_aws() {
	if need PODVM_AMI_ID imageid "the pod VM AMI, ami-..." && [[ -n ${PODVM_AMI_ID:-} ]]; then
		if [[ ! $PODVM_AMI_ID =~ ^ami-[0-9a-f]+$ ]]; then
			err "PODVM_AMI_ID=$PODVM_AMI_ID is not an AMI id (ami-0123456789abcdef0)"
		fi
	fi
	if [[ -n ${AWS_ACCESS_KEY_ID:-} && -z ${AWS_SECRET_ACCESS_KEY:-} ]]; then
		err "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: add it to the Secret" \
			"peer-pods-secret"
	elif [[ -z ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then
		err "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: add it to the Secret" \
			"peer-pods-secret"
	elif [[ -n ${AWS_ACCESS_KEY_ID:-} ]]; then
		note "aws: authenticating with the access keys of peer-pods-secret"
	elif [[ -n ${AWS_ROLE_ARN:-} || -n ${AWS_WEB_IDENTITY_TOKEN_FILE:-} ]]; then
		[[ -n ${AWS_ROLE_ARN:-} ]] ||
			err "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: annotate the" \
				"ServiceAccount cloud-api-adaptor with eks.amazonaws.com/role-arn"
		if [[ -z ${AWS_WEB_IDENTITY_TOKEN_FILE:-} ]]; then
			err "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not (the EKS pod identity" \
				"webhook sets both)"
		else
			readable_file AWS_WEB_IDENTITY_TOKEN_FILE "the projected service account token of IRSA"
		fi
		note "aws: authenticating as ${AWS_ROLE_ARN:-?} (web identity)"
	else
		note "aws: no access keys and no web identity: using the node's instance profile"
	fi
	if [[ -z ${AWS_REGION:-} ]] && ! has_flag aws-region; then
		note "aws: AWS_REGION not set: the region comes from the instance metadata"
	fi
}

case $provider in
"")
	echo "entrypoint: error: CLOUD_PROVIDER is not set; set it in the ConfigMap peer-pods-cm" \
		"(azure, aws or libvirt)" >&2
	exit 2
	;;
libvirt) check_libvirt ;;
azure) check_azure ;;
aws) check_aws ;;
local) ;; # development only: nothing outside the adaptor's defaults
*)
	echo "entrypoint: error: CLOUD_PROVIDER=$provider is not a provider of this image" \
		"(azure, aws, libvirt)" >&2
	exit 2
	;;
esac
check_common

if ((errors > 0)); then
	echo "entrypoint: $errors setting(s) missing or wrong for provider $provider; not starting" >&2
	exit 2
fi
exec "$adaptor" "$provider" "$@"
