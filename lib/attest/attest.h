/* lib/attest: parsing and verification of AMD SEV-SNP attestation reports and Intel TDX quotes
 * (ATTESTATION.md sections 1-4), with OpenSSL. Every check takes an explicit verification time;
 * the clock is never read. Parsing is bounded and never trusts a length it did not check. */
#pragma once

#include <jansson.h>

#include "base/base.h"

/* ---- common ---- */

/* The error classes of ATTESTATION.md; the first failing check's class is the result's. */
enum attest_error {
	ATTEST_OK = 0,
	ATTEST_E_FORMAT,
	ATTEST_E_PRODUCT,
	ATTEST_E_CHAIN,
	ATTEST_E_CRL,
	ATTEST_E_COLLATERAL,
	ATTEST_E_COLLATERAL_EXPIRED,
	ATTEST_E_REVOKED,
	ATTEST_E_SIGNATURE,
	ATTEST_E_VEK_BINDING,
	ATTEST_E_QE,
	ATTEST_E_VERSION,
	ATTEST_E_VMPL,
	ATTEST_E_DEBUG,
	ATTEST_E_MIGRATION,
	ATTEST_E_POLICY,
	ATTEST_E_TCB,
	ATTEST_E_MEASUREMENT,
	ATTEST_E_POLICY_DIGEST,
	ATTEST_E_REPORT_DATA,
	ATTEST_E_CHIP,
	_ATTEST_E_MAX,
};
/* "ATTEST_E_FORMAT", ...; "ATTEST_OK" for 0; NULL when out of range. */
const char *attest_error_name(enum attest_error e);

enum attest_check_status { ATTEST_CHECK_PASS, ATTEST_CHECK_FAIL, ATTEST_CHECK_SKIP };

/* One check of a verification, in the order of the spec's tables. */
struct attest_check {
	char *name; /* e.g. "chain", "report signature", "vmpl" */
	enum attest_check_status status;
	enum attest_error code; /* the class it reports when it fails */
	char *message;          /* what was compared, with both values on failure */
};

struct attest_result {
	bool accepted;
	enum attest_error error; /* first failing check's class, ATTEST_OK when accepted */
	struct attest_check *checks;
	size_t n_checks;
};
void attest_result_done(struct attest_result *r);
/* {"accepted":..,"error":"ATTEST_E_..","checks":[{"name","status","code","message"}]} */
int attest_result_to_json(const struct attest_result *r, json_t **ret);
/* Append a check (message printf-formatted); a failing check sets error when it is the first. */
int attest_result_add(struct attest_result *r, const char *name, enum attest_check_status status,
		      enum attest_error code, const char *fmt, ...) _printf_(5, 6);

/* The digest rule of ATTESTATION.md 3/5: HOST_DATA (SNP) or MRCONFIGID[0..31] (TDX) must equal
 * one of these 32-byte digests; n == 0 means no rule (the check passes as skipped). */
struct attest_digest_rule {
	const uint8_t (*digests)[32];
	size_t n;
};

/* Verification from files, for `peerpodctl attest` and tests. Every file is read bounded. */
struct attest_files {
	const char *evidence; /* report.bin (SNP) or quote.bin (TDX) */
	const char *vek;      /* SNP: VCEK or VLEK certificate, DER or PEM */
	const char *chain;    /* SNP: ASK/ASVK + ARK PEM; TDX: PCK chain PEM (default: quote) */
	const char *collateral_dir; /* TDX: the collateral files; SNP: a KDS-layout cache */
	const char *reference;      /* JSON: a ReferenceValues.snp[]/.tdx[] entry, an array of
				     * them, or {"snp": [...], "tdx": [...]}; NULL: no entry checks */
	const uint8_t *report_data; /* 64 bytes expected, or NULL: not checked */
	int64_t now_sec;            /* verification time, seconds since the epoch */
	bool skip_crl;              /* ATTESTATION.md 4: crl = skip */
	bool skip_collateral;       /* ATTESTATION.md 4: collateral = skip (TDX) */
	const char *trust_anchor;   /* PEM of an explicit root to use instead of the built-in
				     * ones (tests' synthetic roots); NULL: built-in */
};

