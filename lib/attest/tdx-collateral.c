/* TDX collateral: the bounded scanner that finds the exact signed bytes of a PCS response, the
 * TCB Info / QE Identity parsers, TCB level matching (ATTESTATION.md 4) and reference entries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "attest/tdx-internal.h"

static const char *const status_names[_ATTEST_TDX_TCB_MAX] = {
    [ATTEST_TDX_TCB_UP_TO_DATE] = "UpToDate",
    [ATTEST_TDX_TCB_SW_HARDENING_NEEDED] = "SWHardeningNeeded",
    [ATTEST_TDX_TCB_CONFIGURATION_NEEDED] = "ConfigurationNeeded",
    [ATTEST_TDX_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED] = "ConfigurationAndSWHardeningNeeded",
    [ATTEST_TDX_TCB_OUT_OF_DATE] = "OutOfDate",
    [ATTEST_TDX_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED] = "OutOfDateConfigurationNeeded",
    [ATTEST_TDX_TCB_REVOKED] = "Revoked",
};

const char *attest_tdx_tcb_status_name(enum attest_tdx_tcb_status s)
{
	if ((unsigned)s >= _ATTEST_TDX_TCB_MAX)
		return NULL;
	return status_names[s];
}

int attest_tdx_tcb_status_from_name(const char *name)
{
	for (int i = 0; name && i < _ATTEST_TDX_TCB_MAX; i++)
		if (strcmp(name, status_names[i]) == 0)
			return i;
	return -EINVAL;
}

enum attest_tdx_tcb_status tdx_tcb_status_worst(enum attest_tdx_tcb_status a,
						enum attest_tdx_tcb_status b)
{
	bool cfg_a = a == ATTEST_TDX_TCB_CONFIGURATION_NEEDED ||
		     a == ATTEST_TDX_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED;
	bool cfg_b = b == ATTEST_TDX_TCB_CONFIGURATION_NEEDED ||
		     b == ATTEST_TDX_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED;
	if ((a == ATTEST_TDX_TCB_OUT_OF_DATE && cfg_b) ||
	    (b == ATTEST_TDX_TCB_OUT_OF_DATE && cfg_a))
		return ATTEST_TDX_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
	return a > b ? a : b;
}

static int msg(char **ret_msg, int err, const char *fmt, ...) _printf_(3, 4);
static int msg(char **ret_msg, int err, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		free(*ret_msg);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return err;
}

int tdx_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n)
{
	return hex_decode_exact(s, slen, out, n);
}

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int tdx_parse_time(const char *s, int64_t *ret_sec)
{
	/* YYYY-MM-DDTHH:MM:SSZ, optionally with fractional seconds before the Z */
	if (!s || strlen(s) < 20 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) ||
	    s[7] != '-' || !is_digits(s + 8, 2) || s[10] != 'T' || !is_digits(s + 11, 2) ||
	    s[13] != ':' || !is_digits(s + 14, 2) || s[16] != ':' || !is_digits(s + 17, 2))
		return -EINVAL;
	const char *z = s + 19;
	if (*z == '.') {
		z++;
		while (*z >= '0' && *z <= '9')
			z++;
	}
	if (strcmp(z, "Z") != 0)
		return -EINVAL;
	struct tm tm = {
	    .tm_year = num(s, 4) - 1900,
	    .tm_mon = num(s + 5, 2) - 1,
	    .tm_mday = num(s + 8, 2),
	    .tm_hour = num(s + 11, 2),
	    .tm_min = num(s + 14, 2),
	    .tm_sec = num(s + 17, 2),
	};
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	*ret_sec = (int64_t)timegm(&tm);
	return 0;
}

/* ---- the bounded scanner over a PCS response ---- */

struct scan {
	const char *p;
	size_t len;
	size_t pos;
	unsigned depth;
};

#define SCAN_MAX_DEPTH 64

static void skip_ws(struct scan *s)
{
	while (s->pos < s->len && (s->p[s->pos] == ' ' || s->p[s->pos] == '\t' ||
				   s->p[s->pos] == '\n' || s->p[s->pos] == '\r'))
		s->pos++;
}

