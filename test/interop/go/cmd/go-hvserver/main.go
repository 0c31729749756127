// go-hvserver: a reference hypervisor.Hypervisor server built on containerd's Go ttrpc. It is the
// baseline of the benchmarks and the server our client is tested against. It also serves
// grpc.Health, and can record every Request it reads (-record) exactly as it was on the wire.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/ttrpc"

	"ppinterop/pb"
)

func main() {
	socket := flag.String("socket", "", "Unix socket to listen on")
	podsDir := flag.String("pods-dir", "/run/peerpod/pods", "directory used in agentSocketPath answers")
	record := flag.String("record", "", "append every Request read, as a JSON line, to this file")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: go-hvserver -socket PATH [-pods-dir DIR] [-record FILE]")
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
	srv.Register(pb.HypervisorService, pb.Methods(pb.HypervisorHandlers(*podsDir)))
	srv.Register(pb.HealthService, pb.Methods(pb.HealthHandlers("go-hvserver")))
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
	fmt.Fprintf(os.Stderr, "go-hvserver: listening on %s\n", *socket)
	if err := srv.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
