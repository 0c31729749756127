/* coordinator: the daemon's internal interface (not a library): settings, the immutable state
 * snapshots the loop publishes after each history operation, the request handlers' cores (also
 * driven by the fuzz target), the daemon object with its listeners, and peer recovery. */
#pragma once

#include <stdatomic.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "atls/atls.h"
#include "base/base.h"
#include "config/config.h"
#include "coordinator.pb-c.h"
#include "coordinator/history.h"
#include "loop/loop.h"
#include "metrics/metrics.h"
#include "ttrpc/ttrpc.h"

/* ---- settings (options.c) ---- */

#define COORD_DEFAULT_DATA_DIR "/var/lib/coordinator"
#define COORD_DEFAULT_PROBE_PORT 9102

struct coord_settings {
	char *listen_address;
	uint64_t user_api_port; /* 0: ephemeral */
	uint64_t mesh_api_port;
	uint64_t http_port;
	char *probe_address;
	uint64_t probe_port;
	char *ports_file;
	char *data_dir;
	char *etcd_endpoints;
	char *etcd_prefix;
	char *etcd_ca_file;
	char *etcd_cert_file;
	char *etcd_key_file;
	int64_t etcd_timeout_ns;
	char *evidence;
	char *sim_pki;
	char *sim_measurement;
	char *sim_host_data;
	char *sim_guest_policy;
	char *test_trust_anchor;
	char *amd_kds_url;
	char *attest_cache_dir;
	bool offline;
	char **peers;
	char *peer_dns;
	int64_t peer_recovery_interval_ns;
	uint64_t worker_pool_size;
	uint64_t max_handshakes;
	uint64_t max_connections;
	char *log_format;
	char *log_level;
	bool print_config;
};
extern const struct config_option coord_options[];
extern const size_t coord_n_options;

/* ---- snapshots (snapshot.c) ---- */

/* What the loop serves with until the next history operation: immutable once published,
 * refcounted (atomically: handshakes and workers hold references). */
struct coord_snapshot {
	atomic_uint refs;
	enum history_state state;
	bool has_latest;
	uint8_t latest[32];
	/* Active only (NULL otherwise): */
	struct manifest *manifest; /* a parsed copy */
	struct secrets *secrets;   /* a copy; keys referenced */
	struct ca *ca;             /* certificates and keys referenced */
	char *root_pem;
	char *mesh_pem;
	/* The mesh listener's server context: verifies clients against this manifest (refuses
	 * every client when not active). NULL when the snapshot was made without an issuer. */
	struct atls_verifier verifier;
	SSL_CTX *mesh_ctx;
};

/* What mesh contexts need besides the history. */
struct coord_crl_cache;

struct coord_mesh_config {
	struct atls_issuer *issuer;  /* NULL: no mesh_ctx */
	const char *test_anchor_pem; /* NULL: simulated evidence refused */
	struct coord_crl_cache *crl; /* NULL: evidence without a CRL is refused */
};

/* Build from the history's current state (on the thread that owns the history). */
int coord_snapshot_new(struct history *h, const struct coord_mesh_config *mc,
		       struct coord_snapshot **ret, char **ret_msg);
struct coord_snapshot *coord_snapshot_ref(struct coord_snapshot *s);
struct coord_snapshot *coord_snapshot_unref(struct coord_snapshot *s);
DEFINE_CLEANUP(struct coord_snapshot, coord_snapshot_unref)
/* Keep a reference on an SSL (released by SSL_free): its context borrows the snapshot. */
int coord_snapshot_attach(SSL *ssl, struct coord_snapshot *s);
/* A verifier over a manifest's reference values and either every Policies key or only the
 * coordinator ones. The manifest must outlive it. */
void coord_verifier_init(struct atls_verifier *v, const struct manifest *m, bool coordinators_only,
			 const char *test_anchor_pem, struct coord_crl_cache *crl);

/* ---- AMD CRLs (crl.c) ---- */

/* For SEV-SNP evidence without a CRL (what configfs-tsm and /dev/sev-guest give): memory, else
 * <cache_dir>/amd/<product>/{crl,vlek_crl}.der, else the KDS at kds_url (NULL: offline), kept
 * until nextUpdate and never used after it; a failed fetch is not retried for 30 s. Thread-safe. */
#define COORD_KDS_DEFAULT_URL "https://kdsintf.amd.com"
#define COORD_CRL_MAX_BYTES (1u << 20)
#define COORD_CRL_TIMEOUT_NS (10 * NSEC_PER_SEC)
int coord_crl_cache_new(const char *kds_url, const char *cache_dir, int64_t timeout_ns,
			struct coord_crl_cache **ret);
struct coord_crl_cache *coord_crl_cache_free(struct coord_crl_cache *c);
DEFINE_CLEANUP(struct coord_crl_cache, coord_crl_cache_free)
/* atls_verifier.get_snp_crl with the cache as userdata. */
int coord_crl_get(void *userdata, enum attest_snp_product product, bool vlek, const uint8_t **ret,
		  size_t *ret_len);
