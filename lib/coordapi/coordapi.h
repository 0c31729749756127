/* lib/coordapi: the coordinator's API as its clients and the coordinator share it (peerpodctl,
 * the pod VM attestation client, peer coordinators): service names, default ports, a blocking
 * aTLS ttRPC client with deadlines, and the HTTP attestation document with its report-data
 * binding. The messages are proto/coordinator.proto (coordinator.pb-c.h). */
#pragma once

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "atls/atls.h"
#include "base/base.h"

#define COORDAPI_USER_SERVICE "coordinator.UserAPI"
#define COORDAPI_MESH_SERVICE "coordinator.MeshAPI"
#define COORDAPI_USER_PORT 1313
#define COORDAPI_MESH_PORT 7777
#define COORDAPI_HTTP_PORT 1314
/* The application protocol both sides offer besides the aTLS nonce. */
#define COORDAPI_ALPN "ttrpc"
/* Deadline of one call after the handshake. */
#define COORDAPI_CALL_TIMEOUT_NS (60 * NSEC_PER_SEC)
/* Largest response a client accepts (a long manifest history). */
#define COORDAPI_MAX_RESPONSE_BYTES (4u << 20)

/* ---- the rules both sides apply (ATTESTATION.md 8-9) ---- */

#define COORDAPI_SEED_SIZE 64
#define COORDAPI_SALT_SIZE 32
/* RSA-OAEP label of seed shares: 9 ASCII bytes, no NUL. */
#define COORDAPI_SEEDSHARE_LABEL "seedshare"

/* Transition hash = SHA-256(manifest hash || previous transition hash). */
void coordapi_transition_hash(const uint8_t manifest_sha256[32], const uint8_t prev[32],
			      uint8_t ret[32]);
/* Update authorization (b): a DER ECDSA signature by a WorkloadOwnerPubKeys key, SHA-256 over
 * the 64 lowercase hex characters of the new transition hash. */
int coordapi_update_sign(EVP_PKEY *owner_key, const uint8_t transition[32], uint8_t **ret,
			 size_t *ret_len);
bool coordapi_update_verify(EVP_PKEY *owner_key, const uint8_t transition[32], const uint8_t *sig,
			    size_t sig_len);
/* The `latest` signature: ECDSA P-384 with SHA-384 over the 32-byte transition hash. */
bool coordapi_latest_verify(EVP_PKEY *signing_key, const uint8_t hash[32], const uint8_t *sig,
			    size_t sig_len);
/* Seed shares: RSA-OAEP with SHA-256, MGF1-SHA-256 and the label above. Decryption gives
 * -EBADMSG when the ciphertext does not decrypt to a 64-byte seed. */
int coordapi_seed_share_encrypt(EVP_PKEY *rsa_pub, const uint8_t seed[COORDAPI_SEED_SIZE],
				uint8_t **ret, size_t *ret_len);
int coordapi_seed_share_decrypt(EVP_PKEY *rsa_key, const uint8_t *enc, size_t enc_len,
				uint8_t ret_seed[COORDAPI_SEED_SIZE]);

/* ---- blocking client ---- */

struct coordapi_conn;

/* "host:port" or "[v6]:port" into host (brackets removed) and port text (1..65535); -EINVAL for
 * anything else, e.g. a bare IPv6 literal or a missing port. */
int coordapi_split_address(const char *address, char **ret_host, char **ret_port);

/* Resolve address ("host:port", "[v6]:port"; a missing port is an error), connect to each
 * address in turn, run the aTLS client handshake on ctx (made with atls_ctx_new_client; the
 * context's ALPN should include COORDAPI_ALPN) bounded by timeout_ns (0:
 * ATLS_CLIENT_HANDSHAKE_TIMEOUT_NS) and wrap the connection in a ttRPC client. -EACCES when this
 * side refused the coordinator's evidence, other errno otherwise; *ret_msg says why. */
int coordapi_connect(const char *address, SSL_CTX *ctx, int64_t timeout_ns,
		     struct coordapi_conn **ret, char **ret_msg);
struct coordapi_conn *coordapi_conn_free(struct coordapi_conn *c);
DEFINE_CLEANUP(struct coordapi_conn, coordapi_conn_free)
/* The coordinator as verified during the handshake (NULL when the context did not verify). */
const struct atls_peer *coordapi_conn_peer(const struct coordapi_conn *c);
/* The coordinator's certificate (borrowed). */
X509 *coordapi_conn_peer_cert(const struct coordapi_conn *c);

/* One unary call: pack req, call service/method with timeout_ns (0: COORDAPI_CALL_TIMEOUT_NS),
 * unpack the answer with resp_desc into *ret (free with protobuf_c_message_free_unpacked).
 * Returns 0, a ttRPC status code > 0 (with *ret_msg the server's message) or a negative errno
 * (-EBADMSG for an answer that does not unpack). */
int coordapi_call(struct coordapi_conn *c, const char *service, const char *method,
		  const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
		  int64_t timeout_ns, ProtobufCMessage **ret, char **ret_msg);

/* ---- HTTP attestation: GET /attest/<64 hex nonce> on the HTTP port ----
 *
 * The answer is a JSON object:
 *   {"State": "active"|"stale"|"uninitialized",
 *    "Latest": hex latest transition hash or "",
 *    "Manifest": hex SHA-256 of the current manifest or "",
 *    "RootCA": PEM or "", "MeshCA": PEM or "",
 *    "EvidenceOID": "1.3.9901.2.1" | "1.3.9901.2.2" | "1.3.9901.2.99",
 *    "Evidence": base64 of the ATEV container}
 * whose evidence carries REPORT_DATA = SHA-512 of COORDAPI_STATE_LABEL (without NUL) || nonce
 * || State name zero-padded to 16 bytes || Latest (32, zero when "") || Manifest (32, zero when
 * "") || SHA-256 of the RootCA DER (zero when "") || SHA-256 of the MeshCA DER (zero when ""). */
#define COORDAPI_STATE_LABEL "peerpod coordinator state v1"
#define COORDAPI_HTTP_PATH_PREFIX "/attest/"
#define COORDAPI_STATE_MAX_BYTES (256 * 1024)

struct coordapi_state {
	char state[16]; /* NUL-terminated name */
	bool has_latest;
	uint8_t latest[32];
	bool has_manifest;
	uint8_t manifest[32];
	char *root_ca_pem; /* NULL when none */
	char *mesh_ca_pem;
	enum atls_evidence_kind kind;
	uint8_t *evidence;
	size_t evidence_len;
};
void coordapi_state_done(struct coordapi_state *s);

/* The report data of a state for a nonce (certificates parsed from the PEMs; -EINVAL for a PEM
 * that does not hold exactly one certificate). */
int coordapi_state_report_data(const struct coordapi_state *s, const uint8_t nonce[ATLS_NONCE_SIZE],
			       uint8_t ret[ATLS_REPORT_DATA_SIZE]);
/* The JSON document of a state (evidence included). */
int coordapi_state_format(const struct coordapi_state *s, char **ret);
/* Strict parse (at most COORDAPI_STATE_MAX_BYTES, unknown keys and wrong types refused):
 * -EBADMSG with *ret_msg. */
int coordapi_state_parse(const char *json, size_t len, struct coordapi_state *ret, char **ret_msg);
