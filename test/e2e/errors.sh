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
