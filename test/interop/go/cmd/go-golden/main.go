// go-golden: checks the golden frames of WIRE 1.10. Without flags it proves that containerd's Go
// ttrpc (client and server) produces and accepts exactly those bytes, so the Go peers are valid
// witnesses of the format. With -server it sends the golden Requests as raw bytes to another
// server and checks the answers: any OK form and any error code by default, the exact Go-style
// texts, oversized-frame recovery and stream-id rules with -strict (our servers).
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/ttrpc"

	"ppinterop/pb"
)

var failures int

func check(name string, err error) {
	if err != nil {
		failures++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	fmt.Printf("ok   %s\n", name)
}

// unhex turns the WIRE notation (hex bytes and "quoted text") into bytes.
func unhex(s string) []byte {
	var out []byte
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \n\t")
		if s == "" {
			break
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"') + 1
			out = append(out, s[1:end]...)
			s = s[end+1:]
			continue
		}
		b, err := hex.DecodeString(s[:2])
		if err != nil {
			panic(err)
		}
		out = append(out, b...)
		s = s[2:]
	}
	return out
}

var (
	goldenVersionReq = unhex(`00 00 00 29 00 00 00 01 01 00 0a 15 68 79 70 65 72 76 69 73 6f 72 2e 48 79 70 65 72 76 69 73 6f
		72 12 07 56 65 72 73 69 6f 6e 1a 07 0a 05 30 2e 30 2e 30`)
	goldenVersionOK      = unhex(`00 00 00 09 00 00 00 01 02 00 12 07 0a 05 30 2e 30 2e 30`)
	goldenVersionOKEmpty = unhex(`00 00 00 0b 00 00 00 01 02 00 0a 00 12 07 0a 05 30 2e 30 2e 30`)
	goldenEmptyOK        = unhex(`00 00 00 00 00 00 00 01 02 00`)
	goldenEmptyOKStatus  = unhex(`00 00 00 02 00 00 00 01 02 00 0a 00`)
	goldenNoSuchMethod   = unhex(`00 00 00 19 00 00 00 01 02 00 0a 17 08 0c 12 13 "method NoSuchMethod"`)
	goldenOversized      = unhex(`00 00 00 43 00 00 00 05 02 00 0a 41 08 08 12 3d "message length 4194305 exceed maximum message size of 4194304"`)
	goldenStartVM        = unhex(`00 00 00 2e 00 00 00 03 01 00 0a 15 "hypervisor.Hypervisor" 12 07 "StartVM" 1a 05 0a 03 "abc" 20 80 e0 a5 96 bb 11`)
	goldenHealthReq      = unhex(`00 00 00 22 00 00 00 01 01 00 0a 0b "grpc.Health" 12 05 "Check" 20 80 d8 8e e1 6f 2a 06 0a 01 "k" 12 01 "v"`)
	goldenHealthOK       = unhex(`00 00 00 04 00 00 00 01 02 00 12 02 08 01`)
	goldenCreateVMReq    = unhex(`0a 03 "abc" 12 27 0a 1e "io.kubernetes.cri.sandbox-name" 12 05 "nginx" 1a 10 "/var/run/netns/x"`)
)

func withStream(frame []byte, stream uint32) []byte {
	out := append([]byte{}, frame...)
	out[4], out[5], out[6], out[7] = byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream)
	return out
}

func diff(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	return fmt.Errorf("\n    got  %x\n    want %x", got, want)
}

func readFrame(c net.Conn) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	n := uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3])
	if n > 4<<20 {
		return nil, fmt.Errorf("oversized answer %d", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, err
	}
	return append(hdr, data...), nil
}

// normalizeTimeout replaces the timeout_nano value of a Request frame (whose deadline the library
// computes from the clock) with want, after checking 0 < value <= want.
func normalizeTimeout(frame []byte, want int64) ([]byte, error) {
	fields, err := pb.Parse(frame[10:])
	if err != nil {
		return nil, err
	}
	var data []byte
	for _, f := range fields {
		if f.Num == 4 {
			if int64(f.Varint) <= 0 || int64(f.Varint) > want {
				return nil, fmt.Errorf("timeout_nano %d not in (0, %d]", int64(f.Varint), want)
			}
			data = append(data, pb.NewEnc().Int(4, want).Bytes()...)
			continue
		}
		data = append(data, f.Raw...)
	}
	h := frame[:10]
	return pb.MakeFrame(uint32(h[4])<<24|uint32(h[5])<<16|uint32(h[6])<<8|uint32(h[7]), h[8], h[9], data).Bytes(), nil
}

