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
	char *name;             /* e.g. "chain", "report signature", "vmpl" */
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

/* The digest rule of ATTESTATION.md 3/5: HOST_DATA (SNP) or MRCONFIGID[0..31] (TDX) must equal
 * one of these 32-byte digests; n == 0 means no rule (the check passes as skipped). */
struct attest_digest_rule {
	const uint8_t (*digests)[32];
	size_t n;
};

/* Verification from files, for `peerpodctl attest` and tests. Every file is read bounded. */
struct attest_files {
	const char *evidence;       /* report.bin (SNP) or quote.bin (TDX) */
	const char *vek;            /* SNP: VCEK or VLEK certificate, DER or PEM */
	const char *chain;          /* SNP: ASK/ASVK + ARK PEM; TDX: PCK chain PEM (default: quote) */
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

/* ==== end SEV-SNP ==== */

/* ==== TDX: declarations below are owned by the TDX work ==== */

int attest_tdx_verify_files(const struct attest_files *f, struct attest_result *ret,
			    char **ret_msg);
int attest_tdx_show_file(const char *evidence, json_t **ret, char **ret_msg);

/* ==== end TDX ==== */
