#!/usr/bin/env bash
# Malformed frames against the hypervisor socket and a pod's agent socket: the daemon stays up
# and serves the next valid call on a new connection.
source "$(dirname "$0")/lib.sh"
start_standin
start_adaptor

sid=$(new_sid)
sock=$(ctl create "$sid" --pod m --namespace default) || fail "create"
ctl start "$sid" || fail "start"

send_raw() { # send_raw SOCKET HEX... : each hex string is sent on a fresh connection
	local s=$1
	shift
	python3 - "$s" "$@" <<'EOP'
import socket, sys
path = sys.argv[1]
for h in sys.argv[2:]:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(2)
    c.connect(path)
    try:
        c.sendall(bytes.fromhex(h))
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
EOP
}

garbage=(
	"ff"                                           # truncated header
	"00000005000000010100ffffffffff"               # envelope with a bad varint
	"0000000a000000020100aaaaaaaaaaaaaaaaaaaa"     # even stream id
	"00000000000000010900"                         # unknown frame type, then EOF
	"ffffffff00000001010000"                       # length far over the limit, then EOF
	"00400001000000010100"                         # length limit + 1 without the data
	"474554202f20485454502f312e310d0a0d0a"         # an HTTP request
	"0000000f000000010100 0a0378797a1203616263 1a01ff" # unknown service with truncated payload
)
send_raw "$HV" "${garbage[@]// /}"
ctl version | grep -q 0.0.0 || fail "hypervisor socket dead after garbage"
ok "hypervisor socket survives malformed frames"

send_raw "$sock" "${garbage[@]// /}"
"$BIN/peerpodctl" agent --agent-socket "$sock" health || fail "agent socket dead after garbage"
kill -0 "$ADAPTOR_PID" || fail "adaptor died"
ok "agent socket survives malformed frames"

# oversized request on a live connection answers RESOURCE_EXHAUSTED on that stream
python3 - "$HV" <<'EOP' || fail "oversize frame handling"
import socket, struct, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.settimeout(5); c.connect(sys.argv[1])
n = 4194305
c.sendall(struct.pack(">IIBB", n, 5, 1, 0) + b"\0" * n)
def frame():
    h = b""
    while len(h) < 10: h += c.recv(10 - len(h))
    ln, sid, t, f = struct.unpack(">IIBB", h)
    d = b""
    while len(d) < ln: d += c.recv(ln - len(d))
    return sid, t, d
sid, t, d = frame()
assert sid == 5 and t == 2, (sid, t)
assert b"message length 4194305 exceed maximum message size of 4194304" in d, d
assert d[2:4] == b"\x08\x08", d  # status code 8
# same connection still serves: Version on stream 7
body = bytes.fromhex("0a15") + b"hypervisor.Hypervisor" + bytes.fromhex("1207") + b"Version" + bytes.fromhex("1a070a05") + b"0.0.0"
c.sendall(struct.pack(">IIBB", len(body), 7, 1, 0) + body)
sid, t, d = frame()
assert sid == 7 and t == 2 and b"0.0.0" in d, (sid, t, d)
EOP
ok "oversized frame: RESOURCE_EXHAUSTED, connection kept"

ctl stop "$sid" || fail "stop"
assert_clean
