#!/usr/bin/env bash
# e2e: pods on real pod VMs. The adaptor (libvirt provider, mutual TLS) runs inside the test's node
# network namespace next to a private libvirtd (test/e2e/libvirt-lib.sh); each "pod" is a network
# namespace wired like a CNI does it (veth, eth0 with an address, default route via the node).
# Checked: CreateVM/StartVM, agent calls through adaptor -> TLS -> forwarder -> agent stand-in, TCP
# from the node to a listener in the VM's pod netns through the vxlan tunnel, kill -9 and restart
# of the adaptor with a pod running, the sweep of a domain no sandbox owns, StopVM leaving nothing
# behind (domain, volumes, vxlan, tc, iptables), and two pods started and stopped at once.
# Needs root; exit 77 = skipped.
. "$(dirname "$0")/libvirt-lib.sh"

ECHO_PORT=7777
PODNETS=()
C= # adaptor scratch dir: short, agent socket paths must fit in sun_path (108 bytes)

pods_cleanup() {
	local rc=$? n d
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
	for n in "${PODNETS[@]}"; do ip netns del "$n" 2>/dev/null; done
	[[ -n $C ]] && rm -rf "$C"
	(exit "$rc")
	lv_cleanup
}

agent() { # SOCKET ARGS...
	local s=$1
	shift
	"$BIN/peerpodctl" --timeout 60s agent --agent-socket "$s" "$@"
}
new_sid() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# make_pod N: netns pp-pod-$$-N with eth0 = 10.244.N.7/24, default via 10.244.N.1 (node side
# ppvethN in the node namespace), like a bridge-less CNI plugin leaves a pod.
make_pod() {
	local n=$1 ns=pp-pod-$$-$1
	ip netns add "$ns" || lv_fail "ip netns add $ns"
	PODNETS+=("$ns")
	ip -n "$ns" link set lo up &&
		ip link add "ppveth$n" netns "$LV_NS" type veth peer name eth0 netns "$ns" &&
		ip -n "$LV_NS" addr add "10.244.$n.1/24" dev "ppveth$n" &&
		ip -n "$LV_NS" link set "ppveth$n" up &&
		ip -n "$ns" addr add "10.244.$n.7/24" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via "10.244.$n.1" dev eth0 || lv_fail "pod network $ns"
}

# echo_check N: a TCP connection from the node namespace to 10.244.N.7:ECHO_PORT, which is the
# echo listener in the pod VM's podns (reached through eth0 -> tc -> vxlan1 -> the VM).
echo_check() {
	local n=$1 msg got deadline=$((SECONDS + ${2:-30}))
	msg="hello-pod-$n-$RANDOM"
	while ((SECONDS < deadline)); do
		got=$(timeout 8 ip netns exec "$LV_NS" bash -c \
			'exec 3<>"/dev/tcp/$1/$2" && echo "$3" >&3 && read -r -t 5 l <&3 && echo "$l"' \
			_ "10.244.$n.7" "$ECHO_PORT" "$msg" 2>/dev/null)
		[[ $got == "$msg" ]] && return 0
		sleep 1
	done
	lv_fail "no echo from 10.244.$n.7:$ECHO_PORT through the tunnel (got '$got')"
}

health() { # SOCKET
	local out
	out=$(agent "$1" health) || lv_fail "agent health through $1 failed"
	[[ $out == *SERVING* ]] || lv_fail "agent health through $1: '$out'"
}

domain_of() { # SID: the instance name's domain (podvm-<pod>-<sid8>) or nothing
	lv_virsh list --all --name | grep -- "-${1:0:8}\$"
}

