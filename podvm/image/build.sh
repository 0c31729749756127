#!/usr/bin/env bash
# Builds the pod VM image from Debian packages: the cloud kernel, an initramfs that is the whole root
# file system (busybox, iproute2, iptables, our programs and their shared libraries, the kernel
# modules the VM needs) and a small qcow2 base volume that carries the same boot files. Rebuilds
# only when the hash of every input changes. See podvm/README.md.
#
# Environment (set by podvm/Makefile): OUT, KVER, FORWARDER, PROCESS_USER_DATA, KATA_AGENT,
# KATA_AGENT_ARGS, ATTESTATION_CLIENT (optional: left out of the image when empty or missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:?OUT is not set}
KVER=${KVER:-}
FORWARDER=${FORWARDER:?FORWARDER is not set}
PROCESS_USER_DATA=${PROCESS_USER_DATA:?PROCESS_USER_DATA is not set}
KATA_AGENT=${KATA_AGENT:?KATA_AGENT is not set}
KATA_AGENT_ARGS=${KATA_AGENT_ARGS:-}
ATTESTATION_CLIENT=${ATTESTATION_CLIENT:-}
QCOW2_SIZE_MB=${QCOW2_SIZE_MB:-64}

# Modules the VM loads at boot, by name; their dependencies come from the kernel's modules.dep.
# virtio_pci/net/blk/scsi: the devices libvirt and QEMU give the VM; sr_mod+isofs (+cdrom): the
# cidata ISO; ata_piix: IDE CD-ROMs of i440fx machines (the cloud kernel has no AHCI driver);
# vsock: the agent's alternative transport; vxlan, iptable_raw, xt_comment, xt_tcpudp, xt_CT: the
# pod network of WIRE 6.3.
MODULES=(virtio_pci virtio_net virtio_blk virtio_scsi virtio_console virtio_rng sr_mod sd_mod
	ata_piix isofs vsock vmw_vsock_virtio_transport vxlan iptable_raw xt_comment xt_tcpudp xt_CT)

# Host programs copied in (with their libraries). iproute2's ip is needed for `ip netns`, which
# busybox lacks; iptables-legacy needs no nf_tables modules.
HOST_PROGS=(/usr/sbin/ip /usr/sbin/xtables-legacy-multi)
BUSYBOX=/bin/busybox

t0=${EPOCHREALTIME/[.,]/}
say() {
	local now=${EPOCHREALTIME/[.,]/}
	printf '[podvm %3d.%02ds] %s\n' $(((now - t0) / 1000000)) $(((now - t0) / 10000 % 100)) "$*"
}
die() {
	echo "podvm: error: $*" >&2
	exit 1
}

# ---- inputs ----
if [[ -z $KVER ]]; then
	k=$(printf '%s\n' /boot/vmlinuz-*-cloud-amd64 | grep -v '\*' | sort -V | tail -n 1 || true)
	[[ -n $k ]] || die "no /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64 (scripts/deps.sh)"
	KVER=${k#/boot/vmlinuz-}
fi
VMLINUZ=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
[[ -r $VMLINUZ ]] || die "$VMLINUZ is missing or unreadable (Debian makes it 0600: run as root)"
[[ -f $MODDIR/modules.dep ]] || die "$MODDIR/modules.dep is missing"
"$BUSYBOX" --list >/dev/null 2>&1 || die "no $BUSYBOX: install busybox-static"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked: install busybox-static"
for p in "${HOST_PROGS[@]}"; do [[ -x $p ]] || die "$p is missing (install iproute2 / iptables)"; done
for v in FORWARDER PROCESS_USER_DATA KATA_AGENT; do
	f=${!v}
	if [[ ! -x $f ]]; then
		case $v in
		FORWARDER) hint="run 'make' in the repository root first" ;;
		PROCESS_USER_DATA) hint="build it first ('make build/bin/process-user-data' in the repository root; podvm/userdata/)" ;;
		KATA_AGENT) hint="pass KATA_AGENT=/path/to/kata-agent (tests use build/bin/agent-standin)" ;;
		esac
		die "input $v=$f does not exist or is not executable: $hint"
	fi
done
if [[ -z $KATA_AGENT_ARGS ]]; then
	case $(basename "$KATA_AGENT") in
	agent-standin*) KATA_AGENT_ARGS="-socket /run/kata-containers/agent.sock" ;;
	*) KATA_AGENT_ARGS="--config /etc/kata-agent.toml" ;;
	esac
