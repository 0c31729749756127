/* lib/atls: attested TLS (ATTESTATION.md 7 and 10): the evidence container, the report-data
 * binding, attester certificates, evidence issuers (simulated SNP with a test PKI, SEV-SNP and TDX
 * through configfs-tsm or /dev/sev-guest) and the OpenSSL 3 hooks that carry nonces in ALPN and
 * the CertificateRequest CA list and verify the peer's evidence during the handshake. */
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "attest/attest.h"
#include "base/base.h"

/* ---- constants ---- */

#define ATLS_OID_SNP "1.3.9901.2.1"
#define ATLS_OID_TDX "1.3.9901.2.2"
#define ATLS_OID_SNP_SIM "1.3.9901.2.99" /* simulated SNP, tests only (section 10) */

enum atls_evidence_kind {
	ATLS_EVIDENCE_NONE = 0,
	ATLS_EVIDENCE_SNP,
	ATLS_EVIDENCE_TDX,
	ATLS_EVIDENCE_SNP_SIM,
};
/* The dotted OID of a kind; NULL for NONE or out of range. */
const char *atls_evidence_oid(enum atls_evidence_kind k);

#define ATLS_NONCE_SIZE 32
#define ATLS_REPORT_DATA_SIZE 64
#define ATLS_EVIDENCE_MAX_BYTES (64 * 1024)
/* The ALPN entry carrying a verifier's nonce: prefix + 64 lowercase hex = 78 bytes. */
#define ATLS_ALPN_PREFIX "atls:"
#define ATLS_ALPN_NONCE_PREFIX "atls:v1:nonce:"
#define ATLS_ALPN_NONCE_LEN 78
/* The CertificateRequest CA-list nonce: standard base64 with padding. */
#define ATLS_CA_NONCE_LEN 44

/* Handshake deadlines the callers enforce (evidence gathering is slow). */
#define ATLS_CLIENT_HANDSHAKE_TIMEOUT_NS (30 * NSEC_PER_SEC)
#define ATLS_SERVER_HANDSHAKE_TIMEOUT_NS (25 * NSEC_PER_SEC)

/* ---- evidence container: "ATEV", u16 version 1, u16 count, entries (u16 type, u16 0, u32 len,
 * value), little-endian, at most ATLS_EVIDENCE_MAX_BYTES ---- */

enum atls_entry_type {
	ATLS_ENTRY_SNP_REPORT = 1,
	ATLS_ENTRY_VEK = 2,     /* VCEK/VLEK DER */
	ATLS_ENTRY_ASK = 3,     /* ASK/ASVK DER */
	ATLS_ENTRY_ARK = 4,     /* DER, only compared with the pin */
	ATLS_ENTRY_AMD_CRL = 5, /* DER */
	ATLS_ENTRY_TDX_QUOTE = 16,
	ATLS_ENTRY_TCB_INFO = 17,       /* PCS body {"tcbInfo":..,"signature":..} */
	ATLS_ENTRY_TCB_INFO_CHAIN = 18, /* PEM */
	ATLS_ENTRY_QE_IDENTITY = 19,    /* PCS body {"enclaveIdentity":..,"signature":..} */
	ATLS_ENTRY_QE_IDENTITY_CHAIN = 20,
	ATLS_ENTRY_PCK_CRL = 21, /* DER */
	ATLS_ENTRY_PCK_CRL_CHAIN = 22,
	ATLS_ENTRY_ROOT_CA_CRL = 23, /* DER */
};
#define ATLS_EVIDENCE_MAX_ENTRIES 13 /* one of each type */

struct atls_entry {
	uint16_t type;
	const uint8_t *value; /* borrowed */
	size_t len;
};
struct atls_evidence {
	struct atls_entry entries[ATLS_EVIDENCE_MAX_ENTRIES];
	size_t n;
};

/* Whether a type is one of the defined entry types. */
bool atls_entry_type_known(uint16_t type);
/* Add an entry (value borrowed): -EINVAL for an unknown type, -EEXIST for a duplicate, -EMSGSIZE
 * when the value cannot fit the container. */