// ---- the Go client against golden bytes ----

type clientCase struct {
	name    string
	call    func(c *ttrpc.Client) error
	expect  []byte // the Request frame, after timeout normalization
	timeout int64
	reply   []byte
}

func clientSide(dir string) {
	sock := filepath.Join(dir, "client.sock")
	l, err := pb.ListenUnix(sock)
	if err != nil {
		check("listen", err)
		return
	}
	defer l.Close()

	version := func(want string) func(c *ttrpc.Client) error {
		return func(c *ttrpc.Client) error {
			var resp pb.Raw
			if err := c.Call(context.Background(), pb.HypervisorService, "Version", &pb.Raw{B: pb.VersionRequest("0.0.0")}, &resp); err != nil {
				return err
			}
			f, err := pb.Parse(resp.B)
			if err != nil || pb.GetStr(f, 1) != want {
				return fmt.Errorf("response %x", resp.B)
			}
			return nil
		}
	}
	startVM := func(c *ttrpc.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Second)
		defer cancel()
		var resp pb.Raw
		if err := c.Call(ctx, pb.HypervisorService, "StartVM", &pb.Raw{B: pb.IDRequest("abc")}, &resp); err != nil {
			return err
		}
		if len(resp.B) != 0 {
			return fmt.Errorf("response %x", resp.B)
		}
		return nil
	}
	health := func(c *ttrpc.Client) error {
		ctx, cancel := pb.CallCtx(30*time.Second, [][2]string{{"k", "v"}})
		defer cancel()
		var resp pb.Raw
		if err := c.Call(ctx, pb.HealthService, "Check", &pb.Raw{}, &resp); err != nil {
			return err
		}
		if !bytes.Equal(resp.B, []byte{8, 1}) {
			return fmt.Errorf("response %x", resp.B)
		}
		return nil
	}
	noSuch := func(c *ttrpc.Client) error {
		var resp pb.Raw
		err := c.Call(context.Background(), pb.HypervisorService, "Version", &pb.Raw{B: pb.VersionRequest("0.0.0")}, &resp)
		if code, msg := pb.ErrorFields(err); code != 12 || msg != "method NoSuchMethod" {
			return fmt.Errorf("got %v, want code 12 \"method NoSuchMethod\"", err)
		}
		return nil
	}

	// Each group is one connection: the cases run in order on it.
	groups := [][]clientCase{
		{
			{"client Version request = golden; status-omitted answer accepted", version("0.0.0"), goldenVersionReq, 0, goldenVersionOK},
			{"client StartVM on stream 3 with 600 s deadline = golden; empty answer accepted", startVM, goldenStartVM, 600e9, withStream(goldenEmptyOK, 3)},
		},
		{
			{"client accepts OK answer with empty status (0a 00)", version("0.0.0"), goldenVersionReq, 0, goldenVersionOKEmpty},
			{"client accepts empty OK answer with empty status", startVM, goldenStartVM, 600e9, withStream(goldenEmptyOKStatus, 3)},
		},
		{
			{"client Health/Check with 30 s deadline and metadata k=v = golden", health, goldenHealthReq, 30e9, goldenHealthOK},
		},
		{
			{"client reports UNIMPLEMENTED \"method NoSuchMethod\"", noSuch, goldenVersionReq, 0, goldenNoSuchMethod},
		},
	}
	for _, group := range groups {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			check("dial", err)
			return
		}
		peer, err := l.Accept()
		if err != nil {
			check("accept", err)
			return
		}
		client := ttrpc.NewClient(conn)
		for _, tc := range group {
			done := make(chan error, 1)
			go func() { done <- tc.call(client) }()
			frame, err := readFrame(peer)
			if err == nil && tc.timeout > 0 {
				frame, err = normalizeTimeout(frame, tc.timeout)
			}
			if err == nil {
				err = diff(frame, tc.expect)
			}
			if _, werr := peer.Write(tc.reply); werr != nil && err == nil {
				err = werr
			}
			select {
			case cerr := <-done:
				if err == nil {
					err = cerr
				}
			case <-time.After(10 * time.Second):
				if err == nil {
					err = fmt.Errorf("client call did not return")
				}
			}
			check(tc.name, err)
		}
		client.Close()
		peer.Close()
	}
}

