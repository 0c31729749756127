# test/cloud/azure_lib.bash: shared by the test/cloud/azure-*.sh scripts (sourced; not a test).
# Builds on test/e2e/lib.sh (scratch dir, stand-in agent, ctl, fail/ok); adds the ARM mock
# (arm-mock.py, booting "VMs" as process-user-data + agent-protocol-forwarder) and the adaptor
# with the azure provider pointed at it. Everything listens on 127.0.0.0/8 or Unix sockets.
PY=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
if ! "$PY" -c 'import azure.mgmt.compute' 2>/dev/null; then
	echo "skip: $PY cannot import azure.mgmt.compute (Debian package python3-azure)"
	exit 77
fi
# shellcheck source=test/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
CLOUD=$PP_ROOT/test/cloud

AZ_TENANT=11111111-2222-3333-4444-555555555555
AZ_CLIENT=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
AZ_SECRET=mock-secret-$RANDOM$RANDOM
AZ_SUB=99999999-8888-7777-6666-555555555555
AZ_RG=pp-rg
AZ_REGION=eastus
AZ_SUBNET=/subscriptions/$AZ_SUB/resourceGroups/pp-net/providers/Microsoft.Network/virtualNetworks/pp-vnet/subnets/worker
AZ_NSG=/subscriptions/$AZ_SUB/resourceGroups/pp-net/providers/Microsoft.Network/networkSecurityGroups/pp-nsg
AZ_IMAGE=/subscriptions/$AZ_SUB/resourceGroups/pp-images/providers/Microsoft.Compute/images/podvm
AZ_NODE=worker-$RANDOM
MOCK_PID=
MOCK=
AZ_EXTRA_ENV=()
VMS=$T/vms