static int scan_string(struct scan *s, size_t *ret_start, size_t *ret_end)
{
	if (s->pos >= s->len || s->p[s->pos] != '"')
		return -EBADMSG;
	s->pos++;
	size_t start = s->pos;
	while (s->pos < s->len) {
		char c = s->p[s->pos];
		if (c == '\\') {
			s->pos += 2;
			continue;
		}
		if ((unsigned char)c < 0x20)
			return -EBADMSG;
		if (c == '"') {
			if (ret_start)
				*ret_start = start;
			if (ret_end)
				*ret_end = s->pos;
			s->pos++;
			return 0;
		}
		s->pos++;
	}
	return -EBADMSG;
}

static int scan_value(struct scan *s);

static int scan_container(struct scan *s, char open, char close)
{
	if (++s->depth > SCAN_MAX_DEPTH)
		return -EBADMSG;
	s->pos++; /* open */
	skip_ws(s);
	if (s->pos < s->len && s->p[s->pos] == close) {
		s->pos++;
		s->depth--;
		return 0;
	}
	for (;;) {
		skip_ws(s);
		if (open == '{') {
			if (scan_string(s, NULL, NULL) < 0)
				return -EBADMSG;
			skip_ws(s);
			if (s->pos >= s->len || s->p[s->pos] != ':')
				return -EBADMSG;
			s->pos++;
			skip_ws(s);
		}
		if (scan_value(s) < 0)
			return -EBADMSG;
		skip_ws(s);
		if (s->pos >= s->len)
			return -EBADMSG;
		if (s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		if (s->p[s->pos] == close) {
			s->pos++;
			s->depth--;
			return 0;
		}
		return -EBADMSG;
	}
}

static int scan_value(struct scan *s)
{
	if (s->pos >= s->len)
		return -EBADMSG;
	char c = s->p[s->pos];
	if (c == '{')
		return scan_container(s, '{', '}');
	if (c == '[')
		return scan_container(s, '[', ']');
	if (c == '"')
		return scan_string(s, NULL, NULL);
	size_t start = s->pos;
	while (s->pos < s->len && strchr("+-.0123456789eEtrufalsn", s->p[s->pos]) && s->p[s->pos])
		s->pos++;
	return s->pos > start ? 0 : -EBADMSG;
}

int attest_tdx_collateral_split(const char *body, size_t len, const char *key, size_t *ret_off,
				size_t *ret_len, uint8_t ret_signature[64])
{
	struct scan s = {.p = body, .len = len};
	size_t klen = key ? strlen(key) : 0;
	bool have_value = false, have_sig = false;
	size_t voff = 0, vlen = 0;
	uint8_t sig[64];

	if (!body || !key || len > TDX_COLLATERAL_MAX_BYTES)
		return -EBADMSG;
	skip_ws(&s);
	if (s.pos >= s.len || s.p[s.pos] != '{')
		return -EBADMSG;
	s.pos++;
	for (;;) {
		size_t ks, ke;
		skip_ws(&s);
		if (scan_string(&s, &ks, &ke) < 0)
			return -EBADMSG;
		skip_ws(&s);
		if (s.pos >= s.len || s.p[s.pos] != ':')
			return -EBADMSG;
		s.pos++;
		skip_ws(&s);
		size_t vstart = s.pos;
		if (scan_value(&s) < 0)
			return -EBADMSG;
		if (ke - ks == klen && memcmp(body + ks, key, klen) == 0) {
			if (have_value || body[vstart] != '{')
				return -EBADMSG;
			have_value = true;
			voff = vstart;
			vlen = s.pos - vstart;
		} else if (ke - ks == 9 && memcmp(body + ks, "signature", 9) == 0) {
			if (have_sig || body[vstart] != '"' ||
			    tdx_hex_decode(body + vstart + 1, s.pos - vstart - 2, sig, 64) < 0)
				return -EBADMSG;
			have_sig = true;
		}
		skip_ws(&s);
		if (s.pos >= s.len)
			return -EBADMSG;
		if (s.p[s.pos] == ',') {
			s.pos++;
			continue;
		}
		if (s.p[s.pos] != '}')
			return -EBADMSG;
		s.pos++;
		break;
	}
	skip_ws(&s);
	while (s.pos < s.len && s.p[s.pos] == 0)
		s.pos++;
	if (s.pos != s.len || !have_value || !have_sig)
		return -EBADMSG;
	*ret_off = voff;
	*ret_len = vlen;
	memcpy(ret_signature, sig, 64);
	return 0;
}

/* ---- JSON field helpers ---- */

static int get_hex(const json_t *o, const char *key, uint8_t *out, size_t n)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return -EINVAL;
	return tdx_hex_decode(json_string_value(v), json_string_length(v), out, n);
}

