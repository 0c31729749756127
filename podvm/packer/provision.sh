#!/usr/bin/env bash
# The one pod VM recipe both cloud templates run as root inside the Debian 12 build VM (podvm/packer,
# see podvm/README.md). `install`: our programs, the kata-agent, the units that boot in the order of
# podvm/image/init, sshd and cloud-init settings. `cleanup` (last step): removes the build's
# credentials and per-instance state so every pod VM starts fresh.
#
# Environment: PP_CLOUD (azure|aws), PP_STAGE (where the file provisioners put the inputs:
# bin/{agent-protocol-forwarder,process-user-data,attestation-client,kata-agent}, files/,
# kata-agent.toml),
# KATA_AGENT_ARGS, PP_IMAGE_ID (recorded in /etc/peerpod/image-id).
set -euo pipefail

PHASE=${1:-}
PP_CLOUD=${PP_CLOUD:-}
PP_STAGE=${PP_STAGE:-/tmp/peerpod-stage}
KATA_AGENT_ARGS=${KATA_AGENT_ARGS:---config /etc/kata-agent.toml}
PP_IMAGE_ID=${PP_IMAGE_ID:-unknown}
BIN=/usr/local/bin

# Runtime libraries of our programs on Debian 12 (they are built there, against the same sonames),
# iproute2 for `ip netns`, iptables for the pod network (WIRE 6.3).
PACKAGES=(iproute2 iptables ca-certificates libcurl4 libjansson4 libprotobuf-c1 libyaml-0-2
	libnl-3-200 libnl-route-3-200 libssl3)
UNITS=(process-user-data.service peerpod-netns.service attestation-client.service
	kata-agent.service agent-protocol-forwarder.service)

say() { echo "peerpod-provision: $*"; }
die() {
	echo "peerpod-provision: error: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "run as root"
case $PP_CLOUD in
azure | aws) ;;
*) die "PP_CLOUD must be azure or aws, not '$PP_CLOUD'" ;;
esac

install_phase() {
	local p
	for p in agent-protocol-forwarder process-user-data attestation-client kata-agent; do
		[[ -s $PP_STAGE/bin/$p ]] || die "input $PP_STAGE/bin/$p is missing or empty"
	done
	[[ -d $PP_STAGE/files/systemd ]] || die "input $PP_STAGE/files is missing"
	if ! grep -q '^ID=debian' /etc/os-release || ! grep -q '^VERSION_ID="12"' /etc/os-release; then
		say "warning: the base is not Debian 12; our programs are built for Debian 12's libraries"
	fi

	say "installing ${PACKAGES[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -q update
	apt-get -q -y --no-install-recommends install "${PACKAGES[@]}"

	for p in agent-protocol-forwarder process-user-data attestation-client kata-agent; do
		install -m 0755 "$PP_STAGE/bin/$p" "$BIN/$p"
		if head -c 4 "$BIN/$p" | grep -q ELF && ldd "$BIN/$p" 2>&1 | grep -q 'not found'; then
			die "$BIN/$p: libraries not found: $(ldd "$BIN/$p" | grep 'not found' | tr -s ' \t' ' ')"
		fi
	done
	"$BIN/process-user-data" --version >/dev/null || die "process-user-data does not run here"

	install -d -m 0755 /etc/peerpod
	printf '%s\n' "$PP_IMAGE_ID" >/etc/peerpod/image-id
	install -m 0644 "$PP_STAGE/kata-agent.toml" /etc/kata-agent.toml
	install -m 0644 "$PP_STAGE/files/peerpod.tmpfiles" /etc/tmpfiles.d/peerpod.conf
	for p in "${UNITS[@]}"; do
		install -m 0644 "$PP_STAGE/files/systemd/$p" "/etc/systemd/system/$p"
	done

	# process-user-data reads this cloud's metadata service directly (WIRE 5.2 #2 and #3): Azure
	# IMDS compute/userData, or EC2 IMDSv2 (token, then latest/user-data).
	printf 'PROCESS_USER_DATA_OPTIONS=-provider %s\n' "$PP_CLOUD" >/etc/default/process-user-data
	printf 'KATA_AGENT_ARGS=%s\n' "$KATA_AGENT_ARGS" >/etc/default/kata-agent
	[[ -f /etc/default/agent-protocol-forwarder ]] ||
		printf '# Extra forwarder flags, e.g. -cert-file F -cert-key F -ca-cert-file F\nFORWARDER_OPTIONS=\n' \
			>/etc/default/agent-protocol-forwarder
	systemd-tmpfiles --create /etc/tmpfiles.d/peerpod.conf
	systemctl daemon-reload
	systemctl enable "${UNITS[@]}"

	# The pod's cloud-config is ours to read: cloud-init keeps networking, host keys and the
	# operator's SSH key but must not run the write_files entries itself (AWS hands it the same
	# user data).
	if [[ -d /etc/cloud/cloud.cfg.d ]]; then
		printf '# podvm/packer: process-user-data owns the user data\nallow_userdata: false\n' \
			>/etc/cloud/cloud.cfg.d/99-peerpod.cfg
	fi

	# SSH: keys only, no root.
	install -d -m 0755 /etc/ssh/sshd_config.d
	cat >/etc/ssh/sshd_config.d/10-peerpod.conf <<'EOF'
# podvm/packer: key-based logins only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
EOF
	sshd -t || die "sshd rejects the configuration"

	# A pod VM lives minutes to days and is replaced, not updated in place.
	systemctl disable --now apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
	say "installed agent-protocol-forwarder, process-user-data, attestation-client, kata-agent;" \
		"enabled ${UNITS[*]}"
}

cleanup_phase() {
	say "removing build credentials and per-instance state"
	rm -rf "$PP_STAGE"
	apt-get -q clean
	rm -rf /var/lib/apt/lists/*
	# SSH host keys and the build user's keys: cloud-init makes new host keys and installs the
	# operator's key at the first boot of each pod VM.
	rm -f /etc/ssh/ssh_host_*
	rm -rf /root/.ssh
	for h in /home/*; do
		[[ -d $h ]] || continue
		rm -rf "$h/.ssh" "$h/.bash_history"
	done
	rm -f /root/.bash_history
	if command -v cloud-init >/dev/null; then
		cloud-init clean --logs --seed
	fi
	rm -rf /var/lib/waagent/*.xml /var/lib/waagent/Certificates* /var/lib/waagent/*.crt \
		/var/lib/waagent/*.prv 2>/dev/null || true
	: >/etc/machine-id
	rm -f /var/lib/dbus/machine-id
	find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' \) -delete
	find /var/log -type f -exec truncate -s 0 {} +
	if [[ $PP_CLOUD == azure ]] && command -v waagent >/dev/null; then
		# Generalizes the VM for capture and deletes the build user packer logged in with.
		waagent -force -deprovision+user
	fi
	sync
}

case $PHASE in
install) install_phase ;;
cleanup) cleanup_phase ;;
*) die "usage: provision.sh install|cleanup" ;;
esac
