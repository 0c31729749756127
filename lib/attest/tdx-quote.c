/* TDX quote v4/v5 parser (ATTESTATION.md 4): every length is checked against its container and
 * bytes after the signature data are ignored. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest/tdx-internal.h"

#define HEADER_LEN 48
#define BODY_V10_LEN 584
#define BODY_V15_LEN 648
#define QE_REPORT_LEN 384

static const uint8_t intel_qe_vendor_id[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
					       0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static int fail(char **ret_msg, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_msg, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		free(*ret_msg);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

void attest_tdx_quote_free(struct attest_tdx_quote *q)
{
	if (!q)
		return;
	free(q->qe_auth_data);
	free(q->pck_chain_pem);
	free(q);
}

static void quote_freep(struct attest_tdx_quote **q)
{
	attest_tdx_quote_free(*q);
}

static void parse_body(struct attest_tdx_quote *q, const uint8_t *b)
{
	memcpy(q->tee_tcb_svn, b + 0, 16);
	memcpy(q->mr_seam, b + 16, 48);
	memcpy(q->mr_signer_seam, b + 64, 48);
	memcpy(q->seam_attributes, b + 112, 8);
	memcpy(q->td_attributes, b + 120, 8);
	memcpy(q->xfam, b + 128, 8);
	memcpy(q->mr_td, b + 136, 48);
	memcpy(q->mr_config_id, b + 184, 48);
	memcpy(q->mr_owner, b + 232, 48);
	memcpy(q->mr_owner_config, b + 280, 48);
	for (size_t i = 0; i < 4; i++)
		memcpy(q->rtmr[i], b + 328 + 48 * i, 48);
	memcpy(q->report_data, b + 520, 64);
	if (q->body_size == BODY_V15_LEN) {
		memcpy(q->tee_tcb_svn2, b + 584, 16);
		memcpy(q->mr_servicetd, b + 600, 48);
	}
}

static void parse_qe_report(struct attest_tdx_qe_report *r, const uint8_t *p)
{
	memcpy(r->cpu_svn, p, 16);
	r->misc_select = le32(p + 16);
	memcpy(r->attributes, p + 48, 16);
	memcpy(r->mr_enclave, p + 64, 32);
	memcpy(r->mr_signer, p + 128, 32);
	r->isv_prod_id = le16(p + 256);
	r->isv_svn = le16(p + 258);
	memcpy(r->report_data, p + 320, 64);
}

/* Exactly three certificates, and nothing but PEM blocks and whitespace around them. */
static int count_pem_certs(const char *pem, size_t len, char **ret_msg)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	int n = 0;
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		X509_free(x);
		if (++n > 3)
			break;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n != 3)
		return fail(ret_msg, "PCK chain holds %s%d certificates, want 3",
			    n > 3 ? "more than " : "", n > 3 ? 3 : n);
	return 0;
}

