# shellcheck shell=bash
# test/e2e/coordinator-lib.sh: shared helpers of the coordinator end-to-end scripts (simulated
# TEE): a test PKI, keys, workloads with initdata, coordinators started on loopback with chosen
# free ports, simulated pod VMs (attestation-client on an output root) and the checks on the
# coordinator's probes and metrics. Source it after nothing else; it sources lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=${PYTHON:-/usr/bin/python3}
W=$T/work # keys, workloads, manifests
mkdir -p "$W"
# the simulated platform's MEASUREMENT (96 hex) and the manifest's reference value
MEAS=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
PKI=$W/pki
declare -A COORD_PID COORD_USER COORD_MESH COORD_HTTP COORD_PROBE COORD_DATA COORD_ARGS

progress() {
	echo "-- $(date +%T) $*"
}

# skip_unless_tools TOOL...: exit 77 when a system tool is missing
skip_unless_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || {
			echo "skip: $t is not installed"
			exit 77
		}
	done
	[[ -x $PY ]] || {
		echo "skip: $PY is not installed"
		exit 77
	}
}

# need_bins NAME...: our own programs must be built
need_bins() {
	local b
	for b in "$@"; do
		[[ -x $BIN/$b ]] || fail "$BIN/$b is missing (make $PP_BUILD/bin/$b)"
	done
}

# the hook process groups of the local provider's instances (boot scripts, attestation clients)
kill_boot_groups() {
	local f g
	for f in "$DATA"/local/*/instance.json; do
		[[ -f $f ]] || continue
		g=$(jq -r '."hook-pid" // 0' "$f" 2>/dev/null)
		[[ $g =~ ^[0-9]+$ ]] && ((g > 1)) && kill -"$1" -- "-$g" 2>/dev/null
	done
	return 0
}

# live_group_members PGID: processes of the group that are not zombies (an orphan's zombie may
# stay when pid 1 of a container does not reap)
live_group_members() {
	local f
	for f in /proc/[0-9]*/stat; do
		# fields after the command name: state, ppid, pgrp
		awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g && $1 != "Z") print FILENAME }' "$f" 2>/dev/null
	done
}

coord_cleanup() {
	local rc=$?
	kill_boot_groups TERM
	sleep 0.1
	kill_boot_groups KILL
	((rc == 77)) && rm -rf "$T" # a skip: no logs to show
	(exit $rc)
	cleanup
}
trap coord_cleanup EXIT

# free_port: a TCP port on 127.0.0.1 nobody listens on right now
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s; fail with WHAT after SECONDS
wait_until() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "timed out after ${secs}s waiting for $what"
}

