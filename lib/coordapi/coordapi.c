/* lib/coordapi/coordapi.c: the blocking aTLS ttRPC client of the coordinator's APIs and the
 * HTTP attestation document (its JSON form and the report data that binds it to a nonce). */
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>

#include "coordapi/coordapi.h"
#include "tls/tls.h"
#include "ttrpc/ttrpc.h"
#include "userdata/userdata.h"

struct coordapi_conn {
	struct ttrpc_sync_client *client;
	SSL *ssl; /* owned by the client */
};

int coordapi_split_address(const char *address, char **ret_host, char **ret_port)
{
	const char *colon = address ? strrchr(address, ':') : NULL;
	if (!colon || colon == address || colon[1] == 0)
		return -EINVAL;
	uint16_t port;
	if (parse_port(colon + 1, &port) < 0)
		return -EINVAL;
	const char *h = address;
	size_t n = (size_t)(colon - address);
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return -EINVAL;
		h++;
		n -= 2;
	} else if (memchr(h, ':', n)) {
		return -EINVAL; /* a bare IPv6 literal needs brackets */
	}
	*ret_host = strndup(h, n);
	*ret_port = str_dup(colon + 1);
	if (!*ret_host || !*ret_port) {
		free(*ret_host);
		free(*ret_port);
		return -ENOMEM;
	}
	return 0;
}

/* A non-blocking connect bounded by the deadline. */
static int connect_one(const struct addrinfo *ai, int64_t deadline_ns, int *ret_fd)
{
	_cleanup_close_ int fd =
	    socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		for (;;) {
			int64_t left = deadline_ns - now_ns();
			if (left <= 0)
				return -ETIMEDOUT;
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int r = poll(&p, 1, (int)((left + 999999) / 1000000));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r > 0)
				break;
		}
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return -errno;
		if (err != 0)
			return -err;
	}
	*ret_fd = fd;
	fd = -EBADF;
	return 0;
}

int coordapi_connect(const char *address, SSL_CTX *ctx, int64_t timeout_ns,
		     struct coordapi_conn **ret, char **ret_msg)
{
	if (!ctx || !ret)
		return -EINVAL;
	_cleanup_free_ char *host = NULL, *port = NULL;
	int r = coordapi_split_address(address, &host, &port);
	if (r < 0) {
		if (ret_msg)
			*ret_msg = str_printf("invalid address \"%s\" (want HOST:PORT)",
					      address ? address : "");
		return r;
	}
	int64_t deadline =
	    now_ns() + (timeout_ns > 0 ? timeout_ns : ATLS_CLIENT_HANDSHAKE_TIMEOUT_NS);

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *list = NULL;
	int gai = getaddrinfo(host, port, &hints, &list);
	if (gai != 0) {
		if (ret_msg)
			*ret_msg = str_printf("resolve %s: %s", host, gai_strerror(gai));
		return -EHOSTUNREACH;
	}

	_cleanup_free_ char *why = NULL;
	r = -EHOSTUNREACH;
	for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
		int fd = -EBADF;
		free(why);
		why = NULL;
		r = connect_one(ai, deadline, &fd);
		if (r < 0) {
			why = str_printf("connect %s: %s", address, strerror(-r));
			continue;
		}
		SSL *ssl = NULL;
		r = atls_ssl_new(ctx, host, &ssl);
		if (r < 0) {
			safe_close(fd);
			why = str_printf("TLS: %s", strerror(-r));
			break;
		}
		char *msg = NULL;
		r = atls_handshake(ssl, fd, false, deadline, &msg);
		if (r < 0) {
			why = str_printf("%s: %s", address, msg ? msg : strerror(-r));
			free(msg);
			SSL_free(ssl);
			safe_close(fd);
			/* A refused peer is the answer; another address would be the same server. */
			if (r == -EACCES)
				break;
			continue;
		}
		struct coordapi_conn *c = calloc(1, sizeof(*c));
		if (!c || (r = ttrpc_sync_client_new(fd, ssl, &c->client)) < 0) {
			free(c);
			SSL_free(ssl);
			safe_close(fd);
			freeaddrinfo(list);
			return r < 0 ? r : -ENOMEM;
		}
		c->ssl = ssl;
		freeaddrinfo(list);
		*ret = c;
		return 0;
	}
	freeaddrinfo(list);
	if (ret_msg) {
		*ret_msg = why;
		why = NULL;
	}
	return r;
}

struct coordapi_conn *coordapi_conn_free(struct coordapi_conn *c)
{
	if (!c)
		return NULL;
	ttrpc_sync_client_free(c->client);
	free(c);
	return NULL;
}

const struct atls_peer *coordapi_conn_peer(const struct coordapi_conn *c)
{
	return c ? atls_ssl_peer(c->ssl) : NULL;
}

