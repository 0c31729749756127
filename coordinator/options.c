/* coordinator/options.c: the coordinator daemon's option table (README "Coordinator"): ports,
 * store, own evidence, test trust anchor, peers. */
#include <stddef.h>

#include "coordinator/daemon.h"
#include "coordapi/coordapi.h"
#include "log/log.h"

#define OPTV(flag, env, type, def, member, help, validate)                                    \
	{                                                                                     \
		flag, env, type, def, offsetof(struct coord_settings, member), help, validate \
	}
#define OPT(flag, env, type, def, member, help) OPTV(flag, env, type, def, member, help, NULL)
#define STR_(x) #x
#define STR(x) STR_(x)

/* A port that may be 0 (ephemeral, for tests). */
static int validate_port0(const void *field, char **ret_msg)
{
	uint64_t v = *(const uint64_t *)field;
	if (v > 65535)
		return str_set_message(ret_msg, EINVAL, "port %llu out of range 0..65535",
				       (unsigned long long)v);
	return 0;
}

static int validate_evidence(const void *field, char **ret_msg)
{
	const char *v = *(char *const *)field;
	if (!v || str_eq(v, "auto") || str_eq(v, "snp") || str_eq(v, "tdx") || str_eq(v, "sim"))
		return 0;
	return str_set_message(ret_msg, EINVAL, "evidence \"%s\": expected auto, snp, tdx or sim",
			       v);
}

static int validate_pool(const void *field, char **ret_msg)
{
	uint64_t v = *(const uint64_t *)field;
	if (v < 2 || v > 1024)
		return str_set_message(ret_msg, EINVAL, "must be between 2 and 1024");
	return 0;
}

static int validate_positive(const void *field, char **ret_msg)
{
	if (*(const uint64_t *)field < 1)
		return str_set_message(ret_msg, EINVAL, "must be at least 1");
	return 0;
}

static int validate_interval(const void *field, char **ret_msg)
{
	if (*(const int64_t *)field < 100 * NSEC_PER_MSEC)
		return str_set_message(ret_msg, EINVAL, "must be at least 100ms");
	return 0;
}