azure_cleanup() {
	local rc=$? p
	if [[ -n $ADAPTOR_PID ]] && kill -0 "$ADAPTOR_PID" 2>/dev/null; then
		kill -TERM "$ADAPTOR_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$ADAPTOR_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	if [[ -n $MOCK_PID ]]; then
		kill -TERM "$MOCK_PID" 2>/dev/null # the mock kills the VMs it booted
		for _ in $(seq 100); do kill -0 "$MOCK_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	# forwarders of a mock that did not get to kill them (this run's folder only)
	for p in $(pgrep -f -- "-config $VMS/" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	if ((rc != 0 && rc != 77)); then
		echo "---- mock log (tail)"
		tail -n 20 "$T/mock.log" 2>/dev/null
		for f in "$VMS"/*/boot.log; do
			[[ -f $f ]] && { echo "---- $f"; tail -n 5 "$f"; }
		done
	fi
	return $rc
}
trap 'azure_cleanup; cleanup' EXIT

# start_mock [arm-mock flags...]; AZ_NO_BOOT=1: the mock boots no VM processes
start_mock() {
	rm -f "$T/mock.port"
	mkdir -p "$VMS"
	local boot=(--process-user-data "$BIN/process-user-data" --forwarder "$BIN/agent-protocol-forwarder"
		--agent-socket "$AGENT" --forwarder-port "$FWD_PORT" --vm-dir "$VMS")
	[[ ${AZ_NO_BOOT:-0} == 1 ]] && boot=()
	"$PY" "$CLOUD/arm-mock.py" --port-file "$T/mock.port" --tenant "$AZ_TENANT" \
		--client-id "$AZ_CLIENT" --client-secret "$AZ_SECRET" --subscription "$AZ_SUB" \
		--resource-group "$AZ_RG" --location "$AZ_REGION" --subnet-id "$AZ_SUBNET" \
		--nsg-id "$AZ_NSG" --image-id "$AZ_IMAGE" "${boot[@]}" "$@" \
		>>"$T/mock.log" 2>&1 &
	MOCK_PID=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $T/mock.port ]] && break
		kill -0 "$MOCK_PID" 2>/dev/null || fail "the ARM mock exited: $(tail -n 5 "$T/mock.log")"
		sleep 0.05
	done
	[[ -s $T/mock.port ]] || fail "the ARM mock did not start"
	MOCK=http://127.0.0.1:$(cat "$T/mock.port")
}

# mock_get PATH / mock_post PATH JSON: the mock's control endpoints
mock_get() { curl -sS --max-time 10 "$MOCK$1"; }
mock_post() {
	curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' --data "$2" "$MOCK$1" ||
		fail "mock control $1"
}

# the adaptor's settings for the azure provider, as environment (AZ_ENV) plus flags
adaptor_env() {
	AZ_ENV=(AZURE_AUTHORITY_HOST="$MOCK/" AZURE_RESOURCE_MANAGER_ENDPOINT="$MOCK/"
		AZURE_IMDS_ENDPOINT="$MOCK" NODE_NAME="$AZ_NODE" AZURE_CLIENT_ID="$AZ_CLIENT"
		AZURE_TENANT_ID="$AZ_TENANT" AZURE_SUBSCRIPTION_ID="$AZ_SUB" AZURE_REGION="$AZ_REGION"
		AZURE_RESOURCE_GROUP="$AZ_RG" AZURE_SUBNET_ID="$AZ_SUBNET" AZURE_IMAGE_ID="$AZ_IMAGE")
}

# start_azure_adaptor [flags...]; the array AZ_EXTRA_ENV=(K=V ...) adds/overrides environment. The
# client secret is given unless AZ_NO_SECRET=1.
start_azure_adaptor() {
	adaptor_env
	local secret=()
	[[ ${AZ_NO_SECRET:-0} == 1 ]] || secret=(AZURE_CLIENT_SECRET="$AZ_SECRET")
	rm -f "$HV"
	env "${AZ_ENV[@]}" "${secret[@]}" "${AZ_EXTRA_ENV[@]}" \
		"$BIN/cloud-api-adaptor" azure -socket "$HV" -pods-dir "$PODS" -data-dir "$DATA" \
		-forwarder-port "$FWD_PORT" "$@" >>"$T/adaptor.log" 2>&1 &
	ADAPTOR_PID=$!
	PIDS+=("$ADAPTOR_PID")
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -S $HV ]] && return 0
		kill -0 "$ADAPTOR_PID" 2>/dev/null || fail "the adaptor exited: $(tail -n 5 "$T/adaptor.log")"
		sleep 0.05
	done
	fail "the adaptor's socket did not appear"
}

stop_azure_adaptor() {
	kill -TERM "$ADAPTOR_PID" 2>/dev/null
	wait "$ADAPTOR_PID" 2>/dev/null
	ADAPTOR_PID=
}

# skip unless the adaptor has the azure provider
need_azure_provider() {
	[[ -x $BIN/cloud-api-adaptor ]] || fail "no $BIN/cloud-api-adaptor"
	local help
	help=$("$BIN/cloud-api-adaptor" --help 2>&1)
	grep -q '^Providers:.*\bazure\b' <<<"$help" ||
		fail "cloud-api-adaptor has no azure provider ($(grep Providers <<<"$help"))"
}

# requests in the mock's log matching a jq filter over entries, e.g.
#   count_requests 'select(.method == "PUT")'
count_requests() { mock_get /_mock/requests | jq "[.[] | $1] | length"; }

# arm_calls: calls to ARM paths (not tokens, not the VMs' own IMDS)
ARM_SEL='select(.path | test("^/subscriptions/"; "i"))'

# wait_state JQ-EXPR [SECONDS]: poll /_mock/state until the expression is true
wait_state() {
	local i
	for ((i = 0; i < ${2:-30} * 5; i++)); do
		mock_get /_mock/state | jq -e "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "mock state never satisfied $1: $(mock_get /_mock/state | jq -c '{vms: (.vms | keys), nics, disks, publicIPs}')"
}

# assert_mock_empty: no VM, NIC, disk or public IP left in the mock
assert_mock_empty() {
	wait_state '(.vms | length) == 0 and (.nics | length) == 0 and (.disks | length) == 0 and (.publicIPs | length) == 0' "${1:-30}"
}

# pod_up POD: create + start one pod; sets SID and SOCK
pod_up() {
	SID=$(new_sid)
	SOCK=$(ctl create "$SID" --pod "$1" --namespace default "${@:2}") || fail "CreateVM $1"
	ctl start "$SID" >"$T/start.out" 2>&1 || fail "StartVM $1: $(cat "$T/start.out")"
}

# instance name of a pod (WIRE 4.4) for lower-case [a-z0-9-] pod names
instance_name() { echo "podvm-$1-${2:0:8}"; }
