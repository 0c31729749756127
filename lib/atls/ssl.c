/* lib/atls: the OpenSSL 3 hooks of attested TLS (ATTESTATION.md 7, "OpenSSL hooks"): nonces in
 * the ClientHello ALPN list and the CertificateRequest CA list, attester certificates built per
 * connection in the certificate callbacks, and evidence verification in place of X.509 path
 * validation. TLS 1.3 only, no resumption: every connection attests afresh. */
#include <pthread.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/tls1.h>

#include "atls/atls-internal.h"

#define SESSION_ID_CONTEXT "atls"

struct ctx_state {
	struct atls_config c;
	bool is_server;
};

struct conn_state {
	const struct ctx_state *ctx;
	uint8_t own_nonce[ATLS_NONCE_SIZE]; /* sent to the peer, which must bind it */
	bool has_own_nonce;
	uint8_t peer_nonce[ATLS_NONCE_SIZE]; /* received: our evidence binds it */
	bool has_peer_nonce;
	bool attested; /* our certificate is in place */
	bool failed;
	struct atls_failure failure;
	char *message;
	bool has_verified;
	struct atls_verified verified;
};

static int ctx_idx = -1, conn_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void ctx_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			   void *argp)
{
	free(ptr);
}

static void conn_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	struct conn_state *s = ptr;
	if (!s)
		return;
	free(s->message);
	atls_verified_done(&s->verified);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

static void idx_init(void)
{
	ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_state_free);
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_state_free);
}

static int ensure_idx(void)
{
	if (pthread_once(&idx_once, idx_init) != 0 || ctx_idx < 0 || conn_idx < 0)
		return -ENOMEM;
	return 0;
}

static struct conn_state *conn_of(const SSL *ssl)
{
	return ssl && conn_idx >= 0 ? SSL_get_ex_data(ssl, conn_idx) : NULL;
}

/* Record the first failure of this side. */
static void fail(struct conn_state *s, enum attest_error code, int err, const char *fmt, ...)
    _printf_(4, 5);
static void fail(struct conn_state *s, enum attest_error code, int err, const char *fmt, ...)
{
	if (!s || s->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	s->message = str_vprintf(fmt, ap);
	va_end(ap);
	s->failed = true;
	s->failure = (struct atls_failure){
	    .code = code, .err = err < 0 ? err : -err, .message = s->message ? s->message : ""};
}

/* ---- attester ---- */

static int attest(SSL *ssl, struct conn_state *s)
{
	const struct atls_config *c = &s->ctx->c;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	if (c->key) {
		if (EVP_PKEY_up_ref(c->key) != 1)
			return -ENOMEM;
		key = c->key;
	} else if (tls_key_generate(&key) < 0) {
		ERR_clear_error();
		fail(s, ATTEST_OK, -EIO, "aTLS: key generation failed");
		return -EIO;
	}
	uint8_t report_data[ATLS_REPORT_DATA_SIZE];
	int r = atls_report_data(key, s->peer_nonce, report_data);
	if (r < 0) {
		fail(s, ATTEST_OK, r, "aTLS: the TLS key cannot be encoded");
		return r;
	}
	_cleanup_free_ uint8_t *evidence = NULL;
	_cleanup_free_ char *msg = NULL;
	size_t len = 0;
	r = c->issuer->get_evidence(c->issuer, report_data, &evidence, &len, &msg);
	if (r < 0) {
		fail(s, ATTEST_OK, r, "aTLS: evidence: %s", msg ? msg : strerror(-r));
		return r;
	}
	_cleanup_(X509_freep) X509 *cert = NULL;
	r = atls_cert_create(key, c->issuer->kind, evidence, len, atls_now_sec(), &cert);
	if (r < 0) {
		fail(s, ATTEST_OK, r, "aTLS: attester certificate: %s", strerror(-r));
		return r;
	}
	if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
		_cleanup_free_ char *detail = tls_error_string();
		fail(s, ATTEST_OK, -EIO, "aTLS: certificate not usable: %s", detail ? detail : "");
		return -EIO;
	}
	s->attested = true;
	return 0;
}

