/* lib/attest: SEV-SNP verification from files (`peerpodctl attest`, tests): the report, VEK,
 * chain, CRL and reference values, with missing certificates taken from an offline cache laid out
 * as ATTESTATION.md 2 describes (<dir>/amd/<P>/...). */
#include <stdio.h>
#include <sys/stat.h>

#include "attest/snp-internal.h"

struct loaded {
	char *report;
	size_t report_len;
	char *vek;
	size_t vek_len;
	char *chain;
	size_t chain_len;
	char *crl;
	size_t crl_len;
	char *anchor;
	struct attest_snp_references refs;
};

static void loaded_done(struct loaded *l)
{
	free(l->report);
	free(l->vek);
	free(l->chain);
	free(l->crl);
	free(l->anchor);
	attest_snp_references_done(&l->refs);
}

static int read_opt(const char *path, char **ret, size_t *ret_len, char **ret_msg)
{
	int r = read_file_bounded(path, ATTEST_SNP_FILE_MAX_BYTES, ret, ret_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot read %s: %s", path, strerror(-r));
	return 0;
}

/* A cache file, silently absent. */
static void read_cached(const char *dir, const char *product, const char *name, char **ret,
			size_t *ret_len)
{
	_cleanup_free_ char *p = str_printf("%s/amd/%s/%s", dir, product, name);
	if (p && !*ret && read_file_bounded(p, ATTEST_SNP_FILE_MAX_BYTES, ret, ret_len) < 0)
		*ret = NULL;
}

static void from_cache(const struct attest_files *f, struct loaded *l)
{
	struct attest_snp_report rep;
	if (attest_snp_report_parse((const uint8_t *)l->report, l->report_len, &rep, NULL) < 0)
		return;
	bool vlek = rep.signing_key == 1;
	enum attest_snp_product cands[2] = {rep.cpuid_product, ATTEST_SNP_PRODUCT_UNKNOWN};
	if (rep.version < 3) {
		cands[0] = ATTEST_SNP_MILAN;
		cands[1] = ATTEST_SNP_GENOA;
	}
	for (size_t i = 0; i < 2 && cands[i]; i++) {
		const char *pn = attest_snp_product_name(cands[i]);
		bool turin = cands[i] == ATTEST_SNP_TURIN;
		bool took_vek = false;
		if (!l->vek && !vlek) {
			struct attest_snp_tcb t;
			attest_snp_tcb_decode(rep.reported_tcb, turin, &t);
			_cleanup_free_ char *hw = hex_encode(rep.chip_id, turin ? 8 : 64);
			_cleanup_free_ char *name =
			    hw ? str_printf("vcek/%s-%u-%u-%u-%u-%u.der", hw, t.fmc, t.bootloader,
					    t.tee, t.snp, t.microcode)
			       : NULL;
			if (name)
				read_cached(f->collateral_dir, pn, name, &l->vek, &l->vek_len);
			took_vek = l->vek != NULL;
		}
		if (!took_vek && rep.version < 3 && !f->vek)
			continue; /* the VEK of the other product line may be there */
		if (!f->chain)
			read_cached(f->collateral_dir, pn,
				    vlek ? "vlek_cert_chain.pem" : "cert_chain.pem", &l->chain,
				    &l->chain_len);
		read_cached(f->collateral_dir, pn, vlek ? "vlek_crl.der" : "crl.der", &l->crl,
			    &l->crl_len);
		break;
	}
}

static int load(const struct attest_files *f, struct loaded *l, char **ret_msg)
{
	int r;
	if (!f->evidence)
		return str_set_message(ret_msg, EINVAL, "no evidence file");
	if ((r = read_opt(f->evidence, &l->report, &l->report_len, ret_msg)) < 0)
		return r;
	if (f->vek && (r = read_opt(f->vek, &l->vek, &l->vek_len, ret_msg)) < 0)
		return r;
	if (f->chain && (r = read_opt(f->chain, &l->chain, &l->chain_len, ret_msg)) < 0)
		return r;
	if (f->trust_anchor) {
		if (str_startswith(f->trust_anchor, "-----BEGIN")) {
			l->anchor = strdup(f->trust_anchor);
			if (!l->anchor)
				return -ENOMEM;
		} else {
			size_t n;
			if ((r = read_opt(f->trust_anchor, &l->anchor, &n, ret_msg)) < 0)
				return r;
		}
	}
	/* A chain file in KDS order may also hold the VEK (routex vcek-chain-*.pem). */
	if (!l->vek && l->chain) {
		_cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(l->chain, (int)l->chain_len);
		for (int i = 0; b && i < 8 && !l->vek; i++) {
			_cleanup_(X509_freep) X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
			if (!x)
				break;
			char cn[32] = "";
			X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof(cn));
			if (!str_eq(cn, "SEV-VCEK") && !str_eq(cn, "SEV-VLEK"))
				continue;
			unsigned char *der = NULL;
			int n = i2d_X509(x, &der);
			if (n > 0) {
				l->vek = malloc((size_t)n);
				if (l->vek) {
					memcpy(l->vek, der, (size_t)n);
					l->vek_len = (size_t)n;
				}
			}
			OPENSSL_free(der);
		}
	}
	if (f->collateral_dir)
		from_cache(f, l);
	if (f->reference) {
		_cleanup_free_ char *text = NULL;
		size_t n;
		if ((r = read_opt(f->reference, &text, &n, ret_msg)) < 0)
			return r;
		if ((r = attest_snp_references_parse(text, n, &l->refs, ret_msg)) < 0)
			return r;
		if (l->refs.n == 0)
			return str_set_message(ret_msg, EINVAL, "%s has no snp entries",
					       f->reference);
	}
	return 0;
}

int attest_snp_verify_files_cached(const struct attest_files *f, struct attest_snp_cache *cache,
				   struct attest_result *ret, char **ret_msg)
{
	struct loaded l = {};
	int r = load(f, &l, ret_msg);
	if (r < 0) {
		loaded_done(&l);
		return r;
	}
	struct attest_snp_options o = {
	    .now_sec = f->now_sec,
	    .vek = (const uint8_t *)l.vek,
	    .vek_len = l.vek_len,
	    .chain = (const uint8_t *)l.chain,
	    .chain_len = l.chain_len,
	    .trust_anchor_pem = l.anchor,
	    .crl = (const uint8_t *)l.crl,
	    .crl_len = l.crl_len,
	    .skip_crl = f->skip_crl,
	    .refs = l.refs.items,
	    .n_refs = l.refs.n,
	    .report_data = f->report_data,
	    .cache = cache,
	};
	r = attest_snp_verify((const uint8_t *)l.report, l.report_len, &o, ret, NULL);
	loaded_done(&l);
	if (r < 0)
		return str_set_message(ret_msg, r, "verification failed: %s", strerror(-r));
	return 0;
}

int attest_snp_verify_files(const struct attest_files *f, struct attest_result *ret, char **ret_msg)
{
	return attest_snp_verify_files_cached(f, NULL, ret, ret_msg);
}
