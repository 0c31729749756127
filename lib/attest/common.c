/* lib/attest: the parts shared by SEV-SNP and TDX: error names and the check list of a result. */
#include <stdio.h>

#include "attest/attest.h"

static const char *const error_names[_ATTEST_E_MAX] = {
    [ATTEST_OK] = "ATTEST_OK",
    [ATTEST_E_FORMAT] = "ATTEST_E_FORMAT",
    [ATTEST_E_PRODUCT] = "ATTEST_E_PRODUCT",
    [ATTEST_E_CHAIN] = "ATTEST_E_CHAIN",
    [ATTEST_E_CRL] = "ATTEST_E_CRL",
    [ATTEST_E_COLLATERAL] = "ATTEST_E_COLLATERAL",
    [ATTEST_E_COLLATERAL_EXPIRED] = "ATTEST_E_COLLATERAL_EXPIRED",
    [ATTEST_E_REVOKED] = "ATTEST_E_REVOKED",
    [ATTEST_E_SIGNATURE] = "ATTEST_E_SIGNATURE",
    [ATTEST_E_VEK_BINDING] = "ATTEST_E_VEK_BINDING",
    [ATTEST_E_QE] = "ATTEST_E_QE",
    [ATTEST_E_VERSION] = "ATTEST_E_VERSION",
    [ATTEST_E_VMPL] = "ATTEST_E_VMPL",
    [ATTEST_E_DEBUG] = "ATTEST_E_DEBUG",
    [ATTEST_E_MIGRATION] = "ATTEST_E_MIGRATION",
    [ATTEST_E_POLICY] = "ATTEST_E_POLICY",
    [ATTEST_E_TCB] = "ATTEST_E_TCB",
    [ATTEST_E_MEASUREMENT] = "ATTEST_E_MEASUREMENT",
    [ATTEST_E_POLICY_DIGEST] = "ATTEST_E_POLICY_DIGEST",
    [ATTEST_E_REPORT_DATA] = "ATTEST_E_REPORT_DATA",
    [ATTEST_E_CHIP] = "ATTEST_E_CHIP",
};

const char *attest_error_name(enum attest_error e)
{
	if ((unsigned)e >= _ATTEST_E_MAX)
		return NULL;
	return error_names[e];
}

void attest_result_done(struct attest_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_checks; i++) {
		free(r->checks[i].name);
		free(r->checks[i].message);
	}
	free(r->checks);
	*r = (struct attest_result){};
}

int attest_result_add(struct attest_result *r, const char *name, enum attest_check_status status,
		      enum attest_error code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = str_vprintf(fmt, ap);
	va_end(ap);
	_cleanup_free_ char *n = strdup(name);
	if (!msg || !n)
		return -ENOMEM;
	struct attest_check *c = reallocarray(r->checks, r->n_checks + 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r->checks = c;
	r->checks[r->n_checks++] = (struct attest_check){
	    .name = TAKE_PTR(n), .status = status, .code = code, .message = TAKE_PTR(msg)};
	if (status == ATTEST_CHECK_FAIL && r->error == ATTEST_OK)
		r->error = code;
	return 0;
}

static const char *status_name(enum attest_check_status s)
{
	switch (s) {
	case ATTEST_CHECK_PASS:
		return "pass";
	case ATTEST_CHECK_FAIL:
		return "fail";
	case ATTEST_CHECK_SKIP:
		return "skip";
	}
	return "unknown";
}

int attest_result_to_json(const struct attest_result *r, json_t **ret)
{
	const char *err = attest_error_name(r->error);
	json_t *checks = json_array();
	if (!checks)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_checks; i++) {
		const struct attest_check *c = &r->checks[i];
		const char *code = attest_error_name(c->code);
		json_t *jc =
		    json_pack("{s:s, s:s, s:s, s:s}", "name", c->name ? c->name : "", "status",
			      status_name(c->status), "code", code ? code : "unknown", "message",
			      c->message ? c->message : "");
		if (!jc || json_array_append_new(checks, jc) < 0)
			goto oom;
	}
	json_t *o = json_pack("{s:b, s:s, s:o}", "accepted", r->accepted, "error",
			      err ? err : "unknown", "checks", checks);
	if (!o)
		return -ENOMEM; /* json_pack releases checks on failure */
	*ret = o;
	return 0;
oom:
	json_decref(checks);
	return -ENOMEM;
}
