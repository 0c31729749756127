// go-agentproxy: a reference agent-protocol relay on containerd's Go ttrpc, doing the forwarder's
// rewrites (WIRE 4.1) over one upstream connection. It exists to validate the interop checks
// (go-agentclient verify must pass through it) and as a benchmark baseline; it is not a product.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"ppinterop/pb"
)

var agentMethods = []string{
	"CreateContainer", "StartContainer", "RemoveContainer", "ExecProcess", "SignalProcess",
	"WaitProcess", "UpdateContainer", "UpdateEphemeralMounts", "StatsContainer", "PauseContainer",
	"ResumeContainer", "RemoveStaleVirtiofsShareMounts", "WriteStdin", "ReadStdout", "ReadStderr",
	"CloseStdin", "TtyWinResize", "UpdateInterface", "UpdateRoutes", "ListInterfaces", "ListRoutes",
	"AddARPNeighbors", "GetIPTables", "SetIPTables", "GetMetrics", "CreateSandbox", "DestroySandbox",
	"OnlineCPUMem", "ReseedRandomDev", "GetGuestDetails", "MemHotplugByProbe", "SetGuestDateTime",
	"CopyFile", "GetOOMEvent", "AddSwap", "AddSwapPath", "GetVolumeStats", "ResizeVolume",
	"SetPolicy", "MemAgentMemcgSet", "MemAgentCompactSet", "GetDiagnosticData",
}

type upstream struct {
	mu     sync.Mutex
	path   string
	client *ttrpc.Client
}

func (u *upstream) get() (*ttrpc.Client, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.client == nil {
		conn, err := pb.DialRetry(u.path, 30*time.Second)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "agent: %v", err)
		}
		u.client = ttrpc.NewClient(conn, ttrpc.WithOnClose(func() {
			u.mu.Lock()
			u.client = nil
			u.mu.Unlock()
		}))
	}
	return u.client, nil
}

// without drops every occurrence of field num.
func without(msg []byte, num int) ([]byte, error) {
	fields, err := pb.Parse(msg)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, f := range fields {
		if f.Num != num {
			out = append(out, f.Raw...)
		}
	}
	return out, nil
}

// appendNetns adds the pod network namespace to OCI(6).Linux(8).Namespaces(6).
func appendNetns(req []byte) ([]byte, error) {
	edit := func(msg []byte, num int, change func([]byte) ([]byte, error)) ([]byte, error) {
		fields, err := pb.Parse(msg)
		if err != nil {
			return nil, err
		}
		var out []byte
		found := false
		for _, f := range fields {
			if f.Num == num && f.Wire == pb.WireBytes && !found {
				found = true
				inner, err := change(f.Data)
				if err != nil {
					return nil, err
				}
				out = append(out, pb.NewEnc().Msg(num, inner).Bytes()...)
				continue
			}
			out = append(out, f.Raw...)
		}
		if !found {
			inner, err := change(nil)
			if err != nil {
				return nil, err
			}
			out = append(out, pb.NewEnc().Msg(num, inner).Bytes()...)
		}
		return out, nil
	}
	return edit(req, 6, func(spec []byte) ([]byte, error) {
		return edit(spec, 8, func(linux []byte) ([]byte, error) {
			ns := pb.NewEnc().Msg(6, pb.NewEnc().Str(1, "network").Str(2, "/run/netns/podns").Bytes()).Bytes()
			return append(append([]byte{}, linux...), ns...), nil
		})
	})
}

func relay(u *upstream, service, method string, rewrite bool) pb.Handler {
	return func(ctx context.Context, req []byte) ([]byte, error) {
		var err error
		if rewrite && service == pb.AgentService && method == "CreateSandbox" {
			req, err = without(req, 2)
		} else if rewrite && service == pb.AgentService && method == "CreateContainer" {
			req, err = appendNetns(req)
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		c, err := u.get()
		if err != nil {
			return nil, err
		}
		// ctx carries the caller's deadline and metadata; ttrpc's client sends both on.
		var resp pb.Raw
		if err := c.Call(ctx, service, method, &pb.Raw{B: req}, &resp); err != nil {
			return nil, err
		}
		return resp.B, nil
	}
}

func main() {
	listen := flag.String("listen", "", "Unix socket to serve")
	up := flag.String("upstream", "", "agent Unix socket")
	rewrite := flag.Bool("rewrite", true, "apply the forwarder's CreateSandbox/CreateContainer rewrites")
	flag.Parse()
	if *listen == "" || *up == "" {
		fmt.Fprintln(os.Stderr, "usage: go-agentproxy -listen PATH -upstream PATH [-rewrite=false]")
		os.Exit(2)
	}
	u := &upstream{path: *up}
	srv, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agent := map[string]pb.Handler{}
	for _, m := range agentMethods {
		agent[m] = relay(u, pb.AgentService, m, *rewrite)
	}
	srv.Register(pb.AgentService, pb.Methods(agent))
	srv.Register(pb.HealthService, pb.Methods(map[string]pb.Handler{
		"Check":   relay(u, pb.HealthService, "Check", false),
		"Version": relay(u, pb.HealthService, "Version", false),
	}))
	l, err := pb.ListenUnix(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		_ = srv.Close()
		_ = os.Remove(*listen)
		os.Exit(0)
	}()
	if err := srv.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
