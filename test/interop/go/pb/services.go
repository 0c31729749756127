package pb

import (
	"context"
	"path/filepath"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Wire names (WIRE 2.1, 3.1).
const (
	HypervisorService = "hypervisor.Hypervisor"
	HealthService     = "grpc.Health"
	AgentService      = "grpc.AgentService"
)

// Handler answers one call with the raw request payload; it returns the raw response payload.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// Methods turns raw handlers into a ttrpc method table.
func Methods(handlers map[string]Handler) map[string]ttrpc.Method {
	out := make(map[string]ttrpc.Method, len(handlers))
	for name, h := range handlers {
		h := h
		out[name] = func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req Raw
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			resp, err := h(ctx, req.B)
			if err != nil {
				return nil, err
			}
			return &Raw{B: resp}, nil
		}
	}
	return out
}

// HypervisorHandlers is the reference hypervisor.Hypervisor: Version answers "0.0.0", CreateVM
// answers <podsDir>/<id>/agent.ttrpc, StartVM and StopVM succeed.
func HypervisorHandlers(podsDir string) map[string]Handler {
	return map[string]Handler{
		"Version": func(ctx context.Context, req []byte) ([]byte, error) {
			if _, err := Parse(req); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "bad VersionRequest: %v", err)
			}
			return NewEnc().Str(1, "0.0.0").Bytes(), nil
		},
		"CreateVM": func(ctx context.Context, req []byte) ([]byte, error) {
			f, err := Parse(req)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "bad CreateVMRequest: %v", err)
			}
			id := GetStr(f, 1)
			if id == "" {
				return nil, status.Errorf(codes.Unknown, "empty sandbox id")
			}
			return NewEnc().Str(1, filepath.Join(podsDir, id, "agent.ttrpc")).Bytes(), nil
		},
		"StartVM": func(ctx context.Context, req []byte) ([]byte, error) { return nil, nil },
		"StopVM":  func(ctx context.Context, req []byte) ([]byte, error) { return nil, nil },
	}
}

// HealthHandlers is grpc.Health as the kata-agent answers it.
func HealthHandlers(agentVersion string) map[string]Handler {
	return map[string]Handler{
		"Check": func(ctx context.Context, req []byte) ([]byte, error) {
			return NewEnc().Uint(1, 1).Bytes(), nil // SERVING
		},
		"Version": func(ctx context.Context, req []byte) ([]byte, error) {
			return NewEnc().Str(1, "1.0.0").Str(2, agentVersion).Bytes(), nil
		},
	}
}

// Request payloads of the hypervisor service.
func VersionRequest(v string) []byte { return NewEnc().Str(1, v).Bytes() }

func IDRequest(id string) []byte { return NewEnc().Str(1, id).Bytes() }

func CreateVMRequest(id string, annotations [][2]string, netns string) []byte {
	e := NewEnc().Str(1, id)
	for _, kv := range annotations {
		e.Map(2, kv[0], kv[1])
	}
	return e.Str(3, netns).Bytes()
}

// ShimAnnotations are the nine keys the shim always sends (WIRE 2.2).
func ShimAnnotations(name, namespace string) [][2]string {
	return [][2]string{
		{"io.kubernetes.cri.sandbox-name", name},
		{"io.kubernetes.cri.sandbox-namespace", namespace},
		{"io.katacontainers.config.hypervisor.machine_type", ""},
		{"io.katacontainers.config.hypervisor.image", ""},
		{"io.katacontainers.config.hypervisor.default_vcpus", "0"},
		{"io.katacontainers.config.hypervisor.default_memory", "0"},
		{"io.katacontainers.config.hypervisor.cc_init_data", ""},
		{"io.katacontainers.config.hypervisor.default_gpus", "0"},
		{"io.katacontainers.config.hypervisor.default_gpu_model", ""},
	}
}