# http_status_body URL: "<status> <body>"; "000 " when nothing answers
http_status_body() {
	local out
	out=$(curl -s --max-time 5 -w '\n%{http_code}' "$1" 2>/dev/null)
	local code=${out##*$'\n'}
	echo "$code ${out%$'\n'*}"
}

# ---- keys, PKI, workloads ----

make_keys() {
	"$BIN/peerpodctl" atls-cert --new-pki "$PKI" >"$W/pki.log" 2>&1 || {
		cat "$W/pki.log"
		fail "peerpodctl atls-cert --new-pki"
	}
	[[ -f $PKI/ark.pem ]] || fail "no ark.pem in the test PKI"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/owner-key.pem" 2>/dev/null &&
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/intruder-key.pem" 2>/dev/null &&
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$W/seedshare-key.pem" 2>/dev/null ||
		fail "openssl genpkey"
	openssl pkey -in "$W/owner-key.pem" -pubout -out "$W/owner-pub.pem" 2>/dev/null &&
		openssl rsa -in "$W/seedshare-key.pem" -RSAPublicKey_out -out "$W/seedshare-pub.pem" 2>/dev/null ||
		fail "openssl public keys"
}

# make_initdata NAME MESH_ADDRESS: $W/NAME.toml (a policy of its own and the coordinator's mesh
# address), NAME.b64 (the annotation: base64 of gzip), NAME.digest (SHA-256 of the TOML)
make_initdata() {
	local name=$1 addr=$2
	cat >"$W/$name.toml" <<EOF
algorithm = "sha256"
version = "0.1.0"

[data]
"policy.rego" = '''
package agent_policy
# the policy of $name
default AllowRequestsFailingPolicy := true
'''
"coordinator" = "$addr"
EOF
	gzip -n -c "$W/$name.toml" | base64 -w0 >"$W/$name.b64"
	sha256sum "$W/$name.toml" | cut -d' ' -f1 >"$W/$name.digest"
}

# pod_yaml NAME KIND [ROLE]: a kata-remote workload whose pod carries NAME's initdata
pod_yaml() {
	local name=$1 kind=$2 role=${3:-} ind
	[[ $kind == Pod ]] && ind="    " || ind="        "
	local ann
	ann="${ind}io.katacontainers.config.hypervisor.cc_init_data: \"$(cat "$W/$name.b64")\""
	[[ -n $role ]] && ann+=$'\n'"${ind}peerpod.io/coordinator-role: $role"
	if [[ $kind == Pod ]]; then
		cat >"$W/$name.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: default
  annotations:
$ann
spec:
  runtimeClassName: kata-remote
  containers:
  - name: $name
    image: registry.example/$name:1
EOF
	else
		cat >"$W/$name.yaml" <<EOF
apiVersion: apps/v1
kind: $kind
metadata:
  name: $name
  namespace: default
spec:
  selector:
    matchLabels: {app: $name}
  template:
    metadata:
      labels: {app: $name}
      annotations:
$ann
    spec:
      runtimeClassName: kata-remote
      containers:
      - name: $name
        image: registry.example/$name:1
EOF
	fi
}

# digest NAME
digest() {
	cat "$W/$1.digest"
}

# first_dns_san MANIFEST NAME: the first SAN of NAME's policy that is a DNS name
first_dns_san() {
	jq -r --arg d "$(digest "$2")" '.Policies[$d].SANs[] | select(test("^[0-9.]+$|:") | not)' "$1" | head -1
}

# ---- coordinators ----

# coord_start NAME DATA_DIR MESH_PORT [flags...]: a coordinator with simulated evidence whose
# HOST_DATA is the "coordinator" workload's digest; waits until its probes answer.
coord_start() {
	local name=$1 dir=$2 mesh=$3
	shift 3
	[[ -n ${COORD_USER[$name]:-} ]] || COORD_USER[$name]=$(free_port)
	[[ -n ${COORD_HTTP[$name]:-} ]] || COORD_HTTP[$name]=$(free_port)
	[[ -n ${COORD_PROBE[$name]:-} ]] || COORD_PROBE[$name]=$(free_port)
	COORD_MESH[$name]=$mesh
	COORD_DATA[$name]=$dir
	COORD_ARGS[$name]="$*"
	mkdir -p "$dir"
	"$BIN/coordinator" -listen-address 127.0.0.1 -user-api-port "${COORD_USER[$name]}" \
		-mesh-api-port "$mesh" -http-port "${COORD_HTTP[$name]}" \
		-probe-address 127.0.0.1 -probe-port "${COORD_PROBE[$name]}" -data-dir "$dir" \
		-evidence sim -sim-pki "$PKI" -sim-measurement "$MEAS" \
		-sim-host-data "$(digest coordinator)" -test-trust-anchor "$PKI/ark.pem" \
		-offline -log-level debug "$@" >>"$T/coordinator-$name.log" 2>&1 &
	COORD_PID[$name]=$!
	PIDS+=("${COORD_PID[$name]}")
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "${COORD_PID[$name]}" 2>/dev/null || {
			tail -n 20 "$T/coordinator-$name.log"
			fail "coordinator $name exited at start"
		}
		[[ $(coord_get "$name" /livez | cut -d' ' -f1) == 200 ]] && return 0
		sleep 0.2
	done
	tail -n 20 "$T/coordinator-$name.log"
	fail "coordinator $name: /livez did not answer in 20s"
}

# coord_stop NAME [SIGNAL]
coord_stop() {
	local pid=${COORD_PID[$1]} i
	{
		kill -"${2:-TERM}" "$pid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" || break
			sleep 0.1
		done
		kill -0 "$pid" && fail "coordinator $1 did not exit after SIG${2:-TERM}"
		wait "$pid"
	} 2>/dev/null
	return 0
}

# coord_get NAME PATH: "<status> <body>" of the probe endpoint
coord_get() {
	http_status_body "http://127.0.0.1:${COORD_PROBE[$1]}$2"
}

coord_ready() {
	[[ $(coord_get "$1" /readyz | cut -d' ' -f1) == 200 ]]
}

coord_user() {
	echo "127.0.0.1:${COORD_USER[$1]}"
}

coord_mesh() {
	echo "127.0.0.1:${COORD_MESH[$1]}"
}

coord_metrics() {
	curl -s --max-time 5 "http://127.0.0.1:${COORD_PROBE[$1]}/metrics"
}

# coord_metric NAME REGEX: the sum of the samples whose name{labels} matches REGEX (ERE)
coord_metric() {
	coord_metrics "$1" | grep -E "^$2 " | awk '{ s += $NF } END { printf "%d\n", s }'
}

# failures NAME CODE: attest_failures_total for codes matching CODE (case-insensitive, e.g.
# POLICY_DIGEST matches "ATTEST_E_POLICY_DIGEST" and "policy_digest")
failures() {
	coord_metrics "$1" | grep -iE "^attest_failures_total\{code=\"[^\"]*$2\"\} " |
		awk '{ s += $NF } END { printf "%d\n", s }'
}

# failures_above NAME CODE N: more than N failures of class CODE counted
failures_above() {
	(($(failures "$1" "$2") > $3))
}

# ---- peerpodctl against a coordinator ----

pctl() {
	"$BIN/peerpodctl" "$@"
}

# ---- simulated pod VMs without the adaptor ----

# vm_root NAME ROOT: an output root as process-user-data leaves it for NAME's initdata
vm_root() {
	mkdir -p "$2/run/peerpod"
	cp "$W/$1.b64" "$2/run/peerpod/initdata"
	cp "$W/$1.digest" "$2/run/peerpod/initdata.digest"
}

# attest_once ROOT [flags...]: one attestation, bounded; its log in ROOT.log
attest_once() {
	local root=$1
	shift
	timeout 60 "$BIN/attestation-client" -output-root "$root" -evidence sim -sim-pki "$PKI" \
		-sim-measurement "$MEAS" -once -timeout 20s -log-level debug "$@" >"$root.log" 2>&1
}

# attest_refused ROOT CODE COORD [flags...]: the attestation fails and the coordinator counts a
# failure of class CODE
attest_refused() {
	local root=$1 code=$2 name=$3
	shift 3
	local before after
	before=$(failures "$name" "$code")
	if timeout 60 "$BIN/attestation-client" -output-root "$root" -evidence sim -sim-pki "$PKI" \
		-sim-measurement "$MEAS" -once -timeout 4s -retry-max 1s -log-level debug "$@" \
		>"$root.log" 2>&1; then
		cat "$root.log"
		fail "attestation accepted, expected a refusal with $code"
	fi
	[[ ! -f $root/run/peerpod/mesh/cert-chain.pem ]] || fail "a refused client got a certificate"
	after=$(failures "$name" "$code")
	((after > before)) || {
		coord_metrics "$name" | grep attest_failures >&2
		tail -n 5 "$root.log" >&2
		fail "attest_failures_total{code=~$code} did not grow ($before -> $after)"
	}
	grep -i "$code" "$T/coordinator-$name.log" | tail -n 1 | cut -c1-200
}

# check_chain MESH_DIR ROOT_PEM: the leaf chains to ROOT_PEM through the intermediate
check_chain() {
	local d=$1
	awk '/BEGIN CERT/{n++} n==1' "$d/cert-chain.pem" >"$d.leaf.pem"
	awk '/BEGIN CERT/{n++} n==2' "$d/cert-chain.pem" >"$d.inter.pem"
	openssl verify -CAfile "$2" -untrusted "$d.inter.pem" "$d.leaf.pem" >/dev/null 2>&1
}

# root_id PEM: subject and public key of a CA certificate
root_id() {
	openssl x509 -in "$1" -noout -subject -pubkey 2>/dev/null
}

# ---- the local provider's pod VMs ----

# write_boot_script: the instance's boot chain for -local-boot-command: process-user-data from a
# cidata directory holding the instance's user data, then the attestation client (which keeps
# renewing, like in a VM) on the instance directory as its root
write_boot_script() {
	cat >"$W/boot.sh" <<EOF
#!/bin/sh
# \$1: the instance directory (also INSTANCE_DIR); USER_DATA_FILE: its cloud-config
set -e
d=\$1
mkdir -p "\$d/cidata"
cp "\$USER_DATA_FILE" "\$d/cidata/user-data"
"$BIN/process-user-data" provision-files -provider cidata -cidata-dir "\$d/cidata" \\
	-output-root "\$d" -t 10 -tpm-device "\$d/no-tpm"
exec "$BIN/attestation-client" -output-root "\$d" -evidence sim -sim-pki "$PKI" \\
	-sim-measurement "$MEAS" -retry-max 2s -log-level debug
EOF
	chmod +x "$W/boot.sh"
}

# instance_dir SID NAME
instance_dir() {
	echo "$DATA/local/podvm-$2-${1:0:8}"
}

# python's ssl module as an aTLS client presenting CERT/KEY on the mesh port: "refused: ..." and
# exit 0 when the coordinator aborts the handshake, exit 1 when it is accepted
present_cert() {
	"$PY" - "$@" <<'EOP'
import secrets, socket, ssl, sys
host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["atls:v1:nonce:" + secrets.token_hex(32), "ttrpc"])
s = socket.create_connection((host, port), timeout=30)
try:
    t = ctx.wrap_socket(s)
    # TLS 1.3: the server judges the client certificate after the client's Finished; its
    # verdict arrives as an alert on the first read
    t.settimeout(5)
    data = t.recv(1)
    print("refused: connection closed" if not data else "accepted: got data")
    sys.exit(0 if not data else 1)
except ssl.SSLError as e:
    print("refused:", e)
    sys.exit(0)
except (ConnectionResetError, BrokenPipeError) as e:
    print("refused:", e)
    sys.exit(0)
except socket.timeout:
    print("accepted: handshake done, connection kept")
    sys.exit(1)
EOP
}