# assert_clean N SID: nothing of the pod is left: domain, volumes, tunnel, tc, iptables.
assert_clean() {
	# Outputs go into variables first: with pipefail, `cmd | grep -q` can report the
	# writer's SIGPIPE instead of the match, and a leftover would pass unnoticed.
	local n=$1 sid=$2 ns=pp-pod-$$-$1 out
	[[ -z $(domain_of "$sid") ]] || lv_fail "domain of $sid still defined after StopVM"
	out=$(lv_virsh vol-list "$LV_POOL")
	[[ $out != *"-${sid:0:8}"* ]] || lv_fail "volumes of $sid left: $out"
	out=$(ip -n "$ns" -o link show)
	grep -Eq 'vxlan|ppvxlan' <<<"$out" && lv_fail "vxlan device left in $ns: $out"
	out=$(ip -n "$LV_NS" -o link show)
	grep -q ppvxlan <<<"$out" && lv_fail "ppvxlan device left in the node namespace"
	out=$(ip netns exec "$ns" tc qdisc show dev eth0)
	grep -q ingress <<<"$out" && lv_fail "ingress qdisc left on eth0 of $ns"
	[[ -z $(ip netns exec "$ns" tc filter show dev eth0 ingress 2>/dev/null) ]] ||
		lv_fail "tc filter left on eth0 of $ns"
	[[ -d $C/pods/$sid ]] && lv_fail "state directory of $sid left"
	return 0
}

assert_no_iptables() {
	local rules
	rules=$(ip netns exec "$LV_NS" iptables -t raw -S)
	[[ $rules == *peerpod* ]] && lv_fail "peerpod iptables rules left in the node namespace: $rules"
	return 0
}

# ---------------------------------------------------------------------------------------------
lv_setup
trap pods_cleanup EXIT
C=$(mktemp -d /tmp/pp.XXXXXX) || lv_fail "mktemp"
chmod 0755 "$C"
mkdir -p "$C/consoles"
lv_upload "$LV_IMG/podvm-base.qcow2" podvm-base.qcow2 qcow2
# The node's primary interface (the vxlan underlay) is the one with the default route.
lv_in_ns ip route add default dev "$LV_BRIDGE" || lv_fail "default route in $LV_NS"
make_pod 1
make_pod 2
lv_log "node namespace ready: pod netns pp-pod-$$-1 (10.244.1.7), pp-pod-$$-2 (10.244.2.7)"

# the adaptor as this test runs it: an echo listener in each VM's pod namespace, patient waits
caa_start() {
	lv_caa_start "pp.test_listener=$ECHO_PORT" -libvirt-ip-retries 240 -proxy-timeout 3m \
		-log-level debug
}

caa_start
lv_log "adaptor (libvirt provider, TLS on) pid $CAA_PID"

# ---- one pod: create, start, agent calls, TCP through the tunnel ----
SID_A=$(new_sid)
SOCK_A=$(ctl create "$SID_A" --pod pod-a --namespace e2e --netns "/run/netns/pp-pod-$$-1") ||
	lv_fail "CreateVM"
[[ $SOCK_A == "$C/pods/$SID_A/"* ]] || lv_fail "unexpected agent socket '$SOCK_A'"
t=$SECONDS
ctl start "$SID_A" >/dev/null || lv_fail "StartVM of pod-a"
DOM_A=$(domain_of "$SID_A")
lv_log "pod-a started in $((SECONDS - t))s (domain $DOM_A)"
vols=$(lv_virsh vol-list "$LV_POOL")
[[ $vols == *"$DOM_A-root.qcow2"* && $vols == *"$DOM_A-cidata.iso"* ]] ||
	lv_fail "pod-a's volumes are not in the pool: $vols"
health "$SOCK_A"
agent "$SOCK_A" create-sandbox --sandbox-id "$SID_A" --hostname pod-a >/dev/null ||
	lv_fail "CreateSandbox"
agent "$SOCK_A" create-container --id c1 --sandbox-id "$SID_A" >/dev/null || lv_fail "CreateContainer"
lv_log "agent calls (health, create-sandbox, create-container) through mutual TLS answered"
CONSOLE_A=$C/consoles/$DOM_A.log
grep -q 'peerpod: READY: forwarder listening on .* port 15150' "$CONSOLE_A" &&
	! grep -q 'TLS disabled' "$CONSOLE_A" || lv_fail "the forwarder does not run with TLS (console)"
echo_check 1
lv_log "TCP echo from the node to 10.244.1.7:$ECHO_PORT through the vxlan tunnel"

