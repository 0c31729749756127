#!/usr/bin/env bash
# e2e: boot the pod VM image under a private libvirt (own netns, NAT network, dir pool), find the
# VM's address in the DHCP leases and call the forwarder (grpc.Health/Check, TLS off) from inside
# the namespace. Needs root; exit 77 = skipped.
. "$(dirname "$0")/libvirt-lib.sh"

lv_setup
lv_upload "$LV_IMG/podvm-base.qcow2" podvm-base.qcow2 qcow2
lv_log "uploaded podvm-base.qcow2"

NAME=podvm-e2e-boot-$RANDOM
mkdir -p "$LV_T/cidata"
cat >"$LV_T/cidata/user-data" <<'UD'
#cloud-config

write_files:
  - path: /run/peerpod/apf.json
    content: |
      {
          "pod-network": {},
          "pod-namespace": "default",
          "pod-name": "e2e-boot"
      }
UD
printf 'local-hostname: %s' "$NAME" >"$LV_T/cidata/meta-data"
: >"$LV_T/cidata/vendor-data"
lv_make_cidata "$LV_T/cidata" "$NAME-cidata.iso"
lv_overlay podvm-base.qcow2 "$NAME-root.qcow2"
lv_domain_xml "$NAME" "$NAME-root.qcow2" "$NAME-cidata.iso" "pp.disable_tls=1" >"$LV_T/$NAME.xml"

t_start=$SECONDS
lv_start_domain "$NAME" "$LV_T/$NAME.xml"
lv_log "domain $NAME started"
ip=$(lv_wait_ip "$NAME" 120) || exit 1
lv_log "$NAME has address $ip (DHCP lease)"
answer=$(lv_wait_forwarder "$ip" 120) || exit 1
lv_log "grpc.Health/Check through the forwarder at $ip:15150 answered '$answer'" \
	"$((SECONDS - t_start))s after start"
[[ $answer == 0801 ]] || lv_fail "unexpected health answer '$answer' (want 0801 = SERVING)"
grep -q "peerpod: hostname $NAME" "$LV_T/console-$NAME.log" ||
	lv_fail "the VM did not take its hostname from the cidata meta-data"
grep 'peerpod: ' "$LV_T/console-$NAME.log" | sed 's/^/  console: /'

lv_virsh destroy "$NAME" >/dev/null || lv_fail "destroy $NAME"
lv_virsh undefine "$NAME" >/dev/null || lv_fail "undefine $NAME"
lv_virsh vol-delete "$NAME-root.qcow2" --pool "$LV_POOL" >/dev/null || lv_fail "vol-delete"
# shellcheck disable=SC2034 # read by lv_cleanup
LV_DOMAINS=()
echo "ok: pod VM booted under libvirt and its forwarder answered"
