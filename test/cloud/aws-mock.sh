#!/usr/bin/env bash
# The EC2 mock itself against botocore (a real botocore client signs, serializes and parses):
# SigV4 checks, model validation, EC2 XML, idempotency, paging, faults, STS, IMDSv2.
source "$(dirname "$0")/aws-lib.sh"
aws_need_botocore
"$PY" "$CLOUD/ec2-mock.py" --port-file "$T/mock.port" >"$T/mock.log" 2>&1 &
MOCK_PID=$!
for ((i = 0; i < 200; i++)); do [[ -s $T/mock.port ]] && break; sleep 0.05; done
[[ -s $T/mock.port ]] || fail "mock did not start: $(cat "$T/mock.log")"
"$PY" "$CLOUD/aws_mockcheck.py" "http://127.0.0.1:$(cat "$T/mock.port")" || fail "mock self-check"
ok "EC2 mock agrees with botocore"
