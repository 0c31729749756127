# shellcheck shell=bash
# test/e2e/libvirt-lib.sh: a private libvirt for end-to-end tests with real pod VMs. Source it, then
# call lv_setup. It creates a network namespace of its own and runs libvirtd inside it with its own
# configuration, socket, state and runtime directories (bind-mounted in a private mount namespace,
# so nothing of the host's libvirt is touched), a dir storage pool and a NAT network whose private
# addresses exist only inside that namespace. Everything is torn down on exit, also on failure.
# Skips (exit 77, "skip: ...") when not root, without /dev/net/tun, netns or a working libvirtd.
#
# After lv_setup: LV_NS (netns name), LV_URI (virsh -c URI), LV_POOL, LV_NET, LV_T (scratch dir),
# lv_virsh ARGS..., lv_in_ns CMD..., lv_upload FILE VOLNAME [FORMAT], lv_start_domain NAME XMLFILE,
# lv_overlay BASEVOL VOL, lv_domain_xml NAME ROOTVOL CIDATAVOL [CMDLINE], lv_wait_ip DOMAIN
# [SECONDS], lv_wait_forwarder IP [SECONDS], lv_make_cidata DIR VOLNAME, lv_restart_daemon.
set -uo pipefail

PP_ROOT=${PP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PP_BUILD=${PP_BUILD:-$PP_ROOT/build}
BIN=$PP_BUILD/bin
LV_IMG=${LV_IMG:-$PP_BUILD/podvm}
LV_POOL=pp-e2e
LV_NET=pp-e2e
LV_BRIDGE=ppbr0
LV_SUBNET=${LV_SUBNET:-192.168.150} # exists only inside LV_NS
LV_VM_MEM_MB=${LV_VM_MEM_MB:-384}
LV_NS=
LV_T=
LV_URI=
LV_DAEMON_PID=
LV_DOMAINS=()

lv_t0=${EPOCHREALTIME/[.,]/}
lv_log() {
	local now=${EPOCHREALTIME/[.,]/}
	printf '[%s +%d.%02ds] %s\n' "$(date +%H:%M:%S)" $(((now - lv_t0) / 1000000)) \
		$(((now - lv_t0) / 10000 % 100)) "$*"
}

lv_skip() {
	echo "skip: $*"
	exit 77
}

lv_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

lv_virsh() {
	virsh -q -c "$LV_URI" "$@"
}

lv_in_ns() {
	ip netns exec "$LV_NS" "$@"
}

lv_cleanup() {
	local rc=$? d p
	trap - EXIT
	if [[ -n $LV_T && -d $LV_T ]]; then
		if ((rc != 0 && rc != 77)); then
			for d in "${LV_DOMAINS[@]}"; do
				echo "---- console of $d (tail)"
				tail -n 40 "$LV_T/console-$d.log" 2>/dev/null
				echo "---- qemu log of $d (tail)"
				tail -n 10 "$LV_T/var/log/libvirt/qemu/$d.log" 2>/dev/null
			done
			echo "---- libvirtd log (tail)"
			tail -n 20 "$LV_T/libvirtd.log" 2>/dev/null
		fi
		if [[ -n $LV_DAEMON_PID ]] && kill -0 "$LV_DAEMON_PID" 2>/dev/null; then
			for d in "${LV_DOMAINS[@]}"; do
				lv_virsh destroy "$d" >/dev/null 2>&1
				lv_virsh undefine "$d" >/dev/null 2>&1
			done
			lv_virsh net-destroy "$LV_NET" >/dev/null 2>&1
			lv_virsh pool-destroy "$LV_POOL" >/dev/null 2>&1
			lv_stop_daemon
		fi
	fi
	if [[ -n $LV_NS ]]; then
		# Whatever still runs in our namespace (QEMU, dnsmasq) was started by this test.
		for p in $(ip netns pids "$LV_NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$LV_NS" 2>/dev/null
	fi
	[[ -n $LV_T ]] && rm -rf "$LV_T"
	((rc == 0)) && lv_log "cleaned up"
	exit $rc
}

# lv_start_daemon FAILFN: libvirtd in LV_NS on the private directories; FAILFN (lv_skip at setup,
# lv_fail later) when it does not come up.
lv_start_daemon() {
	local i
	lv_log "starting libvirtd in $LV_NS"
	ip netns exec "$LV_NS" sh -c '
		set -e
		mount --bind "$1/etc" /etc/libvirt
		mount --bind "$1/run" /run
		mount --bind "$1/var" /var
		mount --bind "$1/passwd" /etc/passwd
		mount --bind "$1/group" /etc/group
		exec libvirtd --config "$1/etc/libvirtd.conf"' sh "$LV_T" >>"$LV_T/libvirtd.out" 2>&1 &
	LV_DAEMON_PID=$!
	LV_URI="qemu:///system?socket=$LV_T/sock/libvirt-sock"
	for ((i = 0; i < 100; i++)); do
		[[ -S $LV_T/sock/libvirt-sock ]] && lv_virsh version >/dev/null 2>&1 && break
		if ! kill -0 "$LV_DAEMON_PID" 2>/dev/null; then
			cat "$LV_T/libvirtd.out" "$LV_T/libvirtd.log" 2>/dev/null | tail -n 5
			LV_DAEMON_PID=
			"$1" "libvirtd could not start"
		fi
		sleep 0.1
	done
	lv_virsh version >/dev/null 2>&1 || "$1" "libvirtd does not answer on $LV_T/sock"
	lv_log "libvirtd pid $LV_DAEMON_PID ready"
}

# lv_stop_daemon: SIGTERM to libvirtd, SIGKILL after 5 s; domains, dnsmasq and the pool's and
# network's state (under LV_T/run) outlive it.
lv_stop_daemon() {
	local p
	[[ -n $LV_DAEMON_PID ]] || return 0
	{
		kill -TERM "$LV_DAEMON_PID"
		for ((p = 0; p < 50; p++)); do
			kill -0 "$LV_DAEMON_PID" || break
			sleep 0.1
		done
		kill -KILL "$LV_DAEMON_PID"
		wait "$LV_DAEMON_PID"
	} 2>/dev/null
	LV_DAEMON_PID=
}

# lv_restart_daemon: stops libvirtd and starts a new one on the same directories and socket, like
# a package upgrade does; it reattaches to running domains and finds the pool and network active.
lv_restart_daemon() {
	local old=$LV_DAEMON_PID
	lv_stop_daemon
	lv_log "libvirtd pid $old stopped"
	lv_start_daemon lv_fail
	[[ $(lv_virsh pool-info "$LV_POOL" 2>/dev/null) == *running* ]] ||
		lv_fail "pool $LV_POOL is not active after the libvirtd restart"
	[[ $(lv_virsh net-info "$LV_NET" 2>/dev/null) =~ Active:\ +yes ]] ||
		lv_fail "network $LV_NET is not active after the libvirtd restart"
}

# lv_setup: checks, namespace, libvirtd, pool, network.
lv_setup() {
	[[ $(id -u) -eq 0 ]] || lv_skip "libvirt e2e needs root"
	[[ -c /dev/net/tun ]] || lv_skip "no /dev/net/tun"
	for tool in virsh libvirtd qemu-system-x86_64 qemu-img ip dnsmasq iptables; do
		command -v $tool >/dev/null || lv_skip "$tool is not installed (scripts/deps.sh)"
	done
	for f in "$LV_IMG/vmlinuz" "$LV_IMG/initrd.img" "$LV_IMG/podvm-base.qcow2" \
		"$LV_IMG/tools/mkcidata" "$BIN/peerpodctl"; do
		[[ -e $f ]] || lv_fail "$f is missing: run 'make' and 'make -C podvm image tools'"
	done

	LV_T=$(mktemp -d "${TMPDIR:-/tmp}/pp-libvirt.XXXXXX")
	chmod 0755 "$LV_T"
	trap lv_cleanup EXIT
	trap 'exit 143' TERM INT HUP
	LV_NS=pp-lv-$$-$RANDOM
	ip netns add "$LV_NS" 2>/dev/null || {
		LV_NS=
		lv_skip "cannot create a network namespace"
	}
	lv_in_ns ip link set lo up || lv_skip "cannot use network namespace $LV_NS"
	lv_log "network namespace $LV_NS"

	# Private directories, bound over /etc/libvirt, /run and /var in libvirtd's mount namespace.
	mkdir -p "$LV_T"/{sock,etc/qemu/networks,run/libvirt,var/lib/libvirt,var/cache/libvirt} \
		"$LV_T"/{var/log/libvirt/qemu,pool}
	ln -s /run "$LV_T/var/run"
	cat >"$LV_T/etc/libvirtd.conf" <<-EOF
		unix_sock_dir = "$LV_T/sock"
		unix_sock_rw_perms = "0700"
		auth_unix_rw = "none"
		auth_unix_ro = "none"
		log_filters = "3:*"
		log_outputs = "3:file:$LV_T/libvirtd.log"
	EOF
	# QEMU as root (no libvirt-qemu user needed), no cgroups, no per-VM mount namespace, no
	# virtlogd, no security driver: a plain QEMU process per domain.
	cat >"$LV_T/etc/qemu.conf" <<-EOF
		user = "root"
		group = "root"
		dynamic_ownership = 0
		remember_owner = 0
		security_driver = "none"
		cgroup_controllers = [ ]
		namespaces = [ ]
		stdio_handler = "file"
	EOF
	cp /etc/libvirt/libvirt.conf "$LV_T/etc/" 2>/dev/null
	# libvirt 9.0 resolves its built-in QEMU user before reading qemu.conf: give it one in the
	# daemon's mount namespace only, rather than adding a user to the host.
	cp /etc/passwd "$LV_T/passwd" && cp /etc/group "$LV_T/group" || lv_fail "copy /etc/passwd"
	getent passwd libvirt-qemu >/dev/null ||
		echo 'libvirt-qemu:x:64055:64055:libvirt (test):/nonexistent:/usr/sbin/nologin' >>"$LV_T/passwd"
	getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >>"$LV_T/group"

	lv_start_daemon lv_skip

	lv_virsh pool-define-as "$LV_POOL" dir --target "$LV_T/pool" >/dev/null &&
		lv_virsh pool-start "$LV_POOL" >/dev/null || lv_fail "storage pool"
	cat >"$LV_T/net.xml" <<-EOF
		<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
		  <name>$LV_NET</name>
		  <forward mode='nat'/>
		  <bridge name='$LV_BRIDGE' stp='off' delay='0'/>
		  <ip address='$LV_SUBNET.1' netmask='255.255.255.0'>
		    <dhcp><range start='$LV_SUBNET.10' end='$LV_SUBNET.100'/></dhcp>
		  </ip>
		  <dnsmasq:options>
		    <!-- dnsmasq pings an address for 3 s before offering it; nothing else lives here -->
		    <dnsmasq:option value='no-ping'/>
		  </dnsmasq:options>
		</network>
	EOF
	lv_virsh net-define "$LV_T/net.xml" >/dev/null && lv_virsh net-start "$LV_NET" >/dev/null ||
		lv_fail "NAT network (see $LV_T/libvirtd.log)"
	lv_log "pool $LV_POOL and network $LV_NET ($LV_SUBNET.0/24, bridge $LV_BRIDGE) up"
}

# lv_upload FILE VOLNAME [FORMAT]: a volume in the pool with FILE's content.
lv_upload() {
	local size
	size=$(stat -c %s "$1")
	lv_virsh vol-create-as "$LV_POOL" "$2" "$size" --format "${3:-raw}" >/dev/null &&
		lv_virsh vol-upload "$2" "$1" --pool "$LV_POOL" || lv_fail "upload of $1 as $2"
}

# lv_overlay BASEVOL VOLNAME: a qcow2 volume backed by BASEVOL, like a pod's root disk.
lv_overlay() {
	local size
	size=$(lv_virsh vol-info "$1" --pool "$LV_POOL" --bytes | awk '/Capacity/ { print $2 }')
	lv_virsh vol-create-as "$LV_POOL" "$2" "$size" --format qcow2 --backing-vol "$1" \
		--backing-vol-format qcow2 >/dev/null || lv_fail "overlay volume $2"
}

# lv_make_cidata DIR VOLNAME: ISO 9660 volume labelled cidata from DIR's files.
lv_make_cidata() {
	"$LV_IMG/tools/mkcidata" "$LV_T/$2" "$1"/* || lv_fail "cidata ISO"
	lv_upload "$LV_T/$2" "$2" raw
}

# lv_domain_xml NAME ROOTVOL CIDATAVOL [CMDLINE]: q35 under TCG, direct kernel boot of the image,
# the cidata ISO on virtio-scsi (the cloud kernel has no AHCI driver), one NIC on LV_NET, the
# serial console logged to $LV_T/console-NAME.log.
lv_domain_xml() {
	cat <<-EOF
		<domain type='qemu'>
		  <name>$1</name>
		  <memory unit='MiB'>$LV_VM_MEM_MB</memory>
		  <vcpu>1</vcpu>
		  <os>
		    <type arch='x86_64' machine='q35'>hvm</type>
		    <kernel>$LV_IMG/vmlinuz</kernel>
		    <initrd>$LV_IMG/initrd.img</initrd>
		    <cmdline>console=ttyS0 panic=-1 ${4:-}</cmdline>
		  </os>
		  <on_poweroff>destroy</on_poweroff>
		  <on_reboot>destroy</on_reboot>
		  <on_crash>destroy</on_crash>
		  <devices>
		    <emulator>$(command -v qemu-system-x86_64)</emulator>
		    <disk type='volume' device='disk'>
		      <driver name='qemu' type='qcow2'/>
		      <source pool='$LV_POOL' volume='$2'/>
		      <target dev='vda' bus='virtio'/>
		    </disk>
		    <controller type='scsi' model='virtio-scsi'/>
		    <disk type='volume' device='cdrom'>
		      <driver name='qemu' type='raw'/>
		      <source pool='$LV_POOL' volume='$3'/>
		      <target dev='sda' bus='scsi'/>
		      <readonly/>
		    </disk>
		    <interface type='network'>
		      <source network='$LV_NET'/>
		      <model type='virtio'/>
		    </interface>
		    <serial type='file'>
		      <source path='$LV_T/console-$1.log'/>
		      <target port='0'/>
		    </serial>
		    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
		    <memballoon model='none'/>
		  </devices>
		</domain>
	EOF
}

# lv_start_domain NAME XMLFILE: define and start; the domain is destroyed on exit.
lv_start_domain() {
	LV_DOMAINS+=("$1")
	lv_virsh define "$2" >/dev/null || lv_fail "define $1"
	lv_virsh start "$1" >/dev/null || lv_fail "start $1"
}

# lv_wait_ip DOMAIN [SECONDS]: prints the domain's IPv4 address from the network's DHCP leases.
lv_wait_ip() {
	local mac ip deadline=$((SECONDS + ${2:-120}))
	mac=$(lv_virsh domiflist "$1" | awk '{ print $5; exit }')
	[[ -n $mac ]] || lv_fail "no NIC on $1"
	while ((SECONDS < deadline)); do
		ip=$(lv_virsh net-dhcp-leases "$LV_NET" --mac "$mac" 2>/dev/null |
			awk '$4 == "ipv4" { sub(/\/.*/, "", $5); print $5; exit }')
		[[ -n $ip ]] && {
			echo "$ip"
			return 0
		}
		sleep 0.5
	done
	lv_fail "$1 ($mac) got no DHCP lease within ${2:-120}s"
}

