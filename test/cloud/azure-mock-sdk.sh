#!/usr/bin/env bash
# The ARM mock against the official Azure SDK for Python (python3-azure): what the azure
# provider's tests rely on behaves as the SDK expects ARM to behave. Create through
# Azure-AsyncOperation polls, list through nextLink pages, a 429 retried, a misspelled field
# refused with an ARM error body, a Failed operation leaving the VM Failed with its NIC and disk,
# delete with deleteOption Delete leaving nothing; plus tokens and errors over plain HTTP.
source "$(dirname "$0")/azure_lib.bash"

AZ_NO_BOOT=1 start_mock --page-size 1
settings=$T/settings.json
jq -n --arg t "$AZ_TENANT" --arg c "$AZ_CLIENT" --arg s "$AZ_SECRET" --arg sub "$AZ_SUB" \
	--arg rg "$AZ_RG" --arg r "$AZ_REGION" --arg img "$AZ_IMAGE" --arg sn "$AZ_SUBNET" \
	'{tenant: $t, client_id: $c, secret: $s, subscription: $sub, resource_group: $rg,
	  region: $r, size: "Standard_DC2as_v5", image: $img, subnet: $sn, ssh_user: "peerpod"}' >"$settings"
"$PY" "$CLOUD/azure_sdk.py" selftest "$MOCK" --settings "$settings" || fail "SDK selftest"

# raw protocol details the SDK does not show
tok() {
	curl -sS -X POST "$MOCK/$AZ_TENANT/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials \
		--data-urlencode client_id="$AZ_CLIENT" --data-urlencode "scope=https://management.azure.com/.default" "$@"
}
[[ $(tok --data-urlencode client_secret=wrong | jq -r .error) == invalid_client ]] || fail "a wrong secret must be invalid_client"
token=$(tok --data-urlencode client_secret="$AZ_SECRET" | jq -r .access_token)
[[ -n $token && $token != null ]] || fail "no token for the right secret"
hdrs=$(curl -sS -D - -o "$T/body" "$MOCK/subscriptions/$AZ_SUB/resourceGroups/$AZ_RG/providers/Microsoft.Compute/virtualMachines/nope?api-version=2022-08-01" -H "Authorization: Bearer $token")
grep -q '^HTTP/1.1 404' <<<"$hdrs" || fail "missing VM: $hdrs"
grep -qi '^x-ms-request-id: ' <<<"$hdrs" || fail "no x-ms-request-id"
jq -e '.error.code == "ResourceNotFound"' "$T/body" >/dev/null || fail "404 body: $(cat "$T/body")"
code=$(curl -sS -o "$T/body" -w '%{http_code}' "$MOCK/subscriptions/$AZ_SUB/resourceGroups/$AZ_RG?api-version=2021-04-01")
if [[ $code != 401 ]] || ! jq -e '.error.code == "AuthenticationFailed"' "$T/body" >/dev/null; then
	fail "no token must be 401: $code $(cat "$T/body")"
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' "$MOCK/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/")
[[ $code == 400 ]] || fail "IMDS without Metadata: true must be 400, got $code"
ok "token endpoint, 401 without a token, 404 ResourceNotFound with x-ms-request-id, IMDS header check"
