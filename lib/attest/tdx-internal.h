/* lib/attest TDX internals shared by the quote parser, the collateral parser and the verifier. */
#pragma once

#include "attest/attest.h"

/* Parsed TCB Info (id "TDX", version 3). Levels are kept in document order (best first). */
struct tdx_tcb_level {
	uint8_t sgx_svn[16];
	uint16_t pcesvn;
	uint8_t tdx_svn[16];
	enum attest_tdx_tcb_status status;
};

struct tdx_module_level {
	uint8_t isvsvn;
	enum attest_tdx_tcb_status status;
};

struct tdx_module_identity {
	char id[16];
	uint8_t mrsigner[48];
	uint8_t attributes[8];
	uint8_t attributes_mask[8];
	struct tdx_module_level *levels;
	size_t n_levels;
};

struct tdx_tcb_info {
	int64_t issue_date_sec;
	int64_t next_update_sec;
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	int64_t tcb_eval_data_number;
	uint8_t module_mrsigner[48];
	uint8_t module_attributes[8];
	uint8_t module_attributes_mask[8];
	struct tdx_module_identity *modules;
	size_t n_modules;
	struct tdx_tcb_level *levels;
	size_t n_levels;
};

struct tdx_qe_level {
	uint16_t isvsvn;
	enum attest_tdx_tcb_status status;
};

struct tdx_qe_identity {
	int64_t issue_date_sec;
	int64_t next_update_sec;
	int64_t tcb_eval_data_number;
	uint32_t miscselect;
	uint32_t miscselect_mask;
	uint8_t attributes[16];
	uint8_t attributes_mask[16];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	struct tdx_qe_level *levels;
	size_t n_levels;
};

/* Collateral documents are capped: real ones are a few KiB. */
#define TDX_COLLATERAL_MAX_BYTES (256 * 1024)

int tdx_tcb_info_parse(const char *body, size_t len, struct tdx_tcb_info *ret, char **ret_msg);
void tdx_tcb_info_done(struct tdx_tcb_info *t);
int tdx_qe_identity_parse(const char *body, size_t len, struct tdx_qe_identity *ret,
			  char **ret_msg);
void tdx_qe_identity_done(struct tdx_qe_identity *q);

/* "2025-06-19T10:16:03Z" to seconds since the epoch; -EINVAL when malformed. */
int tdx_parse_time(const char *s, int64_t *ret_sec);
/* Decode exactly n bytes of hex (either case); -EINVAL otherwise. */
int tdx_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n);

/* The worse of two statuses, with OutOfDate + Configuration* = OutOfDateConfigurationNeeded. */
enum attest_tdx_tcb_status tdx_tcb_status_worst(enum attest_tdx_tcb_status a,
						enum attest_tdx_tcb_status b);

/* TCB status steps 1, 2 and 4: platform and module levels for the quote and PCK values.
 * Returns 0 with the status and the module entry's mrsigner/attributes(+mask) to check, or
 * -ENOENT with a message when no level matches. */
struct tdx_pck_tcb {
	uint8_t sgx_svn[16];
	uint16_t pcesvn;
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	uint8_t cpu_svn[16];
};
struct tdx_tcb_eval {
	enum attest_tdx_tcb_status status;
	const uint8_t *module_mrsigner;
	const uint8_t *module_attributes;
	const uint8_t *module_attributes_mask;
};
int tdx_tcb_evaluate(const struct tdx_tcb_info *t, const struct tdx_pck_tcb *pck,
		     const uint8_t tee_tcb_svn[16], const uint8_t *tee_tcb_svn2,
		     struct tdx_tcb_eval *ret, char **ret_msg);

/* Bench fast path: QE report signature by leaf (an EVP_PKEY *), binding, quote signature. */
/* A verifier that sees many quotes from one quoting enclave keeps its attestation key parsed:
 * building the EVP_PKEY from the raw point costs about as much as a third signature check. */
struct tdx_ak_cache {
	uint8_t raw[64];
	void *pkey; /* EVP_PKEY of raw, or NULL */
};
void tdx_ak_cache_done(struct tdx_ak_cache *c);
int tdx_bench_verify_raw(void *leaf_evp_pkey, struct tdx_ak_cache *ak,
			 const struct attest_tdx_quote *q);
/* The SGX extensions of the first certificate of a PEM chain. */
int tdx_pck_tcb_from_pem(const char *pem, struct tdx_pck_tcb *ret);