/* nextUpdate of a DER CRL (seconds since the epoch); -EBADMSG. */
int coord_crl_next_update(const uint8_t *der, size_t len, int64_t *ret_sec);

/* ---- request handling (service.c) ---- */

/* What the TLS handshake established about the client. */
struct coord_client {
	EVP_PKEY *key;      /* the client's TLS public key; NULL: no certificate */
	uint8_t *spki;      /* DER SubjectPublicKeyInfo of key */
	size_t spki_len;    /* 0: no key */
	uint8_t *pkcs1;     /* DER PKCS#1 RSAPublicKey when key is RSA */
	size_t pkcs1_len;   /* 0: not RSA */
	bool attested;      /* evidence verified (mesh API) */
	uint8_t digest[32]; /* its policy digest */
	char digest_hex[65];
};
/* From an established connection's SSL (peer certificate and aTLS peer). */
int coord_client_from_ssl(SSL *ssl, struct coord_client *ret);
void coord_client_done(struct coord_client *c);

/* A handler's answer: code 0 with a packed response, or a ttRPC code and message. Payloads may
 * hold secrets: wiped by coord_reply_done. */
struct coord_reply {
	int code;
	char *message;
	uint8_t *payload;
	size_t len;
	/* SetManifest: "accepted", "invalid", "denied", "conflict" or "error". */
	const char *result;
};
void coord_reply_done(struct coord_reply *r);

/* UserAPI. These run where the history may be used (one at a time). */
void coord_handle_set_manifest(struct history *h, const struct coord_client *c,
			       const uint8_t *payload, size_t len, int64_t now_sec,
			       struct coord_reply *ret);
void coord_handle_get_manifests(struct history *h, struct store *store, const uint8_t *payload,
				size_t len, struct coord_reply *ret);
void coord_handle_recover(struct history *h, const struct coord_client *c, const uint8_t *payload,
			  size_t len, int64_t now_sec, struct coord_reply *ret);
/* MeshAPI, from a snapshot (any thread). */
void coord_handle_new_mesh_cert(const struct coord_snapshot *s, const struct coord_client *c,
				const uint8_t *payload, size_t len, int64_t now_sec,
				struct coord_reply *ret);
void coord_handle_peer_recover(const struct coord_snapshot *s, const struct coord_client *c,
			       const uint8_t *payload, size_t len, struct coord_reply *ret);
/* Read the latest stored manifest without trusting it (for verifying peers); -ENOENT when
 * there is none. */
int coord_latest_manifest(struct store *store, uint8_t **ret, size_t *ret_len);

/* ---- peers (peer.c) ---- */

/* One attempt to fetch the secrets from an active peer coordinator: candidates are the peers
 * (host:port) and the addresses of dns_name on dns_port; the own mesh listener (self_port on a
 * local address) is skipped. Each is verified against the manifest (reference values, Role
 * coordinator digests) while this side attests with issuer. 0 with *ret and *ret_peer (the
 * address that answered), -ENOENT when no peer answered (*ret_msg says why). */
struct coord_peer_query {
	const uint8_t *manifest;
	size_t manifest_len;
	char *const *peers;
	const char *dns_name;
	uint16_t dns_port;
	uint16_t self_port;
	struct atls_issuer *issuer;
	const char *test_anchor_pem;
	struct coord_crl_cache *crl;
	const atomic_bool *stop; /* optional: give up between candidates */
};
int coord_peer_fetch(const struct coord_peer_query *q, Coordinator__PeerRecoverResponse **ret,
		     char **ret_peer, char **ret_msg);
/* Whether host:port is this process's own listener: the address is local and the port is
 * self_port. */
bool coord_address_is_self(const struct sockaddr *sa, uint16_t self_port);

/* ---- the daemon (server.c) ---- */

struct coord;

struct coord_deps {
	struct loop *loop;
	const struct coord_settings *settings;
	struct store *store;     /* borrowed */
	struct history *history; /* borrowed; only used by history jobs */
	struct atls_issuer *issuer;
	const char *test_anchor_pem;
	struct coord_crl_cache *crl; /* borrowed; may be NULL */
};

/* Build the first snapshot, the contexts and the metrics. */
int coord_new(const struct coord_deps *deps, struct coord **ret, char **ret_msg);
/* Bind every listener (API ports, HTTP attestation, probes), write the ports file, start the
 * peer recovery timer. */
int coord_start(struct coord *d, char **ret_msg);
/* Stop: close listeners and connections, abort handshakes, drop queued history jobs. Work
 * already on workers finishes when the loop is freed (its callbacks need d): call coord_stop,
 * then loop_free, then coord_free. */
void coord_stop(struct coord *d);
struct coord *coord_free(struct coord *d);
uint16_t coord_user_port(const struct coord *d);
uint16_t coord_mesh_port(const struct coord *d);
uint16_t coord_http_port(const struct coord *d);
uint16_t coord_probe_port(const struct coord *d);
