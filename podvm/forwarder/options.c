/* The forwarder's command-line options and the resolution of its TLS material from flags and
 * apf.json (WIRE.md 4.2, 4.3). */
#include "forwarder.h"

#include <stddef.h>

#include "log/log.h"

/* ---- validators ---- */

static int validate_listen(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	_cleanup_free_ char *host = NULL;
	uint16_t port;
	if (!s || forwarder_parse_listen(s, &host, &port) < 0)
		return str_set_message(ret_msg, EINVAL,
				       "invalid listen address \"%s\": want host:port or :port",
				       s ? s : "");
	return 0;
}

static int validate_min_version(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	int v;
	if (s)
		return tls_parse_min_version(s, &v, ret_msg);
	return 0;
}

static int validate_positive_duration(const void *field, char **ret_msg)
{
	if (*(const int64_t *)field <= 0)
		return str_set_message(ret_msg, EINVAL, "must be a positive duration");
	return 0;
}

#define OPT(name, member) .flag = name, .offset = offsetof(struct forwarder_options, member)

const struct config_option forwarder_option_table[] = {
    {OPT("listen", listen), .type = CONFIG_STRING, .def = FORWARDER_DEFAULT_LISTEN,
     .help = "address to listen on for agent calls (host:port or :port)",
     .validate = validate_listen},
    {OPT("kata-agent-socket", kata_agent_socket), .type = CONFIG_STRING,
     .def = FORWARDER_DEFAULT_AGENT_SOCKET, .help = "Unix socket of the kata-agent"},
    {OPT("config", config), .type = CONFIG_STRING, .def = FORWARDER_DEFAULT_CONFIG,
     .help = "path of apf.json (pod network and TLS material)"},
    {OPT("pod-namespace", pod_namespace), .type = CONFIG_STRING, .def = FORWARDER_DEFAULT_POD_NETNS,
     .help = "network namespace given to containers (CreateContainer rewrite)"},
    {OPT("cert-file", cert_file), .type = CONFIG_STRING,
     .help = "server certificate file (PEM); takes precedence over apf.json"},
    {OPT("cert-key", cert_key), .type = CONFIG_STRING,
     .help = "server private key file (PEM); takes precedence over apf.json"},
    {OPT("ca-cert-file", ca_cert_file), .type = CONFIG_STRING,
     .help = "CA certificate file for client authentication; takes precedence over apf.json"},
    {OPT("disable-tls", disable_tls), .type = CONFIG_BOOL, .def = "false",
     .help = "serve plain ttRPC without TLS (tests only)"},
    {OPT("tls-min-version", tls_min_version), .type = CONFIG_STRING,
     .help = "minimum TLS version: VersionTLS12 or VersionTLS13 (default: apf.json, else 1.2)",
     .validate = validate_min_version},
    {OPT("tls-cipher-suites", tls_cipher_suites), .type = CONFIG_LIST,
     .help = "comma-separated IANA cipher suite names for TLS 1.2 (default: apf.json)"},
    {OPT("log-format", log_format), .type = CONFIG_STRING, .def = "text",
     .help = "log format: text or json", .validate = log_validate_format_option},
    {OPT("log-level", log_level), .type = CONFIG_STRING, .def = "info",
     .help = "log level: error, warning, info or debug", .validate = log_validate_level_option},
    {OPT("agent-dial-timeout", agent_dial_timeout_ns), .type = CONFIG_DURATION, .def = "150s",
     .help = "how long to retry connecting to the kata-agent socket",
     .validate = validate_positive_duration},
};
const size_t forwarder_n_options = ELEMENTSOF(forwarder_option_table);

void forwarder_options_done(struct forwarder_options *o)
{
	if (!o)
		return;
	config_free(forwarder_option_table, forwarder_n_options, o);
	*o = (struct forwarder_options){0};
}

/* ---- TLS material ---- */

static char **strv_copy(char *const *v)
{
	size_t n = strv_length(v);
	char **c = calloc(n + 1, sizeof(char *));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			strv_free(c);
			return NULL;
		}
	return c;
}

/* A failed load message from lib/tls, or the OpenSSL queue. */
static int load_fail(char **ret_msg, int r, const char *what)
{
	_cleanup_free_ char *detail = tls_error_string();
	if (ret_msg) {
		free(*ret_msg);
		*ret_msg = str_printf("%s: %s", what,
				      !str_empty(detail) ? detail : strerror(r < 0 ? -r : EINVAL));
	}
	return r < 0 ? r : -EINVAL;
}