static int get_int(const json_t *o, const char *key, int64_t min, int64_t max, int64_t *ret)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -EINVAL;
	*ret = json_integer_value(v);
	return 0;
}

static int get_time(const json_t *o, const char *key, int64_t *ret)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return -EINVAL;
	return tdx_parse_time(json_string_value(v), ret);
}

static int get_status(const json_t *o, enum attest_tdx_tcb_status *ret)
{
	const json_t *v = json_object_get(o, "tcbStatus");
	int s = attest_tdx_tcb_status_from_name(json_string_value(v));
	if (s < 0)
		return -EINVAL;
	*ret = (enum attest_tdx_tcb_status)s;
	return 0;
}

static int get_svn_array(const json_t *o, const char *key, uint8_t out[16])
{
	const json_t *a = json_object_get(o, key);
	if (!json_is_array(a) || json_array_size(a) != 16)
		return -EINVAL;
	for (size_t i = 0; i < 16; i++) {
		int64_t v;
		if (get_int(json_array_get(a, i), "svn", 0, 255, &v) < 0)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static json_t *load_json(const char *body, size_t len)
{
	if (!body || len == 0 || len > TDX_COLLATERAL_MAX_BYTES)
		return NULL;
	return json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
}

/* Collateral lists are bounded so a hostile document cannot make us allocate much. */
#define MAX_LEVELS 256

void tdx_tcb_info_done(struct tdx_tcb_info *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_modules; i++)
		free(t->modules[i].levels);
	free(t->modules);
	free(t->levels);
	*t = (struct tdx_tcb_info){0};
}

static int parse_module(const json_t *m, struct tdx_module_identity *ret)
{
	const json_t *id = json_object_get(m, "id");
	if (!json_is_string(id) || json_string_length(id) >= sizeof(ret->id))
		return -EINVAL;
	memcpy(ret->id, json_string_value(id), json_string_length(id) + 1);
	if (get_hex(m, "mrsigner", ret->mrsigner, 48) < 0 ||
	    get_hex(m, "attributes", ret->attributes, 8) < 0 ||
	    get_hex(m, "attributesMask", ret->attributes_mask, 8) < 0)
		return -EINVAL;
	const json_t *lv = json_object_get(m, "tcbLevels");
	if (!json_is_array(lv) || json_array_size(lv) > MAX_LEVELS)
		return -EINVAL;
	ret->levels = calloc(json_array_size(lv) + 1, sizeof(*ret->levels));
	if (!ret->levels)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(lv); i++) {
		const json_t *l = json_array_get(lv, i);
		int64_t v;
		if (get_int(json_object_get(l, "tcb"), "isvsvn", 0, 255, &v) < 0 ||
		    get_status(l, &ret->levels[i].status) < 0)
			return -EINVAL;
		ret->levels[i].isvsvn = (uint8_t)v;
		ret->n_levels++;
	}
	return 0;
}