fi
if [[ -n $ATTESTATION_CLIENT && ! -x $ATTESTATION_CLIENT ]]; then
	echo "podvm: note: $ATTESTATION_CLIENT is missing; the image has no attestation-client" \
		"('make build/bin/attestation-client' adds it)" >&2
	ATTESTATION_CLIENT=
fi
for tool in cpio gzip qemu-img mkfs.ext4 modprobe ldd sha256sum; do
	command -v $tool >/dev/null || die "$tool is missing (scripts/deps.sh)"
done

say "kernel $KVER"
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/podvm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Module files in load order (modprobe prints dependencies first); builtins need no file.
: >"$work/modules"
for m in "${MODULES[@]}"; do
	modprobe --show-depends -S "$KVER" "$m" >"$work/dep" 2>&1 || die "module $m: $(cat "$work/dep")"
	awk '$1 == "insmod" { print $2 }' "$work/dep" >>"$work/modules"
done
awk '!seen[$0]++' "$work/modules" >"$work/modules.order"

# Shared libraries of every ELF program, resolved on this host.
libs_of() {
	ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' || true
}
progs=("$FORWARDER" "$PROCESS_USER_DATA" "$KATA_AGENT" "${HOST_PROGS[@]}")
[[ -n $ATTESTATION_CLIENT ]] && progs+=("$ATTESTATION_CLIENT")
: >"$work/libs"
for p in "${progs[@]}"; do
	if head -c 4 "$p" | grep -q 'ELF'; then libs_of "$p" >>"$work/libs"; fi
done
# iptables extensions (dlopened) need only libxtables and libc, which the program pulls in already.
sort -u "$work/libs" | grep -v '/xtables/' >"$work/libs.sorted" || true

