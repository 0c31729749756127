#!/usr/bin/env bash
# bench/libvirt.sh [BUILD]: StartVM-to-agent-ready of real pod VMs under a private libvirt (TCG),
# for one pod (BENCH_LV_RUNS times) and for BENCH_LV_PODS pods started at once, broken down into
#   define     StartVM -> QEMU started (volumes, cidata upload, domain definition, QEMU spawn),
#   boot       QEMU started -> the guest starts process-user-data (firmware, kernel, modules, DHCP),
#   user_data  process-user-data (guest uptimes from the console's "[uptime] peerpod:" lines),
#   forwarder  user data written -> forwarder listening (pod netns, agent, pod network, TLS listen),
#   connect    forwarder listening -> StartVM answered (DHCP lease lookup, tunnel, TLS dial);
# and, as the baseline, the bare image under the same QEMU without libvirt or the adaptor
# (podvm/image/boot-test.sh, BENCH_LV_RUNS times). Host times come from the adaptor's JSON log,
# libvirt's QEMU log and a watcher that stamps console lines as they appear.
# Results: bench/results/libvirt.json and a table on stdout. Needs root (exit 77 otherwise).
root=$(cd "$(dirname "$0")/.." && pwd)
PP_BUILD=$(cd "${1:-$root/build}" && pwd) || exit 1
export PP_BUILD
# shellcheck source=test/e2e/libvirt-lib.sh
. "$root/test/e2e/libvirt-lib.sh"

RUNS=${BENCH_LV_RUNS:-3}
PODS=${BENCH_LV_PODS:-4}
OUT=${BENCH_LV_OUT:-$root/bench/results/libvirt.json}
CAA_PID=
WATCH_PID=
PODNETS=()
C=

bench_cleanup() {
	local rc=$? n
	trap - EXIT
	[[ -n $WATCH_PID ]] && { kill -TERM "$WATCH_PID" && wait "$WATCH_PID"; } 2>/dev/null
	if [[ -n $CAA_PID ]]; then
		{
			kill -TERM "$CAA_PID"
			wait "$CAA_PID"
		} 2>/dev/null
	fi
	if ((rc != 0 && rc != 77)) && [[ -n $C ]]; then
		tail -n 20 "$C/adaptor.log" 2>/dev/null
	fi
	if [[ -n $LV_DAEMON_PID ]] && kill -0 "$LV_DAEMON_PID" 2>/dev/null; then
		for d in $(lv_virsh list --all --name 2>/dev/null); do LV_DOMAINS+=("$d"); done
	fi
	for n in "${PODNETS[@]}"; do ip netns del "$n" 2>/dev/null; done
	[[ -n $C ]] && rm -rf "$C"
	(exit "$rc")
	lv_cleanup
}

# ---- baseline: the bare image under QEMU, no libvirt, no adaptor ----
baseline=()
for ((r = 0; r < RUNS; r++)); do
	out=$(PP_BUILD=$PP_BUILD "$root/podvm/image/boot-test.sh" 2>&1)
	rc=$?
	((rc == 77)) && {
		echo "skip: boot-test skipped: $out" | tail -n 1
		exit 77
	}
	((rc == 0)) || {
		echo "$out" | tail -n 20
		echo "FAIL: boot-test"
		exit 1
	}
	line=$(grep 'boot times:' <<<"$out")
	wall=$(sed -n 's/.*to forwarder answering \([0-9.]*\)s.*/\1/p' <<<"$line")
	guest=$(sed -n 's/.*guest uptime at READY \([0-9.]*\)s.*/\1/p' <<<"$line")
	baseline+=("{\"wall_to_forwarder_answer_s\": $wall, \"guest_uptime_at_ready_s\": ${guest:-null}}")
	echo "baseline run $((r + 1)): QEMU start to forwarder answering ${wall}s (guest uptime at READY ${guest}s)"
done

