// go-hvclient: drives a hypervisor.Hypervisor socket the way the Go Kata shim does: a new
// connection (hence stream 1) for every call, closed after the answer; StartVM with a 600 s
// deadline, the other calls with none. One JSON line per call on stdout; exit 1 on any error.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/ttrpc"

	"ppinterop/pb"
)

var (
	socket   string
	metadata [][2]string
	record   *pb.Recorder
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: go-hvclient -socket PATH [-metadata k=v]... [-sent FILE] COMMAND [flags]
  version                                   Version{"0.0.0"}
  create -id SID [-annotation k=v]... [-shim-annotations] [-name N] [-namespace NS] [-netns P]
  start  -id SID [-timeout 600s]
  stop   -id SID [-timeout 0]
  lifecycle -id SID [-name N] [-namespace NS] [-netns P] [-timeout 600s] [-check-agent]
                                            CreateVM (nine shim annotations), StartVM, optional
                                            grpc.Health/Check on the agent socket, StopVM
`)
	os.Exit(2)
}

// call makes one call on a fresh connection, like the Go shim.
func call(method string, req []byte, timeout time.Duration) ([]byte, error) {
	conn, err := pb.DialRetry(socket, 0)
	if err != nil {
		return nil, err
	}
	client := ttrpc.NewClient(record.SniffWrites(conn))
	defer client.Close()
	ctx, cancel := pb.CallCtx(timeout, metadata)
	defer cancel()
	var resp pb.Raw
	if err := client.Call(ctx, pb.HypervisorService, method, &pb.Raw{B: req}, &resp); err != nil {
		return nil, err
	}
	return resp.B, nil
}

func mustParse(b []byte, what string) []pb.Field {
	f, err := pb.Parse(b)
	if err != nil {
		pb.Fail(what, fmt.Errorf("undecodable response: %v", err))
	}
	return f
}

func doVersion() {
	resp, err := call("Version", pb.VersionRequest("0.0.0"), 0)
	if err != nil {
		pb.Fail("Version", err)
	}
	pb.Emit(map[string]interface{}{"call": "Version", "ok": true,
		"version": pb.GetStr(mustParse(resp, "Version"), 1)})
}

func doCreate(id string, ann [][2]string, netns string) string {
	resp, err := call("CreateVM", pb.CreateVMRequest(id, ann, netns), 0)
	if err != nil {
		pb.Fail("CreateVM", err)
	}
	path := pb.GetStr(mustParse(resp, "CreateVM"), 1)
	pb.Emit(map[string]interface{}{"call": "CreateVM", "ok": true, "id": id, "agentSocketPath": path})
	return path
}

func doSimple(method, id string, timeout time.Duration) {
	resp, err := call(method, pb.IDRequest(id), timeout)
	if err != nil {
		pb.Fail(method, err)
	}
	pb.Emit(map[string]interface{}{"call": method, "ok": true, "id": id, "response_hex": fmt.Sprintf("%x", resp)})
}

// checkAgent does what the shim does first on the agent socket: dial (retrying) and Check.
func checkAgent(path string) {
	conn, err := pb.DialRetry(path, 30*time.Second)
	if err != nil {
		pb.Fail("grpc.Health/Check", err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := pb.CallCtx(30*time.Second, metadata)
	defer cancel()
	var resp pb.Raw
	if err := client.Call(ctx, pb.HealthService, "Check", &pb.Raw{}, &resp); err != nil {
		pb.Fail("grpc.Health/Check", err)
	}
	st := pb.GetUint(mustParse(resp.B, "grpc.Health/Check"), 1)
	pb.Emit(map[string]interface{}{"call": "grpc.Health/Check", "ok": st == 1, "status": st})
	if st != 1 {
		os.Exit(1)
	}
}

func main() {
	global := flag.NewFlagSet("go-hvclient", flag.ExitOnError)
	global.Usage = usage
	var md pb.MultiFlag
	global.StringVar(&socket, "socket", "/run/peerpod/hypervisor.sock", "hypervisor socket")
	global.Var(&md, "metadata", "k=v metadata on every call (repeatable)")
	sent := global.String("sent", "", "append every Request sent, as a JSON line, to this file")
	_ = global.Parse(os.Args[1:])
	var err error
	if metadata, err = pb.Pairs(md); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if record, err = pb.NewRecorder(*sent); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := global.Args()
	if len(args) == 0 {
		usage()
	}
	cmd := flag.NewFlagSet(args[0], flag.ExitOnError)
	id := cmd.String("id", "", "sandbox id")
	var annFlags pb.MultiFlag
	cmd.Var(&annFlags, "annotation", "k=v annotation (repeatable)")
	shimAnn := cmd.Bool("shim-annotations", false, "add the nine annotations the shim sends")
	name := cmd.String("name", "nginx", "pod name for -shim-annotations / lifecycle")
	namespace := cmd.String("namespace", "default", "pod namespace for -shim-annotations / lifecycle")
	netns := cmd.String("netns", "", "networkNamespacePath")
	defTimeout := time.Duration(0)
	if args[0] == "start" || args[0] == "lifecycle" {
		defTimeout = 600 * time.Second
	}
	timeout := cmd.Duration("timeout", defTimeout, "deadline of the call (StartVM in lifecycle); 0 = none")
	check := cmd.Bool("check-agent", false, "lifecycle: health-check the agent socket after StartVM")
	_ = cmd.Parse(args[1:])
	ann, err := pb.Pairs(annFlags)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *shimAnn {
		ann = append(pb.ShimAnnotations(*name, *namespace), ann...)
	}

	switch args[0] {
	case "version":
		doVersion()
	case "create":
		doCreate(*id, ann, *netns)
	case "start":
		doSimple("StartVM", *id, *timeout)
	case "stop":
		doSimple("StopVM", *id, *timeout)
	case "lifecycle":
		path := doCreate(*id, append(pb.ShimAnnotations(*name, *namespace), ann...), *netns)
		if path == "" {
			pb.Fail("CreateVM", fmt.Errorf("remote hypervisor does not return tunnel socket path"))
		}
		doSimple("StartVM", *id, *timeout)
		if *check {
			checkAgent(path)
		}
		doSimple("StopVM", *id, 0)
	default:
		usage()
	}
}
