/* coordinator/snapshot.c: the immutable state the daemon serves with between two history
 * operations: state, latest hash, a parsed copy of the manifest, the CA and secrets by reference,
 * and the mesh listener's aTLS context whose verifier checks clients against that manifest. */
#include <pthread.h>

#include <openssl/err.h>

#include "coordapi/coordapi.h"
#include "coordinator/daemon.h"
#include "tls/tls.h"

static char *const mesh_alpn[] = {COORDAPI_ALPN, NULL};

static int ssl_idx = -1;
static pthread_once_t ssl_idx_once = PTHREAD_ONCE_INIT;

static void ssl_snapshot_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			      void *argp)
{
	coord_snapshot_unref(ptr);
}

static void ssl_idx_init(void)
{
	ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_snapshot_free);
}

int coord_snapshot_attach(SSL *ssl, struct coord_snapshot *s)
{
	if (!ssl || !s)
		return -EINVAL;
	if (pthread_once(&ssl_idx_once, ssl_idx_init) != 0 || ssl_idx < 0)
		return -ENOMEM;
	if (SSL_get_ex_data(ssl, ssl_idx))
		return -EEXIST;
	if (SSL_set_ex_data(ssl, ssl_idx, coord_snapshot_ref(s)) != 1) {
		coord_snapshot_unref(s);
		return -ENOMEM;
	}
	return 0;
}

struct coord_snapshot *coord_snapshot_ref(struct coord_snapshot *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

struct coord_snapshot *coord_snapshot_unref(struct coord_snapshot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return NULL;
	SSL_CTX_free(s->mesh_ctx);
	manifest_free(s->manifest);
	secrets_free(s->secrets);
	ca_free(s->ca);
	free(s->root_pem);
	free(s->mesh_pem);
	free(s);
	return NULL;
}

void coord_verifier_init(struct atls_verifier *v, const struct manifest *m, bool coordinators_only,
			 const char *test_anchor_pem, struct coord_crl_cache *crl)
{
	*v = (struct atls_verifier){
	    .test_anchor_pem = test_anchor_pem,
	    .snp_refs = m->snp.items,
	    .n_snp_refs = m->snp.n,
	    .tdx_refs = m->tdx,
	    .n_tdx_refs = m->n_tdx,
	    /* Handshakes run on the worker pool; a chain verified once per thread. */
	    .snp_cache_per_thread = true,
	    .get_snp_crl = crl ? coord_crl_get : NULL,
	    .userdata = crl,
	    .digest_rule =
		coordinators_only ? manifest_coordinator_digest_rule(m) : manifest_digest_rule(m),
	};
}

/* Without a manifest nothing may get a certificate: every client is refused once its evidence
 * has been checked. */
static enum attest_error refuse_inactive(void *userdata, SSL *ssl, const struct atls_peer *peer,
					 char **ret_msg)
{
	const struct coord_snapshot *s = userdata;
	*ret_msg = str_printf("the coordinator is %s: no manifest to verify against",
			      history_state_name(s->state));
	return ATTEST_E_POLICY_DIGEST;
}

/* The CA with every key and certificate referenced, not copied. */
static int ca_share(const struct ca *src, struct ca **ret)
{
	struct ca *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (EVP_PKEY_up_ref(src->root_key) == 1)
		c->root_key = src->root_key;
	if (EVP_PKEY_up_ref(src->mesh_key) == 1)
		c->mesh_key = src->mesh_key;
	if (X509_up_ref(src->root) == 1)
		c->root = src->root;
	if (X509_up_ref(src->intermediate) == 1)
		c->intermediate = src->intermediate;
	if (X509_up_ref(src->mesh) == 1)
		c->mesh = src->mesh;
	if (!c->root_key || !c->mesh_key || !c->root || !c->intermediate || !c->mesh) {
		ca_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

static int secrets_share(const struct secrets *src, struct secrets **ret)
{
	struct secrets *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s, src, sizeof(*s));
	s->signing_key = NULL;
	s->root_key = NULL;
	if (EVP_PKEY_up_ref(src->signing_key) == 1)
		s->signing_key = src->signing_key;
	if (EVP_PKEY_up_ref(src->root_key) == 1)
		s->root_key = src->root_key;
	if (!s->signing_key || !s->root_key) {
		secrets_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int coord_snapshot_new(struct history *h, const struct coord_mesh_config *mc,
		       struct coord_snapshot **ret, char **ret_msg)
{
	if (!h || !ret)
		return -EINVAL;
	_cleanup_(coord_snapshot_unrefp) struct coord_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	atomic_init(&s->refs, 1);
	s->state = history_get_state(h);
	s->has_latest = history_latest_hash(h, s->latest) == 0;
	const char *anchor = mc ? mc->test_anchor_pem : NULL;
	int r;
	if (s->state == HISTORY_ACTIVE) {
		const struct manifest *m = history_manifest(h);
		const struct secrets *sec = history_secrets(h);
		const struct ca *ca = history_ca(h);
		if (!m || !sec || !ca)
			return str_set_message(ret_msg, EUCLEAN, "active history without keys");
		_cleanup_free_ char *msg = NULL;
		r = manifest_parse(m->raw, m->raw_len, &s->manifest, &msg);
		if (r < 0)
			return str_set_message(ret_msg, r, "current manifest: %s",
					       msg ? msg : strerror(-r));
		if ((r = secrets_share(sec, &s->secrets)) < 0 || (r = ca_share(ca, &s->ca)) < 0 ||
		    (r = ca_cert_to_pem(s->ca->root, &s->root_pem)) < 0 ||
		    (r = ca_cert_to_pem(s->ca->mesh, &s->mesh_pem)) < 0)
			return str_set_message(ret_msg, r, "snapshot of the CA: %s", strerror(-r));
		coord_verifier_init(&s->verifier, s->manifest, false, anchor, mc ? mc->crl : NULL);
	} else {
		s->verifier = (struct atls_verifier){
		    .test_anchor_pem = anchor, .accept = refuse_inactive, .userdata = s};
	}
	if (mc && mc->issuer) {
		struct atls_config cfg = {
		    .issuer = mc->issuer, .verifier = &s->verifier, .alpn = mesh_alpn};
		_cleanup_free_ char *msg = NULL;
		r = atls_ctx_new_server(&cfg, &s->mesh_ctx, &msg);
		if (r < 0)
			return str_set_message(ret_msg, r, "mesh aTLS context: %s",
					       msg ? msg : strerror(-r));
	}
	*ret = TAKE_PTR(s);
	return 0;
}