int tdx_tcb_info_parse(const char *body, size_t len, struct tdx_tcb_info *ret, char **ret_msg)
{
	json_t *j = load_json(body, len);
	struct tdx_tcb_info t = {0};
	int64_t v;
	int r = -EBADMSG;

	if (!json_is_object(j)) {
		msg(ret_msg, 0, "TCB Info is not a JSON object");
		goto out;
	}
	const json_t *id = json_object_get(j, "id");
	if (!json_is_string(id) || strcmp(json_string_value(id), "TDX") != 0 ||
	    get_int(j, "version", 3, 3, &v) < 0) {
		msg(ret_msg, 0, "TCB Info id/version is not TDX/3");
		goto out;
	}
	if (get_time(j, "issueDate", &t.issue_date_sec) < 0 ||
	    get_time(j, "nextUpdate", &t.next_update_sec) < 0 ||
	    get_hex(j, "fmspc", t.fmspc, 6) < 0 || get_hex(j, "pceId", t.pce_id, 2) < 0 ||
	    get_int(j, "tcbEvaluationDataNumber", 0, INT32_MAX, &t.tcb_eval_data_number) < 0) {
		msg(ret_msg, 0,
		    "TCB Info: bad issueDate, nextUpdate, fmspc, pceId or "
		    "tcbEvaluationDataNumber");
		goto out;
	}
	const json_t *mod = json_object_get(j, "tdxModule");
	if (!json_is_object(mod) || get_hex(mod, "mrsigner", t.module_mrsigner, 48) < 0 ||
	    get_hex(mod, "attributes", t.module_attributes, 8) < 0 ||
	    get_hex(mod, "attributesMask", t.module_attributes_mask, 8) < 0) {
		msg(ret_msg, 0, "TCB Info: bad tdxModule");
		goto out;
	}
	const json_t *mods = json_object_get(j, "tdxModuleIdentities");
	if (mods) {
		if (!json_is_array(mods) || json_array_size(mods) > MAX_LEVELS) {
			msg(ret_msg, 0, "TCB Info: bad tdxModuleIdentities");
			goto out;
		}
		t.modules = calloc(json_array_size(mods) + 1, sizeof(*t.modules));
		if (!t.modules) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < json_array_size(mods); i++) {
			t.n_modules++;
			int k = parse_module(json_array_get(mods, i), &t.modules[i]);
			if (k < 0) {
				r = k == -ENOMEM ? k : -EBADMSG;
				msg(ret_msg, 0, "TCB Info: bad tdxModuleIdentities[%zu]", i);
				goto out;
			}
		}
	}
	const json_t *lv = json_object_get(j, "tcbLevels");
	if (!json_is_array(lv) || json_array_size(lv) == 0 || json_array_size(lv) > MAX_LEVELS) {
		msg(ret_msg, 0, "TCB Info: bad tcbLevels");
		goto out;
	}
	t.levels = calloc(json_array_size(lv), sizeof(*t.levels));
	if (!t.levels) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(lv); i++) {
		const json_t *l = json_array_get(lv, i), *tcb = json_object_get(l, "tcb");
		struct tdx_tcb_level *L = &t.levels[i];
		if (get_svn_array(tcb, "sgxtcbcomponents", L->sgx_svn) < 0 ||
		    get_svn_array(tcb, "tdxtcbcomponents", L->tdx_svn) < 0 ||
		    get_int(tcb, "pcesvn", 0, UINT16_MAX, &v) < 0 ||
		    get_status(l, &L->status) < 0) {
			msg(ret_msg, 0, "TCB Info: bad tcbLevels[%zu]", i);
			goto out;
		}
		L->pcesvn = (uint16_t)v;
		t.n_levels++;
	}
	*ret = t;
	t = (struct tdx_tcb_info){0};
	r = 0;
out:
	tdx_tcb_info_done(&t);
	json_decref(j);
	return r;
}

void tdx_qe_identity_done(struct tdx_qe_identity *q)
{
	if (!q)
		return;
	free(q->levels);
	*q = (struct tdx_qe_identity){0};
}

static int get_u32_hex(const json_t *o, const char *key, uint32_t *ret)
{
	uint8_t b[4];
	if (get_hex(o, key, b, 4) < 0)
		return -EINVAL;
	*ret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return 0;
}