static int load_identity(const struct forwarder_options *o, const struct apf_config *cfg,
			 struct forwarder_tls *t, char **ret_msg)
{
	int r;
	bool have_cert_flag = !str_empty(o->cert_file), have_key_flag = !str_empty(o->cert_key);
	if (have_cert_flag != have_key_flag)
		return str_set_message(ret_msg, EINVAL,
				       "-cert-file and -cert-key must be given together");
	if (have_cert_flag) {
		_cleanup_free_ char *what = NULL;
		if ((r = tls_cert_load(o->cert_file, &t->cert)) < 0) {
			what = str_printf("-cert-file %s", o->cert_file);
			return load_fail(ret_msg, r, what ? what : "-cert-file");
		}
		if ((r = tls_key_load(o->cert_key, &t->key)) < 0) {
			what = str_printf("-cert-key %s", o->cert_key);
			return load_fail(ret_msg, r, what ? what : "-cert-key");
		}
		return 0;
	}
	const char *cert = cfg ? cfg->tls_server_cert : NULL,
		   *key = cfg ? cfg->tls_server_key : NULL;
	if (!str_empty(cert) && (r = tls_cert_from_pem(cert, strlen(cert), &t->cert)) < 0)
		return load_fail(ret_msg, r, "apf.json tls-server-cert");
	if (!str_empty(key) && (r = tls_key_from_pem(key, strlen(key), &t->key)) < 0)
		return load_fail(ret_msg, r, "apf.json tls-server-key");
	return 0;
}

static int load_client_ca(const struct forwarder_options *o, const struct apf_config *cfg,
			  struct forwarder_tls *t, char **ret_msg)
{
	int r;
	if (!str_empty(o->ca_cert_file)) {
		if ((r = tls_cert_load(o->ca_cert_file, &t->client_ca)) < 0) {
			_cleanup_free_ char *what = str_printf("-ca-cert-file %s", o->ca_cert_file);
			return load_fail(ret_msg, r, what ? what : "-ca-cert-file");
		}
		return 0;
	}
	const char *ca = cfg ? cfg->tls_client_ca : NULL;
	if (!str_empty(ca) && (r = tls_cert_from_pem(ca, strlen(ca), &t->client_ca)) < 0)
		return load_fail(ret_msg, r, "apf.json tls-client-ca");
	return 0;
}

int forwarder_tls_load(const struct forwarder_options *o, const struct apf_config *cfg,
		       struct forwarder_tls *ret, char **ret_msg)
{
	struct forwarder_tls t = {0};
	int r;

	if ((r = load_identity(o, cfg, &t, ret_msg)) < 0 ||
	    (r = load_client_ca(o, cfg, &t, ret_msg)) < 0)
		goto fail;

	if (!t.cert && !t.key && !t.client_ca) {
		r = str_set_message(
		    ret_msg, EINVAL,
		    "no TLS material: give -cert-file, -cert-key and -ca-cert-file, "
		    "or tls-server-cert, tls-server-key and tls-client-ca in "
		    "apf.json (-disable-tls serves without TLS, for tests)");
		goto fail;
	}
	if (!t.cert || !t.key || !t.client_ca) {
		r = str_set_message(
		    ret_msg, EINVAL, "incomplete TLS material, missing:%s%s%s",
		    t.cert ? "" : " server certificate (-cert-file or tls-server-cert)",
		    t.key ? "" : " server key (-cert-key or tls-server-key)",
		    t.client_ca ? "" : " client CA (-ca-cert-file or tls-client-ca)");
		goto fail;
	}

	const char *min = !str_empty(o->tls_min_version) ? o->tls_min_version
			  : cfg                          ? cfg->tls_min_version
							 : NULL;
	if ((r = tls_parse_min_version(min ? min : "", &t.min_version, ret_msg)) < 0)
		goto fail;

	char *const *suites = strv_length(o->tls_cipher_suites) > 0 ? o->tls_cipher_suites
			      : cfg && strv_length(cfg->tls_cipher_suites) > 0
				  ? cfg->tls_cipher_suites
				  : NULL;
	if (suites) {
		if ((r = tls_check_cipher_suites(suites, t.min_version, ret_msg)) < 0)
			goto fail;
		if (!(t.cipher_suites = strv_copy(suites))) {
			r = -ENOMEM;
			goto fail;
		}
	}
	*ret = t;
	return 0;
fail:
	forwarder_tls_done(&t);
	*ret = t;
	return r;
}

void forwarder_tls_done(struct forwarder_tls *t)
{
	if (!t)
		return;
	X509_free(t->cert);
	EVP_PKEY_free(t->key);
	X509_free(t->client_ca);
	strv_free(t->cipher_suites);
	*t = (struct forwarder_tls){0};
}

int forwarder_tls_ctx_new(const struct forwarder_tls *t, SSL_CTX **ret, char **ret_msg)
{
	struct tls_settings s = {
	    .min_version = t->min_version,
	    .cipher_suites = t->cipher_suites,
	};
	return tls_ctx_new_server(&s, t->cert, t->key, t->client_ca, ret, ret_msg);
}