const struct config_option coord_options[] = {
    OPT("listen-address", "COORDINATOR_LISTEN_ADDRESS", CONFIG_STRING, "0.0.0.0", listen_address,
	"IP address of the user, mesh and HTTP attestation listeners"),
    OPTV("user-api-port", "COORDINATOR_USER_API_PORT", CONFIG_UINT, STR(COORDAPI_USER_PORT),
	 user_api_port, "user API (SetManifest, GetManifests, Recover); 0: ephemeral",
	 validate_port0),
    OPTV("mesh-api-port", "COORDINATOR_MESH_API_PORT", CONFIG_UINT, STR(COORDAPI_MESH_PORT),
	 mesh_api_port, "mesh API (NewMeshCert, PeerRecover), mutual aTLS; 0: ephemeral",
	 validate_port0),
    OPTV("http-port", "COORDINATOR_HTTP_PORT", CONFIG_UINT, STR(COORDAPI_HTTP_PORT), http_port,
	 "HTTP attestation (GET /attest/<nonce>); 0: ephemeral", validate_port0),
    OPT("probe-address", "COORDINATOR_PROBE_ADDRESS", CONFIG_STRING, "127.0.0.1", probe_address,
	"address of /metrics, /startup, /readyz and /livez"),
    OPTV("probe-port", "COORDINATOR_PROBE_PORT", CONFIG_UINT, STR(COORD_DEFAULT_PROBE_PORT),
	 probe_port, "port of /metrics and the probes; 0: ephemeral", validate_port0),
    OPT("ports-file", NULL, CONFIG_STRING, NULL, ports_file,
	"write the bound ports as JSON {\"user\",\"mesh\",\"http\",\"probe\"} here once listening"),
    OPT("data-dir", "COORDINATOR_DATA_DIR", CONFIG_STRING, COORD_DEFAULT_DATA_DIR, data_dir,
	"directory of the manifest history (file store; unused with -etcd-endpoints)"),
    OPT("etcd-endpoints", "COORDINATOR_ETCD_ENDPOINTS", CONFIG_STRING, NULL, etcd_endpoints,
	"comma-separated etcd URLs: keep the history in etcd instead of -data-dir"),
    OPT("etcd-prefix", "COORDINATOR_ETCD_PREFIX", CONFIG_STRING, NULL, etcd_prefix,
	"key prefix in etcd (default " STORE_ETCD_DEFAULT_PREFIX ")"),
    OPT("etcd-ca-file", "COORDINATOR_ETCD_CA_FILE", CONFIG_STRING, NULL, etcd_ca_file,
	"CA bundle of https etcd endpoints"),
    OPT("etcd-cert-file", "COORDINATOR_ETCD_CERT_FILE", CONFIG_STRING, NULL, etcd_cert_file,
	"client certificate for etcd"),
    OPT("etcd-key-file", "COORDINATOR_ETCD_KEY_FILE", CONFIG_STRING, NULL, etcd_key_file,
	"client key for etcd"),
    OPT("etcd-timeout", "COORDINATOR_ETCD_TIMEOUT", CONFIG_DURATION, "5s", etcd_timeout_ns,
	"timeout of one etcd request"),
    OPTV("evidence", "COORDINATOR_EVIDENCE", CONFIG_STRING, "auto", evidence,
	 "own evidence: auto (snp, then tdx), snp, tdx or sim (tests)", validate_evidence),
    OPT("sim-pki", NULL, CONFIG_STRING, NULL, sim_pki,
	"-evidence sim: test PKI directory (peerpodctl atls-cert --new-pki)"),
    OPT("sim-measurement", NULL, CONFIG_STRING, NULL, sim_measurement,
	"-evidence sim: MEASUREMENT, 96 hex"),
    OPT("sim-host-data", NULL, CONFIG_STRING, NULL, sim_host_data,
	"-evidence sim: HOST_DATA (this pod's policy digest), 64 hex"),
    OPT("sim-guest-policy", NULL, CONFIG_STRING, "0x30000", sim_guest_policy,
	"-evidence sim: guest POLICY (hex)"),
    OPT("test-trust-anchor", "COORDINATOR_TEST_TRUST_ANCHOR", CONFIG_STRING, NULL,
	test_trust_anchor,
	"test ARK PEM: accept simulated evidence from others (tests only, never in production)"),
    OPT("amd-kds-url", "COORDINATOR_AMD_KDS_URL", CONFIG_STRING, COORD_KDS_DEFAULT_URL, amd_kds_url,
	"AMD KDS base URL for CRLs that SNP evidence does not carry"),
    OPT("attest-cache-dir", "COORDINATOR_ATTEST_CACHE_DIR", CONFIG_STRING, NULL, attest_cache_dir,
	"cache of fetched AMD CRLs (<dir>/amd/<product>/crl.der); also read offline"),
    OPT("offline", "COORDINATOR_OFFLINE", CONFIG_BOOL, "false", offline,
	"never fetch from the KDS: CRLs come from the evidence or -attest-cache-dir"),
    OPT("peers", "COORDINATOR_PEERS", CONFIG_LIST, NULL, peers,
	"peer coordinators' mesh API host:port list, for peer recovery"),
    OPT("peer-dns", "COORDINATOR_PEER_DNS", CONFIG_STRING, NULL, peer_dns,
	"DNS name resolved each round to the peer coordinators (headless service), mesh port"),
    OPTV("peer-recovery-interval", "COORDINATOR_PEER_RECOVERY_INTERVAL", CONFIG_DURATION, "15s",
	 peer_recovery_interval_ns,
	 "how often the history is re-read and a stale coordinator "
	 "asks its peers",
	 validate_interval),
    OPTV("worker-pool-size", "COORDINATOR_WORKER_POOL_SIZE", CONFIG_UINT, "32", worker_pool_size,
	 "threads for handshakes, evidence, certificates and the store", validate_pool),
    OPTV("max-handshakes", "COORDINATOR_MAX_HANDSHAKES", CONFIG_UINT, "16", max_handshakes,
	 "concurrent aTLS handshakes (more connections wait in the backlog)", validate_positive),
    OPTV("max-connections", "COORDINATOR_MAX_CONNECTIONS", CONFIG_UINT, "1024", max_connections,
	 "open API connections", validate_positive),
    OPTV("log-format", "LOG_FORMAT", CONFIG_STRING, "text", log_format, "text or json",
	 log_validate_format_option),
    OPTV("log-level", "LOG_LEVEL", CONFIG_STRING, "info", log_level,
	 "error, warning, info or debug", log_validate_level_option),
    OPT("print-config", NULL, CONFIG_BOOL, "false", print_config,
	"print the configuration this would run with (NAME=value) and exit"),
};
const size_t coord_n_options = ELEMENTSOF(coord_options);