int tdx_qe_identity_parse(const char *body, size_t len, struct tdx_qe_identity *ret, char **ret_msg)
{
	json_t *j = load_json(body, len);
	struct tdx_qe_identity q = {0};
	int64_t v;
	int r = -EBADMSG;

	if (!json_is_object(j)) {
		msg(ret_msg, 0, "QE Identity is not a JSON object");
		goto out;
	}
	const json_t *id = json_object_get(j, "id");
	if (!json_is_string(id) || strcmp(json_string_value(id), "TD_QE") != 0 ||
	    get_int(j, "version", 2, 2, &v) < 0) {
		msg(ret_msg, 0, "QE Identity id/version is not TD_QE/2");
		goto out;
	}
	if (get_time(j, "issueDate", &q.issue_date_sec) < 0 ||
	    get_time(j, "nextUpdate", &q.next_update_sec) < 0 ||
	    get_int(j, "tcbEvaluationDataNumber", 0, INT32_MAX, &q.tcb_eval_data_number) < 0 ||
	    get_u32_hex(j, "miscselect", &q.miscselect) < 0 ||
	    get_u32_hex(j, "miscselectMask", &q.miscselect_mask) < 0 ||
	    get_hex(j, "attributes", q.attributes, 16) < 0 ||
	    get_hex(j, "attributesMask", q.attributes_mask, 16) < 0 ||
	    get_hex(j, "mrsigner", q.mrsigner, 32) < 0 ||
	    get_int(j, "isvprodid", 0, UINT16_MAX, &v) < 0) {
		msg(ret_msg, 0, "QE Identity: bad or missing field");
		goto out;
	}
	q.isvprodid = (uint16_t)v;
	const json_t *lv = json_object_get(j, "tcbLevels");
	if (!json_is_array(lv) || json_array_size(lv) == 0 || json_array_size(lv) > MAX_LEVELS) {
		msg(ret_msg, 0, "QE Identity: bad tcbLevels");
		goto out;
	}
	q.levels = calloc(json_array_size(lv), sizeof(*q.levels));
	if (!q.levels) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(lv); i++) {
		const json_t *l = json_array_get(lv, i);
		if (get_int(json_object_get(l, "tcb"), "isvsvn", 0, UINT16_MAX, &v) < 0 ||
		    get_status(l, &q.levels[i].status) < 0) {
			msg(ret_msg, 0, "QE Identity: bad tcbLevels[%zu]", i);
			goto out;
		}
		q.levels[i].isvsvn = (uint16_t)v;
		q.n_levels++;
	}
	*ret = q;
	q = (struct tdx_qe_identity){0};
	r = 0;
out:
	tdx_qe_identity_done(&q);
	json_decref(j);
	return r;
}

/* ---- TCB level matching ---- */

static int platform_level(const struct tdx_tcb_info *t, const struct tdx_pck_tcb *pck,
			  const uint8_t svn[16], const struct tdx_tcb_level **ret)
{
	size_t first_tdx = svn[1] > 0 ? 2 : 0;
	for (size_t i = 0; i < t->n_levels; i++) {
		const struct tdx_tcb_level *L = &t->levels[i];
		bool ok = pck->pcesvn >= L->pcesvn;
		for (size_t k = 0; ok && k < 16; k++)
			ok = pck->sgx_svn[k] >= L->sgx_svn[k];
		for (size_t k = first_tdx; ok && k < 16; k++)
			ok = svn[k] >= L->tdx_svn[k];
		if (ok) {
			*ret = L;
			return 0;
		}
	}
	return -ENOENT;
}

static int evaluate_one(const struct tdx_tcb_info *t, const struct tdx_pck_tcb *pck,
			const uint8_t svn[16], struct tdx_tcb_eval *ev, char **ret_msg)
{
	const struct tdx_tcb_level *L;
	if (platform_level(t, pck, svn, &L) < 0)
		return msg(
		    ret_msg, -ENOENT,
		    "no TCB Info level matches PCESVN %u and the TEE_TCB_SVN %02x%02x%02x...",
		    pck->pcesvn, svn[0], svn[1], svn[2]);
	ev->status = tdx_tcb_status_worst(ev->status, L->status);
	if (svn[1] == 0)
		return 0;
	char want[8];
	snprintf(want, sizeof(want), "TDX_%02X", svn[1]);
	for (size_t i = 0; i < t->n_modules; i++) {
		const struct tdx_module_identity *m = &t->modules[i];
		if (strcasecmp(m->id, want) != 0)
			continue;
		for (size_t k = 0; k < m->n_levels; k++)
			if (m->levels[k].isvsvn <= svn[0]) {
				ev->status = tdx_tcb_status_worst(ev->status, m->levels[k].status);
				ev->module_mrsigner = m->mrsigner;
				ev->module_attributes = m->attributes;
				ev->module_attributes_mask = m->attributes_mask;
				return 0;
			}
		return msg(ret_msg, -ENOENT, "no %s module level for TDX module SVN %u", m->id,
			   svn[0]);
	}
	return msg(ret_msg, -ENOENT, "no TCB Info module identity %s", want);
}

