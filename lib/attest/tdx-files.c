/* TDX verification from files (peerpodctl attest, tests) and the cached bench verifier. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest/tdx-internal.h"
#include "tls/tls.h"

#define PEM_MAX_BYTES (64 * 1024)

struct files_state {
	char *quote;
	size_t quote_len;
	char *chain;
	char *anchor;
	char *reference;
	char *tcb_doc, *tcb_sig, *tcb_chain;
	char *qe_doc, *qe_sig, *qe_chain;
	char *pck_crl, *root_crl;
	size_t tcb_doc_len, qe_doc_len, pck_crl_len, root_crl_len;
	struct attest_tdx_collateral col;
	struct attest_tdx_reference *refs;
	size_t n_refs;
};

static void files_state_done(struct files_state *s)
{
	free(s->quote);
	free(s->chain);
	free(s->anchor);
	free(s->reference);
	free(s->tcb_doc);
	free(s->tcb_sig);
	free(s->tcb_chain);
	free(s->qe_doc);
	free(s->qe_sig);
	free(s->qe_chain);
	free(s->pck_crl);
	free(s->root_crl);
	free(s->refs);
}

/* Optional file in dir: 0 and *ret NULL when absent. */
static int read_opt(const char *dir, const char *name, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	size_t len = 0;
	if (!path)
		return -ENOMEM;
	int r = read_file_bounded(path, max, ret, &len);
	if (r == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (ret_len)
		*ret_len = len;
	return r;
}

static int load_doc(const char *dir, const char *base, const char *key, char **ret_doc,
		    size_t *ret_len, uint8_t sig[64], char **ret_msg)
{
	_cleanup_free_ char *name = str_printf("%s.body.json", base);
	_cleanup_free_ char *signame = str_printf("%s.sig.hex", base);
	_cleanup_free_ char *pcsname = str_printf("%s.json", base);
	_cleanup_free_ char *hex = NULL, *pcs = NULL;
	size_t hexlen = 0, pcslen = 0;
	int r;
	if (!name || !signame || !pcsname)
		return -ENOMEM;
	r = read_opt(dir, name, TDX_COLLATERAL_MAX_BYTES, ret_doc, ret_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s/%s: cannot read", dir, name);
	if (*ret_doc) {
		r = read_opt(dir, signame, 1024, &hex, &hexlen);
		if (r < 0)
			return str_set_message(ret_msg, r, "%s/%s: cannot read", dir, signame);
		while (hex && hexlen > 0 && strchr(" \r\n\t", hex[hexlen - 1]))
			hexlen--;
		if (hex && tdx_hex_decode(hex, hexlen, sig, 64) == 0)
			return 0;
		/* no usable detached signature: fall back to the PCS-style file */
		*ret_doc = mfree(*ret_doc);
	}
	r = read_opt(dir, pcsname, TDX_COLLATERAL_MAX_BYTES, &pcs, &pcslen);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s/%s: cannot read", dir, pcsname);
	if (!pcs)
		return 0;
	size_t off, len;
	if (attest_tdx_collateral_split(pcs, pcslen, key, &off, &len, sig) < 0)
		return 0; /* left absent: the signature check reports it */
	*ret_doc = malloc(len + 1);
	if (!*ret_doc)
		return -ENOMEM;
	memcpy(*ret_doc, pcs + off, len);
	(*ret_doc)[len] = 0;
	*ret_len = len;
	return 0;
}

static int load_collateral(const char *dir, struct files_state *s, char **ret_msg)
{
	struct attest_tdx_collateral *c = &s->col;
	int r;
	r = load_doc(dir, "collateral_tcb_info", "tcbInfo", &s->tcb_doc, &s->tcb_doc_len,
		     c->tcb_info_signature, ret_msg);
	if (r < 0)
		return r;
	r = load_doc(dir, "collateral_qe_identity", "enclaveIdentity", &s->qe_doc, &s->qe_doc_len,
		     c->qe_identity_signature, ret_msg);
	if (r < 0)
		return r;
	if ((r = read_opt(dir, "collateral_tcb_info_issuer_chain.pem", PEM_MAX_BYTES, &s->tcb_chain,
			  NULL)) < 0 ||
	    (r = read_opt(dir, "collateral_qe_identity_issuer_chain.pem", PEM_MAX_BYTES,
			  &s->qe_chain, NULL)) < 0 ||
	    (r = read_opt(dir, "collateral_root_ca_crl.der", PEM_MAX_BYTES, &s->root_crl,
			  &s->root_crl_len)) < 0)
		return str_set_message(ret_msg, r, "%s: cannot read collateral", dir);
	static const char *const pck_names[] = {"collateral_pck_crl.der",
						"collateral_pck_crl_platform.der",
						"collateral_pck_crl_processor.der"};
	for (size_t i = 0; i < ELEMENTSOF(pck_names) && !s->pck_crl; i++)
		if ((r = read_opt(dir, pck_names[i], 1024 * 1024, &s->pck_crl, &s->pck_crl_len)) <
		    0)
			return str_set_message(ret_msg, r, "%s/%s: cannot read", dir, pck_names[i]);
	c->tcb_info = s->tcb_doc;
	c->tcb_info_len = s->tcb_doc_len;
	c->tcb_info_chain_pem = s->tcb_chain;
	c->qe_identity = s->qe_doc;
	c->qe_identity_len = s->qe_doc_len;
	c->qe_identity_chain_pem = s->qe_chain;
	c->pck_crl_der = (const uint8_t *)s->pck_crl;
	c->pck_crl_der_len = s->pck_crl_len;
	c->root_crl_der = (const uint8_t *)s->root_crl;
	c->root_crl_der_len = s->root_crl_len;
	return 0;
}

static int load_references(const char *path, struct files_state *s, char **ret_msg)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	json_t *list = NULL;
	int r = 0;
	if (!j)
		return str_set_message(ret_msg, -EINVAL, "%s: %s", path, jerr.text);
	if (json_is_array(j))
		list = json_incref(j);
	else if (json_is_object(j) && json_object_get(j, "MrTd"))
		list = json_pack("[O]", j);
	else if (json_is_object(j) && json_is_array(json_object_get(j, "tdx")))
		list = json_incref(json_object_get(j, "tdx"));
	if (!list) {
		json_decref(j);
		return str_set_message(ret_msg, -EINVAL, "%s: no tdx reference entries", path);
	}
	s->refs = calloc(json_array_size(list) + 1, sizeof(*s->refs));
	if (!s->refs)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < json_array_size(list); i++) {
		r = attest_tdx_reference_parse(json_array_get(list, i), &s->refs[i], ret_msg);
		if (r == 0)
			s->n_refs++;
	}
	json_decref(list);
	json_decref(j);
	return r;
}