int atls_evidence_add(struct atls_evidence *e, uint16_t type, const void *value, size_t len);
/* The value of a type, or NULL (then *ret_len 0). */
const uint8_t *atls_evidence_get(const struct atls_evidence *e, uint16_t type, size_t *ret_len);
/* Encode into a malloc'd buffer; -EMSGSIZE above ATLS_EVIDENCE_MAX_BYTES. */
int atls_evidence_encode(const struct atls_evidence *e, uint8_t **ret, size_t *ret_len);
/* Decode; the entries point into data. -EBADMSG (ATTEST_E_FORMAT) with *ret_msg for a bad magic,
 * version, count, reserved field, length, unknown or duplicate type, trailing bytes or size. */
int atls_evidence_decode(const uint8_t *data, size_t len, struct atls_evidence *ret,
			 char **ret_msg);

/* ---- binding ---- */

/* SHA-512(i2d_PUBKEY(key) || nonce): the REPORT_DATA an attester with this TLS key must present
 * to the verifier that sent this nonce. */
int atls_report_data(EVP_PKEY *key, const uint8_t nonce[ATLS_NONCE_SIZE],
		     uint8_t ret[ATLS_REPORT_DATA_SIZE]);
/* A fresh random nonce (RAND_bytes). */
int atls_nonce_generate(uint8_t ret[ATLS_NONCE_SIZE]);

/* ---- nonce transport ---- */

/* The ALPN entry text "atls:v1:nonce:<64 hex>" (NUL-terminated). */
void atls_alpn_nonce_format(const uint8_t nonce[ATLS_NONCE_SIZE],
			    char ret[ATLS_ALPN_NONCE_LEN + 1]);
/* The ALPN wire list (u8-length-prefixed entries, as SSL_set_alpn_protos takes): the nonce
 * entry, then the protocols (NULL-terminated vector, may be NULL). -EINVAL for an empty or
 * over-long protocol or one starting with "atls:". */
int atls_alpn_build(const uint8_t nonce[ATLS_NONCE_SIZE], char *const *protocols, uint8_t **ret,
		    size_t *ret_len);
/* Find the nonce in a ClientHello ALPN extension body (u16 list length, u8-prefixed entries).
 * -ENOENT when no "atls:" entry is present; -EBADMSG when the list is malformed, the nonce entry
 * is malformed, another "atls:" version is present, or there is more than one nonce entry. */
int atls_alpn_find_nonce(const uint8_t *ext, size_t len, uint8_t ret[ATLS_NONCE_SIZE]);
/* The CA-list DN holding a nonce: one commonName = base64(nonce). */
int atls_ca_nonce_name(const uint8_t nonce[ATLS_NONCE_SIZE], X509_NAME **ret);
/* The nonce of a peer's CA list: exactly one DN with exactly one attribute, a commonName of 44
 * canonical base64 characters decoding to 32 bytes. -ENOENT when the list is NULL or empty,
 * -EBADMSG otherwise. */
int atls_ca_list_find_nonce(const STACK_OF(X509_NAME) * names, uint8_t ret[ATLS_NONCE_SIZE]);

/* ---- attester certificate ---- */

/* Self-signed v3 certificate for key: serial 16 random bytes (positive), subject = issuer =
 * CN=atls, validity now_sec - 2 h .. now_sec + 2 h, ecdsa-with-SHA256 (EC keys; SHA-256 for
 * RSA, none for EdDSA), one non-critical extension with the kind's OID whose extnValue holds the
 * container. -EMSGSIZE for a container above ATLS_EVIDENCE_MAX_BYTES. */
int atls_cert_create(EVP_PKEY *key, enum atls_evidence_kind kind, const uint8_t *evidence,
		     size_t evidence_len, int64_t now_sec, X509 **ret);
/* The single evidence extension of a certificate: its kind and value (borrowed from x).
 * -ENOENT when there is none; -EBADMSG for more than one, or an unknown OID under
 * 1.3.9901.2. */
int atls_cert_get_evidence(X509 *x, enum atls_evidence_kind *ret_kind, const uint8_t **ret,
			   size_t *ret_len);

/* ---- evidence issuers (the attester's side) ---- */

/* A source of evidence. get_evidence fills a malloc'd container for report_data; <0 with
 * *ret_msg on failure. It may be called from several handshakes at once. */
