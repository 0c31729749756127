#!/usr/bin/env bash
# Last step of the Azure image build (packer's shell-local post-processor, or by hand): makes the
# OS disk snapshot packer left behind an image version of a confidential-VM-capable gallery image
# definition, which packer 1.6's azure-arm builder cannot do. Prints AZURE_IMAGE_ID.
#
# Environment: SUBSCRIPTION RESOURCE_GROUP LOCATION GALLERY IMAGE_DEFINITION IMAGE_VERSION SNAPSHOT
# [REPLICATION_REGIONS (space separated)] [PUBLISH=false to skip]. Needs `az`, logged in.
set -euo pipefail

die() {
	echo "azure-publish: error: $*" >&2
	exit 1
}

if [[ ${PUBLISH:-true} == false ]]; then
	echo "azure-publish: publish_gallery=false: managed image and snapshot ${SNAPSHOT:-?} only"
	exit 0
fi
for v in SUBSCRIPTION RESOURCE_GROUP LOCATION GALLERY IMAGE_DEFINITION IMAGE_VERSION SNAPSHOT; do
	[[ -n ${!v:-} ]] || die "$v is not set"
done
command -v az >/dev/null ||
	die "the Azure CLI (az) is not installed: install it, 'az login', then run $0 with the same environment"
az account show --subscription "$SUBSCRIPTION" -o none 2>/dev/null ||
	die "az is not logged in to subscription $SUBSCRIPTION ('az login')"

azq() { az "$@" --subscription "$SUBSCRIPTION" -o tsv; }

def=$(azq sig image-definition show -g "$RESOURCE_GROUP" -r "$GALLERY" -i "$IMAGE_DEFINITION" \
	--query "[hyperVGeneration, osState, join(',', features[].join('=', [name, value]) || \`[]\`)]" \
	2>/dev/null) ||
	die "image definition $GALLERY/$IMAGE_DEFINITION not found; create it once (podvm/README.md):
  az sig image-definition create -g $RESOURCE_GROUP -r $GALLERY -i $IMAGE_DEFINITION --os-type Linux \\
    --os-state Generalized --hyper-v-generation V2 --publisher peerpod --offer podvm --sku debian12-cvm \\
    --features SecurityType=ConfidentialVmSupported"
read -r gen state features <<<"$(tr '\t' ' ' <<<"$def")"
[[ $gen == V2 ]] || die "image definition $IMAGE_DEFINITION is hyperVGeneration $gen, need V2"
[[ $state == Generalized ]] || die "image definition $IMAGE_DEFINITION is $state, need Generalized"
case ",${features:-}," in
*,SecurityType=ConfidentialVmSupported,* | *,SecurityType=ConfidentialVM,*) ;;
*) die "image definition $IMAGE_DEFINITION lacks SecurityType=ConfidentialVmSupported (features: ${features:-none}); create a new definition, the feature cannot be added later" ;;
esac

snap=$(azq snapshot show -g "$RESOURCE_GROUP" -n "$SNAPSHOT" --query id) ||
	die "snapshot $SNAPSHOT not found in $RESOURCE_GROUP"
read -r -a regions <<<"$LOCATION ${REPLICATION_REGIONS:-}"
echo "azure-publish: $GALLERY/$IMAGE_DEFINITION/$IMAGE_VERSION from $SNAPSHOT (regions ${regions[*]})"
id=$(azq sig image-version create -g "$RESOURCE_GROUP" -r "$GALLERY" -i "$IMAGE_DEFINITION" \
	-e "$IMAGE_VERSION" --location "$LOCATION" --os-snapshot "$snap" \
	--target-regions "${regions[@]}" --query id)
echo "azure-publish: done"
echo "AZURE_IMAGE_ID=$id"