/* Read everything the options need; the quote parse result is returned separately. */
static int prepare(const struct attest_files *f, struct files_state *s,
		   struct attest_tdx_options *o, char **ret_msg)
{
	int r;
	if (!f || !f->evidence)
		return str_set_message(ret_msg, -EINVAL, "no quote file given");
	r = read_file_bounded(f->evidence, ATTEST_TDX_QUOTE_MAX_BYTES, &s->quote, &s->quote_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: cannot read quote", f->evidence);
	if (f->chain && (r = read_file_bounded(f->chain, PEM_MAX_BYTES, &s->chain, NULL)) < 0)
		return str_set_message(ret_msg, r, "%s: cannot read PCK chain", f->chain);
	if (f->trust_anchor &&
	    (r = read_file_bounded(f->trust_anchor, PEM_MAX_BYTES, &s->anchor, NULL)) < 0)
		return str_set_message(ret_msg, r, "%s: cannot read trust anchor", f->trust_anchor);
	if (f->collateral_dir && !f->skip_collateral &&
	    (r = load_collateral(f->collateral_dir, s, ret_msg)) < 0)
		return r;
	if (f->collateral_dir && f->skip_collateral && !f->skip_crl &&
	    (r = load_collateral(f->collateral_dir, s, ret_msg)) < 0)
		return r;
	if (f->reference && (r = load_references(f->reference, s, ret_msg)) < 0)
		return r;
	*o = (struct attest_tdx_options){
	    .now_sec = f->now_sec,
	    .trust_anchor_pem = s->anchor,
	    .pck_chain_pem = s->chain,
	    .collateral = f->collateral_dir ? &s->col : NULL,
	    .skip_crl = f->skip_crl,
	    .skip_collateral = f->skip_collateral,
	    .refs = s->refs,
	    .n_refs = s->n_refs,
	    .report_data = f->report_data,
	};
	return 0;
}

int attest_tdx_verify_files(const struct attest_files *f, struct attest_result *ret, char **ret_msg)
{
	struct files_state s = {0};
	struct attest_tdx_options o;
	struct attest_tdx_quote *q = NULL;
	_cleanup_free_ char *perr = NULL;
	int r = prepare(f, &s, &o, ret_msg);
	if (r < 0)
		goto out;
	r = attest_tdx_quote_parse((const uint8_t *)s.quote, s.quote_len, &q, &perr);
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		struct attest_result res = {0};
		r = attest_result_add(&res, "format", ATTEST_CHECK_FAIL, ATTEST_E_FORMAT, "%s",
				      perr ? perr : "malformed quote");
		if (r < 0) {
			attest_result_done(&res);
			goto out;
		}
		*ret = res;
		goto out;
	}
	r = attest_tdx_verify(q, &o, ret);
out:
	attest_tdx_quote_free(q);
	files_state_done(&s);
	return r;
}