struct atls_issuer {
	enum atls_evidence_kind kind; /* the OID the certificate carries */
	int (*get_evidence)(struct atls_issuer *is,
			    const uint8_t report_data[ATLS_REPORT_DATA_SIZE], uint8_t **ret,
			    size_t *ret_len, char **ret_msg);
	void (*free)(struct atls_issuer *is); /* NULL: nothing to free */
};
void atls_issuer_free(struct atls_issuer *is);
DEFINE_CLEANUP(struct atls_issuer, atls_issuer_free)

/* The test PKI of section 10: test ARK (RSA-4096, self-signed, CN=ARK-Milan), test ASK
 * (RSA-4096, CN=SEV-Milan), an empty CRL (both signed by the ARK with RSA-PSS SHA-384/MGF1-SHA-384
 * /salt 48), and a test VCEK (EC P-384, CN=SEV-VCEK, issuer CN=SEV-Milan, structVersion 0,
 * productName Milan-B0, SPLs of reported_tcb, hwID = chip_id). */
struct atls_test_pki {
	EVP_PKEY *ark_key; /* NULL after atls_test_pki_load() */
	EVP_PKEY *ask_key; /* NULL after atls_test_pki_load() */
	EVP_PKEY *vcek_key;
	X509 *ark, *ask, *vcek;
	X509_CRL *crl;
	uint8_t chip_id[64];
	uint64_t reported_tcb; /* Milan layout */
	char *ark_pem;         /* the test trust anchor, for verifiers */
};
/* Generate (two RSA-4096 keys: seconds). Certificates valid from now_sec - 1 day for 10 years. */
int atls_test_pki_new(int64_t now_sec, struct atls_test_pki **ret, char **ret_msg);
void atls_test_pki_free(struct atls_test_pki *p);
DEFINE_CLEANUP(struct atls_test_pki, atls_test_pki_free)
/* Save into dir (created): ark.pem (the --test-trust-anchor), ask.pem, cert_chain.pem (ASK then
 * ARK), vcek.pem, vcek.der, crl.der, vcek-key.pem (0600), ark-key.pem and ask-key.pem (0600). */
int atls_test_pki_save(const struct atls_test_pki *p, const char *dir, char **ret_msg);
/* Load what the simulated issuer needs (ark.pem, ask.pem, vcek.der, vcek-key.pem, crl.der);
 * chip_id and reported_tcb come from the VCEK's extensions. */
int atls_test_pki_load(const char *dir, struct atls_test_pki **ret, char **ret_msg);

/* What the simulated SNP issuer puts into its version-3 Milan reports. */
struct atls_sim_params {
	uint8_t measurement[48];
	uint8_t host_data[32]; /* the policy digest */
	uint64_t policy;       /* 0: 0x30000 (SMT, reserved bit 17) */
	uint32_t vmpl;
	bool omit_crl; /* leave the CRL out of the container */
};
/* The simulated SNP issuer (kind ATLS_EVIDENCE_SNP_SIM): reports signed by the test VCEK in the
 * encoding of ATTESTATION.md 1; container: report, VCEK, ASK, ARK, CRL. pki is borrowed and must
 * outlive the issuer. */
int atls_issuer_new_sim(const struct atls_test_pki *pki, const struct atls_sim_params *params,
			struct atls_issuer **ret);
/* Build one simulated report (for tests that need the raw bytes). */
int atls_sim_report(const struct atls_test_pki *pki, const struct atls_sim_params *params,
		    const uint8_t report_data[ATLS_REPORT_DATA_SIZE],
		    uint8_t ret[ATTEST_SNP_REPORT_SIZE]);

/* Hardware issuers. Paths default to the kernel's when NULL. */
struct atls_device_options {
	const char *tsm_dir;        /* "/sys/kernel/config/tsm/report" */
	const char *sev_guest_path; /* "/dev/sev-guest" */
	uint32_t privlevel;         /* SNP VMPL to request (0) */
};
#define ATLS_TSM_REPORT_DIR "/sys/kernel/config/tsm/report"
#define ATLS_SEV_GUEST_PATH "/dev/sev-guest"
/* SEV-SNP (kind ATLS_EVIDENCE_SNP): configfs-tsm when present (outblob = report, auxblob = the
 * GUID certificate table), else SNP_GET_EXT_REPORT on /dev/sev-guest. The certificate table's
 * VCEK/VLEK, ASK/ASVK and ARK go into the container. -ENODEV with *ret_msg when neither
 * interface exists (checked at creation). */
