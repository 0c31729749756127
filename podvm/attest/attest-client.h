/* attestation-client: the pod VM program that attests to the coordinator's mesh API and keeps the
 * pod's mesh certificate under /run/peerpod/mesh/ fresh (podvm/README.md). Internal
 * interface between main.c and the rest of the folder, and for the unit tests. */
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "atls/atls.h"
#include "base/base.h"
#include "config/config.h"

#define ATTEST_CLIENT_MESH_DIR "/run/peerpod/mesh"
#define ATTEST_CLIENT_INITDATA "/run/peerpod/initdata"
#define ATTEST_CLIENT_INITDATA_DIGEST "/run/peerpod/initdata.digest"
/* The initdata [data] entry naming the coordinator's mesh API, "HOST:PORT". */
#define ATTEST_CLIENT_INITDATA_KEY "coordinator"
#define ATTEST_CLIENT_ADDRESS_ENV "COORDINATOR_ADDRESS"

#define ATTEST_CLIENT_DEFAULT_RETRY_INITIAL "1s"
#define ATTEST_CLIENT_DEFAULT_RETRY_MAX "30s"
#define ATTEST_CLIENT_DEFAULT_RENEW_FRACTION "0.8"
/* Bounds of every network wait of one attempt. */
#define ATTEST_CLIENT_CALL_TIMEOUT_NS (30 * NSEC_PER_SEC)
/* A renewal is never scheduled sooner than this after a success (a leaf with a tiny or past
 * validity must not make the client spin). */
#define ATTEST_CLIENT_MIN_RENEW_NS (10 * NSEC_PER_SEC)

/* Exit statuses: 2 for a usage error or no coordinator address anywhere. */
enum {
	ATTEST_CLIENT_EXIT_OK = 0,
	ATTEST_CLIENT_EXIT_FAILED = 1,
	ATTEST_CLIENT_EXIT_USAGE = 2,
};

/* Flags, as parsed by lib/config. */
struct attest_client_options {
	char *coordinator;
	char *output_root;
	char *evidence; /* auto, snp, tdx, sim */
	char *sim_pki;
	char *sim_measurement;
	char *sim_guest_policy;
	bool once;
	int64_t timeout_ns;
	int64_t retry_max_ns;
	char *renew_fraction;
	char *log_level;
	int64_t retry_initial_ns; /* hidden, for tests */
};
extern const struct config_option attest_client_option_table[];
extern const size_t attest_client_n_options;
extern const struct config_option attest_client_hidden_option_table[];
extern const size_t attest_client_n_hidden_options;

/* "0.8" -> 0.8; must be in (0, 1]. */
int attest_client_parse_fraction(const char *s, double *ret);

/* <root> joined with an absolute in-VM path. malloc'd. */
char *attest_client_path(const char *root, const char *path);

/* The coordinator address: flag_value (flag or environment) when non-empty, else the trimmed
 * [data] "coordinator" entry of the initdata document under root. -ENOENT with *ret_msg when no
 * address is anywhere (the message says where it looked and why), -EINVAL for an address
 * without a port or with blanks. */
int attest_client_coordinator_address(const char *root, const char *flag_value, char **ret,
				      char **ret_msg);
/* HOST_DATA for simulated evidence: the 64 hex digits of <root>/run/peerpod/initdata.digest. */
int attest_client_read_host_data(const char *root, uint8_t ret[32], char **ret_msg);

/* What NewMeshCert returned, checked. */
struct attest_client_answer {
	char *mesh_ca_pem;
	char *chain_pem; /* leaf || intermediate */
	char *root_pem;
	bool has_secret;
	uint8_t secret[64];
	char *secret_id;        /* NULL when none */
	int64_t not_before_sec; /* the leaf's validity */
	int64_t not_after_sec;
};
void attest_client_answer_done(struct attest_client_answer *a); /* wipes the secret */

/* Check an answer for our key and take copies into *ret: every PEM parses (one certificate for
 * the CAs, leaf then intermediate in the chain), the leaf's public key is key, the leaf verifies
 * against the mesh CA and, through the intermediate, against the root CA at now_sec (0: the
 * clock), a workload secret is 64 bytes and comes with its id. -EBADMSG with *ret_msg. */
int attest_client_check_answer(EVP_PKEY *key, const char *mesh_ca_pem, const char *chain_pem,
			       const char *root_pem, const uint8_t *secret, size_t secret_len,
			       const char *secret_id, int64_t now_sec,
			       struct attest_client_answer *ret, char **ret_msg);

/* Write the mesh files under <root>/run/peerpod/mesh (dir 0755), each atomically: mesh-ca.pem,
 * cert-chain.pem, root-ca.pem (0644), key.pem (0600, PKCS#8), workload-secret (0600, 128 hex)
 * and workload-secret-id (0644) when the answer has a secret, else both removed. */
int attest_client_write_files(const char *root, EVP_PKEY *key, const struct attest_client_answer *a,
			      char **ret_msg);

/* Delay before retry number attempt (0-based): min(max, initial * 2^attempt) with jitter
 * uniform in [delay/2, delay], from the 64-bit random value. */
int64_t attest_client_backoff_ns(unsigned attempt, int64_t initial_ns, int64_t max_ns,
				 uint64_t random);
/* Time from now_sec until fraction of the leaf's validity has passed, at least
 * ATTEST_CLIENT_MIN_RENEW_NS. */
int64_t attest_client_renew_delay_ns(int64_t not_before_sec, int64_t not_after_sec, double fraction,
				     int64_t now_sec);

/* The client context for the mesh API: our key certified by issuer, ALPN "ttrpc" plus an aTLS
 * nonce (the coordinator attests and needs one; its evidence is not verified here). */
int attest_client_ctx_new(struct atls_issuer *issuer, EVP_PKEY *key, SSL_CTX **ret, char **ret_msg);
/* One attempt: connect (handshake bounded), NewMeshCert (bounded), check the answer. */
int attest_client_fetch(const char *address, SSL_CTX *ctx, EVP_PKEY *key,
			struct attest_client_answer *ret, char **ret_msg);