int attest_tdx_quote_parse(const uint8_t *data, size_t len, struct attest_tdx_quote **ret,
			   char **ret_msg)
{
	_cleanup_(quote_freep) struct attest_tdx_quote *q = NULL;
	size_t off;

	if (!data || len > ATTEST_TDX_QUOTE_MAX_BYTES)
		return fail(ret_msg, "quote larger than %d bytes", ATTEST_TDX_QUOTE_MAX_BYTES);
	if (len < HEADER_LEN)
		return fail(ret_msg, "quote of %zu bytes is shorter than its header", len);
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;

	q->version = le16(data);
	q->att_key_type = le16(data + 2);
	q->tee_type = le32(data + 4);
	q->qe_svn = le16(data + 8);
	q->pce_svn = le16(data + 10);
	memcpy(q->qe_vendor_id, data + 12, 16);
	memcpy(q->user_data, data + 28, 20);
	if (q->version != 4 && q->version != 5)
		return fail(ret_msg, "quote version %u, want 4 or 5", q->version);
	if (q->att_key_type != 2)
		return fail(ret_msg, "attestation key type %u, want 2 (ECDSA P-256)",
			    q->att_key_type);
	if (q->tee_type != 0x81)
		return fail(ret_msg, "TEE type 0x%08x, want 0x00000081 (TDX)", q->tee_type);

	off = HEADER_LEN;
	if (q->version == 4) {
		q->body_type = 2;
		q->body_size = BODY_V10_LEN;
	} else {
		if (len < off + 6)
			return fail(ret_msg, "quote truncated in the body descriptor");
		q->body_type = le16(data + off);
		q->body_size = le32(data + off + 2);
		off += 6;
		if (q->body_type == 2 && q->body_size != BODY_V10_LEN)
			return fail(ret_msg, "body type 2 with size %u, want 584", q->body_size);
		if (q->body_type == 3 && q->body_size != BODY_V15_LEN)
			return fail(ret_msg, "body type 3 with size %u, want 648", q->body_size);
		if (q->body_type != 2 && q->body_type != 3)
			return fail(ret_msg, "body type %u, want 2 or 3 (TDX)", q->body_type);
	}
	if (len - off < q->body_size)
		return fail(ret_msg, "quote truncated in the TD report body");
	parse_body(q, data + off);
	off += q->body_size;
	q->signed_len = off;
	memcpy(q->signed_region, data, off);

	if (len - off < 4)
		return fail(ret_msg, "quote truncated before the signature data length");
	q->sig_data_len = le32(data + off);
	off += 4;
	if (q->sig_data_len > len - off)
		return fail(ret_msg, "signature data length %u exceeds the %zu bytes left",
			    q->sig_data_len, len - off);
	const uint8_t *s = data + off;
	size_t slen = q->sig_data_len;
	q->quote_len = off + slen;
	q->trailing_len = len - q->quote_len;

	if (slen < 134)
		return fail(ret_msg, "signature data of %zu bytes is too short", slen);
	memcpy(q->signature, s, 64);
	memcpy(q->attestation_key, s + 64, 64);
	q->cert_data_type = le16(s + 128);
	q->cert_data_size = le32(s + 130);
	if (q->cert_data_type != 6)
		return fail(ret_msg, "certification data type %u, want 6", q->cert_data_type);
	if (q->cert_data_size > slen - 134)
		return fail(ret_msg, "certification data size %u exceeds the signature data",
			    q->cert_data_size);
	const uint8_t *c = s + 134;
	size_t clen = q->cert_data_size;

	if (clen < QE_REPORT_LEN + 64 + 2)
		return fail(ret_msg, "certification data too short for the QE report");
	memcpy(q->qe_report_raw, c, QE_REPORT_LEN);
	parse_qe_report(&q->qe_report, c);
	memcpy(q->qe_report_signature, c + QE_REPORT_LEN, 64);
	size_t a = le16(c + 448);
	size_t pos = 450;
	if (a > clen - pos)
		return fail(ret_msg,
			    "QE authentication data size %zu exceeds the certification data", a);
	q->qe_auth_data_len = a;
	q->qe_auth_data = malloc(a ? a : 1);
	if (!q->qe_auth_data)
		return -ENOMEM;
	memcpy(q->qe_auth_data, c + pos, a);
	pos += a;
	if (clen - pos < 6)
		return fail(ret_msg, "certification data truncated before the PCK chain");
	q->inner_cert_type = le16(c + pos);
	q->inner_cert_size = le32(c + pos + 2);
	pos += 6;
	if (q->inner_cert_type != 5)
		return fail(ret_msg, "inner certification data type %u, want 5 (PCK chain)",
			    q->inner_cert_type);
	if (q->inner_cert_size > clen - pos)
		return fail(ret_msg, "PCK chain size %u exceeds the certification data",
			    q->inner_cert_size);
	size_t plen = q->inner_cert_size;
	while (plen > 0 && c[pos + plen - 1] == 0)
		plen--;
	if (plen == 0)
		return fail(ret_msg, "empty PCK chain");
	if (memchr(c + pos, 0, plen))
		return fail(ret_msg, "NUL byte inside the PCK chain PEM");
	q->pck_chain_pem = malloc(plen + 1);
	if (!q->pck_chain_pem)
		return -ENOMEM;
	memcpy(q->pck_chain_pem, c + pos, plen);
	q->pck_chain_pem[plen] = 0;
	q->pck_chain_pem_len = plen;
	int r = count_pem_certs(q->pck_chain_pem, plen, ret_msg);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(q);
	return 0;
}