int atls_issuer_new_snp(const struct atls_device_options *o, struct atls_issuer **ret,
			char **ret_msg);
/* Intel TDX (kind ATLS_EVIDENCE_TDX) through configfs-tsm: outblob = the quote. -ENODEV with
 * *ret_msg when configfs-tsm is absent. */
int atls_issuer_new_tdx(const struct atls_device_options *o, struct atls_issuer **ret,
			char **ret_msg);
/* The entries of an SNP extended-report certificate table (GUIDs of ATTESTATION.md 2) added to
 * e (borrowing from table). -EBADMSG for a malformed table. */
int atls_snp_cert_table_parse(const uint8_t *table, size_t len, struct atls_evidence *e);

/* ---- verification (the verifier's side) ---- */

/* The verified peer, given to the accept callback and kept on the SSL afterwards. */
struct atls_peer {
	enum atls_evidence_kind kind;
	uint8_t policy_digest[32]; /* SNP HOST_DATA; TDX MRCONFIGID[0..31] */
	char policy_digest_hex[65];
	uint8_t measurement[48];             /* SNP MEASUREMENT; TDX MRTD */
	const struct attest_snp_report *snp; /* SNP and simulated SNP; NULL for TDX */
	const struct attest_tdx_quote *tdx;  /* TDX; NULL otherwise */
};

/* How a verifier checks evidence. Borrowed by contexts: must outlive them. */
struct atls_verifier {
	int64_t now_sec; /* 0: the realtime clock at each verification */
	/* PEM of the test ARK: enables 1.3.9901.2.99, verified against it only. NULL: that OID is
	 * unknown. A test ARK with the key of a production ARK is refused. */
	const char *test_anchor_pem;
	/* SNP */
	const struct attest_snp_reference *snp_refs; /* NULL/0: entry checks skipped */
	size_t n_snp_refs;
	bool skip_crl; /* tests only */
	/* A CRL (DER) for the product line when the evidence has none (cache/KDS): return 0 and
	 * set *ret (borrowed until the callback is called again), or <0. NULL: none. */
	int (*get_snp_crl)(void *userdata, enum attest_snp_product product, bool vlek,
			   const uint8_t **ret, size_t *ret_len);
	struct attest_snp_cache *snp_cache; /* optional; not thread-safe: one per thread */
	/* Without snp_cache: keep one chain cache per verifying thread (for servers that run
	 * handshakes on a worker pool; a report then costs one ECDSA verification, not three
	 * RSA-4096 ones more). */
	bool snp_cache_per_thread;
	/* TDX: collateral used where the evidence carries none. */
	const struct attest_tdx_reference *tdx_refs;
	size_t n_tdx_refs;
	unsigned tdx_accepted_statuses;
	const struct attest_tdx_collateral *tdx_collateral;
	bool tdx_skip_collateral;
	bool tdx_skip_crl;
	/* HOST_DATA / MRCONFIGID[0..31] must be one of these (n == 0: no rule here). */
	struct attest_digest_rule digest_rule;
	/* Called after the evidence verified (from the handshaking thread): ATTEST_OK accepts; any
	 * other class refuses the peer (e.g. ATTEST_E_POLICY_DIGEST for a digest that is not a key
	 * of Policies, ATTEST_E_MEASUREMENT), with an optional malloc'd *ret_msg. NULL: accept. */
	enum attest_error (*accept)(void *userdata, SSL *ssl, const struct atls_peer *peer,
				    char **ret_msg);
	void *userdata;
};

/* Verify an attester certificate for the verifier's nonce: one evidence extension with a known
 * OID, self-signature, validity at now, the evidence (report data = binding of the leaf's key
 * and nonce), then v->accept (ssl passed through, may be NULL). Returns 0 when accepted (then
 * *ret_peer filled; its snp/tdx point into *ret_storage), -EACCES when refused with *ret_code
 * and *ret_msg, -ENOMEM. */