/* Server: the nonce must arrive before a certificate is chosen. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct conn_state *s = conn_of(ssl);
	if (!s) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (!s->ctx->c.issuer)
		return SSL_CLIENT_HELLO_SUCCESS;
	const unsigned char *ext = NULL;
	size_t len = 0;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
				      &len) != 1) {
		fail(s, ATTEST_E_FORMAT, -EPROTO, "aTLS: ClientHello has no ALPN (nonce missing)");
		*al = SSL_AD_MISSING_EXTENSION;
		return SSL_CLIENT_HELLO_ERROR;
	}
	int r = atls_alpn_find_nonce(ext, len, s->peer_nonce);
	if (r == -ENOENT) {
		fail(s, ATTEST_E_FORMAT, -EPROTO, "aTLS: ClientHello ALPN has no %s entry",
		     ATLS_ALPN_NONCE_PREFIX);
		*al = SSL_AD_MISSING_EXTENSION;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (r < 0) {
		fail(s, ATTEST_E_FORMAT, -EPROTO,
		     "aTLS: ClientHello ALPN nonce is malformed, repeated or of another version");
		*al = SSL_AD_ILLEGAL_PARAMETER;
		return SSL_CLIENT_HELLO_ERROR;
	}
	s->has_peer_nonce = true;
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int server_cert_cb(SSL *ssl, void *arg)
{
	struct conn_state *s = conn_of(ssl);
	if (!s)
		return 0;
	if (s->attested)
		return 1;
	if (!s->has_peer_nonce) {
		fail(s, ATTEST_E_FORMAT, -EPROTO, "aTLS: no client nonce to attest with");
		return 0;
	}
	return attest(ssl, s) == 0 ? 1 : 0;
}

/* Client: runs on CertificateRequest, whose CA list carries the server's nonce. */
static int client_cert_cb(SSL *ssl, void *arg)
{
	struct conn_state *s = conn_of(ssl);
	if (!s)
		return 0;
	if (s->attested)
		return 1;
	int r = atls_ca_list_find_nonce(SSL_get0_peer_CA_list(ssl), s->peer_nonce);
	if (r < 0) {
		fail(s, ATTEST_E_FORMAT, -EPROTO,
		     "aTLS: CertificateRequest CA list %s an aTLS nonce",
		     r == -ENOENT ? "lacks" : "has a malformed");
		return 0;
	}
	s->has_peer_nonce = true;
	return attest(ssl, s) == 0 ? 1 : 0;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	struct conn_state *s = conn_of(ssl);
	char *const *mine = s ? s->ctx->c.alpn : NULL;
	for (size_t i = 0; mine && mine[i]; i++) {
		size_t n = strlen(mine[i]);
		for (unsigned int off = 0; off < inlen;) {
			unsigned int l = in[off];
			if (l == 0 || l > inlen - off - 1)
				break;
			const unsigned char *p = in + off + 1;
			if (l == n && memcmp(p, mine[i], n) == 0 &&
			    !str_startswith(mine[i], ATLS_ALPN_PREFIX)) {
				*out = p;
				*outlen = (unsigned char)l;
				return SSL_TLSEXT_ERR_OK;
			}
			off += 1 + l;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ---- verifier ---- */

static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct conn_state *s = conn_of(ssl);
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	if (!s || !s->ctx->c.verifier || !leaf || !s->has_own_nonce) {
		fail(s, ATTEST_E_FORMAT, -EPROTO, "aTLS: nothing to verify the peer with");
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	atls_verified_done(&s->verified);
	s->has_verified = false;
	enum attest_error code = ATTEST_OK;
	_cleanup_free_ char *msg = NULL;
	int r = atls_cert_verify(leaf, s->own_nonce, s->ctx->c.verifier, ssl, &s->verified, &code,
				 &msg);
	if (r < 0) {
		fail(s, code, r, "%s", msg ? msg : strerror(-r));
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	s->has_verified = true;
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

/* ---- contexts ---- */

static int ctx_new(const struct atls_config *c, bool server, SSL_CTX **ret, char **ret_msg)
{
	if (!c || !ret)
		return -EINVAL;
	int r = ensure_idx();
	if (r < 0)
		return r;
	if (server && !c->issuer && (!c->cert || !c->cert_key))
		return str_set_message(ret_msg, EINVAL,
				       "aTLS server needs an issuer or a certificate and key");
	if (c->issuer && !c->issuer->get_evidence)
		return str_set_message(ret_msg, EINVAL, "aTLS issuer has no get_evidence");
	if (c->issuer && !atls_evidence_oid(c->issuer->kind))
		return str_set_message(ret_msg, EINVAL, "aTLS issuer has no known evidence kind");
	for (size_t i = 0; c->alpn && c->alpn[i]; i++) {
		size_t n = strlen(c->alpn[i]);
		if (n == 0 || n > 255 || str_startswith(c->alpn[i], ATLS_ALPN_PREFIX))
			return str_set_message(ret_msg, EINVAL, "invalid ALPN protocol \"%s\"",
					       c->alpn[i]);
	}
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx =
	    SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	struct ctx_state *st = calloc(1, sizeof(*st));
	if (!ctx || !st) {
		free(st);
		ERR_clear_error();
		return -ENOMEM;
	}
	st->c = *c;
	st->is_server = server;
	if (SSL_CTX_set_ex_data(ctx, ctx_idx, st) != 1) {
		free(st);
		return -ENOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		_cleanup_free_ char *d = tls_error_string();
		return str_set_message(ret_msg, EIO, "TLS 1.3 unavailable: %s", d ? d : "");
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (server) {
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
					       strlen(SESSION_ID_CONTEXT));
		SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
	}
	if (c->issuer) {
		SSL_CTX_set_cert_cb(ctx, server ? server_cert_cb : client_cert_cb, NULL);
	} else if (c->cert && c->cert_key) {
		if (SSL_CTX_use_certificate(ctx, c->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, c->cert_key) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			_cleanup_free_ char *d = tls_error_string();
			return str_set_message(ret_msg, EINVAL, "certificate and key: %s",
					       d ? d : "");
		}
	}
	if (c->verifier) {
		/* The server sets the mode per connection, with the nonce. */
		if (!server)
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_cert_verify_callback(ctx, verify_cb, NULL);
	}
	*ret = TAKE_PTR(ctx);
	return 0;
}

int atls_ctx_new_client(const struct atls_config *c, SSL_CTX **ret, char **ret_msg)
{
	return ctx_new(c, false, ret, ret_msg);
}

int atls_ctx_new_server(const struct atls_config *c, SSL_CTX **ret, char **ret_msg)
{
	return ctx_new(c, true, ret, ret_msg);
}

int atls_ssl_new(SSL_CTX *ctx, const char *server_name, SSL **ret)
{
	if (!ctx || !ret || ctx_idx < 0)
		return -EINVAL;
	const struct ctx_state *cs = SSL_CTX_get_ex_data(ctx, ctx_idx);
	if (!cs)
		return -EINVAL;
	_cleanup_(SSL_freep) SSL *ssl = SSL_new(ctx);
	struct conn_state *s = calloc(1, sizeof(*s));
	if (!ssl || !s) {
		free(s);
		ERR_clear_error();
		return -ENOMEM;
	}
	s->ctx = cs;
	if (SSL_set_ex_data(ssl, conn_idx, s) != 1) {
		free(s);
		return -ENOMEM;
	}
	const struct atls_config *c = &cs->c;
	int r;
	if (c->verifier && (r = atls_nonce_generate(s->own_nonce)) < 0)
		return r;
	s->has_own_nonce = c->verifier != NULL;
	if (!cs->is_server) {
		/* A client always sends a nonce: an attesting server refuses a ClientHello without
		 * one, even when this client does not check the evidence it gets. */
		uint8_t unused[ATLS_NONCE_SIZE];
		if (!c->verifier && (r = atls_nonce_generate(unused)) < 0)
			return r;
		_cleanup_free_ uint8_t *alpn = NULL;
		size_t len = 0;
		r = atls_alpn_build(c->verifier ? s->own_nonce : unused, c->alpn, &alpn, &len);
		if (r < 0)
			return r;
		/* SSL_set_alpn_protos returns 0 on success. */
		if (len > 0 && SSL_set_alpn_protos(ssl, alpn, (unsigned int)len) != 0)
			return -ENOMEM;
		if (server_name && SSL_set_tlsext_host_name(ssl, server_name) != 1) {
			ERR_clear_error();
			return -EINVAL;
		}
	} else if (c->verifier) {
		_cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
		r = atls_ca_nonce_name(s->own_nonce, &name);
		if (r < 0)
			return r;
		STACK_OF(X509_NAME) *sk = sk_X509_NAME_new_null();
		if (!sk || sk_X509_NAME_push(sk, name) <= 0) {
			sk_X509_NAME_free(sk);
			return -ENOMEM;
		}
		name = NULL;
		SSL_set_client_CA_list(ssl, sk);
		SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	*ret = TAKE_PTR(ssl);
	return 0;
}

const struct atls_failure *atls_ssl_failure(const SSL *ssl)
{
	struct conn_state *s = conn_of(ssl);
	return s && s->failed ? &s->failure : NULL;
}

const struct atls_peer *atls_ssl_peer(const SSL *ssl)
{
	struct conn_state *s = conn_of(ssl);
	return s && s->has_verified ? &s->verified.peer : NULL;
}

int atls_ssl_get_alpn(const SSL *ssl, char *buf, size_t size)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	if (!ssl || !buf || size == 0)
		return -EINVAL;
	SSL_get0_alpn_selected(ssl, &p, &n);
	if (n + 1 > size)
		return -ENAMETOOLONG;
	if (n)
		memcpy(buf, p, n);
	buf[n] = 0;
	return 0;
}