# ---- kill -9 of the adaptor with the pod running, then a restart ----
lv_caa_stop KILL
caa_start
for ((i = 0; i < 50; i++)); do
	[[ -S $SOCK_A ]] && break
	sleep 0.1
done
grep -q "restored running sandbox" "$C/adaptor.log" || lv_fail "pod-a was not restored"
health "$SOCK_A"
echo_check 1
lv_log "after kill -9 and restart: agent health through the same socket, TCP path still up"

# ---- a domain no sandbox owns: the sweep at start deletes it ----
SID_B=$(new_sid)
ctl create "$SID_B" --pod pod-b --namespace e2e >/dev/null || lv_fail "CreateVM of pod-b"
ctl start "$SID_B" >/dev/null || lv_fail "StartVM of pod-b"
DOM_B=$(domain_of "$SID_B")
[[ -n $DOM_B ]] || lv_fail "no domain for pod-b"
lv_caa_stop KILL
rm -rf "${C:?}/pods/$SID_B"
caa_start
for ((i = 0; i < 120; i++)); do
	[[ -z $(domain_of "$SID_B") ]] && break
	sleep 0.5
done
[[ -z $(domain_of "$SID_B") ]] || lv_fail "the sweep did not delete $DOM_B"
vols=$(lv_virsh vol-list "$LV_POOL")
[[ $vols != *"$DOM_B"* ]] || lv_fail "the sweep left volumes of $DOM_B"
grep -q "deleted stray instance" "$C/adaptor.log" || lv_fail "no sweep in the adaptor log"
health "$SOCK_A"
lv_log "sweep deleted the unowned domain $DOM_B and its volumes; pod-a still healthy"

# ---- StopVM leaves nothing ----
ctl stop "$SID_A" >/dev/null || lv_fail "StopVM of pod-a"
assert_clean 1 "$SID_A"
assert_no_iptables
# Without the tunnel, the worker's own pod netns answers: nothing listens there.
timeout 8 ip netns exec "$LV_NS" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ 10.244.1.7 "$ECHO_PORT" \
	2>/dev/null && lv_fail "10.244.1.7:$ECHO_PORT still answers after StopVM"
lv_log "pod-a stopped: no domain, volume, vxlan, tc or iptables rule left"

# ---- two pods at once ----
SID_C=$(new_sid)
SID_D=$(new_sid)
SOCK_C=$(ctl create "$SID_C" --pod pod-c --namespace e2e --netns "/run/netns/pp-pod-$$-1") &&
	SOCK_D=$(ctl create "$SID_D" --pod pod-d --namespace e2e --netns "/run/netns/pp-pod-$$-2") ||
	lv_fail "CreateVM of pod-c/pod-d"
t=$SECONDS
ctl start "$SID_C" >"$C/start-c.out" 2>&1 &
pc=$!
ctl start "$SID_D" >"$C/start-d.out" 2>&1 &
pd=$!
wait "$pc" || lv_fail "StartVM of pod-c: $(cat "$C/start-c.out")"
wait "$pd" || lv_fail "StartVM of pod-d: $(cat "$C/start-d.out")"
lv_log "pod-c and pod-d started concurrently in $((SECONDS - t))s"
health "$SOCK_C"
health "$SOCK_D"
echo_check 1
echo_check 2
lv_log "both healthy, both reachable through their tunnels"
ctl stop "$SID_C" >/dev/null &
pc=$!
ctl stop "$SID_D" >/dev/null &
pd=$!
wait "$pc" || lv_fail "StopVM of pod-c"
wait "$pd" || lv_fail "StopVM of pod-d"
assert_clean 1 "$SID_C"
assert_clean 2 "$SID_D"
assert_no_iptables
[[ -z $(lv_virsh list --all --name) ]] || lv_fail "domains left: $(lv_virsh list --all --name)"
lv_log "pod-c and pod-d stopped cleanly"

lv_caa_stop TERM
grep -E 'ERROR|error' "$C/adaptor.log" | grep -v 'level=debug' | head -n 5 | sed 's/^/  adaptor: /'
echo "ok: pods on libvirt pod VMs (TLS, agent calls, vxlan TCP, restart, sweep, stop, 2 at once)"