/* ==== SEV-SNP: declarations below are owned by the SNP work ==== */

/* Verify with attest_snp_* (fills *ret, returns 0 whether accepted or not; <0 with *ret_msg only
 * when the inputs cannot be read at all). */
int attest_snp_verify_files(const struct attest_files *f, struct attest_result *ret,
			    char **ret_msg);
/* Parsed fields of a report file as JSON (field names as in the vectors' expected.json). */
int attest_snp_show_file(const char *evidence, json_t **ret, char **ret_msg);

#define ATTEST_SNP_REPORT_SIZE 0x4A0
#define ATTEST_SNP_SIGNED_SIZE 0x2A0
/* Evidence files are read up to this size (a report, certificates, a CRL, a reference file). */
#define ATTEST_SNP_FILE_MAX_BYTES (1u << 20)

enum attest_snp_product {
	ATTEST_SNP_PRODUCT_UNKNOWN = 0,
	ATTEST_SNP_MILAN,
	ATTEST_SNP_GENOA,
	ATTEST_SNP_TURIN,
};
/* "Milan", "Genoa", "Turin"; NULL for UNKNOWN. */
const char *attest_snp_product_name(enum attest_snp_product p);
/* Product line of a name like "Milan-B0" or "Genoa" (the part before '-'); UNKNOWN otherwise. */
enum attest_snp_product attest_snp_product_from_name(const char *s);

/* POLICY bits (ATTESTATION.md 1). */
#define ATTEST_SNP_POLICY_SMT (UINT64_C(1) << 16)
#define ATTEST_SNP_POLICY_RESERVED_1 (UINT64_C(1) << 17)
#define ATTEST_SNP_POLICY_MIGRATE_MA (UINT64_C(1) << 18)
#define ATTEST_SNP_POLICY_DEBUG (UINT64_C(1) << 19)
#define ATTEST_SNP_POLICY_SINGLE_SOCKET (UINT64_C(1) << 20)
#define ATTEST_SNP_POLICY_CXL_ALLOW (UINT64_C(1) << 21)
#define ATTEST_SNP_POLICY_MEM_AES_256_XTS (UINT64_C(1) << 22)
#define ATTEST_SNP_POLICY_RAPL_DIS (UINT64_C(1) << 23)
#define ATTEST_SNP_POLICY_CIPHERTEXT_HIDING (UINT64_C(1) << 24)
#define ATTEST_SNP_POLICY_PAGE_SWAP_DISABLE (UINT64_C(1) << 25)
/* PLATFORM_INFO bits. */
#define ATTEST_SNP_PLATFORM_SMT_EN (UINT64_C(1) << 0)
#define ATTEST_SNP_PLATFORM_TSME_EN (UINT64_C(1) << 1)
#define ATTEST_SNP_PLATFORM_ECC_EN (UINT64_C(1) << 2)
#define ATTEST_SNP_PLATFORM_RAPL_DIS (UINT64_C(1) << 3)
#define ATTEST_SNP_PLATFORM_CIPHERTEXT_HIDING_EN (UINT64_C(1) << 4)
#define ATTEST_SNP_PLATFORM_ALIAS_CHECK_COMPLETE (UINT64_C(1) << 5)
#define ATTEST_SNP_PLATFORM_TIO_EN (UINT64_C(1) << 7)

/* One TCB_VERSION split into its SPLs; fmc is 0 outside Turin. */
struct attest_snp_tcb {
	uint8_t fmc;
	uint8_t bootloader;
	uint8_t tee;
	uint8_t snp;
	uint8_t microcode;
};
/* Decode in the Milan/Genoa layout, or Turin's when turin is set. */
void attest_snp_tcb_decode(uint64_t raw, bool turin, struct attest_snp_tcb *ret);

