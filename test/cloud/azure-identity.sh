#!/usr/bin/env bash
# How the azure provider gets its ARM tokens, against the mock's Entra ID and IMDS endpoints:
#   client secret with a short token lifetime: a second token is fetched and no ARM call ever
#     carries an expired token;
#   workload identity (no secret, AZURE_FEDERATED_TOKEN_FILE): the file is re-read, so a
#     rewritten (rotated) assertion is what the mock sees next, and the old one is refused;
#   managed identity (neither): the node's IMDS with Metadata: true.
source "$(dirname "$0")/azure_lib.bash"
need_azure_provider

TTL=4
assertion=$T/federated-token
echo "assertion-one-$RANDOM" >"$assertion"
start_standin
start_mock --token-ttl $TTL --client-assertion-file "$assertion" --managed-identity "$AZ_CLIENT"

tokens() { mock_get /_mock/state | jq -c "[.tokens[] | select($1)]"; }
no_expired_use() {
	local bad
	bad=$(mock_get /_mock/requests | jq -c "[.[] | $ARM_SEL | select(.status == 401) | {method, path}]")
	[[ $bad == "[]" ]] || fail "$1: ARM calls refused with 401: $bad"
}

# ---- client secret, token refresh ----
start_azure_adaptor
pod_up first
sleep $((TTL + 1)) # the first token has expired
pod_up second
ctl stop "$SID" || fail "StopVM second"
n=$(tokens '.via == "secret"' | jq length)
((n >= 2)) || fail "a token of $TTL s was not refreshed ($n token requests)"
no_expired_use "client secret"
for d in "$PODS"/*/; do ctl stop "$(basename "$d")" || fail "StopVM $d"; done
assert_mock_empty
stop_azure_adaptor
ok "client secret: $n tokens for a ${TTL}s lifetime, no call with an expired token"

# ---- workload identity ----
mock_post /_mock/reset '{}' >/dev/null
secrets_before=$(tokens '.via == "secret"' | jq length)
first=$(cat "$assertion")
AZ_EXTRA_ENV=(AZURE_FEDERATED_TOKEN_FILE="$assertion")
AZ_NO_SECRET=1 start_azure_adaptor
AZ_EXTRA_ENV=()
pod_up wi-one
[[ $(tokens ".via == \"assertion\" and .detail == \"$first\"" | jq length) -ge 1 ]] ||
	fail "the mock never saw the federated assertion: $(tokens true)"
second=assertion-two-$RANDOM
echo "$second" >"$assertion.new" && mv "$assertion.new" "$assertion" # as kubelet rotates it
sleep $((TTL + 1))
pod_up wi-two
[[ $(tokens ".via == \"assertion\" and .detail == \"$second\"" | jq length) -ge 1 ]] ||
	fail "the rewritten assertion was not used: $(tokens true)"
[[ $(tokens '.via == "secret"' | jq length) == "$secrets_before" ]] || fail "a client secret was used"
mock_get /_mock/requests | jq -e '[.[] | select(.path | test("oauth2/v2.0/token$")) | .body |
	select(test("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"))] | length >= 2' >/dev/null ||
	fail "token requests without the jwt-bearer client_assertion_type"
no_expired_use "workload identity"
for d in "$PODS"/*/; do ctl stop "$(basename "$d")" || fail "StopVM $d"; done
assert_mock_empty
stop_azure_adaptor
ok "workload identity: the rotated assertion file is re-read"

# ---- managed identity ----
mock_post /_mock/reset '{}' >/dev/null
AZ_NO_SECRET=1 start_azure_adaptor
pod_up mi
ctl stop "$SID" || fail "StopVM mi"
[[ $(tokens '.via == "imds"' | jq length) -ge 1 ]] || fail "no managed identity token: $(tokens true)"
mock_get /_mock/requests | jq -e '[.[] | select(.path == "/metadata/identity/oauth2/token")] |
	length >= 1 and all(.headers.Metadata == "true" and (.query | test("api-version=")))' >/dev/null ||
	fail "IMDS token requests: $(mock_get /_mock/requests | jq -c '[.[] | select(.path | test("identity")) | {query, headers}]')"
no_expired_use "managed identity"
assert_mock_empty
stop_azure_adaptor
ok "managed identity: token from the node's IMDS"