static int set_hex(json_t *o, const char *key, const void *p, size_t n)
{
	_cleanup_free_ char *h = hex_encode(p, n);
	if (!h || json_object_set_new(o, key, json_string(h)) < 0)
		return -ENOMEM;
	return 0;
}

static int set_int(json_t *o, const char *key, json_int_t v)
{
	return json_object_set_new(o, key, json_integer(v)) < 0 ? -ENOMEM : 0;
}

static int body_to_json(const struct attest_tdx_quote *q, json_t *b)
{
	static const char *const rtmr_names[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
	int r = 0;
	r |= set_hex(b, "tee_tcb_svn", q->tee_tcb_svn, 16);
	r |= set_hex(b, "mr_seam", q->mr_seam, 48);
	r |= set_hex(b, "mr_signer_seam", q->mr_signer_seam, 48);
	r |= set_hex(b, "seam_attributes", q->seam_attributes, 8);
	r |= set_hex(b, "td_attributes", q->td_attributes, 8);
	r |= set_hex(b, "xfam", q->xfam, 8);
	r |= set_hex(b, "mr_td", q->mr_td, 48);
	r |= set_hex(b, "mr_config_id", q->mr_config_id, 48);
	r |= set_hex(b, "mr_owner", q->mr_owner, 48);
	r |= set_hex(b, "mr_owner_config", q->mr_owner_config, 48);
	for (size_t i = 0; i < 4; i++)
		r |= set_hex(b, rtmr_names[i], q->rtmr[i], 48);
	r |= set_hex(b, "report_data", q->report_data, 64);
	if (q->body_type == 3) {
		r |= set_hex(b, "tee_tcb_svn2", q->tee_tcb_svn2, 16);
		r |= set_hex(b, "mr_servicetd", q->mr_servicetd, 48);
	}
	return r ? -ENOMEM : 0;
}

int attest_tdx_quote_to_json(const struct attest_tdx_quote *q, json_t **ret)
{
	json_t *o = json_object(), *h = json_object(), *b = json_object(), *s = json_object(),
	       *qr = json_object();
	int r = 0;
	if (!o || !h || !b || !s || !qr) {
		r = -ENOMEM;
		goto out;
	}
	char tee[16];
	snprintf(tee, sizeof(tee), "0x%08x", q->tee_type);
	r |= set_int(h, "version", q->version);
	r |= set_int(h, "att_key_type", q->att_key_type);
	r |= json_object_set_new(h, "tee_type", json_string(tee)) < 0 ? -ENOMEM : 0;
	r |= set_int(h, "qe_svn_or_reserved", q->qe_svn);
	r |= set_int(h, "pce_svn_or_reserved", q->pce_svn);
	r |= set_hex(h, "qe_vendor_id", q->qe_vendor_id, 16);
	r |= set_hex(h, "user_data", q->user_data, 20);
	r |= body_to_json(q, b);

	r |= set_hex(qr, "cpu_svn", q->qe_report.cpu_svn, 16);
	r |= set_hex(qr, "misc_select", q->qe_report_raw + 16, 4);
	r |= set_hex(qr, "attributes", q->qe_report.attributes, 16);
	r |= set_hex(qr, "mr_enclave", q->qe_report.mr_enclave, 32);
	r |= set_hex(qr, "mr_signer", q->qe_report.mr_signer, 32);
	r |= set_int(qr, "isv_prod_id", q->qe_report.isv_prod_id);
	r |= set_int(qr, "isv_svn", q->qe_report.isv_svn);
	r |= set_hex(qr, "report_data", q->qe_report.report_data, 64);
	r |= set_hex(s, "quote_signature", q->signature, 64);
	r |= set_hex(s, "attestation_key", q->attestation_key, 64);
	r |= set_int(s, "cert_data_type", q->cert_data_type);
	r |= set_int(s, "cert_data_size", q->cert_data_size);
	r |= json_object_set(s, "qe_report", qr) < 0 ? -ENOMEM : 0;
	r |= set_hex(s, "qe_report_signature", q->qe_report_signature, 64);
	r |= set_hex(s, "qe_auth_data", q->qe_auth_data, q->qe_auth_data_len);
	r |= set_int(s, "inner_cert_type", q->inner_cert_type);
	r |= set_int(s, "inner_cert_size", q->inner_cert_size);

	r |= json_object_set_new(o, "kind", json_string("tdx-quote")) < 0 ? -ENOMEM : 0;
	r |= set_int(o, "quote_size", (json_int_t)(q->quote_len + q->trailing_len));
	r |= json_object_set(o, "header", h) < 0 ? -ENOMEM : 0;
	json_t *bi =
	    json_pack("{s:i,s:i}", "body_type", (int)q->body_type, "body_size", (int)q->body_size);
	r |= (!bi || json_object_set_new(o, "body_info", bi) < 0) ? -ENOMEM : 0;
	r |= json_object_set(o, "body", b) < 0 ? -ENOMEM : 0;
	r |= set_int(o, "signed_len", (json_int_t)q->signed_len);
	r |= set_int(o, "sig_data_len", q->sig_data_len);
	r |= set_int(o, "trailing_bytes_after_sig_data", (json_int_t)q->trailing_len);
	r |= set_int(o, "quote_proper_len", (json_int_t)q->quote_len);
	r |= json_object_set(o, "signature_data", s) < 0 ? -ENOMEM : 0;
	r |= json_object_set_new(
		 o, "qe_vendor_is_intel",
		 json_boolean(memcmp(q->qe_vendor_id, intel_qe_vendor_id, 16) == 0)) < 0
		 ? -ENOMEM
		 : 0;
	if (r) {
		r = -ENOMEM;
		goto out;
	}
	*ret = o;
	o = NULL;
out:
	json_decref(o);
	json_decref(h);
	json_decref(b);
	json_decref(s);
	json_decref(qr);
	return r;
}

int attest_tdx_show_file(const char *evidence, json_t **ret, char **ret_msg)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_(quote_freep) struct attest_tdx_quote *q = NULL;
	size_t len = 0;
	int r;

	if (!evidence)
		return str_set_message(ret_msg, -EINVAL, "no quote file given");
	r = read_file_bounded(evidence, ATTEST_TDX_QUOTE_MAX_BYTES, &data, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: cannot read quote", evidence);
	r = attest_tdx_quote_parse((const uint8_t *)data, len, &q, ret_msg);
	if (r < 0)
		return r;
	json_t *j = NULL;
	r = attest_tdx_quote_to_json(q, &j);
	if (r < 0)
		return r;
	struct tdx_pck_tcb pck;
	if (tdx_pck_tcb_from_pem(q->pck_chain_pem, &pck) == 0) {
		json_t *e = json_object(), *svns = json_array();
		int k = (!e || !svns) ? -ENOMEM : 0;
		for (size_t i = 0; k == 0 && i < 16; i++)
			k = json_array_append_new(svns, json_integer(pck.sgx_svn[i])) < 0 ? -ENOMEM
											  : 0;
		k |= set_hex(e, "fmspc", pck.fmspc, 6);
		k |= set_hex(e, "pceid", pck.pce_id, 2);
		k |= set_int(e, "pcesvn", pck.pcesvn);
		k |= set_hex(e, "cpusvn", pck.cpu_svn, 16);
		k |= (svns && json_object_set(e, "sgx_tcb_comp_svns", svns) < 0) ? -ENOMEM : 0;
		k |= (e && json_object_set(j, "pck_cert_extensions", e) < 0) ? -ENOMEM : 0;
		json_decref(svns);
		json_decref(e);
		if (k) {
			json_decref(j);
			return -ENOMEM;
		}
	}
	*ret = j;
	return 0;
}
