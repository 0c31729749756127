#!/usr/bin/env bash
# Install every Debian package the build, tests, fuzzing and benchmarks need.
# Idempotent and non-interactive. `--check` only reports (exit 1) whether something is missing.
set -euo pipefail

PACKAGES=(
	# build
	build-essential make pkg-config clang clang-format libclang-rt-14-dev
	protobuf-c-compiler libprotobuf-c-dev libssl-dev openssl libjansson-dev libcmocka-dev
	libcurl4-openssl-dev libvirt-dev libnl-3-dev libnl-route-3-dev libisofs-dev libyaml-dev
	zlib1g-dev libxml2-dev
	# pod VMs: libvirt + QEMU (TCG without KVM), the pod VM kernel and a busybox userland
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
	dnsmasq-base iptables busybox-static cpio linux-image-cloud-amd64 ovmf kmod e2fsprogs
	# interop peers: Go and Rust ttRPC from Debian
	golang-go golang-github-containerd-ttrpc-dev golang-github-gogo-protobuf-dev
	cargo rustc librust-ttrpc-dev librust-protobuf-dev
	# cloud mocks check what we send against the official SDKs' models; packer validates the
	# pod VM image templates
	python3-botocore python3-azure packer
	# install/ manifests are validated against the Kubernetes API models
	python3-kubernetes openssh-client
	# the coordinator's replicated store in tests
	etcd-server
	# tests and benchmarks
	python3 jq procps iproute2 psmisc util-linux coreutils curl bc
)

# kubectl (for `kubectl kustomize`): Debian's kubernetes-client, unless some kubectl is already
# installed; another package's /usr/bin/kubectl would conflict with it.
if ! command -v kubectl >/dev/null 2>&1; then
	PACKAGES+=(kubernetes-client)
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

# Where another package owns /usr/bin/kubectl, keep Debian's kubectl (with its older built-in
# kustomize) unpacked beside it, so the install/ tests render with both (scripts/test.sh passes
# it as KUBECTL_EXTRA).
DEBIAN_KUBECTL_ROOT=/opt/pp-kubectl
need_unpack=0
if command -v kubectl >/dev/null 2>&1 && [[ ! -x $DEBIAN_KUBECTL_ROOT/usr/bin/kubectl ]] &&
	! dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null | grep -q 'install ok installed'; then
	need_unpack=1
fi

if [[ "${1:-}" == "--check" ]]; then
	if ((${#missing[@]} || need_unpack)); then
		((need_unpack)) && missing+=("kubernetes-client (unpacked to $DEBIAN_KUBECTL_ROOT)")
		echo "deps: missing: ${missing[*]}" >&2
		exit 1
	fi
	exit 0
fi

SUDO=
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages present"
else
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ((need_unpack)); then
	d=$(mktemp -d)
	if (cd "$d" && apt-get download -q kubernetes-client >/dev/null 2>&1); then
		$SUDO dpkg -x "$d"/kubernetes-client_*.deb "$DEBIAN_KUBECTL_ROOT"
	else
		echo "deps: could not download Debian's kubernetes-client; install/ renders with $(command -v kubectl) only" >&2
	fi
	rm -rf "$d"
fi
