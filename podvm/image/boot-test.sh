#!/usr/bin/env bash
# Boots the pod VM image once in QEMU without libvirt (TCG, q35, direct kernel boot, the cidata ISO
# on virtio-scsi, user networking whose only host port is a forward on 127.0.0.1) and calls the
# forwarder's grpc.Health/Check through it. Prints the boot-to-ready times. Exit 77 = skipped.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PP_ROOT=${PP_ROOT:-$(cd "$HERE/../.." && pwd)}
PP_BUILD=${PP_BUILD:-$PP_ROOT/build}
IMG=${IMG:-$PP_BUILD/podvm}
CTL=$PP_BUILD/bin/peerpodctl
MKCIDATA=$IMG/tools/mkcidata
MEM_MB=${MEM_MB:-384}
BOOT_TIMEOUT_S=${BOOT_TIMEOUT_S:-180}

t0=${EPOCHREALTIME/[.,]/}
elapsed() {
	local now=${EPOCHREALTIME/[.,]/}
	printf '%d.%02d' $(((now - t0) / 1000000)) $(((now - t0) / 10000 % 100))
}
say() { echo "[boot-test $(elapsed)s] $*"; }

for f in "$IMG/vmlinuz" "$IMG/initrd.img" "$IMG/podvm-base.qcow2" "$MKCIDATA" "$CTL"; do
	[[ -e $f ]] || {
		echo "boot-test: $f is missing: run 'make' and 'make -C podvm image tools' first" >&2
		exit 1
	}
done
command -v qemu-system-x86_64 >/dev/null || {
	echo "boot-test: skip: qemu-system-x86_64 is not installed"
	exit 77
}

T=$(mktemp -d "${TMPDIR:-/tmp}/podvm-boot.XXXXXX")
QEMU_PID=
cleanup() {
	local rc=$?
	if [[ -n $QEMU_PID ]]; then
		kill -TERM "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	if ((rc != 0)) && [[ -f $T/console.log ]]; then
		echo "---- VM console (tail)"
		tail -n 40 "$T/console.log"
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

# User data as the adaptor writes it (WIRE 5.1); no TLS material, the forwarder runs -disable-tls.
mkdir -p "$T/cidata"
cat >"$T/cidata/user-data" <<'EOF'
#cloud-config

write_files:
  - path: /run/peerpod/apf.json
    content: |
      {
          "pod-network": {},
          "pod-namespace": "default",
          "pod-name": "boot-test"
      }
EOF
printf 'local-hostname: podvm-boot-test-00000000' >"$T/cidata/meta-data"
: >"$T/cidata/vendor-data"
"$MKCIDATA" "$T/cidata.iso" "$T/cidata/user-data" "$T/cidata/meta-data" "$T/cidata/vendor-data" ||
	exit 1

# The root disk as libvirt would give it: a copy-on-write overlay of the base volume.
qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/podvm-base.qcow2" "$T/root.qcow2" || exit 1

start_qemu() {
	PORT=$((20000 + RANDOM % 20000))
	qemu-system-x86_64 -machine q35,accel=tcg -m "$MEM_MB" -smp 1 \
		-nodefaults -display none -no-reboot \
		-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
		-append "console=ttyS0 panic=-1 pp.disable_tls=1" \
		-serial "file:$T/console.log" \
		-drive "file=$T/root.qcow2,if=none,id=root,format=qcow2" -device virtio-blk-pci,drive=root \
		-device virtio-scsi-pci,id=scsi \
		-drive "file=$T/cidata.iso,if=none,id=cidata,media=cdrom,readonly=on,format=raw" \
		-device scsi-cd,drive=cidata,bus=scsi.0 \
		-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:15150" \
		-device virtio-net-pci,netdev=n0 \
		-device virtio-rng-pci \
		>"$T/qemu.log" 2>&1 &
	QEMU_PID=$!
}

say "booting $IMG (TCG, ${MEM_MB} MiB, 1 vCPU)"
for _ in 1 2 3; do
	start_qemu
	sleep 0.5
	kill -0 "$QEMU_PID" 2>/dev/null && break
	wait "$QEMU_PID" 2>/dev/null
	QEMU_PID=
	grep -q 'hostfwd' "$T/qemu.log" || {
		cat "$T/qemu.log"
		exit 1
	}
done
[[ -n $QEMU_PID ]] || {
	cat "$T/qemu.log"
	exit 1
}
say "qemu pid $QEMU_PID, forwarder port 127.0.0.1:$PORT"

deadline=$((SECONDS + BOOT_TIMEOUT_S))
seen_init=
while :; do
	if ! kill -0 "$QEMU_PID" 2>/dev/null; then
		echo "boot-test: FAIL: QEMU exited" >&2
		cat "$T/qemu.log" >&2
		exit 1
	fi
	if [[ -z $seen_init ]] && grep -q 'peerpod: init started' "$T/console.log" 2>/dev/null; then
		seen_init=$(elapsed)
		say "guest /init started"
	fi
	if grep -q 'BOOT FAILED' "$T/console.log" 2>/dev/null; then
		echo "boot-test: FAIL: $(grep 'BOOT FAILED' "$T/console.log")" >&2
		exit 1
	fi
	if "$CTL" --timeout 3s call --address "127.0.0.1:$PORT" --service grpc.Health \
		--method Check >"$T/health.out" 2>&1; then
		break
	fi
	((SECONDS < deadline)) || {
		echo "boot-test: FAIL: no answer from the forwarder within ${BOOT_TIMEOUT_S}s" >&2
		exit 1
	}
	sleep 0.5
done
ready=$(elapsed)
grep 'peerpod: ' "$T/console.log" | sed 's/^/  console: /'
say "grpc.Health/Check through the forwarder answered: $(head -c 80 "$T/health.out")"
guest_ready=$(sed -n 's/^\[\([0-9.]*\)\] peerpod: READY.*/\1/p' "$T/console.log" | head -n 1)
say "boot times: host wall clock to /init ${seen_init:-?}s, to forwarder answering ${ready}s;" \
	"guest uptime at READY ${guest_ready:-?}s"
echo "boot-test: ok"
