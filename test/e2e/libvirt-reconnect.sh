#!/usr/bin/env bash
# e2e: the libvirt provider survives a libvirtd restart. The adaptor (libvirt provider) keeps one
# libvirt connection; when the private libvirtd (test/e2e/libvirt-lib.sh) restarts, that connection
# is dead and the next call must reconnect once and retry, with the adaptor still running.
# Checked: a running pod VM survives the restart (same QEMU process, pool and NAT network active);
# StopVM of that pod, as the first call on the dead connection, deletes its domain and volumes;
# after a second restart StartVM of a new pod, again first on a dead connection, boots a VM whose
# agent answers; at the end no domain, volume or pod state is left and the adaptor never restarted.
# One VM at a time. Needs root; exit 77 = skipped.
. "$(dirname "$0")/libvirt-lib.sh"

C= # adaptor scratch dir: short, agent socket paths must fit in sun_path (108 bytes)

reconnect_cleanup() {
	local rc=$?
	trap - EXIT
	if ((rc != 0 && rc != 77)) && [[ -n $C ]]; then
		echo "---- adaptor log (tail)"
		tail -n 60 "$C/adaptor.log" 2>/dev/null
		for f in "$C"/consoles/*.log; do
			[[ -e $f ]] || continue
			echo "---- console ${f##*/} (tail)"
			tail -n 30 "$f"
		done
	fi
	lv_caa_stop TERM
	if [[ -n $LV_DAEMON_PID ]] && kill -0 "$LV_DAEMON_PID" 2>/dev/null; then
		for d in $(lv_virsh list --all --name 2>/dev/null); do LV_DOMAINS+=("$d"); done
	fi
	[[ -n $C ]] && rm -rf "$C"
	(exit "$rc")
	lv_cleanup
}

caa_alive() { # the adaptor started at the beginning still runs
	kill -0 "$CAA_PID" 2>/dev/null || lv_fail "the adaptor (pid $CAA_PID) died: $1"
}

new_sid() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

health() { # SOCKET
	local out
	out=$("$BIN/peerpodctl" --timeout 60s agent --agent-socket "$1" health) ||
		lv_fail "agent health through $1 failed"
	[[ $out == *SERVING* ]] || lv_fail "agent health through $1: '$out'"
}

domain_of() { # SID: the instance's domain (podvm-<pod>-<sid8>) or nothing
	lv_virsh list --all --name | grep -- "-${1:0:8}\$"
}

qemu_pid() { # DOMAIN: pid of its QEMU process, from libvirt's state directory
	cat "$LV_T/run/libvirt/qemu/$1.pid" 2>/dev/null
}

assert_gone() { # SID: no domain, no volume, no state directory
	local sid=$1
	[[ -z $(domain_of "$sid") ]] || lv_fail "domain of $sid still defined after StopVM"
	local vols
	vols=$(lv_virsh vol-list "$LV_POOL")
	[[ $vols == *"-${sid:0:8}"* ]] && lv_fail "volumes of $sid left: $vols"
	[[ -d $C/pods/$sid ]] && lv_fail "state directory of $sid left"
	return 0
}

# ---------------------------------------------------------------------------------------------
lv_setup
trap reconnect_cleanup EXIT
C=$(mktemp -d /tmp/pp.XXXXXX) || lv_fail "mktemp"
chmod 0755 "$C"
mkdir -p "$C/consoles"
lv_upload "$LV_IMG/podvm-base.qcow2" podvm-base.qcow2 qcow2
lv_in_ns ip route add default dev "$LV_BRIDGE" || lv_fail "default route in $LV_NS"

lv_caa_start "" -libvirt-ip-retries 240 -proxy-timeout 3m -log-level debug
lv_log "adaptor (libvirt provider) pid $CAA_PID"

# ---- pod A running, then libvirtd restarts under it ----
SID_A=$(new_sid)
SOCK_A=$(ctl create "$SID_A" --pod pod-a --namespace e2e) || lv_fail "CreateVM of pod-a"
ctl start "$SID_A" >/dev/null || lv_fail "StartVM of pod-a"
DOM_A=$(domain_of "$SID_A")
[[ -n $DOM_A ]] || lv_fail "no domain for pod-a"
health "$SOCK_A"
QEMU_A=$(qemu_pid "$DOM_A")
[[ -n $QEMU_A ]] && kill -0 "$QEMU_A" || lv_fail "no QEMU process for $DOM_A"
lv_log "pod-a running (domain $DOM_A, QEMU pid $QEMU_A)"

lv_restart_daemon
[[ $(lv_virsh domstate "$DOM_A") == running ]] ||
	lv_fail "$DOM_A is not running after the libvirtd restart: $(lv_virsh domstate "$DOM_A")"
[[ $(qemu_pid "$DOM_A") == "$QEMU_A" ]] && kill -0 "$QEMU_A" ||
	lv_fail "QEMU of $DOM_A did not survive the libvirtd restart"
health "$SOCK_A"
caa_alive "after the first libvirtd restart"
lv_log "libvirtd restarted: $DOM_A still running in QEMU pid $QEMU_A, pool and network active"

# ---- (1) StopVM of pod A: the first call on the adaptor's dead connection ----
ctl stop "$SID_A" >"$C/stop-a.out" 2>&1 ||
	lv_fail "StopVM of pod-a after the restart: $(cat "$C/stop-a.out")"
assert_gone "$SID_A"
kill -0 "$QEMU_A" 2>/dev/null && lv_fail "QEMU of $DOM_A (pid $QEMU_A) still runs after StopVM"
caa_alive "after StopVM of pod-a"
lv_log "pod-a stopped over a new connection: domain, volumes and QEMU gone"

# ---- (2) StartVM of pod B after a second restart: again first on a dead connection ----
lv_restart_daemon
SID_B=$(new_sid)
SOCK_B=$(ctl create "$SID_B" --pod pod-b --namespace e2e) || lv_fail "CreateVM of pod-b"
ctl start "$SID_B" >"$C/start-b.out" 2>&1 ||
	lv_fail "StartVM of pod-b after the restart: $(cat "$C/start-b.out")"
DOM_B=$(domain_of "$SID_B")
[[ -n $DOM_B ]] || lv_fail "no domain for pod-b"
health "$SOCK_B"
caa_alive "after StartVM of pod-b"
lv_log "pod-b started over a new connection (domain $DOM_B), its agent answers"

# ---- (3) nothing left ----
ctl stop "$SID_B" >/dev/null || lv_fail "StopVM of pod-b"
assert_gone "$SID_B"
[[ -z $(lv_virsh list --all --name) ]] || lv_fail "domains left: $(lv_virsh list --all --name)"
vols=$(lv_virsh vol-list "$LV_POOL" | awk '{ print $1 }')
[[ $vols == podvm-base.qcow2 ]] || lv_fail "volumes left besides the base image: $vols"
caa_alive "at the end"
lv_log "pod-b stopped: only the base volume is left, adaptor pid $CAA_PID never restarted"

lv_caa_stop TERM
grep -E 'ERROR|error' "$C/adaptor.log" | grep -v 'level=debug' | head -n 5 | sed 's/^/  adaptor: /'
echo "ok: libvirt provider reconnects after libvirtd restarts (StopVM and StartVM, no leftovers)"