# ---- cache: hash of every input ----
{
	echo "kver $KVER"
	echo "agent-args $KATA_AGENT_ARGS"
	echo "qcow2-size $QCOW2_SIZE_MB"
	mapfile -t kos <"$work/modules.order"
	mapfile -t libs <"$work/libs.sorted"
	sha256sum "$VMLINUZ" "$BUSYBOX" "$HERE"/build.sh "$HERE"/init "$HERE"/udhcpc.script \
		"${progs[@]}" "${kos[@]}" "${libs[@]}" \
		/usr/lib/x86_64-linux-gnu/xtables/*.so | sed "s| $HERE/| podvm/image/|"
} >"$work/inputs"
hash=$(sha256sum "$work/inputs" | cut -d' ' -f1)
if [[ -f $OUT/.stamp && $(cat "$OUT/.stamp") == "$hash" && -f $OUT/vmlinuz && -f $OUT/initrd.img &&
	-f $OUT/podvm-base.qcow2 ]]; then
	say "up to date ($OUT, inputs ${hash:0:12})"
	exit 0
fi
rm -f "$OUT/.stamp"

# ---- root file system ----
root=$work/root
say "staging root file system"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib64,etc/peerpod,dev,proc,sys,run,tmp,var,media/cidata,root}
mkdir -p "$root"/usr/share/udhcpc "$root"/lib/modules/"$KVER"
ln -s /run "$root"/var/run
chmod 1777 "$root"/tmp
mknod -m 600 "$root"/dev/console c 5 1
mknod -m 666 "$root"/dev/null c 1 3

cp "$BUSYBOX" "$root"/bin/busybox
while read -r applet; do
	[[ $applet == bin/busybox || -e $root/$applet || -L $root/$applet ]] && continue
	ln -s /bin/busybox "$root/$applet"
done < <("$BUSYBOX" --list-full)

install_prog() { # SRC DEST
	rm -f "$root/$2"
	cp -L "$1" "$root/$2"
	if head -c 4 "$root/$2" | grep -q 'ELF'; then strip --strip-unneeded "$root/$2" 2>/dev/null || true; fi
	chmod 0755 "$root/$2"
}
install_prog /usr/sbin/ip sbin/ip
install_prog /usr/sbin/xtables-legacy-multi usr/sbin/xtables-legacy-multi
for n in iptables iptables-save iptables-restore; do
	ln -sf xtables-legacy-multi "$root"/usr/sbin/$n
done
rm -f "$root"/sbin/iptables "$root"/usr/sbin/iptables.bb
mkdir -p "$root"/usr/lib/x86_64-linux-gnu/xtables
cp -a /usr/lib/x86_64-linux-gnu/xtables/. "$root"/usr/lib/x86_64-linux-gnu/xtables/
install_prog "$FORWARDER" usr/bin/agent-protocol-forwarder
install_prog "$PROCESS_USER_DATA" usr/bin/process-user-data
install_prog "$KATA_AGENT" usr/bin/kata-agent
[[ -n $ATTESTATION_CLIENT ]] && install_prog "$ATTESTATION_CLIENT" usr/bin/attestation-client
printf '%s\n' "$KATA_AGENT_ARGS" >"$root"/etc/peerpod/agent.args

while read -r lib; do
	mkdir -p "$root/$(dirname "$lib")"
	cp -L "$lib" "$root/$lib"
	strip --strip-unneeded "$root/$lib" 2>/dev/null || true
done <"$work/libs.sorted"

n=0
: >"$root"/etc/peerpod/modules
while read -r ko; do
	rel=${ko#"$MODDIR"/}
	mkdir -p "$root/lib/modules/$KVER/$(dirname "$rel")"
	cp "$ko" "$root/lib/modules/$KVER/$rel"
	echo "/lib/modules/$KVER/$rel" >>"$root"/etc/peerpod/modules
	n=$((n + 1))
done <"$work/modules.order"
say "$n kernel modules, $(wc -l <"$work/libs.sorted") shared libraries"

install -m 0755 "$HERE"/init "$root"/init
install -m 0755 "$HERE"/udhcpc.script "$root"/usr/share/udhcpc/default.script
echo 'root:x:0:0:root:/root:/bin/sh' >"$root"/etc/passwd
echo 'root:x:0:' >"$root"/etc/group
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root"/etc/hosts
printf 'hosts: files dns\n' >"$root"/etc/nsswitch.conf
echo podvm >"$root"/etc/hostname
cp "$work/inputs" "$root"/etc/peerpod/image-inputs
echo "$hash" >"$root"/etc/peerpod/image-id

# Check that every program resolves its libraries inside the new root.
for p in usr/bin/agent-protocol-forwarder usr/bin/process-user-data usr/bin/kata-agent sbin/ip \
	usr/sbin/xtables-legacy-multi usr/bin/attestation-client; do
	[[ -e $root/$p ]] || continue
	head -c 4 "$root/$p" | grep -q ELF || continue
	if chroot "$root" /lib64/ld-linux-x86-64.so.2 --list "/$p" 2>&1 | grep -q 'not found'; then
		die "$p: missing libraries in the image: $(chroot "$root" /lib64/ld-linux-x86-64.so.2 --list "/$p" | grep 'not found')"
	fi
done

say "packing initramfs"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
	gzip -6 -n >"$work/initrd.img"
cp "$VMLINUZ" "$work/vmlinuz"

# The base volume: an ext4 file system labelled podvm holding the boot files and the input list, so
# a volume copied from it says which kernel and initramfs it belongs to. The VM itself runs from
# the initramfs and never mounts it.
say "writing qcow2 base volume"
mkdir -p "$work/vol/boot"
cp "$work/vmlinuz" "$work/initrd.img" "$work/vol/boot/"
cp "$work/inputs" "$work/vol/boot/image-inputs"
echo "$hash" >"$work/vol/boot/image-id"
printf 'console=ttyS0\n' >"$work/vol/boot/cmdline"
truncate -s "${QCOW2_SIZE_MB}M" "$work/vol.raw"
mkfs.ext4 -q -F -L podvm -d "$work/vol" "$work/vol.raw" >/dev/null
qemu-img convert -q -f raw -O qcow2 "$work/vol.raw" "$work/podvm-base.qcow2"

mv -f "$work/vmlinuz" "$OUT/vmlinuz"
mv -f "$work/initrd.img" "$OUT/initrd.img"
mv -f "$work/podvm-base.qcow2" "$OUT/podvm-base.qcow2"
cp "$work/inputs" "$OUT/image-inputs"
echo "$hash" >"$OUT/.stamp"
say "done: $OUT/{vmlinuz,initrd.img ($(du -k "$OUT/initrd.img" | cut -f1) KiB),podvm-base.qcow2}, id ${hash:0:12}"