/* ---- bench ---- */

struct attest_tdx_bench {
	char *pck_chain_pem;
	EVP_PKEY *leaf_key;
	struct tdx_ak_cache ak;
};

void attest_tdx_bench_free(struct attest_tdx_bench *b)
{
	if (!b)
		return;
	free(b->pck_chain_pem);
	EVP_PKEY_free(b->leaf_key);
	tdx_ak_cache_done(&b->ak);
	free(b);
}

int attest_tdx_bench_new(const struct attest_tdx_quote *q, const struct attest_tdx_options *o,
			 struct attest_tdx_bench **ret, char **ret_msg)
{
	struct attest_result res = {0};
	int r = attest_tdx_verify(q, o, &res);
	if (r < 0)
		return r;
	bool ok = res.accepted;
	r = ok ? 0
	       : str_set_message(ret_msg, -EBADMSG, "quote is not accepted: %s",
				 attest_error_name(res.error));
	attest_result_done(&res);
	if (r < 0)
		return r;

	struct attest_tdx_bench *b = calloc(1, sizeof(*b));
	const char *pem = o->pck_chain_pem ? o->pck_chain_pem : q->pck_chain_pem;
	BIO *bio = b ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!b || !leaf || !(b->pck_chain_pem = strdup(pem)) ||
	    !(b->leaf_key = X509_get_pubkey(leaf))) {
		X509_free(leaf);
		attest_tdx_bench_free(b);
		return -ENOMEM;
	}
	X509_free(leaf);
	*ret = b;
	return 0;
}

int attest_tdx_bench_verify(struct attest_tdx_bench *b, const struct attest_tdx_quote *q)
{
	if (!b || !q || strcmp(b->pck_chain_pem, q->pck_chain_pem) != 0)
		return -EBADMSG;
	return tdx_bench_verify_raw(b->leaf_key, &b->ak, q);
}

int attest_tdx_bench_files(const struct attest_files *f, unsigned n, char **ret_msg)
{
	struct files_state s = {0};
	struct attest_tdx_options o;
	struct attest_tdx_quote *q = NULL;
	struct attest_tdx_bench *b = NULL;
	int r = prepare(f, &s, &o, ret_msg);
	if (r < 0)
		goto out;
	r = attest_tdx_quote_parse((const uint8_t *)s.quote, s.quote_len, &q, ret_msg);
	if (r < 0)
		goto out;
	r = attest_tdx_bench_new(q, &o, &b, ret_msg);
	for (unsigned i = 0; r == 0 && i < n; i++) {
		r = attest_tdx_bench_verify(b, q);
		if (r < 0)
			str_set_message(ret_msg, r, "verification %u failed", i);
	}
out:
	attest_tdx_bench_free(b);
	attest_tdx_quote_free(q);
	files_state_done(&s);
	return r;
}
