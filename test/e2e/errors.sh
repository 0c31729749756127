#!/usr/bin/env bash
# The hypervisor service's error answers (WIRE.md 2.3, 2.5) as the shim sees them.
source "$(dirname "$0")/lib.sh"
start_standin
start_adaptor

expect_error() { # expect_error CODE_NAME TEXT -- command...
	local code=$1 text=$2
	shift 3
	local out
	if out=$("$@" 2>&1); then fail "expected $code from: $*"; fi
	grep -q "$code" <<<"$out" || fail "expected $code, got: $out"
	grep -qF "$text" <<<"$out" || fail "expected \"$text\", got: $out"
}

sid=$(new_sid)
expect_error INVALID_ARGUMENT "pod name io.kubernetes.cri.sandbox-name is missing in annotations" -- ctl create "$sid" --namespace default
expect_error INVALID_ARGUMENT "namespace name io.kubernetes.cri.sandbox-namespace is missing in annotations" -- ctl create "$sid" --pod p
expect_error INVALID_ARGUMENT "invalid sandbox id" -- ctl create "../../etc" --pod p --namespace n
[[ -z $(ls -A "$PODS") ]] || fail "a refused CreateVM left files"
ok "missing annotations and bad ids are INVALID_ARGUMENT"

# initdata in the cc_init_data annotation: plain TOML, checked and encoded at CreateVM
bad_sid=$(new_sid)
expect_error INVALID_ARGUMENT "algorithm md5 is not supported" -- ctl create "$bad_sid" --pod p --namespace n \
	--annotation "io.katacontainers.config.hypervisor.cc_init_data=algorithm = \"md5\"
version = \"0.1.0\"
"
[[ ! -d $PODS/$bad_sid ]] || fail "a refused CreateVM left its directory"
good_sid=$(new_sid)
printf 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = \x27\x27\x27\n\x27\x27\x27' >"$T/initdata.toml"
ctl create "$good_sid" --pod q --namespace n \
	--annotation "io.katacontainers.config.hypervisor.cc_init_data=$(cat "$T/initdata.toml")" >/dev/null ||
	fail "create with initdata"
base64 -d "$PODS/$good_sid/initdata" | gunzip | cmp - "$T/initdata.toml" ||
	fail "encoded initdata does not decode to the annotation's TOML"
# this is WIRE 5.4's default document, whose digest is known
[[ $(sha256sum <"$T/initdata.toml" | cut -d' ' -f1) == adb48cc14fea9403d3d51f3b5f5068fd4d80445a14e94f1b3d5dbabaad66478d ]] ||
	fail "test document is not the default document"
ctl stop "$good_sid" >/dev/null || fail "stop"
ok "cc_init_data is validated and encoded"

ctl create "$sid" --pod p --namespace n >/dev/null || fail "create"
expect_error ALREADY_EXISTS "sandbox $sid already exists" -- ctl create "$sid" --pod p --namespace n
ok "duplicate CreateVM is ALREADY_EXISTS"

expect_error NOT_FOUND "sandbox nosuch does not exist" -- ctl start nosuch
ok "StartVM of an unknown id is NOT_FOUND"

expect_error NOT_FOUND "VM ID for n:p was not found" -- ctl info --pod p --namespace n
expect_error DEADLINE_EXCEEDED "getting VM ID for n:p: getting instance ID: context deadline exceeded" -- ctl --timeout 300ms info --pod p --namespace n --wait
ok "GetInfo before the VM exists"

ctl stop "$sid" || fail "stop of a created sandbox"
ctl stop "$sid" || fail "repeated stop"
ctl stop never-created || fail "stop of an unknown sandbox succeeds"
assert_clean
ok "StopVM is idempotent"

# a global INITDATA the pod VMs could not decode stops the adaptor from starting
if "$BIN/cloud-api-adaptor" local -socket "$T/other.sock" -pods-dir "$T/other-pods" \
	-data-dir "$T/other-data" -initdata "not base64!" 2>"$T/bad-initdata.log"; then
	fail "the adaptor started with an undecodable INITDATA"
fi
grep -q "INITDATA" "$T/bad-initdata.log" || fail "no INITDATA error: $(cat "$T/bad-initdata.log")"
ok "an undecodable INITDATA is refused at start"