/* Every field of a report (little-endian integers decoded; byte strings in report order). */
struct attest_snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[16];
	uint8_t image_id[16];
	uint32_t vmpl;
	uint32_t signature_algo;
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t signer_info; /* the raw word at 0x48 */
	bool author_key_en;
	bool mask_chip_key;
	uint8_t signing_key; /* 0 VCEK, 1 VLEK, 7 none */
	uint8_t report_data[64];
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t id_key_digest[48];
	uint8_t author_key_digest[48];
	uint8_t report_id[32];
	uint8_t report_id_ma[32];
	uint64_t reported_tcb;
	uint8_t cpuid_fam_id; /* v3+, else 0 */
	uint8_t cpuid_mod_id;
	uint8_t cpuid_step;
	uint8_t chip_id[64];
	uint64_t committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	uint64_t launch_tcb;
	uint64_t launch_mit_vector;  /* v5+, else 0 */
	uint64_t current_mit_vector; /* v5+, else 0 */
	uint8_t signature_r[72];     /* little-endian as in the report */
	uint8_t signature_s[72];
	enum attest_snp_product cpuid_product; /* from the CPUID bytes (v3+); UNKNOWN for v2 */
	uint8_t raw[ATTEST_SNP_REPORT_SIZE];
};

/* Parse exactly ATTEST_SNP_REPORT_SIZE bytes: -EBADMSG with *ret_msg on a wrong size, VERSION < 2,
 * non-zero MBZ fields of the signed part or POLICY bit 17 clear. The unsigned tail (0x330..) is
 * not examined: nothing vouches for it. */
int attest_snp_report_parse(const uint8_t *data, size_t len, struct attest_snp_report *ret,
			    char **ret_msg);
/* The fields as in the vectors' expected.json "fields"; layout: the product line's TCB layout
 * (UNKNOWN: the CPUID product, else Milan/Genoa). */
int attest_snp_report_to_json(const struct attest_snp_report *r, enum attest_snp_product layout,
			      json_t **ret);

/* The AMD extensions of a VCEK/VLEK (ATTESTATION.md 2). */
enum attest_snp_spl {
	ATTEST_SNP_SPL_BL = 1, /* arc 3.1 */
	ATTEST_SNP_SPL_TEE = 2,
	ATTEST_SNP_SPL_SNP = 3,
	ATTEST_SNP_SPL_UCODE = 8,
	ATTEST_SNP_SPL_FMC = 9,
	_ATTEST_SNP_SPL_MAX = 10,
};
struct attest_snp_vek_ext {
	bool has_struct_version;
	uint8_t struct_version;
	bool has_product_name;
	char product_name[65];
	uint16_t spl_present; /* bit n: arc 3.n present */
	uint8_t spl[_ATTEST_SNP_SPL_MAX];
	size_t hwid_len; /* 0: absent */
	uint8_t hwid[64];
	bool has_csp_id;
	char csp_id[257];
};
/* Decode one extension value (the extnValue content) for the OID in dotted form; unknown OIDs are
 * ignored. -EBADMSG with *ret_msg on a bad encoding, an SPL outside 0..255 or a repeated OID. */
int attest_snp_vek_ext_add(struct attest_snp_vek_ext *e, const char *oid, const uint8_t *value,
			   size_t len, char **ret_msg);
/* All AMD extensions of a DER certificate. */
int attest_snp_vek_ext_parse_der(const uint8_t *der, size_t len, struct attest_snp_vek_ext *ret,
				 char **ret_msg);