// ---- a server against golden bytes ----

type exchange struct {
	name    string
	send    []byte
	want    [][]byte // acceptable answers; nil = any answer on the same stream with a non-zero code
	stream  uint32
	noReply bool
	orError bool // an error Response on the stream is also right (state-dependent calls)
}

func statusFrame(stream uint32, code int, msg string) []byte {
	st := pb.NewEnc().Uint(1, uint64(code)).Str(2, msg).Bytes()
	return pb.MakeFrame(stream, 2, 0, pb.NewEnc().Msg(1, st).Bytes()).Bytes()
}

func requestFrame(stream uint32, service, method string, payload []byte) []byte {
	return pb.MakeFrame(stream, 1, 0, pb.NewEnc().Str(1, service).Str(2, method).Blob(3, payload).Bytes()).Bytes()
}

// isError tells whether an answer frame is a Response on stream with a non-zero status code.
func isError(frame []byte, stream uint32) error {
	if frame[8] != 2 || uint32(frame[7]) != stream&0xff {
		return fmt.Errorf("answer %x is not a Response on stream %d", frame, stream)
	}
	fields, err := pb.Parse(frame[10:])
	if err != nil {
		return err
	}
	for _, st := range pb.Get(fields, 1) {
		sf, err := pb.Parse(st.Data)
		if err != nil {
			return err
		}
		if pb.GetUint(sf, 1) != 0 {
			return nil
		}
	}
	return fmt.Errorf("answer %x is not an error", frame)
}

