/* adaptor/certs.c: the adaptor's TLS identity towards pod VMs (WIRE.md 4.3). Without operator
 * files, the CA and the self-signed client certificate are created once and kept in the data
 * directory, so pod VMs started before a restart still trust the restarted adaptor. */
#include <openssl/ssl.h>
#include <sys/stat.h>

#include "adaptor.h"
#include "tls/tls.h"

struct adaptor_certs {
	X509 *ca;
	EVP_PKEY *ca_key; /* NULL with an operator CA: no issuing */
	X509 *client;
	EVP_PKEY *client_key;
	char *client_pem;
	bool operator_ca;
	SSL_CTX *ctx;
};

struct adaptor_certs *certs_free(struct adaptor_certs *c)
{
	if (!c)
		return NULL;
	X509_free(c->ca);
	EVP_PKEY_free(c->ca_key);
	X509_free(c->client);
	EVP_PKEY_free(c->client_key);
	free(c->client_pem);
	SSL_CTX_free(c->ctx);
	free(c);
	return NULL;
}

DEFINE_CLEANUP(struct adaptor_certs, certs_free)

/* Load key+cert from dir/<name>.{key,crt}, or create them ("ca": the CA, else a client
 * certificate) and save them. */
static int load_or_create(const char *dir, const char *name, EVP_PKEY **ret_key, X509 **ret_cert,
			  char **ret_msg)
{
	_cleanup_free_ char *kp = str_printf("%s/%s.key", dir, name);
	_cleanup_free_ char *cp = str_printf("%s/%s.crt", dir, name);
	if (!kp || !cp)
		return -ENOMEM;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	int rk = tls_key_load(kp, &key);
	int rc = tls_cert_load(cp, &cert);
	if (rk >= 0 && rc >= 0 && X509_check_private_key(cert, key) == 1) {
		*ret_key = TAKE_PTR(key);
		*ret_cert = TAKE_PTR(cert);
		return 0;
	}
	if ((rk < 0 && rk != -ENOENT) || (rc < 0 && rc != -ENOENT) || (rk >= 0 && rc >= 0)) {
		*ret_msg = str_printf("%s/%s.{key,crt} exist but cannot be used (%s); remove them "
				      "to create a new identity (running pod VMs will then fail)",
				      dir, name,
				      rk < 0   ? strerror(-rk)
				      : rc < 0 ? strerror(-rc)
					       : "key does not match certificate");
		return -EINVAL;
	}
	EVP_PKEY_free(key);
	X509_free(cert);
	key = NULL;
	cert = NULL;
	int r = tls_key_generate(&key);
	if (r < 0)
		return r;
	if (str_eq(name, "ca"))
		r = tls_ca_create(key, &cert);
	else
		r = tls_cert_create_client(key, &cert);
	if (r < 0)
		return r;
	r = tls_key_save(kp, key);
	if (r < 0) {
		*ret_msg = str_printf("cannot write %s: %s", kp, strerror(-r));
		return r;
	}
	r = tls_cert_save(cp, cert);
	if (r < 0) {
		*ret_msg = str_printf("cannot write %s: %s", cp, strerror(-r));
		return r;
	}
	*ret_key = TAKE_PTR(key);
	*ret_cert = TAKE_PTR(cert);
	return 0;
}

int certs_init(const struct adaptor_settings *s, struct adaptor_certs **ret, char **ret_msg)
{
	_cleanup_(certs_freep) struct adaptor_certs *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int r;

	if (s->disable_tls) {
		*ret = TAKE_PTR(c);
		return 0;
	}
	if (!str_empty(s->cert_file) != !str_empty(s->cert_key)) {
		*ret_msg = strdup("-cert-file and -cert-key must be given together");
		return -EINVAL;
	}
	r = mkdir_p(s->data_dir, 0700);
	if (r < 0) {
		*ret_msg =
		    str_printf("cannot create data directory %s: %s", s->data_dir, strerror(-r));
		return r;
	}

	if (!str_empty(s->ca_cert_file)) {
		c->operator_ca = true;
		r = tls_cert_load(s->ca_cert_file, &c->ca);
		if (r < 0) {
			*ret_msg = str_printf("cannot load CA certificate %s: %s", s->ca_cert_file,
					      strerror(-r));
			return r;
		}
	} else {
		r = load_or_create(s->data_dir, "ca", &c->ca_key, &c->ca, ret_msg);
		if (r < 0)
			return r;
	}

	if (!str_empty(s->cert_file)) {
		r = tls_cert_load(s->cert_file, &c->client);
		if (r >= 0)
			r = tls_key_load(s->cert_key, &c->client_key);
		if (r < 0) {
			*ret_msg = str_printf("cannot load client certificate %s / key %s: %s",
					      s->cert_file, s->cert_key, strerror(-r));
			return r;
		}
	} else {
		r = load_or_create(s->data_dir, "client", &c->client_key, &c->client, ret_msg);
		if (r < 0)
			return r;
		/* The self-signed client certificate is the forwarder's trust anchor. */
		r = tls_cert_to_pem(c->client, &c->client_pem);
		if (r < 0)
			return r;
	}

	struct tls_settings ts = {.insecure_skip_verify = s->tls_skip_verify,
				  .cipher_suites = s->tls_cipher_suites};
	r = tls_parse_min_version(s->tls_min_version, &ts.min_version, ret_msg);
	if (r < 0)
		return r;
	r = tls_check_cipher_suites(s->tls_cipher_suites, ts.min_version, ret_msg);
	if (r < 0)
		return r;
	r = tls_ctx_new_client(&ts, c->client, c->client_key, c->ca, &c->ctx, ret_msg);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

bool certs_can_issue(const struct adaptor_certs *c)
{
	return c && c->ca_key;
}

int certs_issue_server(struct adaptor_certs *c, const char *instance_name, char **ret_key_pem,
		       char **ret_cert_pem)
{
	if (!certs_can_issue(c))
		return -EOPNOTSUPP;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	int r = tls_key_generate(&key);
	if (r < 0)
		return r;
	r = tls_cert_issue_server(c->ca, c->ca_key, key, instance_name, NULL, &cert);
	if (r < 0)
		return r;
	_cleanup_secret_ char *kp = NULL;
	_cleanup_free_ char *cp = NULL;
	r = tls_key_to_pem(key, &kp);
	if (r < 0)
		return r;
	r = tls_cert_to_pem(cert, &cp);
	if (r < 0)
		return r;
	*ret_key_pem = TAKE_PTR(kp);
	*ret_cert_pem = TAKE_PTR(cp);
	return 0;
}

const char *certs_client_ca_pem(const struct adaptor_certs *c)
{
	return c ? c->client_pem : NULL;
}

SSL_CTX *certs_client_ctx(const struct adaptor_certs *c)
{
	return c ? c->ctx : NULL;
}

const char *certs_server_name(const struct adaptor_certs *c, const char *instance_name)
{
	return c && c->operator_ca ? "podvm-server" : instance_name;
}