/* One ReferenceValues.snp[] entry (ATTESTATION.md 6). */
struct attest_snp_reference {
	enum attest_snp_product product;
	uint8_t measurement[48];
	struct attest_snp_tcb min_tcb;
	uint8_t abi_major, abi_minor;
	uint64_t policy_allowed;    /* SMT, CXL_ALLOW permitted */
	uint64_t policy_required;   /* SINGLE_SOCKET, MEM_AES_256_XTS, ... demanded */
	uint64_t platform_allowed;  /* SMT_EN, TSME_EN, TIO_EN permitted */
	uint64_t platform_required; /* ECC_EN, RAPL_DIS, ... demanded */
	uint8_t (*chip_ids)[64];    /* Turin 16-hex entries stored zero-padded */
	size_t n_chip_ids;
};
struct attest_snp_references {
	struct attest_snp_reference *items;
	size_t n;
};
void attest_snp_references_done(struct attest_snp_references *refs);
/* An entry, an array of entries or {"snp": [...], "tdx": [...]} (tdx ignored). Unknown keys,
 * wrong hex sizes, Debug/MigrateMA true, FMCVersion outside Turin or missing on Turin: -EINVAL
 * with *ret_msg. */
int attest_snp_references_parse(const char *text, size_t len, struct attest_snp_references *ret,
				char **ret_msg);
int attest_snp_references_from_json(const json_t *j, struct attest_snp_references *ret,
				    char **ret_msg);

/* Verified ARK/ASK/VEK keys kept across verifications of reports from the same chip (the chain
 * costs three RSA-4096 verifications; a report then costs one ECDSA P-384). Keyed by the exact
 * certificate bytes and anchor; validity windows are still checked against each `now`. */
struct attest_snp_cache;
struct attest_snp_cache *attest_snp_cache_new(void);
void attest_snp_cache_free(struct attest_snp_cache *c);

struct attest_snp_options {
	int64_t now_sec;
	const uint8_t *vek; /* VCEK/VLEK certificate, DER or PEM */
	size_t vek_len;
	const uint8_t *chain; /* PEM: ASK/ASVK, optionally the ARK (KDS order); NULL: built-in */
	size_t chain_len;
	const char *trust_anchor_pem; /* test ARK replacing the built-in pins; NULL: built-in */
	const uint8_t *crl;           /* DER CRL of the chain's ARK; NULL: missing */
	size_t crl_len;
	bool skip_crl;
	const struct attest_snp_reference *refs; /* NULL/0: the entry checks are skipped */
	size_t n_refs;
	const uint8_t *report_data; /* 64 bytes, NULL: not checked */
	struct attest_digest_rule host_data;
	struct attest_snp_cache *cache; /* optional */
};
/* Run every check of ATTESTATION.md 3 on a report of any length; fills *ret (accepted or not).
 * Returns 0, or -ENOMEM. *ret_report (optional) gets the parsed report when it parsed. */
int attest_snp_verify(const uint8_t *report, size_t len, const struct attest_snp_options *o,
		      struct attest_result *ret, struct attest_snp_report *ret_report);

/* Like attest_snp_verify_files, reusing a cache: for `peerpodctl attest bench`. */
int attest_snp_verify_files_cached(const struct attest_files *f, struct attest_snp_cache *cache,
				   struct attest_result *ret, char **ret_msg);

/* ==== end SEV-SNP ==== */

/* ==== TDX: declarations below are owned by the TDX work ==== */

/* Quotes larger than this are rejected before parsing (ATTESTATION.md 4). */
#define ATTEST_TDX_QUOTE_MAX_BYTES (64 * 1024)

/* The QE report inside the certification data (384 bytes, SGX report body layout). */
struct attest_tdx_qe_report {
	uint8_t cpu_svn[16];
	uint32_t misc_select;
	uint8_t attributes[16];
	uint8_t mr_enclave[32];
	uint8_t mr_signer[32];
	uint16_t isv_prod_id;
	uint16_t isv_svn;
	uint8_t report_data[64];
};