struct atls_verified {
	struct atls_peer peer;
	struct attest_snp_report snp;
	struct attest_tdx_quote *tdx;
};
void atls_verified_done(struct atls_verified *v);
int atls_cert_verify(X509 *leaf, const uint8_t nonce[ATLS_NONCE_SIZE],
		     const struct atls_verifier *v, SSL *ssl, struct atls_verified *ret,
		     enum attest_error *ret_code, char **ret_msg);

/* Verify bare evidence (no certificate) of a kind against the report data the verifier expects
 * (e.g. a binding of its nonce to other state), then v->accept (ssl NULL). Same results as
 * atls_cert_verify. */
int atls_evidence_verify(enum atls_evidence_kind kind, const uint8_t *evidence, size_t len,
			 const uint8_t report_data[ATLS_REPORT_DATA_SIZE],
			 const struct atls_verifier *v, struct atls_verified *ret,
			 enum attest_error *ret_code, char **ret_msg);

/* ---- TLS ---- */

/* One side of an aTLS connection. Either or both roles. */
struct atls_config {
	/* Attester: the issuer (borrowed) and optionally the TLS key to certify (borrowed, e.g. an
	 * owner key); NULL key: a fresh EC P-256 key per connection. */
	struct atls_issuer *issuer;
	EVP_PKEY *key;
	/* A side that does not attest but must present a certificate (a server, or a client asked
	 * for one by a verifying server): borrowed. */
	X509 *cert;
	EVP_PKEY *cert_key;
	/* Verifier (borrowed): the peer must attest. NULL: the peer is authenticated as the caller
	 * configures the context afterwards (by default not at all). */
	const struct atls_verifier *verifier;
	/* Application protocols: the client offers them (besides the nonce); the server selects
	 * the first of its list the client offered. NULL: none. */
	char *const *alpn;
};

/* TLS 1.3-only contexts with the hooks of ATTESTATION.md 7; session resumption and tickets off
 * (every connection attests afresh). The config's pointers must outlive the context. */
int atls_ctx_new_client(const struct atls_config *c, SSL_CTX **ret, char **ret_msg);
int atls_ctx_new_server(const struct atls_config *c, SSL_CTX **ret, char **ret_msg);
/* A connection on an aTLS context (connections made with plain SSL_new() fail the handshake):
 * draws this side's nonce and sets the ALPN list (client verifying the server) or the CA list and
 * client-certificate requirement (server verifying the client). server_name (client, may be NULL)
 * is sent as SNI. An attesting client fails the handshake when a CertificateRequest carries no
 * aTLS nonce. The evidence is gathered inside SSL_accept/SSL_connect (blocking in the issuer);
 * callers apply ATLS_*_HANDSHAKE_TIMEOUT_NS and ignore SIGPIPE. */
int atls_ssl_new(SSL_CTX *ctx, const char *server_name, SSL **ret);

/* Why this side aborted an aTLS handshake: code is the attestation class of a refused peer (for
 * attest_failures_total{code}) or ATTEST_OK for a local failure (evidence gathering, missing
 * nonce is ATTEST_E_FORMAT); err a negative errno. NULL when this side recorded none (the peer
 * aborted, or the failure was not aTLS's). Valid until SSL_free. */
struct atls_failure {
	enum attest_error code;
	int err;
	const char *message;
};
const struct atls_failure *atls_ssl_failure(const SSL *ssl);
/* The verified peer after a successful handshake (NULL when the peer was not verified by
 * attestation). Valid until SSL_free. */
const struct atls_peer *atls_ssl_peer(const SSL *ssl);
/* Run the handshake of an SSL made by atls_ssl_new on a connected socket (set non-blocking and
 * attached here) until it finishes or the absolute CLOCK_MONOTONIC deadline_ns passes (0: none).
 * -EACCES when this side refused the peer's evidence (atls_ssl_failure has the code),
 * -ETIMEDOUT, -ECONNABORTED or another errno otherwise; *ret_msg (optional, malloc'd) says why. */
int atls_handshake(SSL *ssl, int fd, bool is_server, int64_t deadline_ns, char **ret_msg);
/* The application protocol the server selected ("" when none); never an atls: entry. */
int atls_ssl_get_alpn(const SSL *ssl, char *buf, size_t size);