# ---- libvirt + adaptor ----
lv_setup
trap bench_cleanup EXIT
C=$(mktemp -d /tmp/pp-bench.XXXXXX) || exit 1
chmod 0755 "$C"
mkdir -p "$C/consoles"
lv_upload "$LV_IMG/podvm-base.qcow2" podvm-base.qcow2 qcow2
lv_in_ns ip route add default dev "$LV_BRIDGE" || lv_fail "default route"
for ((n = 1; n <= PODS; n++)); do
	ns=pp-bench-$$-$n
	ip netns add "$ns" || lv_fail "netns"
	PODNETS+=("$ns")
	ip -n "$ns" link set lo up &&
		ip link add "ppveth$n" netns "$LV_NS" type veth peer name eth0 netns "$ns" &&
		ip -n "$LV_NS" addr add "10.244.$n.1/24" dev "ppveth$n" &&
		ip -n "$LV_NS" link set "ppveth$n" up &&
		ip -n "$ns" addr add "10.244.$n.7/24" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via "10.244.$n.1" dev eth0 || lv_fail "pod network $ns"
done

# Console lines stamped with the host time they appear at (polling every 20 ms).
python3 - "$C/consoles" "$C/console-stamps.jsonl" <<'PY' &
import os, sys, time, json, signal
d, out = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
pos = {}
with open(out, "a") as f:
    while True:
        for name in os.listdir(d):
            p = os.path.join(d, name)
            try:
                with open(p, "rb") as c:
                    c.seek(pos.get(name, 0))
                    data = c.read()
            except OSError:
                continue
            cut = data.rfind(b"\n")
            if cut < 0:
                continue
            pos[name] = pos.get(name, 0) + cut + 1
            now = time.time()
            for line in data[:cut].split(b"\n"):
                line = line.decode(errors="replace").strip()
                if "peerpod:" in line:
                    f.write(json.dumps({"file": name, "t": now, "line": line}) + "\n")
            f.flush()
        time.sleep(0.02)
PY
WATCH_PID=$!

lv_caa_start "" -libvirt-ip-retries 600 -log-format json -log-level debug

# start_pods SCENARIO N: N pods created, started at once, checked, stopped; one record per pod
# in $C/starts.jsonl.
start_pods() {
	local scen=$1 n=$2 k sid pids=() sids=()
	for ((k = 1; k <= n; k++)); do
		sid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
		sids+=("$sid")
		ctl create "$sid" --pod "bench-$k" --namespace bench \
			--netns "/run/netns/pp-bench-$$-$k" >"$C/sock-$sid" || lv_fail "CreateVM"
	done
	for sid in "${sids[@]}"; do
		(
			t0=$EPOCHREALTIME
			ctl start "$sid" >/dev/null || exit 1
			t1=$EPOCHREALTIME
			echo "{\"scenario\": \"$scen\", \"sid\": \"$sid\", \"t_call\": $t0, \"t_answer\": $t1}" \
				>>"$C/starts.jsonl"
		) &
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k" || lv_fail "StartVM ($scen)"; done
	for sid in "${sids[@]}"; do
		"$BIN/peerpodctl" agent --agent-socket "$(cat "$C/sock-$sid")" health >/dev/null ||
			lv_fail "agent health ($scen)"
	done
	for sid in "${sids[@]}"; do ctl stop "$sid" >/dev/null || lv_fail "StopVM"; done
}

for ((r = 0; r < RUNS; r++)); do
	start_pods one 1
	lv_log "one pod: run $((r + 1)) done"
done
start_pods "concurrent-$PODS" "$PODS"
lv_log "$PODS pods at once: done"
sleep 0.2
kill -TERM "$WATCH_PID" 2>/dev/null
wait "$WATCH_PID" 2>/dev/null
WATCH_PID=

mkdir -p "$(dirname "$OUT")"
python3 - "$C" "$LV_T/var/log/libvirt/qemu" "$OUT" "$RUNS" "$PODS" "[$(
	IFS=,
	echo "${baseline[*]}"
)]" <<'PY'
import json, os, re, sys, statistics, datetime, platform
c, qlogs, out, runs, pods, baseline = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])

def ts(s):  # adaptor/libvirt UTC time -> epoch seconds
    s = s.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()

starts = [json.loads(l) for l in open(os.path.join(c, "starts.jsonl"))]
log = []
for l in open(os.path.join(c, "adaptor.log")):
    try:
        log.append(json.loads(l))
    except ValueError:
        pass
stamps = [json.loads(l) for l in open(os.path.join(c, "console-stamps.jsonl"))]

def first(pred, seq):
    return next((x for x in seq if pred(x)), None)