/* A parsed TDX quote v4/v5. Byte arrays are as in the quote (little-endian integers stay raw). */
struct attest_tdx_quote {
	uint16_t version;
	uint16_t att_key_type;
	uint32_t tee_type;
	uint16_t qe_svn;
	uint16_t pce_svn;
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
	uint16_t body_type; /* 2 = TDX 1.0 (implicit for v4), 3 = TDX 1.5 */
	uint32_t body_size; /* 584 or 648 */
	uint8_t tee_tcb_svn[16];
	uint8_t mr_seam[48];
	uint8_t mr_signer_seam[48];
	uint8_t seam_attributes[8];
	uint8_t td_attributes[8];
	uint8_t xfam[8];
	uint8_t mr_td[48];
	uint8_t mr_config_id[48];
	uint8_t mr_owner[48];
	uint8_t mr_owner_config[48];
	uint8_t rtmr[4][48];
	uint8_t report_data[64];
	uint8_t tee_tcb_svn2[16];   /* body type 3 only, else zero */
	uint8_t mr_servicetd[48];   /* body type 3 only, else zero */
	uint8_t signed_region[702]; /* header + body: what the attestation key signs */
	size_t signed_len;
	uint32_t sig_data_len;
	size_t quote_len;            /* up to the end of the signature data */
	size_t trailing_len;         /* unsigned bytes after it, ignored */
	uint8_t signature[64];       /* r || s, big-endian */
	uint8_t attestation_key[64]; /* x || y */
	uint16_t cert_data_type;     /* 6 */
	uint32_t cert_data_size;
	uint8_t qe_report_raw[384];
	struct attest_tdx_qe_report qe_report;
	uint8_t qe_report_signature[64];
	uint8_t *qe_auth_data;
	size_t qe_auth_data_len;
	uint16_t inner_cert_type; /* 5 */
	uint32_t inner_cert_size;
	char *pck_chain_pem; /* NUL-terminated, trailing NULs of the quote stripped */
	size_t pck_chain_pem_len;
};

/* Parse a quote; 0 or -EBADMSG (ATTEST_E_FORMAT) / -ENOMEM, with a message in *ret_msg. Checks
 * all sizes, versions, types and that the PCK chain holds exactly 3 PEM certificates. */
int attest_tdx_quote_parse(const uint8_t *data, size_t len, struct attest_tdx_quote **ret,
			   char **ret_msg);
void attest_tdx_quote_free(struct attest_tdx_quote *q);
/* Parsed fields as JSON, names as in the vectors' expected.json (header, body, key fields). */
int attest_tdx_quote_to_json(const struct attest_tdx_quote *q, json_t **ret);

/* TCB statuses, best to worst (ATTESTATION.md 4, "TCB status"). */
enum attest_tdx_tcb_status {
	ATTEST_TDX_TCB_UP_TO_DATE,
	ATTEST_TDX_TCB_SW_HARDENING_NEEDED,
	ATTEST_TDX_TCB_CONFIGURATION_NEEDED,
	ATTEST_TDX_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
	ATTEST_TDX_TCB_OUT_OF_DATE,
	ATTEST_TDX_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
	ATTEST_TDX_TCB_REVOKED,
	_ATTEST_TDX_TCB_MAX,
};
#define ATTEST_TDX_TCB_BIT(s) (1u << (s))
/* "UpToDate", ...; NULL when out of range. */
const char *attest_tdx_tcb_status_name(enum attest_tdx_tcb_status s);
/* Exact (case-sensitive) name to status; -EINVAL when unknown. */
int attest_tdx_tcb_status_from_name(const char *name);

/* One ReferenceValues.tdx entry (ATTESTATION.md 6). */
struct attest_tdx_reference {
	uint8_t mr_td[48];
	bool has_mr_seam;
	uint8_t mr_seam[48];
	uint8_t rtmrs[4][48];
	uint8_t xfam[8];
	uint8_t td_attributes[8];         /* default 0000001000000000 */
	int64_t min_tcb_eval_data_number; /* 0 = none */
	unsigned allowed_statuses;        /* ATTEST_TDX_TCB_BIT set; default UpToDate */
};
/* Parse one entry object; -EINVAL with *ret_msg on bad sizes, unknown statuses or Revoked. */
int attest_tdx_reference_parse(const json_t *entry, struct attest_tdx_reference *ret,
			       char **ret_msg);

