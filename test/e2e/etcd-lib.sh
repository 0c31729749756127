# test/e2e/etcd-lib.sh: start and stop single-member etcd clusters on free loopback ports for
# shell tests. Source it (after lib.sh if you use that: members are then also added to PIDS so
# its exit trap kills them).
#   etcd_available             0 when $ETCD_BIN (default /usr/bin/etcd) can run
#   etcd_start DIR [NAME] [etcd flags...]
#                              one member with its data and log under DIR; waits until /health
#                              answers; exports ETCD_ENDPOINT=http://127.0.0.1:PORT and ETCD_PID
#   etcd_stop [PID]            stop that member, or every member started here
# Members allow 8 MiB requests: the coordinator's CAS carries two values of up to 2 MiB.

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCD_PIDS=()

etcd_available() {
	[[ -x $ETCD_BIN ]]
}

# Two distinct free ports on 127.0.0.1, printed on one line.
_etcd_free_ports() {
	local py=${PYTHON:-/usr/bin/python3}
	"$py" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
'
}

_etcd_healthy() {
	curl -fsS --noproxy '*' --max-time 1 "$1/health" 2>/dev/null | grep -q '"health":"true"'
}

etcd_start() {
	local dir=${1:?etcd_start DIR [NAME] [etcd flags...]} name=${2:-etcd0}
	shift $(($# >= 2 ? 2 : 1))
	etcd_available || {
		echo "etcd_start: $ETCD_BIN is not installed" >&2
		return 1
	}
	mkdir -p "$dir" || return 1
	local attempt cport pport pid i log="$dir/$name.log"
	for attempt in 1 2 3; do
		read -r cport pport < <(_etcd_free_ports) || return 1
		rm -rf "$dir/$name.etcd"
		"$ETCD_BIN" --name "$name" --data-dir "$dir/$name.etcd" \
			--listen-client-urls "http://127.0.0.1:$cport" \
			--advertise-client-urls "http://127.0.0.1:$cport" \
			--listen-peer-urls "http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "$name=http://127.0.0.1:$pport" \
			--logger zap --log-outputs stderr --log-level error \
			--max-request-bytes 8388608 "$@" >>"$log" 2>&1 &
		pid=$!
		for ((i = 0; i < 300; i++)); do
			# exited early: most likely a port taken since we picked it; try new ones
			kill -0 "$pid" 2>/dev/null || break
			if _etcd_healthy "http://127.0.0.1:$cport"; then
				export ETCD_ENDPOINT="http://127.0.0.1:$cport" ETCD_PID=$pid
				ETCD_PIDS+=("$pid")
				if declare -p PIDS &>/dev/null; then
					PIDS+=("$pid")
				fi
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	echo "etcd_start: etcd did not become healthy; log tail:" >&2
	tail -n 20 "$log" >&2
	return 1
}

etcd_stop() {
	local p pids=("$@") keep=()
	((${#pids[@]})) || pids=("${ETCD_PIDS[@]}")
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		# bounded: etcd stops in well under a second; then no more waiting
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for p in "${ETCD_PIDS[@]}"; do
		[[ " ${pids[*]} " == *" $p "* ]] || keep+=("$p")
	done
	ETCD_PIDS=("${keep[@]}")
	if [[ " ${pids[*]} " == *" ${ETCD_PID:-} "* ]]; then
		unset ETCD_PID ETCD_ENDPOINT
	fi
	return 0
}