int tdx_tcb_evaluate(const struct tdx_tcb_info *t, const struct tdx_pck_tcb *pck,
		     const uint8_t tee_tcb_svn[16], const uint8_t *tee_tcb_svn2,
		     struct tdx_tcb_eval *ret, char **ret_msg)
{
	struct tdx_tcb_eval ev = {
	    .status = ATTEST_TDX_TCB_UP_TO_DATE,
	    .module_mrsigner = t->module_mrsigner,
	    .module_attributes = t->module_attributes,
	    .module_attributes_mask = t->module_attributes_mask,
	};
	int r = evaluate_one(t, pck, tee_tcb_svn, &ev, ret_msg);
	if (r < 0)
		return r;
	if (tee_tcb_svn2) {
		/* the module entry of the first SVN is the one MRSIGNERSEAM is checked against */
		struct tdx_tcb_eval ev2 = ev;
		r = evaluate_one(t, pck, tee_tcb_svn2, &ev2, ret_msg);
		if (r < 0)
			return r;
		ev.status = ev2.status;
	}
	*ret = ev;
	return 0;
}

/* ---- reference entries ---- */

int attest_tdx_reference_parse(const json_t *e, struct attest_tdx_reference *ret, char **ret_msg)
{
	struct attest_tdx_reference ref = {
	    .td_attributes = {0, 0, 0, 0x10, 0, 0, 0, 0},
	    .allowed_statuses = ATTEST_TDX_TCB_BIT(ATTEST_TDX_TCB_UP_TO_DATE),
	};
	if (!json_is_object(e))
		return msg(ret_msg, -EINVAL, "tdx reference entry is not an object");
	if (get_hex(e, "MrTd", ref.mr_td, 48) < 0)
		return msg(ret_msg, -EINVAL, "MrTd: want 96 hex digits");
	if (json_object_get(e, "MrSeam")) {
		if (get_hex(e, "MrSeam", ref.mr_seam, 48) < 0)
			return msg(ret_msg, -EINVAL, "MrSeam: want 96 hex digits");
		ref.has_mr_seam = true;
	}
	const json_t *rt = json_object_get(e, "Rtmrs");
	if (!json_is_array(rt) || json_array_size(rt) != 4)
		return msg(ret_msg, -EINVAL, "Rtmrs: want exactly 4 entries");
	for (size_t i = 0; i < 4; i++) {
		const json_t *v = json_array_get(rt, i);
		if (!json_is_string(v) ||
		    tdx_hex_decode(json_string_value(v), json_string_length(v), ref.rtmrs[i], 48) <
			0)
			return msg(ret_msg, -EINVAL, "Rtmrs[%zu]: want 96 hex digits", i);
	}
	if (get_hex(e, "Xfam", ref.xfam, 8) < 0)
		return msg(ret_msg, -EINVAL, "Xfam: want 16 hex digits");
	if (json_object_get(e, "TdAttributes") &&
	    get_hex(e, "TdAttributes", ref.td_attributes, 8) < 0)
		return msg(ret_msg, -EINVAL, "TdAttributes: want 16 hex digits");
	if (json_object_get(e, "MinimumTCBEvaluationDataNumber") &&
	    get_int(e, "MinimumTCBEvaluationDataNumber", 0, INT32_MAX,
		    &ref.min_tcb_eval_data_number) < 0)
		return msg(ret_msg, -EINVAL,
			   "MinimumTCBEvaluationDataNumber: want an integer >= 0");
	const json_t *st = json_object_get(e, "AllowedStatuses");
	if (st) {
		if (!json_is_array(st))
			return msg(ret_msg, -EINVAL, "AllowedStatuses: want an array");
		ref.allowed_statuses = 0;
		for (size_t i = 0; i < json_array_size(st); i++) {
			const char *name = json_string_value(json_array_get(st, i));
			int s = attest_tdx_tcb_status_from_name(name);
			if (s < 0 || s == ATTEST_TDX_TCB_REVOKED)
				return msg(ret_msg, -EINVAL, "AllowedStatuses[%zu]: %s not allowed",
					   i, name ? name : "(not a string)");
			ref.allowed_statuses |= ATTEST_TDX_TCB_BIT(s);
		}
	}
	*ret = ref;
	return 0;
}