/* Collateral as received (all pointers borrowed). The bodies are the exact signed bytes of the
 * tcbInfo / enclaveIdentity values; chains are PEM, signer first, root last. */
struct attest_tdx_collateral {
	const char *tcb_info;
	size_t tcb_info_len;
	uint8_t tcb_info_signature[64];
	const char *tcb_info_chain_pem;
	const char *qe_identity;
	size_t qe_identity_len;
	uint8_t qe_identity_signature[64];
	const char *qe_identity_chain_pem; /* NULL: the TCB Info chain */
	const uint8_t *pck_crl_der;        /* NULL: not supplied */
	size_t pck_crl_der_len;
	const uint8_t *root_crl_der; /* NULL: not supplied */
	size_t root_crl_der_len;
};

/* In a PCS response body {"<key>":{...},"signature":"<hex>"}, find the exact byte span of the
 * <key> value (from its '{' to the matching '}') and decode the 64-byte signature. Bounded, no
 * allocation; -EBADMSG when malformed. */
int attest_tdx_collateral_split(const char *body, size_t len, const char *key, size_t *ret_off,
				size_t *ret_len, uint8_t ret_signature[64]);

struct attest_tdx_options {
	int64_t now_sec;
	const char *trust_anchor_pem;                   /* NULL: the built-in Intel SGX Root CA */
	const char *pck_chain_pem;                      /* NULL: the chain inside the quote */
	const struct attest_tdx_collateral *collateral; /* NULL: collateral checks fail */
	bool skip_crl;
	bool skip_collateral;
	const struct attest_tdx_reference *refs; /* n_refs == 0: no per-entry measurement checks */
	size_t n_refs;
	unsigned accepted_statuses;            /* used when n_refs == 0; 0 = UpToDate only */
	struct attest_digest_rule digest_rule; /* MRCONFIGID[0..31] */
	const uint8_t *report_data;            /* 64 bytes, or NULL: not checked */
};

/* Run every check of ATTESTATION.md 4 "TDX verification order" and fill *ret (every check
 * listed, the first failing one's class in ret->error). 0 whether accepted or not; -ENOMEM. */
int attest_tdx_verify(const struct attest_tdx_quote *q, const struct attest_tdx_options *o,
		      struct attest_result *ret);

/* Repeated verification with the chain and collateral parsed and checked once (bench): after
 * attest_tdx_bench_new() succeeded (the quote fully verified and accepted with o), each
 * attest_tdx_bench_verify() redoes the two P-256 verifications (QE report, quote) and the binding
 * hash for q, which must carry the same PCK chain. */
struct attest_tdx_bench;
int attest_tdx_bench_new(const struct attest_tdx_quote *q, const struct attest_tdx_options *o,
			 struct attest_tdx_bench **ret, char **ret_msg);
/* 0 when valid, -EBADMSG when a signature or the binding fails. */
int attest_tdx_bench_verify(struct attest_tdx_bench *b, const struct attest_tdx_quote *q);
void attest_tdx_bench_free(struct attest_tdx_bench *b);
/* Verify the quote file n times with the bench context (files as for verify_files). */
int attest_tdx_bench_files(const struct attest_files *f, unsigned n, char **ret_msg);

/* Verify from files. collateral_dir holds collateral_tcb_info{.body.json+.sig.hex|.json},
 * collateral_tcb_info_issuer_chain.pem, collateral_qe_identity.* likewise (chain defaults to the
 * TCB Info one), collateral_pck_crl[_platform|_processor].der, collateral_root_ca_crl.der.
 * 0 whether accepted or not; <0 with *ret_msg only when inputs cannot be read. */
int attest_tdx_verify_files(const struct attest_files *f, struct attest_result *ret,
			    char **ret_msg);
int attest_tdx_show_file(const char *evidence, json_t **ret, char **ret_msg);

/* ==== end TDX ==== */
