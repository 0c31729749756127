#!/usr/bin/env bash
# Credentials other than static keys: web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)
# with short-lived STS credentials, refreshed with the rewritten token file; then the node's
# instance role from IMDS when no credentials are configured. Every EC2 call must be signed
# with credentials the mock issued and still valid.
source "$(dirname "$0")/aws-lib.sh"
aws_need_botocore
aws_need_provider
start_standin
ROLE=arn:aws:iam::123456789012:role/peerpods-caa
start_mock --web-identity-token tok-1 --role-arn "$ROLE" --sts-expiry-s 6
aws_env
printf 'tok-1' >"$T/token"
export AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE=$T/token AWS_ROLE_SESSION_NAME=caa-test
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG"

s1=$(new_sid)
start_pod "$s1" wi-1 >/dev/null || fail "StartVM with web identity credentials"
ctl stop "$s1" >/dev/null || fail "stop 1"
[[ $(q '[(e.get("web_identity_token"), e.get("role_arn"), e.get("role_session_name"), e["status"]) for e in sts][:1]') == "[[\"tok-1\", \"$ROLE\", \"caa-test\", 200]]" ]] ||
	fail "first AssumeRoleWithWebIdentity: $(q '[(e.get("web_identity_token"), e.get("role_arn"), e.get("role_session_name"), e["status"]) for e in sts]')"
[[ $(q 'sorted({e.get("akid_source") for e in ec2})') == '["sts"]' ]] ||
	fail "EC2 calls not signed with STS credentials: $(q '[(e["action"], e.get("akid_source"), e.get("error")) for e in ec2]')"
ok "web identity: AssumeRoleWithWebIdentity with the token file, EC2 calls signed with its credentials"

# the token is rotated (kubelet rewrites the projected file) and the old one stops working
printf 'tok-2' >"$T/token"
mockctl /_mock/sts '{"tokens": ["tok-2"]}'
wait_s=$(q 'max(x["expires"] for x in state["sts_issued"]) - __import__("time").time() + 0.5')
sleep "$(awk -v s="$wait_s" 'BEGIN { print (s > 0 ? s : 0) }')"
s2=$(new_sid)
start_pod "$s2" wi-2 >/dev/null || fail "StartVM after the first credentials expired"
ctl stop "$s2" >/dev/null || fail "stop 2"
[[ $(q '[e.get("web_identity_token") for e in sts if e["status"] == 200][-1]') == tok-2 ]] ||
	fail "no AssumeRoleWithWebIdentity with the rewritten token: $(q '[(e.get("web_identity_token"), e["status"]) for e in sts]')"
[[ $(q 'len({x["akid"] for x in state["sts_issued"]}) >= 2') == true ]] || fail "credentials were not refreshed"
assert_all_signed
ok "web identity: expired credentials refreshed with the rewritten token; calls keep working"
stop_aws_adaptor

# ---- the instance role from IMDS ----
unset AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_SESSION_NAME
mockctl /_mock/reset '{}'
start_aws_adaptor -aws-region "$AWS_REGION_MOCK" -subnetid "$SUBNET" -securitygroupids "$SG"
s3=$(new_sid)
start_pod "$s3" role >/dev/null || fail "StartVM with the instance role's credentials"
ctl stop "$s3" >/dev/null || fail "stop 3"
[[ $(q 'sorted({e.get("akid_source") for e in ec2})') == '["imds"]' ]] ||
	fail "EC2 calls not signed with the IMDS role credentials: $(q '[(e["action"], e.get("akid_source"), e.get("error")) for e in ec2]')"
[[ $(q 'len(sts)') == 0 ]] || fail "STS called without web identity configured"
assert_all_signed
assert_nothing_running
ok "instance role credentials from IMDS sign the EC2 calls"