X509 *coordapi_conn_peer_cert(const struct coordapi_conn *c)
{
	return c ? SSL_get0_peer_certificate(c->ssl) : NULL;
}

int coordapi_call(struct coordapi_conn *c, const char *service, const char *method,
		  const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
		  int64_t timeout_ns, ProtobufCMessage **ret, char **ret_msg)
{
	if (!c || !req || !resp_desc || !ret)
		return -EINVAL;
	size_t len = protobuf_c_message_get_packed_size(req);
	_cleanup_free_ uint8_t *payload = len ? malloc(len) : NULL;
	if (len && !payload)
		return -ENOMEM;
	if (len)
		protobuf_c_message_pack(req, payload);
	_cleanup_free_ uint8_t *answer = NULL;
	size_t answer_len = 0;
	int r = ttrpc_sync_client_call(c->client, service, method, payload, len,
				       timeout_ns > 0 ? timeout_ns : COORDAPI_CALL_TIMEOUT_NS,
				       &answer, &answer_len, ret_msg);
	if (r != 0) {
		if (r < 0 && ret_msg && !*ret_msg)
			*ret_msg = str_printf("%s/%s: %s", service, method, strerror(-r));
		return r;
	}
	if (answer_len > COORDAPI_MAX_RESPONSE_BYTES)
		return -EFBIG;
	ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, answer_len, answer);
	if (!m) {
		if (ret_msg)
			*ret_msg = str_printf("%s/%s: malformed answer", service, method);
		return -EBADMSG;
	}
	*ret = m;
	return 0;
}

/* ---- the HTTP attestation document ---- */

void coordapi_state_done(struct coordapi_state *s)
{
	if (!s)
		return;
	free(s->root_ca_pem);
	free(s->mesh_ca_pem);
	free(s->evidence);
	*s = (struct coordapi_state){};
}

