// go-agentclient: drives a Kata agent socket the way the Go shim does for a remote sandbox (one
// connection for everything, the shim's deadlines and call order, WIRE 3.2), logs every Request
// it writes (-sent), and checks what an agent recorded against that log (verify). Also a latency
// benchmark (bench).
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/containerd/ttrpc"

	"ppinterop/pb"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: go-agentclient COMMAND [flags]
  run    -socket S [-sent FILE] [-metadata k=v]... [-sid SID] [-copy-size N]
         health check, SetPolicy, CreateSandbox, GetGuestDetails, CopyFile, CreateContainer and
         StartContainer (sandbox and app containers), stdio, an expected error, teardown
  health -socket S                    dial (retrying 30 s) and grpc.Health/Check
  verify -sent FILE -recorded FILE    compare what the agent got with what was sent: CreateSandbox
         without dns, CreateContainer with the pod netns appended, all else byte-identical
  bench  -socket S -n N [-mode read|copy] [-size BYTES]
         N sequential round trips on one connection; prints p50/p99 latency and throughput
`)
	os.Exit(2)
}

type session struct {
	client *ttrpc.Client
	md     [][2]string
}

func connect(socket string, dialTimeout time.Duration, rec *pb.Recorder, md [][2]string) *session {
	conn, err := pb.DialRetry(socket, dialTimeout)
	if err != nil {
		pb.Fail("dial", err)
	}
	return &session{client: ttrpc.NewClient(rec.SniffWrites(conn)), md: md}
}

func (s *session) call(service, method string, req []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := pb.CallCtx(timeout, s.md)
	defer cancel()
	var resp pb.Raw
	err := s.client.Call(ctx, service, method, &pb.Raw{B: req}, &resp)
	return resp.B, err
}

// must makes a call that has to succeed and reports it.
func (s *session) must(method string, req []byte, timeout time.Duration) []byte {
	service := pb.AgentService
	if method == "Check" {
		service = pb.HealthService
	}
	resp, err := s.call(service, method, req, timeout)
	if err != nil {
		pb.Fail(service+"/"+method, err)
	}
	pb.Emit(map[string]interface{}{"call": service + "/" + method, "ok": true, "request_bytes": len(req),
		"response_bytes": len(resp)})
	return resp
}

func health(s *session) {
	resp := s.must("Check", nil, 30*time.Second)
	f, err := pb.Parse(resp)
	if err != nil || pb.GetUint(f, 1) != 1 {
		pb.Fail("grpc.Health/Check", fmt.Errorf("not SERVING: %x", resp))
	}
}

// ---- request payloads (field numbers from WIRE 3.3) ----

func storage(driver, source, fstype, mountPoint string, options ...string) []byte {
	return pb.NewEnc().Str(1, driver).Str(3, source).Str(4, fstype).Strs(5, options...).
		Str(6, mountPoint).Bytes()
}

func namespace(typ, path string) []byte { return pb.NewEnc().Str(1, typ).Str(2, path).Bytes() }

func createSandbox(sid string) []byte {
	return pb.NewEnc().
		Str(1, "pp-pod").
		Strs(2, "nameserver 10.96.0.10", "search default.svc.cluster.local svc.cluster.local", "options ndots:5").
		Msg(3, pb.NewEnc().Str(1, "ephemeral").Str(3, "shm").Str(4, "tmpfs").
			Strs(5, "noexec", "nosuid", "nodev", "mode=1777", "size=67108864").
			Str(6, "/run/kata-containers/sandbox/shm").
			Msg(7, pb.NewEnc().Uint(2, 1000).Uint(3, 1).Bytes()).Bytes()).
		Bool(4, true).
		Str(5, sid).
		Str(6, "/usr/share/oci/hooks").
		Msg(7, pb.NewEnc().Str(1, "virtio_vsock").Strs(2, "x=1").Bytes()).
		Str(99, "field of a newer shim").
		Bytes()
}

// ociSpec is a container spec with the fields a proxy must keep (WIRE 3.3 OCI subset).
func ociSpec(sid, cid, kind string, namespaces [][]byte) []byte {
	user := pb.NewEnc().Uint(1, 1000).Uint(2, 1000).Packed(3, 10, 20, 30).Str(4, "app").Bytes()
	process := pb.NewEnc().
		Msg(2, pb.NewEnc().Uint(1, 24).Uint(2, 80).Bytes()).
		Msg(3, user).
		Strs(4, "/pause").
		Strs(5, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=pp-pod").
		Str(6, "/").
		Bool(9, true).
		Int(11, -998).
		Bytes()
	linux := pb.NewEnc().
		Map(3, "net.ipv4.ip_unprivileged_port_start", "0").
		Msg(4, pb.NewEnc().Msg(1, pb.NewEnc().Str(5, "rwm").Bytes()).Bytes()).
		Str(5, "/kubepods/besteffort/pod0b7c/"+cid)
	for _, ns := range namespaces {
		linux.Msg(6, ns)
	}
	linux.Strs(10, "/proc/kcore", "/proc/keys").Strs(11, "/proc/sys", "/proc/sysrq-trigger")
	return pb.NewEnc().
		Str(1, "1.1.0").
		Msg(2, process).
		Msg(3, pb.NewEnc().Str(1, "/run/kata-containers/"+cid+"/rootfs").Bool(2, true).Bytes()).
		Str(4, "pp-pod").
		Msg(5, pb.NewEnc().Str(1, "/proc").Str(2, "proc").Str(3, "proc").Strs(4, "nosuid", "noexec", "nodev").Bytes()).
		Msg(5, pb.NewEnc().Str(1, "/dev/shm").Str(2, "/run/kata-containers/sandbox/shm").Str(3, "bind").Strs(4, "rbind").Bytes()).
		Map(7, "io.kubernetes.cri.container-type", kind, "io.kubernetes.cri.sandbox-id", sid,
			"io.kubernetes.cri.sandbox-name", "nginx", "io.kubernetes.cri.sandbox-namespace", "default").
		Msg(8, linux.Bytes()).
		Bytes()
}

func createContainer(sid, cid, kind string, namespaces [][]byte) []byte {
	return pb.NewEnc().
		Str(1, cid).
		Str(2, cid).
		Msg(3, pb.NewEnc().Str(1, "1000").Str(2, "1000").Strs(3, "10", "20").Bytes()).
		Msg(4, pb.NewEnc().Str(1, "dev0").Str(2, "blk").Str(3, "/dev/vdb").Str(4, "/dev/xvdb").Strs(5, "rw").Bytes()).
		Msg(5, storage("local", "local", "local", "/run/kata-containers/shared/containers/"+cid+"/data", "mode=0777")).
		Msg(6, ociSpec(sid, cid, kind, namespaces)).
		Bool(7, true).
		Msg(8, pb.NewEnc().Str(1, "m").Str(2, sid).Str(3, "/src").Str(4, cid).Str(5, "/dst").Bytes()).
		Uint(9, 1001).Uint(10, 1002).Uint(11, 1003).
		Uint(100, 7). // a field of a newer shim: must pass through
		Bytes()
}

func containerReq(cid string) []byte { return pb.NewEnc().Str(1, cid).Bytes() }

func copyFiles(s *session, path string, size int) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	const chunk = 1 << 20
	for off := 0; off == 0 || off < size; off += chunk {
		end := off + chunk
		if end > size {
			end = size
		}
		req := pb.NewEnc().Str(1, path).Int(2, int64(size)).Uint(3, 0o100644).Uint(4, 0o40755).
			Int(5, 0).Int(6, 0).Int(7, int64(off)).Blob(8, data[off:end]).Bytes()
		s.must("CopyFile", req, 60*time.Second)
		if size == 0 {
			break
		}
	}
}

func run(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	socket := fs.String("socket", "", "agent socket (agentSocketPath)")
	sent := fs.String("sent", "", "append every Request sent, as a JSON line, to this file")
	var mdFlags pb.MultiFlag
	fs.Var(&mdFlags, "metadata", "k=v metadata on every call (repeatable)")
	sid := fs.String("sid", strings.Repeat("5a", 32), "sandbox id")
	copySize := fs.Int("copy-size", 3<<20/2, "bytes of the CopyFile for the app container")
	dialTimeout := fs.Duration("dial-timeout", 30*time.Second, "retry dialing this long")
	_ = fs.Parse(args)
	md, err := pb.Pairs(mdFlags)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rec, err := pb.NewRecorder(*sent)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := connect(*socket, *dialTimeout, rec, md)
	defer s.client.Close()
	app := strings.Repeat("c7", 32)

	health(s)
	s.must("SetPolicy", pb.NewEnc().Str(1, "package agent_policy\n\ndefault AllowRequestsFailingPolicy := true\n").Bytes(), 300*time.Second)
	s.must("CreateSandbox", createSandbox(*sid), 300*time.Second)
	s.must("GetGuestDetails", pb.NewEnc().Bool(1, true).Bool(2, true).Bytes(), 60*time.Second)
	copyFiles(s, "/run/kata-containers/shared/containers/"+*sid+"-hostname", 7)
	s.must("CreateContainer", createContainer(*sid, *sid, "sandbox", [][]byte{
		namespace("pid", ""), namespace("ipc", ""), namespace("uts", ""), namespace("mount", "")}), 60*time.Second)
	s.must("StartContainer", containerReq(*sid), 60*time.Second)
	copyFiles(s, "/run/kata-containers/shared/containers/"+app+"-data", *copySize)
	s.must("CreateContainer", createContainer(*sid, app, "container", [][]byte{
		namespace("pid", "/proc/1/ns/pid"), namespace("ipc", "/proc/1/ns/ipc"), namespace("uts", "/proc/1/ns/uts"),
		namespace("mount", "")}), 60*time.Second)
	s.must("StartContainer", containerReq(app), 60*time.Second)
	out := s.must("ReadStdout", pb.NewEnc().Str(1, app).Str(2, app).Uint(3, 1024).Bytes(), 0)
	if f, err := pb.Parse(out); err != nil || len(pb.GetStr(f, 1)) != 1024 {
		pb.Fail("ReadStdout", fmt.Errorf("expected 1024 bytes of data, got response %d bytes", len(out)))
	}
	s.must("WriteStdin", pb.NewEnc().Str(1, app).Str(2, app).Blob(3, []byte("hello\n")).Bytes(), 0)
	// proto3 `optional` fields with zero values: presence must survive the proxy (WIRE 3.5).
	s.must("MemAgentMemcgSet", pb.NewEnc().UintPresent(1, 0).UintPresent(2, 0).UintPresent(3, 0).Bytes(), 60*time.Second)
	if _, err := s.call(pb.AgentService, "RemoveContainer", containerReq("pp-error"), 60*time.Second); err == nil {
		pb.Fail("RemoveContainer", fmt.Errorf("expected the agent's NOT_FOUND error, got OK"))
	} else if code, msg := pb.ErrorFields(err); code != 5 || msg != "RemoveContainer: pp-error requested" {
		pb.Fail("RemoveContainer", fmt.Errorf("expected NOT_FOUND \"RemoveContainer: pp-error requested\", got %d %q", code, msg))
	}
	pb.Emit(map[string]interface{}{"call": "grpc.AgentService/RemoveContainer", "ok": true, "expected_error": 5})
	s.must("SignalProcess", pb.NewEnc().Str(1, app).Str(2, app).Uint(3, 15).Bytes(), 60*time.Second)
	s.must("WaitProcess", pb.NewEnc().Str(1, app).Str(2, app).Bytes(), 0)
	s.must("RemoveContainer", containerReq(app), 60*time.Second)
	s.must("RemoveContainer", containerReq(*sid), 60*time.Second)
	s.must("DestroySandbox", nil, 60*time.Second)
}

// ---- verify ----

type checker struct{ failures int }

func (c *checker) fail(format string, args ...interface{}) {
	c.failures++
	fmt.Printf("FAIL: "+format+"\n", args...)
}

// multiset compares two field lists ignoring order and the skipped numbers.
func sameFields(a, b []pb.Field, skip ...int) (bool, string) {
	keep := func(list []pb.Field) []string {
		var out []string
	next:
		for _, f := range list {
			for _, s := range skip {
				if f.Num == s {
					continue next
				}
			}
			out = append(out, hex.EncodeToString(f.Raw))
		}
		sort.Strings(out)
		return out
	}
	ka, kb := keep(a), keep(b)
	if strings.Join(ka, ",") == strings.Join(kb, ",") {
		return true, ""
	}
	return false, fmt.Sprintf("sent %d fields %v\n      got  %d fields %v", len(ka), ka, len(kb), kb)
}

func one(c *checker, what string, fields []pb.Field, num int) []pb.Field {
	list := pb.Get(fields, num)
	if len(list) != 1 {
		c.fail("%s: field %d occurs %d times, want 1", what, num, len(list))
		return nil
	}
	f, err := pb.Parse(list[0].Data)
	if err != nil {
		c.fail("%s: field %d undecodable: %v", what, num, err)
	}
	return f
}

func checkCreateSandbox(c *checker, sent, got []byte) {
	s, _ := pb.Parse(sent)
	g, err := pb.Parse(got)
	if err != nil {
		c.fail("CreateSandbox: undecodable: %v", err)
		return
	}
	if n := len(pb.Get(g, 2)); n != 0 {
		c.fail("CreateSandbox: %d dns entries reached the agent, want none", n)
	}
	if ok, diff := sameFields(s, g, 2); !ok {
		c.fail("CreateSandbox: other fields changed:\n      %s", diff)
	}
}

func checkCreateContainer(c *checker, sent, got []byte) {
	s, _ := pb.Parse(sent)
	g, err := pb.Parse(got)
	if err != nil {
		c.fail("CreateContainer: undecodable: %v", err)
		return
	}
	if ok, diff := sameFields(s, g, 6); !ok {
		c.fail("CreateContainer: fields other than OCI changed:\n      %s", diff)
	}
	sOCI, gOCI := one(c, "CreateContainer sent", s, 6), one(c, "CreateContainer got", g, 6)
	if ok, diff := sameFields(sOCI, gOCI, 8); !ok {
		c.fail("CreateContainer: OCI fields other than Linux changed:\n      %s", diff)
	}
	sLinux, gLinux := one(c, "OCI sent", sOCI, 8), one(c, "OCI got", gOCI, 8)
	if ok, diff := sameFields(sLinux, gLinux, 6); !ok {
		c.fail("CreateContainer: OCI.Linux fields other than Namespaces changed:\n      %s", diff)
	}
	decode := func(list []pb.Field) []string {
		var out []string
		for _, f := range list {
			ns, err := pb.Parse(f.Data)
			if err != nil {
				c.fail("CreateContainer: undecodable namespace %x", f.Data)
				continue
			}
			out = append(out, pb.GetStr(ns, 1)+":"+pb.GetStr(ns, 2))
		}
		return out
	}
	sNS, gNS := decode(pb.Get(sLinux, 6)), decode(pb.Get(gLinux, 6))
	want := append(append([]string{}, sNS...), "network:/run/netns/podns")
	if strings.Join(gNS, " ") != strings.Join(want, " ") {
		c.fail("CreateContainer: namespaces %v, want %v", gNS, want)
	}
}

func verify(args []string) {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	sentPath := fs.String("sent", "", "what the client sent")
	gotPath := fs.String("recorded", "", "what the agent recorded")
	_ = fs.Parse(args)
	sent, err := pb.ReadRecords(*sentPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	all, err := pb.ReadRecords(*gotPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The proxy path may add its own health checks (readiness probes); anything else must match.
	var got []pb.Record
	extraHealth := 0
	for _, r := range all {
		if r.Service == pb.HealthService && len(got) < len(sent) && sent[len(got)].Service != pb.HealthService {
			extraHealth++
			continue
		}
		got = append(got, r)
	}
	c := &checker{}
	if len(got) != len(sent) {
		c.fail("agent got %d requests (+%d extra health checks), client sent %d", len(got), extraHealth, len(sent))
	}
	for i := 0; i < len(sent) && i < len(got); i++ {
		s, g := sent[i], got[i]
		name := fmt.Sprintf("#%d %s/%s", i+1, s.Service, s.Method)
		if s.Service != g.Service || s.Method != g.Method {
			c.fail("%s: agent got %s/%s", name, g.Service, g.Method)
			continue
		}
		sp, _ := hex.DecodeString(s.PayloadHex)
		gp, _ := hex.DecodeString(g.PayloadHex)
		switch {
		case s.Service == pb.AgentService && s.Method == "CreateSandbox":
			checkCreateSandbox(c, sp, gp)
		case s.Service == pb.AgentService && s.Method == "CreateContainer":
			checkCreateContainer(c, sp, gp)
		default:
			if !bytes.Equal(sp, gp) {
				c.fail("%s: payload changed\n      sent %s\n      got  %s", name, s.PayloadHex, g.PayloadHex)
			}
		}
		if fmt.Sprint(s.Metadata) != fmt.Sprint(g.Metadata) {
			c.fail("%s: metadata %v, sent %v", name, g.Metadata, s.Metadata)
		}
		switch {
		case s.TimeoutNano <= 0 && g.TimeoutNano > 0:
			c.fail("%s: no deadline sent, agent got timeout_nano %d", name, g.TimeoutNano)
		case s.TimeoutNano > 0 && (g.TimeoutNano <= 0 || g.TimeoutNano > s.TimeoutNano):
			c.fail("%s: timeout_nano %d sent, agent got %d (must be the remaining deadline)", name, s.TimeoutNano, g.TimeoutNano)
		}
	}
	if c.failures > 0 {
		fmt.Printf("verify: %d problems in %d requests\n", c.failures, len(sent))
		os.Exit(1)
	}
	pb.Emit(map[string]interface{}{"verify": "ok", "requests": len(sent), "extra_health_checks": extraHealth})
}

// ---- bench ----

func bench(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	socket := fs.String("socket", "", "agent socket")
	n := fs.Int("n", 1000, "round trips")
	mode := fs.String("mode", "read", "read: ReadStdout answering -size bytes; copy: CopyFile carrying -size bytes")
	size := fs.Int("size", 1024, "payload bytes per call")
	_ = fs.Parse(args)
	s := connect(*socket, 30*time.Second, nil, nil)
	defer s.client.Close()
	var method string
	var req []byte
	switch *mode {
	case "read":
		method, req = "ReadStdout", pb.NewEnc().Str(1, "bench").Str(2, "bench").Uint(3, uint64(*size)).Bytes()
	case "copy":
		method = "CopyFile"
		req = pb.NewEnc().Str(1, "/tmp/bench").Int(2, int64(*size)).Uint(3, 0o100644).Blob(8, make([]byte, *size)).Bytes()
	default:
		usage()
	}
	once := func() time.Duration {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var resp pb.Raw
		if err := s.client.Call(ctx, pb.AgentService, method, &pb.Raw{B: req}, &resp); err != nil {
			pb.Fail(method, err)
		}
		return time.Since(start)
	}
	for i := 0; i < 20; i++ {
		once()
	}
	lat := make([]time.Duration, *n)
	start := time.Now()
	for i := range lat {
		lat[i] = once()
	}
	total := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p int) float64 {
		i := len(lat) * p / 100
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	pb.Emit(map[string]interface{}{
		"bench": method, "mode": *mode, "n": *n, "size": *size,
		"p50_us": pct(50), "p99_us": pct(99),
		"ops_per_s": float64(*n) / total.Seconds(),
		"mib_per_s": float64(*n) * float64(*size) / total.Seconds() / (1 << 20),
	})
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		run(os.Args[2:])
	case "health":
		fs := flag.NewFlagSet("health", flag.ExitOnError)
		socket := fs.String("socket", "", "agent socket")
		dialTimeout := fs.Duration("dial-timeout", 30*time.Second, "retry dialing this long")
		_ = fs.Parse(os.Args[2:])
		s := connect(*socket, *dialTimeout, nil, nil)
		defer s.client.Close()
		health(s)
	case "verify":
		verify(os.Args[2:])
	case "bench":
		bench(os.Args[2:])
	default:
		usage()
	}
}
