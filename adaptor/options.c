/* adaptor/options.c: the adaptor's common option table (WIRE.md 8.1) plus our own additions. */
#include <stddef.h>

#include "adaptor.h"
#include "log/log.h"

#define OPTV(flag, env, type, def, member, help, validate)                                      \
	{                                                                                       \
		flag, env, type, def, offsetof(struct adaptor_settings, member), help, validate \
	}
#define OPT(flag, env, type, def, member, help) OPTV(flag, env, type, def, member, help, NULL)

const struct config_option adaptor_options[] = {
    OPT("socket", "REMOTE_HYPERVISOR_ENDPOINT", CONFIG_STRING, "/run/peerpod/hypervisor.sock",
	socket, "Unix socket the Kata shim calls"),
    OPT("pods-dir", "PODS_DIR", CONFIG_STRING, "/run/peerpod/pods", pods_dir,
	"directory of per-sandbox state and agent sockets"),
    OPT("data-dir", "DATA_DIR", CONFIG_STRING, "/var/lib/cloud-api-adaptor", data_dir,
	"directory of the adaptor's CA and client key"),
    OPT("pause-image", "PAUSE_IMAGE", CONFIG_STRING, NULL, pause_image, "accepted, unused"),
    OPT("forwarder-port", "FORWARDER_PORT", CONFIG_PORT, "15150", forwarder_port,
	"port of the agent-protocol-forwarder in the pod VM"),
    OPT("ca-cert-file", "CACERT_FILE", CONFIG_STRING, NULL, ca_cert_file,
	"CA that verifies pod VMs (default: the adaptor's own CA)"),
    OPT("cert-file", "CERT_FILE", CONFIG_STRING, NULL, cert_file,
	"client certificate (default: generated)"),
    OPT("cert-key", "CERT_KEY", CONFIG_STRING, NULL, cert_key, "client key file"),
    OPT("tls-skip-verify", "TLS_SKIP_VERIFY", CONFIG_BOOL, "false", tls_skip_verify,
	"do not verify pod VM certificates (insecure)"),
    OPT("tls-min-version", "TLS_MIN_VERSION", CONFIG_STRING, NULL, tls_min_version,
	"VersionTLS12 (default) or VersionTLS13"),
    OPT("tls-cipher-suites", "TLS_CIPHER_SUITES", CONFIG_LIST, NULL, tls_cipher_suites,
	"comma-separated IANA cipher suite names (TLS 1.2)"),
    OPT("proxy-timeout", "PROXY_TIMEOUT", CONFIG_DURATION, "5m", proxy_timeout_ns,
	"how long StartVM waits for the forwarder"),
    OPT("tunnel-type", "TUNNEL_TYPE", CONFIG_STRING, "vxlan", tunnel_type, "pod network tunnel"),
    OPT("vxlan-port", "VXLAN_PORT", CONFIG_PORT, "4789", vxlan_port, "vxlan UDP port"),
    OPT("vxlan-min-id", NULL, CONFIG_INT, "555000", vxlan_min_id, "first vxlan id"),
    OPT("host-interface", NULL, CONFIG_STRING, NULL, host_interface,
	"interface of the tunnel (default: the default route's)"),
    OPT("initdata", "INITDATA", CONFIG_STRING, NULL, initdata,
	"default initdata (base64 of gzip of TOML)"),
    OPT("cloud-config-verify", "CLOUD_CONFIG_VERIFY", CONFIG_BOOL, "false", cloud_config_verify,
	"verify the cloud configuration at start"),
    OPT("peerpods-limit-per-node", "PEERPODS_LIMIT_PER_NODE", CONFIG_INT, "10",
	peerpods_limit_per_node, "pod VMs per node (negative: not advertised)"),
    OPT("enable-scratch-space", "ENABLE_SCRATCH_SPACE", CONFIG_BOOL, "false", enable_scratch_space,
	"ask the pod VM for scratch space"),
    OPT("ext-network-via-podvm", "EXTERNAL_NETWORK_VIA_PODVM", CONFIG_BOOL, "false",
	ext_network_via_podvm, "experimental"),
    OPT("pod-subnet-cidrs", "POD_SUBNET_CIDRS", CONFIG_LIST, NULL, pod_subnet_cidrs,
	"experimental"),
    OPT("disable-tls", NULL, CONFIG_BOOL, "false", disable_tls,
	"plain TCP to the forwarder (tests only)"),
    OPT("node-name", "NODE_NAME", CONFIG_STRING, NULL, node_name, "this worker's node name"),
    OPTV("log-format", "LOG_FORMAT", CONFIG_STRING, "text", log_format, "text or json",
	 log_validate_format_option),
    OPTV("log-level", "LOG_LEVEL", CONFIG_STRING, "info", log_level,
	 "error, warning, info or debug", log_validate_level_option),
    OPT("probe-port", "PROBE_PORT", CONFIG_PORT, "8000", probe_port,
	"port of /metrics, /startup, /readyz and /livez on 127.0.0.1"),
    OPT("worker-pool-size", "WORKER_POOL_SIZE", CONFIG_UINT, "128", worker_pool_size,
	"threads for blocking provider calls (pod VMs created at once)"),
};
const size_t adaptor_n_options = ELEMENTSOF(adaptor_options);
