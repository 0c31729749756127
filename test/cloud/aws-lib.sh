# test/cloud/aws-lib.sh: sourced by the aws-*.sh tests (not a test itself, so not executable).
# The EC2 mock (ec2-mock.py) with VM booting, the adaptor with the aws provider, and teardown.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
CLOUD=$PP_ROOT/test/cloud
AMI=ami-0123456789abcdef0
SUBNET=subnet-0a1b2c3d4e5f60718
SG=sg-0123456789abcdef0
AWS_REGION_MOCK=us-east-2
MOCK=
MOCK_PID=

aws_need_botocore() {
	"$PY" -c 'import botocore' 2>/dev/null || {
		echo "skip: $PY cannot import botocore (Debian python3-botocore)"
		exit 77
	}
}

aws_need_provider() {
	local help
	help=$("$BIN/cloud-api-adaptor" --help 2>&1)
	grep -q '^Providers:.*\baws\b' <<<"$help" || fail "cloud-api-adaptor has no aws provider"
}

aws_cleanup() {
	local rc=$? p
	trap - EXIT
	[[ -n $ADAPTOR_PID ]] && kill -TERM "$ADAPTOR_PID" 2>/dev/null && wait "$ADAPTOR_PID" 2>/dev/null
	if [[ -n $MOCK_PID ]]; then
		# the mock stops the VMs it booted on SIGTERM
		kill -TERM "$MOCK_PID" 2>/dev/null
		for ((p = 0; p < 200; p++)); do kill -0 "$MOCK_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$MOCK_PID" 2>/dev/null
		wait "$MOCK_PID" 2>/dev/null
	fi
	for p in $(pgrep -f -- "-config $T/vms/" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	if ((rc != 0 && rc != 77)); then
		echo "---- mock log (tail)"
		tail -n 20 "$T/mock.log" 2>/dev/null
		for f in "$T"/vms/*/boot.log; do
			[[ -f $f ]] && { echo "---- $f"; tail -n 8 "$f"; }
		done
	fi
	(exit "$rc")
	cleanup
}
trap aws_cleanup EXIT

# start_mock [ec2-mock.py flags...]: sets MOCK (base URL)
start_mock() {
	rm -f "$T/mock.port"
	"$PY" "$CLOUD/ec2-mock.py" --port-file "$T/mock.port" \
		--process-user-data "$BIN/process-user-data" --forwarder "$BIN/agent-protocol-forwarder" \
		--agent-socket "$AGENT" --forwarder-port "$FWD_PORT" --vm-dir "$T/vms" \
		--key-name peerpod-key "$@" >"$T/mock.log" 2>&1 &
	MOCK_PID=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $T/mock.port ]] && break
		kill -0 "$MOCK_PID" 2>/dev/null || fail "ec2 mock exited: $(tail -n 5 "$T/mock.log")"
		sleep 0.05
	done
	[[ -s $T/mock.port ]] || fail "ec2 mock did not start"
	MOCK=http://127.0.0.1:$(cat "$T/mock.port")
}

# the environment of an adaptor talking to the mock only (no ~/.aws, no real endpoints)
aws_env() {
	unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE \
		AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY PODVM_INSTANCE_TYPES \
		AWS_SUBNET_ID AWS_SG_IDS TAGS
	export AWS_ENDPOINT_URL=$MOCK AWS_EC2_METADATA_SERVICE_ENDPOINT=$MOCK
	export AWS_CONFIG_FILE=$T/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$T/no-aws-credentials
	export NODE_NAME=${NODE_NAME:-worker-1}
}

aws_static_keys() {
	export AWS_ACCESS_KEY_ID=AKIAMOCKSTATIC000001
	export AWS_SECRET_ACCESS_KEY=mock/static/secret/key/0000000000000000
}

# start_aws_adaptor [flags...]: the aws provider in front of the mock
start_aws_adaptor() {
	rm -f "$HV"
	"$BIN/cloud-api-adaptor" aws -socket "$HV" -pods-dir "$PODS" -data-dir "$DATA" \
		-forwarder-port "$FWD_PORT" -imageid "$AMI" "$@" >>"$T/adaptor.log" 2>&1 &
	ADAPTOR_PID=$!
	PIDS+=("$ADAPTOR_PID")
	local i
	for ((i = 0; i < 400; i++)); do
		[[ -S $HV ]] && return 0
		kill -0 "$ADAPTOR_PID" 2>/dev/null || fail "adaptor exited: $(tail -n 5 "$T/adaptor.log")"
		sleep 0.05
	done
	fail "adaptor socket did not appear"
}

stop_aws_adaptor() {
	[[ -n $ADAPTOR_PID ]] || return 0
	kill -TERM "$ADAPTOR_PID" 2>/dev/null
	wait "$ADAPTOR_PID" 2>/dev/null
	ADAPTOR_PID=
}

# q EXPR: evaluate EXPR over the mock's log/state (see aws_q.py)
q() {
	"$PY" "$CLOUD/aws_q.py" "$MOCK" q "$1"
}

mockctl() {
	"$PY" "$CLOUD/aws_q.py" "$MOCK" json "$@"
}

# wait_q EXPR [SECONDS]: until EXPR is True
wait_q() {
	local i
	for ((i = 0; i < ${2:-20} * 5; i++)); do
		[[ $(q "$1") == true ]] && return 0
		sleep 0.2
	done
	return 1
}

# start_pod SID POD [create args...]: CreateVM + StartVM; prints the agent socket
start_pod() {
	local sid=$1 pod=$2 sock
	shift 2
	sock=$(ctl create "$sid" --pod "$pod" --namespace aws-test "$@") || return 1
	ctl start "$sid" >/dev/null || return 1
	echo "$sock"
}

# every EC2 call the mock saw had a valid signature and a valid form
assert_all_signed() {
	local bad
	bad=$(q '[(e["action"], e.get("error")) for e in ec2 if e.get("sig") != "ok" or e.get("error") in ("SignatureDoesNotMatch", "AuthFailure", "RequestExpired", "UnknownParameter", "InvalidParameterValue", "MissingParameter", "InvalidAction", "IncompleteSignature")]')
	[[ $bad == "[]" ]] || fail "EC2 calls refused by the mock: $bad"
}

# the adaptor's start-up leak sweep ran without an error (its only trace is the adaptor's log)
assert_sweep_ok() {
	! grep -i 'leak sweep.*failed' "$T/adaptor.log" || fail "the leak sweep failed (adaptor log above)"
}

# nothing left running in the mock and no sandbox state
assert_nothing_running() {
	wait_q 'live == []' 10 || fail "instances left running: $(q '[(i["id"], i["tags"]) for i in live]')"
	local left
	left=$(pgrep -f -- "-config $T/vms/" || true)
	[[ -z $left ]] || fail "VM forwarders left: $left"
	[[ -z $(ls -A "$PODS" 2>/dev/null) ]] || fail "pods dir not empty: $(ls "$PODS")"
}