# lv_wait_forwarder IP [SECONDS]: waits until grpc.Health/Check through IP:15150 (plain ttRPC,
# pp.disable_tls=1) answers; prints the answer.
lv_wait_forwarder() {
	local deadline=$((SECONDS + ${2:-120}))
	while ((SECONDS < deadline)); do
		if lv_in_ns "$BIN/peerpodctl" --timeout 3s call --address "$1:15150" \
			--service grpc.Health --method Check 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	lv_fail "the forwarder at $1:15150 did not answer within ${2:-120}s"
}

# ---- the adaptor with the libvirt provider (callers set C: a short scratch dir, since agent
# socket paths must fit in sun_path) ----

CAA_PID=

# lv_caa_start "KERNEL OPTIONS" [FLAGS...]: cloud-api-adaptor libvirt in the node namespace with
# its state in $C and its log appended to $C/adaptor.log; extra kernel options go after the
# console ones, extra flags after the common ones (a later flag wins). Waits for the socket.
lv_caa_start() {
	local opts=$1
	shift
	rm -f "$C/hypervisor.sock"
	ip netns exec "$LV_NS" "$BIN/cloud-api-adaptor" libvirt \
		-socket "$C/hypervisor.sock" -pods-dir "$C/pods" -data-dir "$C/data" \
		-uri "qemu+unix:///system?socket=$LV_T/sock/libvirt-sock" \
		-pool-name "$LV_POOL" -network-name "$LV_NET" -vol-name podvm-base.qcow2 \
		-cpu 1 -memory "$LV_VM_MEM_MB" \
		-libvirt-kernel "$LV_IMG/vmlinuz" -libvirt-initrd "$LV_IMG/initrd.img" \
		-libvirt-cmdline "console=ttyS0 panic=-1${opts:+ $opts}" \
		-libvirt-console-log-dir "$C/consoles" -libvirt-ip-interval 500ms \
		"$@" >>"$C/adaptor.log" 2>&1 &
	CAA_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -S $C/hypervisor.sock ]] && return 0
		kill -0 "$CAA_PID" 2>/dev/null || lv_fail "the adaptor exited at start"
		sleep 0.1
	done
	lv_fail "the adaptor does not listen on $C/hypervisor.sock"
}

# lv_caa_stop [SIGNAL]: signal the adaptor (TERM by default), wait, KILL after 10 s.
lv_caa_stop() {
	[[ -n $CAA_PID ]] || return 0
	# braces: no "Killed" job notice from bash
	{
		kill "-${1:-TERM}" "$CAA_PID"
		local i
		for ((i = 0; i < 100; i++)); do
			kill -0 "$CAA_PID" || break
			sleep 0.1
		done
		kill -KILL "$CAA_PID"
		wait "$CAA_PID"
	} 2>/dev/null
	CAA_PID=
}

ctl() { "$BIN/peerpodctl" --socket "$C/hypervisor.sock" "$@"; }
