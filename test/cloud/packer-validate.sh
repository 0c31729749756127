#!/usr/bin/env bash
# Validates the cloud pod VM image templates (podvm/packer) with packer, offline and with dummy
# values: both must pass, a template missing a required variable or given a bad one must fail, and
# the shared recipe scripts must parse (bash -n, shellcheck when installed). Exit 77 = skipped.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PP_ROOT=${PP_ROOT:-$(cd "$HERE/../.." && pwd)}
PK=$PP_ROOT/podvm/packer
AZURE=$PK/azure-podvm.pkr.hcl
AWS=$PK/aws-podvm.pkr.hcl

if ! command -v packer >/dev/null; then
	echo "packer-validate: skip: packer is not installed"
	exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/packer-validate.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# No credentials or settings from the caller's environment, no packer state in their home, and no
# network when a private network namespace is available.
run_packer() { # LOG ARGS...
	local log=$1
	shift
	local -a pre=(env -i PATH="$PATH" HOME="$T" TMPDIR="$T" CHECKPOINT_DISABLE=1)
	if unshare -n true 2>/dev/null; then pre=(unshare -n "${pre[@]}"); fi
	(cd "$PP_ROOT" && "${pre[@]}" packer "$@") >"$log" 2>&1
}

D=00000000-0000-0000-0000-000000000000
AZURE_VARS=(-var "subscription_id=$D" -var "client_id=$D" -var "client_secret=dummy"
	-var "tenant_id=$D" -var "location=eastus" -var "resource_group=rg-dummy"
	-var "gallery_name=gallery_dummy")
AWS_VARS=(-var "region=us-east-2")

expect_pass() { # NAME LOG ARGS...
	local name=$1 log=$T/$2.log
	shift 2
	if run_packer "$log" validate "$@"; then
		ok "$name"
	else
		bad "$name"
		sed 's/^/    /' "$log"
	fi
}
expect_fail() { # NAME LOG PATTERN ARGS...
	local name=$1 log=$T/$2.log pattern=$3
	shift 3
	if run_packer "$log" validate "$@"; then
		bad "$name: validation passed"
	elif ! grep -q -- "$pattern" "$log"; then
		bad "$name: failed without '$pattern'"
		sed 's/^/    /' "$log"
	else
		ok "$name ($(grep -m1 -- "$pattern" "$log" | sed 's/^ *//'))"
	fi
}

packer version

# ---- positive: both templates with dummy values, no kata-agent given (checked at build time) ----
expect_pass "azure template validates" azure "${AZURE_VARS[@]}" "$AZURE"
expect_pass "azure template validates with az CLI auth and a build resource group" azure-cli \
	-var "subscription_id=$D" -var use_azure_cli_auth=true -var location=eastus \
	-var resource_group=rg-dummy -var gallery_name=g -var build_resource_group=rg-build "$AZURE"
expect_pass "aws template validates" aws "${AWS_VARS[@]}" "$AWS"
expect_pass "aws template validates with every input set" aws-all "${AWS_VARS[@]}" \
	-var kata_agent=/nonexistent/kata-agent -var forwarder=/nonexistent/apf \
	-var 'ami_regions=["eu-west-1"]' -var subnet_id=subnet-0123456789abcdef0 "$AWS"

# ---- negative: missing or wrong values must fail ----
expect_fail "aws without region fails" aws-noregion 'Unset variable "region"' "$AWS"
no_location=()
for ((i = 0; i < ${#AZURE_VARS[@]}; i += 2)); do
	[[ ${AZURE_VARS[i + 1]} == location=* ]] || no_location+=("${AZURE_VARS[i]}" "${AZURE_VARS[i + 1]}")
done
expect_fail "azure without location fails" azure-nolocation 'Unset variable "location"' \
	"${no_location[@]}" "$AZURE"
expect_fail "azure without a subscription fails" azure-nosub 'subscription_id value must be set' \
	-var location=eastus -var resource_group=rg -var gallery_name=g "$AZURE"
expect_fail "azure with a client id but no secret fails" azure-noauth 'authentication' \
	-var "subscription_id=$D" -var "client_id=$D" -var location=eastus -var resource_group=rg \
	-var gallery_name=g "$AZURE"
expect_fail "azure rejects a gallery version that is not N.N.N" azure-badversion 'image_version' \
	"${AZURE_VARS[@]}" -var image_version=1.2 "$AZURE"
sed 's/^  region *= var.region$/  region = var.region\n  bogus_option = true/' "$AWS" >"$T/bad.pkr.hcl"
cp "$PK"/*.sh "$T/"
cp -r "$PK/files" "$T/files"
expect_fail "aws template with an unknown builder option fails" aws-bogus 'bogus_option' \
	"${AWS_VARS[@]}" "$T/bad.pkr.hcl"

if run_packer "$T/fmt.log" fmt -check "$PK"; then ok "templates are packer-fmt formatted"; else
	bad "packer fmt -check: $(cat "$T/fmt.log")"
fi

# ---- the inputs check that stops a build without a kata-agent ----
if "$PK/check-inputs.sh" /bin/true /bin/true "" /bin/true >"$T/ci.log" 2>&1; then
	bad "check-inputs.sh accepts a missing kata_agent"
elif grep -q 'kata_agent is not set' "$T/ci.log"; then ok "check-inputs.sh: kata_agent is not set"; else
	bad "check-inputs.sh message: $(cat "$T/ci.log")"
fi
"$PK/check-inputs.sh" /bin/true /bin/true /nonexistent /bin/true >/dev/null 2>&1 &&
	bad "check-inputs.sh accepts a kata_agent path that does not exist"
if "$PK/check-inputs.sh" /bin/true /bin/true /bin/true /bin/true >/dev/null 2>&1; then ok "check-inputs.sh accepts executables"; else
	bad "check-inputs.sh rejects executables"
fi

# ---- the shared recipe and its helpers ----
for s in "$PK"/*.sh; do
	if bash -n "$s"; then ok "bash -n ${s#"$PP_ROOT"/}"; else bad "bash -n ${s#"$PP_ROOT"/}"; fi
done
if command -v shellcheck >/dev/null; then
	if shellcheck "$PK"/*.sh; then ok "shellcheck podvm/packer/*.sh"; else bad "shellcheck podvm/packer/*.sh"; fi
else
	echo "shellcheck not installed: lint skipped"
fi
# Every unit the recipe enables ships with it.
while read -r u; do
	[[ -f $PK/files/systemd/$u ]] || bad "provision.sh enables $u, which is not in podvm/packer/files/systemd"
done < <(sed -n '/^UNITS=(/,/)/p' "$PK/provision.sh" | grep -o '[a-z-]*\.service')
# Unit syntax; the programs themselves are only installed in the image.
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify "$PK"/files/systemd/*.service >"$T/units.log" 2>&1
	if grep -v 'is not executable' "$T/units.log" | grep -q .; then
		bad "systemd-analyze verify: $(grep -v 'is not executable' "$T/units.log")"
	else
		ok "systemd-analyze verify podvm/packer/files/systemd"
	fi
fi

if ((fails > 0)); then
	echo "packer-validate: $fails check(s) failed"
	exit 1
fi
echo "packer-validate: ok"