func serverSide(sock string, strict, goServer, hypervisor, health bool) {
	versionOK := [][]byte{goldenVersionOK, goldenVersionOKEmpty}
	emptyOK := func(stream uint32) [][]byte {
		return [][]byte{withStream(goldenEmptyOK, stream), withStream(goldenEmptyOKStatus, stream)}
	}
	healthOK := [][]byte{goldenHealthOK, unhex(`00 00 00 06 00 00 00 01 02 00 0a 00 12 02 08 01`)}
	if goServer {
		// containerd's Go server omits the OK status: exactly one form is right.
		versionOK, healthOK = versionOK[:1], healthOK[:1]
		emptyOK = func(stream uint32) [][]byte { return [][]byte{withStream(goldenEmptyOK, stream)} }
	}
	maybe := func(b []byte) [][]byte {
		if strict || goServer {
			return [][]byte{b}
		}
		return nil
	}
	oversized := make([]byte, 10+4194305)
	copy(oversized, []byte{0, 0x40, 0, 1, 0, 0, 0, 5, 1, 0})

	conns := [][]exchange{
		{
			{name: "Version golden request -> golden answer", send: goldenVersionReq, want: versionOK, stream: 1},
			{name: "StartVM{abc} stream 3, 600 s -> empty OK (or an error: no such sandbox)", send: goldenStartVM,
				want: emptyOK(3), stream: 3, orError: !goServer},
		},
		{
			{name: "Health/Check golden request -> SERVING", send: goldenHealthReq, want: healthOK, stream: 1},
		},
		{
			{name: "unknown method -> UNIMPLEMENTED \"method NoSuchMethod\"",
				send: requestFrame(1, pb.HypervisorService, "NoSuchMethod", nil), want: maybe(goldenNoSuchMethod), stream: 1},
			{name: "unknown service -> UNIMPLEMENTED \"service no.Such\"",
				send: requestFrame(3, "no.Such", "Version", nil), want: maybe(statusFrame(3, 12, "service no.Such")), stream: 3},
			{name: "frame of unknown type 0x7f ignored", send: pb.MakeFrame(5, 0x7f, 0, []byte{1, 2, 3}).Bytes(), noReply: true},
			{name: "connection still serves after errors", send: withStream(goldenVersionReq, 7), want: [][]byte{
				withStream(versionOK[0], 7), withStream(versionOK[len(versionOK)-1], 7)}, stream: 7},
		},
	}
	if strict || goServer {
		conns = append(conns, []exchange{
			{name: "Version on stream 3 first", send: withStream(goldenVersionReq, 3), want: [][]byte{
				withStream(versionOK[0], 3), withStream(versionOK[len(versionOK)-1], 3)}, stream: 3},
			{name: "oversized Request (4194305) on stream 5 -> RESOURCE_EXHAUSTED, same stream", send: oversized,
				want: [][]byte{goldenOversized}, stream: 5},
			{name: "connection still serves after an oversized frame", send: withStream(goldenVersionReq, 7), want: [][]byte{
				withStream(versionOK[0], 7), withStream(versionOK[len(versionOK)-1], 7)}, stream: 7},
		})
	}
	if strict {
		conns = append(conns, []exchange{
			{name: "even stream id -> INVALID_ARGUMENT", send: withStream(goldenVersionReq, 2),
				want: [][]byte{statusFrame(2, 3, "StreamID must be odd for client initiated streams")}, stream: 2},
			{name: "Version on stream 5", send: withStream(goldenVersionReq, 5), want: [][]byte{
				withStream(versionOK[0], 5), withStream(versionOK[len(versionOK)-1], 5)}, stream: 5},
			{name: "re-used stream id -> INVALID_ARGUMENT", send: withStream(goldenVersionReq, 5),
				want: [][]byte{statusFrame(5, 3, "StreamID cannot be re-used and must increment")}, stream: 5},
			{name: "Data frame for a stream not open -> INVALID_ARGUMENT", send: pb.MakeFrame(9, 3, 0, []byte{0x0a, 0x00}).Bytes(),
				want: [][]byte{statusFrame(9, 3, "StreamID is no longer active")}, stream: 9},
		})
	}

	// conns[1] is the health check; every other group probes with hypervisor.Hypervisor calls.
	var chosen [][]exchange
	for i, exchanges := range conns {
		if (i == 1 && health) || (i != 1 && hypervisor) {
			chosen = append(chosen, exchanges)
		}
	}
	for _, exchanges := range chosen {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			check("dial "+sock, err)
			return
		}
		for _, ex := range exchanges {
			_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Write(ex.send); err != nil {
				check(ex.name, err)
				break
			}
			if ex.noReply {
				check(ex.name, nil)
				continue
			}
			got, err := readFrame(conn)
			if err == nil {
				if ex.want == nil {
					err = isError(got, ex.stream)
				} else {
					err = diff(got, ex.want[0])
					for _, w := range ex.want[1:] {
						if bytes.Equal(got, w) {
							err = nil
						}
					}
					if err != nil && ex.orError && isError(got, ex.stream) == nil {
						err = nil
					}
				}
			}
			check(ex.name, err)
		}
		conn.Close()
	}
}

func main() {
	server := flag.String("server", "", "check this server's answers to golden frames (default: self-test of Go ttrpc)")
	strict := flag.Bool("strict", false, "with -server: also exact Go-style error texts, oversized frames, stream-id rules")
	hypervisor := flag.Bool("hypervisor", true, "with -server: the server has hypervisor.Hypervisor")
	health := flag.Bool("health", true, "with -server: the server has grpc.Health")
	flag.Parse()

	check("CreateVMRequest encoder = golden payload", diff(pb.CreateVMRequest("abc",
		[][2]string{{"io.kubernetes.cri.sandbox-name", "nginx"}}, "/var/run/netns/x"), goldenCreateVMReq))

	if *server != "" {
		serverSide(*server, *strict, false, *hypervisor, *health)
	} else {
		dir, err := os.MkdirTemp("", "go-golden-")
		if err != nil {
			check("tempdir", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		clientSide(dir)
		sock := filepath.Join(dir, "server.sock")
		srv, _ := ttrpc.NewServer()
		srv.Register(pb.HypervisorService, pb.Methods(pb.HypervisorHandlers("/run/peerpod/pods")))
		srv.Register(pb.HealthService, pb.Methods(pb.HealthHandlers("go-golden")))
		l, err := pb.ListenUnix(sock)
		if err != nil {
			check("listen", err)
			os.Exit(1)
		}
		go func() { _ = srv.Serve(context.Background(), l) }()
		serverSide(sock, false, true, true, true)
		_ = srv.Close()
	}
	if failures > 0 {
		fmt.Printf("go-golden: %d failures\n", failures)
		os.Exit(1)
	}
	fmt.Println("go-golden: all checks passed")
}
