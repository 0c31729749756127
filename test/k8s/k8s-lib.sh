# test/k8s/k8s-lib.sh: helpers for the adaptor-*.sh scripts (sourced, not run): the e2e
# helpers (scratch dir, agent stand-in, local provider) plus a Kubernetes API mock on 127.0.0.1
# and ways to seed and inspect it.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

PY=${PYTHON:-/usr/bin/python3}
K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODE=worker-1
TOKEN=t0k3n-$RANDOM

"$PY" -c 'import kubernetes' 2>/dev/null || {
	echo "skip: Debian's python3-kubernetes is not installed"
	exit 77
}

# start_mock: the API mock, accepting $T/tokens; sets MOCK_URL
start_mock() {
	echo "$TOKEN" >"$T/tokens"
	"$PY" "$K8S_DIR/mock-apiserver.py" --port-file "$T/mock.port" --token-file "$T/tokens" \
		>"$T/mock.log" 2>&1 &
	PIDS+=($!)
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $T/mock.port ]] && break
		sleep 0.05
	done
	[[ -s $T/mock.port ]] || fail "the API mock did not start: $(cat "$T/mock.log")"
	MOCK_URL=http://127.0.0.1:$(cat "$T/mock.port")
	cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context:
    cluster: mock
    user: adaptor
    namespace: default
clusters:
- name: mock
  cluster:
    server: $MOCK_URL
users:
- name: adaptor
  user:
    token: $TOKEN
EOF
}

# mock METHOD PATH [JSON]: call a /_mock/ endpoint, print the answer
mock() {
	"$PY" - "$MOCK_URL" "$@" <<'EOP'
import sys, urllib.request
url, method, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url + path, data=data, method=method,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    sys.stdout.write(r.read().decode())
EOP
}

# seed KIND JSON-OBJECT
seed() {
	mock POST /_mock/objects "{\"kind\": \"$1\", \"object\": $2}" >/dev/null || fail "seed $1"
}

state() {
	mock GET /_mock/state
}

requests() {
	mock GET /_mock/requests
}

seed_node() {
	seed nodes "{\"metadata\": {\"name\": \"${1:-$NODE}\", \"labels\": {\"node.kubernetes.io/worker\": \"\"}},
		\"status\": {\"capacity\": {\"cpu\": \"4\", \"memory\": \"8Gi\", \"pods\": \"110\"}}}"
}

# seed_pod NS NAME [extra spec JSON members] [status JSON] [node]
seed_pod() {
	local st=${4:-}
	[[ -n $st ]] || st='{"phase": "Pending"}'
	seed pods "{\"metadata\": {\"name\": \"$2\", \"namespace\": \"$1\"},
		\"spec\": {\"nodeName\": \"${5:-$NODE}\", \"runtimeClassName\": \"kata-remote\",
			\"containers\": [{\"name\": \"c\", \"image\": \"nginx\"}]${3:+, $3}},
		\"status\": $st}"
}

# wait_until SECONDS COMMAND...: poll until the command succeeds
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# jq_state FILTER: jq -e over the mock's state
jq_state() {
	state | jq -e "$1"
}

# start_k8s_adaptor [flags]: the local-provider adaptor with the mock as its cluster
start_k8s_adaptor() {
	NODE_NAME=$NODE POD_UID=${POD_UID:-uid-a} KUBECONFIG=$T/kubeconfig \
		K8S_RETRY_INTERVAL=${K8S_RETRY_INTERVAL:-1s} start_adaptor "$@"
}