/* SHA-256 of the DER of the one certificate in pem; zeros for NULL. */
static int pem_cert_sha256(const char *pem, uint8_t ret[32])
{
	memset(ret, 0, 32);
	if (!pem)
		return 0;
	_cleanup_(X509_freep) X509 *x = NULL;
	if (tls_cert_from_pem_single(pem, strlen(pem), &x) < 0)
		return -EINVAL;
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	if (n <= 0)
		return -EINVAL;
	int r = EVP_Digest(der, (size_t)n, ret, NULL, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
	OPENSSL_free(der);
	return r;
}

int coordapi_state_report_data(const struct coordapi_state *s, const uint8_t nonce[ATLS_NONCE_SIZE],
			       uint8_t ret[ATLS_REPORT_DATA_SIZE])
{
	if (!s || !nonce || strnlen(s->state, sizeof(s->state)) >= sizeof(s->state))
		return -EINVAL;
	uint8_t name[16] = {};
	memcpy(name, s->state, strlen(s->state));
	uint8_t zero[32] = {}, root[32], mesh[32];
	int r = pem_cert_sha256(s->root_ca_pem, root);
	if (r >= 0)
		r = pem_cert_sha256(s->mesh_ca_pem, mesh);
	if (r < 0)
		return r;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	bool ok = EVP_DigestInit_ex(md, EVP_sha512(), NULL) == 1 &&
		  EVP_DigestUpdate(md, COORDAPI_STATE_LABEL, strlen(COORDAPI_STATE_LABEL)) == 1 &&
		  EVP_DigestUpdate(md, nonce, ATLS_NONCE_SIZE) == 1 &&
		  EVP_DigestUpdate(md, name, sizeof(name)) == 1 &&
		  EVP_DigestUpdate(md, s->has_latest ? s->latest : zero, 32) == 1 &&
		  EVP_DigestUpdate(md, s->has_manifest ? s->manifest : zero, 32) == 1 &&
		  EVP_DigestUpdate(md, root, 32) == 1 && EVP_DigestUpdate(md, mesh, 32) == 1 &&
		  EVP_DigestFinal_ex(md, ret, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -EIO;
}

static int set_hex(json_t *o, const char *key, bool has, const uint8_t v[32])
{
	char hex[65] = "";
	if (has)
		hex_encode_into(v, 32, hex);
	return json_object_set_new(o, key, json_string(hex)) == 0 ? 0 : -ENOMEM;
}

int coordapi_state_format(const struct coordapi_state *s, char **ret)
{
	const char *oid = atls_evidence_oid(s->kind);
	if (!oid || !s->evidence)
		return -EINVAL;
	_cleanup_free_ char *b64 = NULL;
	int r = userdata_base64_encode(s->evidence, s->evidence_len, &b64);
	if (r < 0)
		return r;
	_cleanup_(json_decrefp) json_t *o = json_object();
	if (!o || json_object_set_new(o, "State", json_string(s->state)) != 0 ||
	    set_hex(o, "Latest", s->has_latest, s->latest) < 0 ||
	    set_hex(o, "Manifest", s->has_manifest, s->manifest) < 0 ||
	    json_object_set_new(o, "RootCA", json_string(s->root_ca_pem ? s->root_ca_pem : "")) ||
	    json_object_set_new(o, "MeshCA", json_string(s->mesh_ca_pem ? s->mesh_ca_pem : "")) ||
	    json_object_set_new(o, "EvidenceOID", json_string(oid)) ||
	    json_object_set_new(o, "Evidence", json_string(b64)))
		return -ENOMEM;
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

static int fail(char **ret_msg, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_msg, const char *fmt, ...)
{
	if (ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		char *m = NULL;
		if (vasprintf(&m, fmt, ap) < 0)
			m = NULL;
		va_end(ap);
		*ret_msg = m;
	}
	return -EBADMSG;
}

static const char *const state_keys[] = {"State",  "Latest",      "Manifest", "RootCA",
					 "MeshCA", "EvidenceOID", "Evidence"};

static int get_hash(json_t *o, const char *key, bool *has, uint8_t out[32], char **ret_msg)
{
	const char *v = json_string_value(json_object_get(o, key));
	if (!v[0]) {
		*has = false;
		return 0;
	}
	if (hex_decode_exact(v, strlen(v), out, 32) < 0)
		return fail(ret_msg, "%s: not 64 hex digits", key);
	*has = true;
	return 0;
}

int coordapi_state_parse(const char *json, size_t len, struct coordapi_state *ret, char **ret_msg)
{
	*ret = (struct coordapi_state){};
	if (len > COORDAPI_STATE_MAX_BYTES)
		return fail(ret_msg, "attestation document larger than %u bytes",
			    (unsigned)COORDAPI_STATE_MAX_BYTES);
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o))
		return fail(ret_msg, "attestation document: %s", o ? "not an object" : jerr.text);
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		bool known = false;
		for (size_t i = 0; i < ELEMENTSOF(state_keys); i++)
			known |= str_eq(key, state_keys[i]);
		if (!known)
			return fail(ret_msg, "attestation document: unknown key \"%s\"", key);
		if (!json_is_string(v))
			return fail(ret_msg, "attestation document: %s is not a string", key);
	}
	for (size_t i = 0; i < ELEMENTSOF(state_keys); i++)
		if (!json_object_get(o, state_keys[i]))
			return fail(ret_msg, "attestation document: %s missing", state_keys[i]);

	struct coordapi_state s = {};
	const char *state = json_string_value(json_object_get(o, "State"));
	if (!str_eq(state, "active") && !str_eq(state, "stale") && !str_eq(state, "uninitialized"))
		return fail(ret_msg, "attestation document: unknown State \"%s\"", state);
	memcpy(s.state, state, strlen(state) + 1);
	int r = get_hash(o, "Latest", &s.has_latest, s.latest, ret_msg);
	if (r >= 0)
		r = get_hash(o, "Manifest", &s.has_manifest, s.manifest, ret_msg);
	if (r < 0)
		return r;
	const char *oid = json_string_value(json_object_get(o, "EvidenceOID"));
	for (int k = ATLS_EVIDENCE_SNP; k <= ATLS_EVIDENCE_SNP_SIM; k++)
		if (str_eq(oid, atls_evidence_oid(k)))
			s.kind = k;
	if (s.kind == ATLS_EVIDENCE_NONE)
		return fail(ret_msg, "attestation document: unknown EvidenceOID \"%s\"", oid);
	const char *root = json_string_value(json_object_get(o, "RootCA"));
	const char *mesh = json_string_value(json_object_get(o, "MeshCA"));
	const char *ev = json_string_value(json_object_get(o, "Evidence"));
	s.root_ca_pem = root[0] ? str_dup(root) : NULL;
	s.mesh_ca_pem = mesh[0] ? str_dup(mesh) : NULL;
	if ((root[0] && !s.root_ca_pem) || (mesh[0] && !s.mesh_ca_pem)) {
		coordapi_state_done(&s);
		return -ENOMEM;
	}
	r = userdata_base64_decode(ev, strlen(ev), ATLS_EVIDENCE_MAX_BYTES, &s.evidence,
				   &s.evidence_len);
	if (r < 0) {
		coordapi_state_done(&s);
		return fail(ret_msg,
			    "attestation document: Evidence is not base64 of at most %u "
			    "bytes",
			    (unsigned)ATLS_EVIDENCE_MAX_BYTES);
	}
	*ret = s;
	return 0;
}
