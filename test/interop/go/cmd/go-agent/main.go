// go-agent: a stand-in kata-agent built on containerd's Go ttrpc. It serves grpc.Health and the 42
// methods of grpc.AgentService (Go ttrpc 1.1 has no fallback handler, so every name is registered)
// and records every Request exactly as read from the wire (-record), so tests can compare what a
// proxy delivered with what a client sent.
//
// Answers: Health Check SERVING; ReadStdout/ReadStderr `len` bytes; WriteStdin the data length;
// everything else an empty message. A request whose field 1 (container_id for most methods) is
// "pp-error" fails with NOT_FOUND, to test that errors come back through a proxy.
//
// Go ttrpc hands a handler the deadline as the context deadline (from timeout_nano) and the
// metadata as ttrpc.GetMetadata(ctx), a map (order across keys lost); the recorder reads the
// wire instead, so the logged timeout_nano and metadata order are exact.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"ppinterop/pb"
)

// AgentMethods are the 42 unary methods of grpc.AgentService (WIRE 3.1).
var AgentMethods = []string{
	"CreateContainer", "StartContainer", "RemoveContainer", "ExecProcess", "SignalProcess",
	"WaitProcess", "UpdateContainer", "UpdateEphemeralMounts", "StatsContainer", "PauseContainer",
	"ResumeContainer", "RemoveStaleVirtiofsShareMounts", "WriteStdin", "ReadStdout", "ReadStderr",
	"CloseStdin", "TtyWinResize", "UpdateInterface", "UpdateRoutes", "ListInterfaces", "ListRoutes",
	"AddARPNeighbors", "GetIPTables", "SetIPTables", "GetMetrics", "CreateSandbox", "DestroySandbox",
	"OnlineCPUMem", "ReseedRandomDev", "GetGuestDetails", "MemHotplugByProbe", "SetGuestDateTime",
	"CopyFile", "GetOOMEvent", "AddSwap", "AddSwapPath", "GetVolumeStats", "ResizeVolume",
	"SetPolicy", "MemAgentMemcgSet", "MemAgentCompactSet", "GetDiagnosticData",
}

func agentHandler(method string) pb.Handler {
	return func(ctx context.Context, req []byte) ([]byte, error) {
		f, err := pb.Parse(req)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: undecodable request: %v", method, err)
		}
		if len(pb.Get(f, 1)) > 0 && pb.Get(f, 1)[0].Wire == pb.WireBytes && pb.GetStr(f, 1) == "pp-error" {
			return nil, status.Errorf(codes.NotFound, "%s: pp-error requested", method)
		}
		switch method {
		case "ReadStdout", "ReadStderr":
			n := pb.GetUint(f, 3)
			if n > 4<<20-64 {
				n = 4<<20 - 64
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte('a' + i%26)
			}
			return pb.NewEnc().Blob(1, data).Bytes(), nil
		case "WriteStdin":
			var n int
			for _, d := range pb.Get(f, 3) {
				n = len(d.Data)
			}
			return pb.NewEnc().Uint(1, uint64(n)).Bytes(), nil
		}
		return nil, nil
	}
}

func main() {
	socket := flag.String("socket", "", "Unix socket to listen on (the agent's server_addr)")
	record := flag.String("record", "", "append every Request read, as a JSON line, to this file")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: go-agent -socket PATH [-record FILE]")
		os.Exit(2)
	}
	rec, err := pb.NewRecorder(*record)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(pb.Handshaker{R: rec}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handlers := map[string]pb.Handler{}
	for _, m := range AgentMethods {
		handlers[m] = agentHandler(m)
	}
	srv.Register(pb.AgentService, pb.Methods(handlers))
	srv.Register(pb.HealthService, pb.Methods(pb.HealthHandlers("go-agent")))
	l, err := pb.ListenUnix(*socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		_ = srv.Close()
		_ = os.Remove(*socket)
		os.Exit(0)
	}()
	fmt.Fprintf(os.Stderr, "go-agent: %d agent methods on %s\n", len(AgentMethods), *socket)
	if err := srv.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