rows = []
for s in starts:
    sid = s["sid"]
    ent = [e for e in log if sid in json.dumps(e)]
    name = None
    for e in ent:
        m = re.search(r"instance name (\S+)", e.get("msg", ""))
        if m:
            name = m.group(1)
    creating = first(lambda e: "creating instance" in e.get("msg", ""), ent)
    created = first(lambda e: "created, address" in e.get("msg", ""), ent)
    running = first(lambda e: "sandbox running" in e.get("msg", ""), ent)
    # QEMU start: libvirt's per-domain log, "<time>: starting up ..."
    qstart = None
    with open(os.path.join(qlogs, name + ".log")) as q:
        for l in q:
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+0000: starting up", l)
            if m:
                qstart = ts(m.group(1).replace(" ", "T") + "Z")
    con = [x for x in stamps if x["file"] == name + ".log"]
    def host(word):
        x = first(lambda x: word in x["line"], con)
        return x["t"] if x else None
    def up(word):
        x = first(lambda x: word in x["line"], con)
        m = x and re.match(r"\[([0-9.]+)\]", x["line"])
        return float(m.group(1)) if m else None
    t_ud0, t_ready = host("process-user-data provision-files"), host("READY")
    u_ud0, u_ud1, u_ready = up("process-user-data provision-files"), up("user data provisioned"), up("READY")
    r = {
        "scenario": s["scenario"], "instance": name,
        "startvm_s": s["t_answer"] - s["t_call"],
        "define_s": qstart - s["t_call"],
        "boot_s": t_ud0 - qstart,
        "user_data_s": u_ud1 - u_ud0,
        "forwarder_s": u_ready - u_ud1,
        "connect_s": s["t_answer"] - t_ready,
        "guest_uptime_at_ready_s": u_ready,
        "provider_create_s": ts(created["time"]) - ts(creating["time"]) if created and creating else None,
    }
    rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})

def summary(rs):
    keys = ["startvm_s", "define_s", "boot_s", "user_data_s", "forwarder_s", "connect_s",
            "provider_create_s", "guest_uptime_at_ready_s"]
    return {k: round(statistics.median([r[k] for r in rs if r[k] is not None]), 3) for k in keys}

one = [r for r in rows if r["scenario"] == "one"]
conc = [r for r in rows if r["scenario"] != "one"]
conc_starts = [s for s in starts if s["scenario"] != "one"]
base_wall = statistics.median([b["wall_to_forwarder_answer_s"] for b in baseline])
base_guest = statistics.median([b["guest_uptime_at_ready_s"] for b in baseline])
res = {
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    "host": {"cpus": os.cpu_count(), "kvm": os.path.exists("/dev/kvm"), "kernel": platform.release()},
    "vm": {"memory_mib": int(os.environ.get("LV_VM_MEM_MB", "384")), "vcpus": 1, "accel": "tcg"},
    "baseline_boot_test": {"runs": baseline, "median_wall_to_forwarder_answer_s": base_wall,
                           "median_guest_uptime_at_ready_s": base_guest,
                           "note": "boot-test polls with 0.5 s pauses and 3 s call timeouts, so its wall time is coarse; compare guest uptimes"},
    "one_pod": {"runs": one, "median": summary(one)},
    "concurrent": {"pods": pods, "runs": conc, "median": summary(conc),
                   "all_ready_s": round(max(s["t_answer"] for s in conc_starts) - min(s["t_call"] for s in conc_starts), 3)},
}
res["one_pod"]["startvm_vs_baseline"] = round(res["one_pod"]["median"]["startvm_s"] / base_wall, 2)
json.dump(res, open(out, "w"), indent=2)
print("%-14s %8s %8s %8s %8s %8s %8s" % ("scenario", "startvm", "define", "boot", "userdata", "fwd", "connect"))
for r in rows:
    print("%-14s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f" % (r["scenario"], r["startvm_s"], r["define_s"], r["boot_s"], r["user_data_s"], r["forwarder_s"], r["connect_s"]))
print("baseline (QEMU alone): start to forwarder answering median %.2fs, guest uptime at READY median %.2fs"
      % (base_wall, base_guest))
print("one pod under libvirt + adaptor: guest uptime at READY median %.2fs" % res["one_pod"]["median"]["guest_uptime_at_ready_s"])
print("%d pods at once: all ready after %.2fs" % (pods, res["concurrent"]["all_ready_s"]))
print("results: " + out)
PY
