#!/usr/bin/env bash
# scripts/demo-libvirt.sh [BUILD]: one pod's life on a real pod VM. A private libvirtd runs in a
# network namespace of its own (test/e2e/libvirt-lib.sh), next to cloud-api-adaptor with the
# libvirt provider and mutual TLS; the "pod" is a network namespace wired like a CNI does it. The
# pod VM boots from build/podvm (direct kernel boot under QEMU), its forwarder relays agent calls
# to the agent stand-in, and the pod's traffic rides the vxlan tunnel. Needs root (exit 77
# otherwise); leaves nothing running.
root=$(cd "$(dirname "$0")/.." && pwd)
PP_BUILD=$(cd "${1:-$root/build}" && pwd) || exit 1
export PP_BUILD
# shellcheck source=test/e2e/libvirt-lib.sh
. "$root/test/e2e/libvirt-lib.sh"

ECHO_PORT=7777
CAA_PID=
POD_NS=
C=

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }
ms_since() { echo $(((${EPOCHREALTIME/[.,]/} - $1) / 1000)); }

demo_cleanup() {
	local rc=$?
	trap - EXIT
	if ((rc != 0 && rc != 77)) && [[ -n $C ]]; then
		echo "---- adaptor log (tail)"
		tail -n 30 "$C/adaptor.log" 2>/dev/null
		for f in "$C"/consoles/*.log; do
			[[ -e $f ]] && echo "---- console ${f##*/} (tail)" && tail -n 20 "$f"
		done
	fi
	if [[ -n $CAA_PID ]]; then
		{
			kill -TERM "$CAA_PID"
			wait "$CAA_PID"
		} 2>/dev/null
	fi
	if [[ -n $LV_DAEMON_PID ]] && kill -0 "$LV_DAEMON_PID" 2>/dev/null; then
		for d in $(lv_virsh list --all --name 2>/dev/null); do LV_DOMAINS+=("$d"); done
	fi
	[[ -n $POD_NS ]] && ip netns del "$POD_NS" 2>/dev/null
	[[ -n $C ]] && rm -rf "$C"
	(exit "$rc")
	lv_cleanup
}

step "private libvirtd in its own network namespace (NAT network $LV_SUBNET.0/24 lives only there)"
lv_setup
trap demo_cleanup EXIT
C=$(mktemp -d /tmp/pp-demo.XXXXXX) || exit 1
chmod 0755 "$C"
mkdir -p "$C/consoles"
lv_upload "$LV_IMG/podvm-base.qcow2" podvm-base.qcow2 qcow2
lv_log "base image uploaded as volume podvm-base.qcow2 in pool $LV_POOL"
lv_in_ns ip route add default dev "$LV_BRIDGE" || lv_fail "default route"

step "a pod network namespace as a CNI leaves it: eth0 10.244.1.7/24, default via 10.244.1.1"
POD_NS=pp-demo-pod-$$
ip netns add "$POD_NS" &&
	ip -n "$POD_NS" link set lo up &&
	ip link add ppveth1 netns "$LV_NS" type veth peer name eth0 netns "$POD_NS" &&
	ip -n "$LV_NS" addr add 10.244.1.1/24 dev ppveth1 &&
	ip -n "$LV_NS" link set ppveth1 up &&
	ip -n "$POD_NS" addr add 10.244.1.7/24 dev eth0 &&
	ip -n "$POD_NS" link set eth0 up &&
	ip -n "$POD_NS" route add default via 10.244.1.1 dev eth0 || lv_fail "pod network"
ip -n "$POD_NS" -br addr show eth0 | show

step "cloud-api-adaptor libvirt (mutual TLS to the pod VM's forwarder)"
lv_caa_start "pp.test_listener=$ECHO_PORT" -libvirt-ip-retries 240
lv_log "adaptor pid $CAA_PID serving $C/hypervisor.sock"

sid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
step "CreateVM (sandbox ${sid:0:12}..., pod default/nginx, netns /run/netns/$POD_NS)"
sock=$(ctl create "$sid" --pod nginx --namespace default --netns "/run/netns/$POD_NS") ||
	lv_fail "CreateVM"
echo "    agent socket: $sock"

step "StartVM: define the domain, boot the pod VM, build the tunnel, dial the forwarder over TLS"
t0=${EPOCHREALTIME/[.,]/}
ctl start "$sid" || lv_fail "StartVM"
lv_log "StartVM answered after $(ms_since "$t0") ms"
dom=$(lv_virsh list --name | grep -- "-${sid:0:8}$")
lv_virsh list --all | show
lv_virsh vol-list "$LV_POOL" | show
echo "    the VM's boot, from its serial console:"
grep -a 'peerpod:' "$C/consoles/$dom.log" | tr -d '\r' | show

step "agent calls through adaptor -> mutual TLS -> forwarder -> agent stand-in"
a() { "$BIN/peerpodctl" agent --agent-socket "$sock" "$@"; }
a health | show
a create-sandbox --sandbox-id "$sid" --hostname nginx --dns "nameserver 10.96.0.10" | show
a create-container --id pause --sandbox-id "$sid" | show
a start-container --id pause | show

step "the tunnel on the worker: vxlan1 in the pod netns, tc redirects, iptables NOTRACK rules"
ip -n "$POD_NS" -d -br link show | show
ip netns exec "$POD_NS" tc filter show dev eth0 ingress | grep -E 'mirred|filter' | head -n 3 | show
ip netns exec "$LV_NS" iptables -t raw -S | grep peerpod | show

step "TCP from the node to 10.244.1.7:$ECHO_PORT: an echo server in the VM's pod netns"
t0=${EPOCHREALTIME/[.,]/}
got=
for ((i = 0; i < 20; i++)); do
	got=$(timeout 8 ip netns exec "$LV_NS" bash -c \
		'exec 3<>"/dev/tcp/$1/$2" && echo "$3" >&3 && read -r -t 5 l <&3 && echo "$l"' \
		_ 10.244.1.7 "$ECHO_PORT" "hello through the tunnel" 2>/dev/null) && break
	sleep 1
done
[[ $got == "hello through the tunnel" ]] || lv_fail "no echo through the tunnel"
echo "    sent 'hello through the tunnel', got '$got' back ($(ms_since "$t0") ms)"

step "DestroySandbox, then StopVM: the domain, its volumes and the tunnel go away"
a destroy-sandbox | show
t0=${EPOCHREALTIME/[.,]/}
ctl stop "$sid" || lv_fail "StopVM"
lv_log "StopVM answered after $(ms_since "$t0") ms"
left=$(lv_virsh list --all --name)
left+=$(lv_virsh vol-list "$LV_POOL" | grep -v podvm-base.qcow2)
left+=$(ip -n "$POD_NS" -o link show | grep vxlan)
left+=$(ip netns exec "$LV_NS" iptables -t raw -S | grep peerpod)
[[ -z $left ]] || lv_fail "left behind: $left"
echo "    no domain, no pod volume, no vxlan device, no peerpod iptables rule left"

step "adaptor log"
show <"$C/adaptor.log"
step "cleaning up (libvirtd, namespaces, scratch files)"
