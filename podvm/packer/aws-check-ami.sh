#!/usr/bin/env bash
# Last step of the AWS image build (packer's shell-local post-processor, or by hand): finds the AMI
# in packer's manifest and checks what packer 1.6 cannot set: the boot mode SEV-SNP needs (uefi or
# uefi-preferred, inherited from the Debian source AMI) and ENA. Prints PODVM_AMI_ID.
# Environment: MANIFEST (packer's manifest file), REGION. Uses the aws CLI when installed.
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}

die() {
	echo "aws-check-ami: error: $*" >&2
	exit 1
}
[[ -f ${MANIFEST:-} ]] || die "no manifest at '${MANIFEST:-}'"
# artifact_id of the last build: "region:ami-…[,region:ami-…]".
ami=$("$PY" - "$MANIFEST" "${REGION:?REGION is not set}" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
last = [b for b in m["builds"] if b.get("packer_run_uuid") == m.get("last_run_uuid")] or m["builds"]
for part in last[-1]["artifact_id"].split(","):
    region, _, ami = part.partition(":")
    if region == sys.argv[2]:
        print(ami)
PYEOF
)
[[ $ami == ami-* ]] || die "no AMI for $REGION in $MANIFEST"

if ! command -v aws >/dev/null; then
	echo "aws-check-ami: WARNING: boot mode NOT CHECKED (no aws CLI). Check that this prints uefi or uefi-preferred:"
	echo "  aws ec2 describe-images --region $REGION --image-ids $ami --query 'Images[0].BootMode' --output text"
	echo "PODVM_AMI_ID=$ami"
	exit 0
fi
out=$(aws ec2 describe-images --region "$REGION" --image-ids "$ami" --output text \
	--query 'Images[0].[BootMode, EnaSupport, BlockDeviceMappings[0].Ebs.SnapshotId]') ||
	die "aws ec2 describe-images $ami failed (credentials in the environment?)"
read -r boot ena snap <<<"$out"
[[ $ena == True ]] || die "$ami has EnaSupport=$ena"
case $boot in
uefi | uefi-preferred) ;;
*)
	die "$ami has boot mode '$boot': SEV-SNP needs uefi. Register the same snapshot as a UEFI AMI:
  aws ec2 register-image --region $REGION --name ${ami}-uefi --architecture x86_64 \\
    --virtualization-type hvm --root-device-name /dev/xvda --ena-support --boot-mode uefi \\
    --block-device-mappings 'DeviceName=/dev/xvda,Ebs={SnapshotId=$snap,VolumeType=gp3}'"
	;;
esac
echo "aws-check-ami: $ami in $REGION: boot mode $boot, ENA on"
echo "PODVM_AMI_ID=$ami"
