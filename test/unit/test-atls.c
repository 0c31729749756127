/* Unit tests for lib/atls: the evidence container, the binding, the nonce transports, the
 * attester certificate, verification with simulated and real SNP evidence, and TLS 1.3
 * handshakes over a socketpair with one or both sides attesting, and their refusals. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "atls/atls.h"
#include "tls/tls.h"

static struct atls_test_pki *pki;

static int setup_pki(void **state)
{
	char *msg = NULL;
	int r = atls_test_pki_new(time(NULL), &pki, &msg);
	if (r < 0)
		print_error("test PKI: %s\n", msg ? msg : "?");
	free(msg);
	return r < 0 ? -1 : 0;
}

static int teardown_pki(void **state)
{
	atls_test_pki_free(pki);
	pki = NULL;
	return 0;
}

static const struct atls_sim_params sim_default = {
    .measurement = {0x11, 0x22, 0x33},
    .host_data = {0xab, 0xcd, 0xef},
};

/* ---- container ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

static int decode(const uint8_t *d, size_t n)
{
	struct atls_evidence e;
	char *msg = NULL;
	int r = atls_evidence_decode(d, n, &e, &msg);
	if (r < 0)
		assert_non_null(msg);
	free(msg);
	return r;
}

static void test_container(void **state)
{
	struct atls_evidence e = {};
	const char *report = "report-bytes", *vek = "vek";
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_SNP_REPORT, report, strlen(report)), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_VEK, vek, 3), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_AMD_CRL, "", 0), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_VEK, vek, 3), -EEXIST);
	assert_int_equal(atls_evidence_add(&e, 6, vek, 3), -EINVAL);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_TDX_QUOTE, vek, ATLS_EVIDENCE_MAX_BYTES),
			 -EMSGSIZE);

	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(atls_evidence_encode(&e, &buf, &len), 0);
	assert_int_equal(len, 8 + 8 + 12 + 8 + 3 + 8);
	assert_memory_equal(buf, "ATEV\x01\x00\x03\x00", 8);
	/* first entry: type 1, zero, length 12 */
	assert_memory_equal(buf + 8, "\x01\x00\x00\x00\x0c\x00\x00\x00", 8);

	struct atls_evidence d;
	assert_int_equal(atls_evidence_decode(buf, len, &d, NULL), 0);
	assert_int_equal(d.n, 3);
	size_t n = 0;
	const uint8_t *v = atls_evidence_get(&d, ATLS_ENTRY_SNP_REPORT, &n);
	assert_non_null(v);
	assert_int_equal(n, strlen(report));
	assert_memory_equal(v, report, n);
	v = atls_evidence_get(&d, ATLS_ENTRY_VEK, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "vek", 3);
	assert_non_null(atls_evidence_get(&d, ATLS_ENTRY_AMD_CRL, &n));
	assert_int_equal(n, 0);
	assert_null(atls_evidence_get(&d, ATLS_ENTRY_ARK, &n));

	/* Rejects. */
	uint8_t *m = malloc(len + 16);
	assert_non_null(m);
	memcpy(m, buf, len);
	m[0] = 'X';
	assert_int_equal(decode(m, len), -EBADMSG); /* magic */
	memcpy(m, buf, len);
	put16(m + 4, 2);
	assert_int_equal(decode(m, len), -EBADMSG); /* version */
	memcpy(m, buf, len);
	put16(m + 8, 6);
	assert_int_equal(decode(m, len), -EBADMSG); /* unknown type */
	memcpy(m, buf, len);
	put16(m + 8 + 8 + 12, ATLS_ENTRY_SNP_REPORT);
	assert_int_equal(decode(m, len), -EBADMSG); /* duplicate type */
	memcpy(m, buf, len);
	put16(m + 10, 1);
	assert_int_equal(decode(m, len), -EBADMSG); /* reserved field */
	memcpy(m, buf, len);
	put32(m + 12, 13);
	assert_int_equal(decode(m, len), -EBADMSG); /* length beyond the next header */
	memcpy(m, buf, len);
	put32(m + 12, 0xffffffffu);
	assert_int_equal(decode(m, len), -EBADMSG); /* length beyond the end */
	memcpy(m, buf, len);
	put16(m + 6, 4);
	assert_int_equal(decode(m, len), -EBADMSG); /* count beyond the data */
	memcpy(m, buf, len);
	put16(m + 6, 2);
	assert_int_equal(decode(m, len), -EBADMSG); /* trailing bytes */
	memcpy(m, buf, len);
	m[len] = 0;
	assert_int_equal(decode(m, len + 1), -EBADMSG); /* trailing byte */
	assert_int_equal(decode(m, len - 1), -EBADMSG); /* truncated */
	assert_int_equal(decode(m, 4), -EBADMSG);
	memcpy(m, buf, len);
	put16(m + 6, 200);
	assert_int_equal(decode(m, len), -EBADMSG); /* count above the types */
	free(m);
	free(buf);

	/* The size bound holds for decoding too. */
	size_t big = ATLS_EVIDENCE_MAX_BYTES + 1;
	uint8_t *h = calloc(1, big);
	assert_non_null(h);
	memcpy(h, "ATEV\x01\x00\x01\x00\x10\x00\x00\x00", 12);
	put32(h + 12, (uint32_t)(big - 16));
	assert_int_equal(decode(h, big), -EBADMSG);
	put32(h + 12, (uint32_t)(big - 17));
	assert_int_equal(decode(h, big - 1), 0); /* exactly 64 KiB is fine */
	free(h);

	/* An empty container round trips. */
	struct atls_evidence empty = {};
	assert_int_equal(atls_evidence_encode(&empty, &buf, &len), 0);
	assert_int_equal(len, 8);
	assert_int_equal(decode(buf, len), 0);
	free(buf);
}

/* ---- binding and nonces ---- */

static void test_binding(void **state)
{
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	assert_int_equal(tls_key_generate(&k1), 0);
	assert_int_equal(tls_key_generate(&k2), 0);
	uint8_t nonce[32], other[32], rd[64], want[64];
	assert_int_equal(atls_nonce_generate(nonce), 0);
	memcpy(other, nonce, 32);
	other[31] ^= 1;

	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k1, &der);
	assert_true(n > 0);
	uint8_t *in = malloc((size_t)n + 32);
	memcpy(in, der, (size_t)n);
	memcpy(in + n, nonce, 32);
	unsigned int olen = 0;
	assert_int_equal(EVP_Digest(in, (size_t)n + 32, want, &olen, EVP_sha512(), NULL), 1);
	free(in);
	OPENSSL_free(der);

	assert_int_equal(atls_report_data(k1, nonce, rd), 0);
	assert_memory_equal(rd, want, 64);
	assert_int_equal(atls_report_data(k1, other, rd), 0);
	assert_memory_not_equal(rd, want, 64);
	assert_int_equal(atls_report_data(k2, nonce, rd), 0);
	assert_memory_not_equal(rd, want, 64);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

/* An ALPN extension body from entries. */
static size_t alpn_ext(uint8_t *out, const char *const *entries)
{
	size_t off = 2;
	for (size_t i = 0; entries[i]; i++) {
		size_t n = strlen(entries[i]);
		out[off++] = (uint8_t)n;
		memcpy(out + off, entries[i], n);
		off += n;
	}
	out[0] = (uint8_t)((off - 2) >> 8);
	out[1] = (uint8_t)(off - 2);
	return off;
}

static void test_alpn_nonce(void **state)
{
	uint8_t nonce[32], got[32], ext[1024];
	for (size_t i = 0; i < 32; i++)
		nonce[i] = (uint8_t)(0xa0 + i);
	char entry[ATLS_ALPN_NONCE_LEN + 1];
	atls_alpn_nonce_format(nonce, entry);
	assert_int_equal(strlen(entry), 78);
	assert_string_equal(entry,
			    "atls:v1:nonce:a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9"
			    "babbbcbdbebf");

	/* The wire list for SSL_set_alpn_protos: nonce entry first, then protocols. */
	char *protos[] = {"h2", "http/1.1", NULL};
	uint8_t *wire = NULL;
	size_t wlen = 0;
	assert_int_equal(atls_alpn_build(nonce, protos, &wire, &wlen), 0);
	assert_int_equal(wlen, 1 + 78 + 1 + 2 + 1 + 8);
	assert_int_equal(wire[0], 78);
	assert_memory_equal(wire + 1, entry, 78);
	ext[0] = (uint8_t)(wlen >> 8);
	ext[1] = (uint8_t)wlen;
	memcpy(ext + 2, wire, wlen);
	free(wire);
	assert_int_equal(atls_alpn_find_nonce(ext, wlen + 2, got), 0);
	assert_memory_equal(got, nonce, 32);
	char *bad[] = {"atls:mine", NULL};
	assert_int_equal(atls_alpn_build(nonce, bad, &wire, &wlen), -EINVAL);

	/* Position does not matter. */
	size_t n = alpn_ext(ext, (const char *const[]){"h2", entry, NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), 0);
	assert_memory_equal(got, nonce, 32);
	/* Missing. */
	n = alpn_ext(ext, (const char *const[]){"h2", NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -ENOENT);
	/* Another version. */
	char v2[80];
	memcpy(v2, entry, sizeof(entry));
	v2[6] = '2';
	n = alpn_ext(ext, (const char *const[]){v2, "h2", NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	n = alpn_ext(ext, (const char *const[]){entry, "atls:v2:other", NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	/* Upper-case hex, short, two nonces. */
	char upper[80];
	memcpy(upper, entry, sizeof(entry));
	upper[20] = 'A';
	n = alpn_ext(ext, (const char *const[]){upper, NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	char shortn[80];
	memcpy(shortn, entry, 77);
	shortn[77] = 0;
	n = alpn_ext(ext, (const char *const[]){shortn, NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	n = alpn_ext(ext, (const char *const[]){entry, entry, NULL});
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	/* Malformed lists. */
	n = alpn_ext(ext, (const char *const[]){entry, NULL});
	ext[1]++;
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	ext[1]--;
	ext[2] = 79;
	assert_int_equal(atls_alpn_find_nonce(ext, n, got), -EBADMSG);
	assert_int_equal(atls_alpn_find_nonce(ext, 1, got), -EBADMSG);
	const uint8_t zero_entry[] = {0, 1, 0};
	assert_int_equal(atls_alpn_find_nonce(zero_entry, 3, got), -EBADMSG);
}

static STACK_OF(X509_NAME) * names_of(X509_NAME *a, X509_NAME *b)
{
	STACK_OF(X509_NAME) *sk = sk_X509_NAME_new_null();
	assert_non_null(sk);
	if (a)
		sk_X509_NAME_push(sk, a);
	if (b)
		sk_X509_NAME_push(sk, b);
	return sk;
}

static X509_NAME *cn_name(const char *cn, const char *org)
{
	X509_NAME *n = X509_NAME_new();
	if (org)
		X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_ASC,
					   (const unsigned char *)org, -1, -1, 0);
	X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC, (const unsigned char *)cn, -1,
				   -1, 0);
	return n;
}

static void test_ca_nonce(void **state)
{
	uint8_t nonce[32], got[32];
	assert_int_equal(atls_nonce_generate(nonce), 0);
	X509_NAME *name = NULL;
	assert_int_equal(atls_ca_nonce_name(nonce, &name), 0);
	char cn[64];
	assert_int_equal(X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)), 44);
	assert_int_equal(cn[43], '=');
	STACK_OF(X509_NAME) *sk = names_of(X509_NAME_dup(name), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), 0);
	assert_memory_equal(got, nonce, 32);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);

	/* Two DNs. */
	sk = names_of(X509_NAME_dup(name), X509_NAME_dup(name));
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -EBADMSG);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	/* An extra attribute. */
	sk = names_of(cn_name(cn, "x"), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -EBADMSG);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	/* Not base64 / not canonical / wrong length. */
	char bad[64];
	memcpy(bad, cn, sizeof(cn));
	bad[5] = '*';
	sk = names_of(cn_name(bad, NULL), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -EBADMSG);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	static const char noncanon[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=";
	sk = names_of(cn_name(noncanon, NULL), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -EBADMSG);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	static const char canon[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	sk = names_of(cn_name(canon, NULL), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), 0);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	sk = names_of(cn_name("atls", NULL), NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -EBADMSG);
	sk_X509_NAME_pop_free(sk, X509_NAME_free);
	/* Empty. */
	sk = names_of(NULL, NULL);
	assert_int_equal(atls_ca_list_find_nonce(sk, got), -ENOENT);
	sk_X509_NAME_free(sk);
	assert_int_equal(atls_ca_list_find_nonce(NULL, got), -ENOENT);
	X509_NAME_free(name);
}

/* ---- certificate ---- */

static void test_cert_shape(void **state)
{
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	const uint8_t ev[] = "ATEV\x01\x00\x00\x00";
	int64_t now = 1750000000;
	X509 *x = NULL;
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP_SIM, ev, 8, now, &x), 0);

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	assert_int_equal(ASN1_STRING_length(sn), 16);
	assert_int_equal(ASN1_STRING_type(sn), V_ASN1_INTEGER); /* positive */
	assert_true(ASN1_STRING_get0_data(sn)[0] < 0x80);
	char cn[16];
	assert_int_equal(
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)), 4);
	assert_string_equal(cn, "atls");
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 1);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), (time_t)(now - 7200)), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), (time_t)(now + 7200)), 0);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(x, key), 1);
	assert_int_equal(X509_get_ext_count(x), 1);
	X509_EXTENSION *ext = X509_get_ext(x, 0);
	char oid[64];
	OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
	assert_string_equal(oid, "1.3.9901.2.99");
	assert_int_equal(X509_EXTENSION_get_critical(ext), 0);
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	assert_int_equal(ASN1_STRING_length(v), 8);
	assert_memory_equal(ASN1_STRING_get0_data(v), ev, 8);

	enum atls_evidence_kind kind;
	const uint8_t *got;
	size_t len;
	assert_int_equal(atls_cert_get_evidence(x, &kind, &got, &len), 0);
	assert_int_equal(kind, ATLS_EVIDENCE_SNP_SIM);
	assert_int_equal(len, 8);

	/* A second evidence extension, or an unknown one under the arc, is refused. */
	ASN1_OBJECT *o2 = OBJ_txt2obj("1.3.9901.2.1", 1);
	ASN1_OCTET_STRING *oct = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(oct, ev, 8);
	X509_EXTENSION *e2 = X509_EXTENSION_create_by_OBJ(NULL, o2, 0, oct);
	X509 *y = X509_dup(x);
	X509_add_ext(y, e2, -1);
	assert_int_equal(atls_cert_get_evidence(y, &kind, &got, &len), -EBADMSG);
	X509_free(y);
	X509_EXTENSION_free(e2);
	ASN1_OBJECT_free(o2);
	o2 = OBJ_txt2obj("1.3.9901.2.3", 1);
	e2 = X509_EXTENSION_create_by_OBJ(NULL, o2, 0, oct);
	y = X509_new();
	X509_add_ext(y, e2, -1);
	assert_int_equal(atls_cert_get_evidence(y, &kind, &got, &len), -EBADMSG);
	X509_free(y);
	y = X509_new();
	assert_int_equal(atls_cert_get_evidence(y, &kind, &got, &len), -ENOENT);
	X509_free(y);
	X509_EXTENSION_free(e2);
	ASN1_OBJECT_free(o2);
	ASN1_OCTET_STRING_free(oct);
	X509_free(x);

	/* The other OIDs. */
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP, ev, 8, now, &x), 0);
	OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(X509_get_ext(x, 0)), 1);
	assert_string_equal(oid, "1.3.9901.2.1");
	X509_free(x);
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_TDX, ev, 8, now, &x), 0);
	OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(X509_get_ext(x, 0)), 1);
	assert_string_equal(oid, "1.3.9901.2.2");
	X509_free(x);
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_NONE, ev, 8, now, &x), -EINVAL);
	uint8_t *huge = calloc(1, ATLS_EVIDENCE_MAX_BYTES + 1);
	assert_int_equal(
	    atls_cert_create(key, ATLS_EVIDENCE_SNP, huge, ATLS_EVIDENCE_MAX_BYTES + 1, now, &x),
	    -EMSGSIZE);
	free(huge);
	EVP_PKEY_free(key);
}

/* ---- verification without TLS ---- */

struct accept_rule {
	bool check_measurement;
	uint8_t measurement[48];
	bool check_digest;
	char digest_hex[65];
	unsigned calls;
	struct atls_peer last;
};

static enum attest_error accept_cb(void *userdata, SSL *ssl, const struct atls_peer *peer,
				   char **ret_msg)
{
	struct accept_rule *a = userdata;
	a->calls++;
	a->last = *peer;
	if (a->check_measurement && memcmp(peer->measurement, a->measurement, 48) != 0) {
		*ret_msg = str_dup("measurement not in the reference values");
		return ATTEST_E_MEASUREMENT;
	}
	if (a->check_digest && !str_eq(peer->policy_digest_hex, a->digest_hex)) {
		*ret_msg = str_dup("not a key of Policies");
		return ATTEST_E_POLICY_DIGEST;
	}
	return ATTEST_OK;
}

/* An attester certificate from an issuer for key and nonce at now. */
static X509 *attester_cert(struct atls_issuer *is, EVP_PKEY *key, const uint8_t nonce[32],
			   int64_t now)
{
	uint8_t rd[64];
	assert_int_equal(atls_report_data(key, nonce, rd), 0);
	uint8_t *ev = NULL;
	size_t len = 0;
	char *msg = NULL;
	assert_int_equal(is->get_evidence(is, rd, &ev, &len, &msg), 0);
	X509 *x = NULL;
	assert_int_equal(atls_cert_create(key, is->kind, ev, len, now, &x), 0);
	free(ev);
	return x;
}

static enum attest_error verify_code(X509 *x, const uint8_t nonce[32],
				     const struct atls_verifier *v, char **ret_msg)
{
	struct atls_verified out = {};
	enum attest_error code = ATTEST_OK;
	char *msg = NULL;
	int r = atls_cert_verify(x, nonce, v, NULL, &out, &code, &msg);
	if (r == 0) {
		assert_null(msg);
		atls_verified_done(&out);
		return ATTEST_OK;
	}
	assert_int_equal(r, -EACCES);
	assert_non_null(msg);
	assert_int_not_equal(code, ATTEST_OK);
	if (ret_msg)
		*ret_msg = msg;
	else
		free(msg);
	return code;
}

static void test_verify_sim(void **state)
{
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &is), 0);
	assert_int_equal(is->kind, ATLS_EVIDENCE_SNP_SIM);
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	uint8_t nonce[32], other[32];
	assert_int_equal(atls_nonce_generate(nonce), 0);
	assert_int_equal(atls_nonce_generate(other), 0);
	int64_t now = time(NULL);
	X509 *x = attester_cert(is, key, nonce, now);

	/* The evidence: a verifiable version-3 Milan report with the chosen fields. */
	enum atls_evidence_kind kind;
	const uint8_t *ev;
	size_t evlen;
	assert_int_equal(atls_cert_get_evidence(x, &kind, &ev, &evlen), 0);
	struct atls_evidence e;
	assert_int_equal(atls_evidence_decode(ev, evlen, &e, NULL), 0);
	assert_int_equal(e.n, 5);
	size_t rlen = 0;
	const uint8_t *rep = atls_evidence_get(&e, ATLS_ENTRY_SNP_REPORT, &rlen);
	struct attest_snp_report r;
	assert_int_equal(attest_snp_report_parse(rep, rlen, &r, NULL), 0);
	assert_int_equal(r.version, 3);
	assert_int_equal(r.cpuid_product, ATTEST_SNP_MILAN);
	assert_memory_equal(r.measurement, sim_default.measurement, 48);
	assert_memory_equal(r.host_data, sim_default.host_data, 32);
	uint8_t rd[64];
	assert_int_equal(atls_report_data(key, nonce, rd), 0);
	assert_memory_equal(r.report_data, rd, 64);

	struct accept_rule rule = {};
	struct atls_verifier v = {
	    .test_anchor_pem = pki->ark_pem, .accept = accept_cb, .userdata = &rule};
	struct atls_verified out = {};
	enum attest_error code;
	char *msg = NULL;
	assert_int_equal(atls_cert_verify(x, nonce, &v, NULL, &out, &code, &msg), 0);
	assert_int_equal(rule.calls, 1);
	assert_int_equal(out.peer.kind, ATLS_EVIDENCE_SNP_SIM);
	assert_string_equal(out.peer.policy_digest_hex,
			    "abcdef0000000000000000000000000000000000000000000000000000000000");
	assert_memory_equal(out.peer.measurement, sim_default.measurement, 48);
	assert_non_null(out.peer.snp);
	assert_ptr_equal(out.peer.snp, &out.snp);
	assert_memory_equal(out.peer.snp->chip_id, pki->chip_id, 64);
	atls_verified_done(&out);

	/* The verifier's own nonce differs: the report data does not match. */
	assert_int_equal(verify_code(x, other, &v, NULL), ATTEST_E_REPORT_DATA);
	/* Without the test anchor the simulated OID is unknown. */
	struct atls_verifier plain = {};
	assert_int_equal(verify_code(x, nonce, &plain, &msg), ATTEST_E_FORMAT);
	assert_non_null(strstr(msg, "1.3.9901.2.99"));
	msg = mfree(msg);
	/* Expired, not yet valid. */
	struct atls_verifier later = v;
	later.now_sec = now + 2 * 3600 + 60;
	assert_int_equal(verify_code(x, nonce, &later, &msg), ATTEST_E_CHAIN);
	assert_non_null(strstr(msg, "expired"));
	msg = mfree(msg);
	later.now_sec = now - 2 * 3600 - 60;
	assert_int_equal(verify_code(x, nonce, &later, NULL), ATTEST_E_CHAIN);
	/* The digest rule of the verifier. */
	uint8_t digests[1][32] = {{0x01}};
	struct atls_verifier ruled = v;
	ruled.digest_rule = (struct attest_digest_rule){.digests = digests, .n = 1};
	assert_int_equal(verify_code(x, nonce, &ruled, NULL), ATTEST_E_POLICY_DIGEST);
	memcpy(digests[0], sim_default.host_data, 32);
	assert_int_equal(verify_code(x, nonce, &ruled, NULL), ATTEST_OK);
	/* The accept callback refuses. */
	rule.check_measurement = true;
	assert_int_equal(verify_code(x, nonce, &v, &msg), ATTEST_E_MEASUREMENT);
	assert_non_null(strstr(msg, "measurement not in the reference values"));
	msg = mfree(msg);
	memcpy(rule.measurement, sim_default.measurement, 48);
	rule.check_digest = true;
	str_copy(rule.digest_hex, sizeof(rule.digest_hex), "00");
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_E_POLICY_DIGEST);
	/* Reference values through lib/attest: a different TrustedMeasurement. */
	struct attest_snp_reference ref = {
	    .product = ATTEST_SNP_MILAN,
	    .policy_allowed = ATTEST_SNP_POLICY_SMT,
	    .platform_allowed = ATTEST_SNP_PLATFORM_SMT_EN | ATTEST_SNP_PLATFORM_TSME_EN,
	};
	struct atls_verifier refd = {
	    .test_anchor_pem = pki->ark_pem, .snp_refs = &ref, .n_snp_refs = 1};
	assert_int_equal(verify_code(x, nonce, &refd, NULL), ATTEST_E_MEASUREMENT);
	memcpy(ref.measurement, sim_default.measurement, 48);
	assert_int_equal(verify_code(x, nonce, &refd, NULL), ATTEST_OK);

	/* The test anchor never applies to the real SNP OID. */
	X509 *y = NULL;
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP, ev, evlen, now, &y), 0);
	assert_int_equal(verify_code(y, nonce, &v, &msg), ATTEST_E_CHAIN);
	assert_non_null(strstr(msg, "pinned"));
	msg = mfree(msg);
	X509_free(y);
	/* A certificate signed by another key than its own. */
	EVP_PKEY *k2 = NULL;
	assert_int_equal(tls_key_generate(&k2), 0);
	y = X509_dup(x);
	assert_true(X509_sign(y, k2, EVP_sha256()) > 0);
	assert_int_equal(verify_code(y, nonce, &v, NULL), ATTEST_E_CHAIN);
	X509_free(y);
	EVP_PKEY_free(k2);

	/* Without the CRL in the evidence: missing unless the verifier supplies or skips it. */
	struct atls_issuer *nocrl = NULL;
	struct atls_sim_params p = sim_default;
	p.omit_crl = true;
	assert_int_equal(atls_issuer_new_sim(pki, &p, &nocrl), 0);
	y = attester_cert(nocrl, key, nonce, now);
	struct atls_verifier skip = {.test_anchor_pem = pki->ark_pem};
	assert_int_equal(verify_code(y, nonce, &skip, NULL), ATTEST_E_CRL);
	skip.skip_crl = true;
	assert_int_equal(verify_code(y, nonce, &skip, NULL), ATTEST_OK);
	X509_free(y);
	atls_issuer_free(nocrl);

	X509_free(x);
	EVP_PKEY_free(key);
	atls_issuer_free(is);
}

static void test_verify_debug_policy(void **state)
{
	struct atls_sim_params p = sim_default;
	p.policy = 0x30000 | ATTEST_SNP_POLICY_DEBUG;
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &p, &is), 0);
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	uint8_t nonce[32];
	assert_int_equal(atls_nonce_generate(nonce), 0);
	X509 *x = attester_cert(is, key, nonce, time(NULL));
	struct atls_verifier v = {.test_anchor_pem = pki->ark_pem};
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_E_DEBUG);
	X509_free(x);
	EVP_PKEY_free(key);
	atls_issuer_free(is);
}

/* The repository's attestation vectors, beside the repository (NULL when absent). */
static char *vector_path(const char *rel)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	for (int i = 0; i < 8; i++) {
		char *slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			return NULL;
		*slash = 0;
		char *probe = str_printf("%s/lib/atls/atls.h", buf);
		bool found = access(probe, R_OK) == 0;
		free(probe);
		if (found) {
			char *p = str_printf("%s/../shared/attestation-vectors/%s", buf, rel);
			if (access(p, R_OK) == 0)
				return p;
			free(p);
			return NULL;
		}
	}
	return NULL;
}

static char *slurp(const char *path, size_t *len)
{
	char *s = NULL;
	assert_int_equal(read_file_bounded(path, 1 << 20, &s, len), 0);
	return s;
}

static uint8_t *pem_to_der(const char *pem, size_t len, int *ret_len)
{
	X509 *x = NULL;
	assert_int_equal(tls_cert_from_pem(pem, len, &x), 0);
	uint8_t *der = NULL;
	*ret_len = i2d_X509(x, &der);
	X509_free(x);
	return der;
}

/* Real AMD evidence through 1.3.9901.2.1: the built-in roots verify chain and signature, so the
 * first failure is the report data (the vector is not bound to our key); under the simulated OID
 * the production chain fails against the test anchor. A production ARK as test anchor is refused. */
static void test_verify_real_snp(void **state)
{
	char *dir = vector_path("snp-milan-v2-virtee/report.bin");
	if (!dir) {
		print_message("attestation vectors not found: skipping\n");
		skip();
	}
	free(dir);
	char *rp = vector_path("snp-milan-v2-virtee/report.bin");
	char *vp = vector_path("snp-milan-v2-virtee/vcek.der");
	char *ap = vector_path("snp-milan-v2-virtee/ask.pem");
	char *kp = vector_path("snp-milan-v2-virtee/ark.pem");
	assert_non_null(rp);
	assert_non_null(vp);
	assert_non_null(ap);
	assert_non_null(kp);
	size_t rl, vl, al, kl;
	char *report = slurp(rp, &rl), *vcek = slurp(vp, &vl), *ask = slurp(ap, &al),
	     *ark = slurp(kp, &kl);
	int ask_len, ark_len;
	uint8_t *ask_der = pem_to_der(ask, al, &ask_len), *ark_der = pem_to_der(ark, kl, &ark_len);
	struct atls_evidence e = {};
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_SNP_REPORT, report, rl), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_VEK, vcek, vl), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_ASK, ask_der, (size_t)ask_len), 0);
	assert_int_equal(atls_evidence_add(&e, ATLS_ENTRY_ARK, ark_der, (size_t)ark_len), 0);
	uint8_t *ev = NULL;
	size_t evlen = 0;
	assert_int_equal(atls_evidence_encode(&e, &ev, &evlen), 0);

	int64_t when = 1780272000; /* 2026-06-01 */
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	uint8_t nonce[32] = {};
	X509 *x = NULL;
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP, ev, evlen, when, &x), 0);
	struct atls_verifier v = {.now_sec = when, .skip_crl = true};
	char *msg = NULL;
	assert_int_equal(verify_code(x, nonce, &v, &msg), ATTEST_E_REPORT_DATA);
	msg = mfree(msg);
	/* The test anchor does not change the real OID's roots. */
	v.test_anchor_pem = pki->ark_pem;
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_E_REPORT_DATA);
	X509_free(x);
	/* Under the simulated OID the real chain meets the test anchor only: refused. */
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP_SIM, ev, evlen, when, &x), 0);
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_E_CHAIN);
	/* A production ARK configured as the test anchor is refused. */
	v.test_anchor_pem = ark;
	assert_int_equal(verify_code(x, nonce, &v, &msg), ATTEST_E_CHAIN);
	assert_non_null(strstr(msg, "production"));
	free(msg);
	X509_free(x);

	EVP_PKEY_free(key);
	free(ev);
	OPENSSL_free(ask_der);
	OPENSSL_free(ark_der);
	free(report);
	free(vcek);
	free(ask);
	free(ark);
	free(rp);
	free(vp);
	free(ap);
	free(kp);
}

/* Real TDX evidence with its collateral in the container through 1.3.9901.2.2: quote,
 * collateral and chains verify, so the first failure is the report data. */
static void test_verify_real_tdx(void **state)
{
	static const struct {
		uint16_t type;
		const char *file;
	} files[] = {
	    {ATLS_ENTRY_TDX_QUOTE, "quote.bin"},
	    {ATLS_ENTRY_TCB_INFO, "collateral_tcb_info.json"},
	    {ATLS_ENTRY_TCB_INFO_CHAIN, "collateral_tcb_info_issuer_chain.pem"},
	    {ATLS_ENTRY_QE_IDENTITY, "collateral_qe_identity.json"},
	    {ATLS_ENTRY_QE_IDENTITY_CHAIN, "collateral_qe_identity_issuer_chain.pem"},
	    {ATLS_ENTRY_PCK_CRL, "collateral_pck_crl.der"},
	    {ATLS_ENTRY_PCK_CRL_CHAIN, "collateral_pck_crl_issuer_chain.pem"},
	    {ATLS_ENTRY_ROOT_CA_CRL, "collateral_root_ca_crl.der"},
	};
	char *probe = vector_path("tdx-v4-phala/quote.bin");
	if (!probe) {
		print_message("attestation vectors not found: skipping\n");
		skip();
	}
	free(probe);
	char *data[ELEMENTSOF(files)];
	struct atls_evidence e = {};
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "tdx-v4-phala/%s", files[i].file);
		char *path = vector_path(rel);
		assert_non_null(path);
		size_t len;
		data[i] = slurp(path, &len);
		free(path);
		assert_int_equal(atls_evidence_add(&e, files[i].type, data[i], len), 0);
	}
	uint8_t *ev = NULL;
	size_t evlen = 0;
	assert_int_equal(atls_evidence_encode(&e, &ev, &evlen), 0);
	int64_t when = 1751328000; /* 2025-07-01 */
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	uint8_t nonce[32] = {};
	X509 *x = NULL;
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_TDX, ev, evlen, when, &x), 0);
	struct atls_verifier v = {.now_sec = when};
	char *msg = NULL;
	assert_int_equal(verify_code(x, nonce, &v, &msg), ATTEST_E_REPORT_DATA);
	assert_non_null(strstr(msg, "TDX"));
	free(msg);
	X509_free(x);
	/* An SNP OID over a TDX container is malformed evidence. */
	assert_int_equal(atls_cert_create(key, ATLS_EVIDENCE_SNP, ev, evlen, when, &x), 0);
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_E_FORMAT);
	X509_free(x);
	EVP_PKEY_free(key);
	free(ev);
	for (size_t i = 0; i < ELEMENTSOF(files); i++)
		free(data[i]);
}

/* ---- the test PKI on disk ---- */

static void test_pki_files(void **state)
{
	char tmpl[] = "/tmp/test-atls-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	char *sub = str_printf("%s/pki", dir);
	char *msg = NULL;
	assert_int_equal(atls_test_pki_save(pki, sub, &msg), 0);
	static const char *const files[] = {"ark.pem",      "ask.pem",     "cert_chain.pem",
					    "vcek.pem",     "vcek.der",    "crl.der",
					    "vcek-key.pem", "ark-key.pem", "ask-key.pem"};
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		char *p = str_printf("%s/%s", sub, files[i]);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		if (str_endswith(files[i], "key.pem"))
			assert_int_equal(st.st_mode & 0777, 0600);
		free(p);
	}
	struct atls_test_pki *loaded = NULL;
	assert_int_equal(atls_test_pki_load(sub, &loaded, &msg), 0);
	assert_memory_equal(loaded->chip_id, pki->chip_id, 64);
	assert_int_equal(loaded->reported_tcb, pki->reported_tcb);
	assert_string_equal(loaded->ark_pem, pki->ark_pem);
	assert_null(loaded->ark_key);

	/* A loaded PKI issues evidence the original anchor accepts. */
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(loaded, &sim_default, &is), 0);
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	uint8_t nonce[32];
	assert_int_equal(atls_nonce_generate(nonce), 0);
	X509 *x = attester_cert(is, key, nonce, time(NULL));
	struct atls_verifier v = {.test_anchor_pem = pki->ark_pem};
	assert_int_equal(verify_code(x, nonce, &v, NULL), ATTEST_OK);
	/* The files verify with lib/attest's file interface too. */
	X509_free(x);
	EVP_PKEY_free(key);
	atls_issuer_free(is);
	atls_test_pki_free(loaded);

	/* A missing file is a clear error. */
	char *p = str_printf("%s/vcek-key.pem", sub);
	unlink(p);
	free(p);
	assert_int_equal(atls_test_pki_load(sub, &loaded, &msg), -ENOENT);
	assert_non_null(strstr(msg, "vcek-key.pem"));
	free(msg);
	assert_int_equal(rm_rf(dir), 0);
	free(sub);
}

/* ---- hardware issuers: absent here ---- */

static void test_device_absent(void **state)
{
	char tmpl[] = "/tmp/test-atls-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	char *tsm = str_printf("%s/no-tsm", dir), *dev = str_printf("%s/no-sev-guest", dir);
	struct atls_device_options o = {.tsm_dir = tsm, .sev_guest_path = dev};
	struct atls_issuer *is = NULL;
	char *msg = NULL;
	assert_int_equal(atls_issuer_new_snp(&o, &is, &msg), -ENODEV);
	assert_non_null(strstr(msg, "SEV-SNP"));
	assert_non_null(strstr(msg, tsm));
	msg = mfree(msg);
	assert_int_equal(atls_issuer_new_tdx(&o, &is, &msg), -ENODEV);
	assert_non_null(strstr(msg, "TDX"));
	msg = mfree(msg);

	/* A configfs-tsm directory that is not one: the report fails with a message. */
	assert_int_equal(mkdir(tsm, 0700), 0);
	assert_int_equal(atls_issuer_new_tdx(&o, &is, &msg), 0);
	uint8_t rd[64] = {}, *ev = NULL;
	size_t len = 0;
	assert_true(is->get_evidence(is, rd, &ev, &len, &msg) < 0);
	assert_non_null(strstr(msg, "configfs-tsm"));
	msg = mfree(msg);
	atls_issuer_free(is);
	assert_int_equal(rm_rf(dir), 0);
	free(tsm);
	free(dev);
}

static void test_cert_table(void **state)
{
	/* Two entries (VCEK in string byte order, ARK in mixed-endian order) and the terminator. */
	uint8_t t[3 * 24 + 8] = {};
	static const uint8_t vcek_guid[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
					      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
	static const uint8_t ark_guid_le[16] = {0xa4, 0x06, 0xb4, 0xc0, 0x03, 0xa8, 0x52, 0x49,
						0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae};
	memcpy(t, vcek_guid, 16);
	put32(t + 16, 72);
	put32(t + 20, 5);
	memcpy(t + 24, ark_guid_le, 16);
	put32(t + 40, 77);
	put32(t + 44, 3);
	memcpy(t + 72, "VCEKxARK", 8);
	struct atls_evidence e = {};
	assert_int_equal(atls_snp_cert_table_parse(t, sizeof(t), &e), 0);
	size_t n;
	const uint8_t *v = atls_evidence_get(&e, ATLS_ENTRY_VEK, &n);
	assert_non_null(v);
	assert_int_equal(n, 5);
	assert_memory_equal(v, "VCEKx", 5);
	v = atls_evidence_get(&e, ATLS_ENTRY_ARK, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "ARK", 3);
	/* Out of bounds, no terminator. */
	struct atls_evidence e2 = {};
	put32(t + 44, 4);
	assert_int_equal(atls_snp_cert_table_parse(t, sizeof(t), &e2), -EBADMSG);
	put32(t + 44, 3);
	struct atls_evidence e3 = {};
	assert_int_equal(atls_snp_cert_table_parse(t, 48, &e3), -EBADMSG);
}

/* ---- TLS handshakes ---- */

struct side {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	bool server;
	bool plain;   /* a plain OpenSSL connection (SSL_new), not made by atls_ssl_new */
	bool ok;      /* handshake and one byte each way */
	bool connect; /* SSL_connect/accept returned 1 */
	int reason;   /* OpenSSL's reason of the last error (an alert received) */
};

static void *side_run(void *arg)
{
	struct side *s = arg;
	if (s->plain)
		assert_non_null(s->ssl = SSL_new(s->ctx));
	else
		assert_int_equal(atls_ssl_new(s->ctx, s->server ? NULL : "localhost", &s->ssl), 0);
	SSL_set_fd(s->ssl, s->fd);
	int r = s->server ? SSL_accept(s->ssl) : SSL_connect(s->ssl);
	s->connect = r == 1;
	if (s->connect) {
		/* TLS 1.3: a client is done before the server has checked its certificate; one
		 * byte each way shows both sides accepted; the client reads first, so a refusal of
		 * its certificate arrives as the alert and not as a failed write. */
		char c = 'x';
		if (s->server)
			s->ok = SSL_write(s->ssl, &c, 1) == 1 && SSL_read(s->ssl, &c, 1) == 1;
		else
			s->ok = SSL_read(s->ssl, &c, 1) == 1 && SSL_write(s->ssl, &c, 1) == 1;
	}
	s->reason = ERR_GET_REASON(ERR_peek_last_error());
	ERR_clear_error();
	/* Let the other side see the end instead of waiting. */
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static void handshake(struct side *client, struct side *server)
{
	int fds[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	client->fd = fds[0];
	server->fd = fds[1];
	client->server = false;
	server->server = true;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, side_run, server), 0);
	side_run(client);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(fds[0]);
	close(fds[1]);
}

static void sides_done(struct side *a, struct side *b)
{
	SSL_free(a->ssl);
	SSL_free(b->ssl);
	a->ssl = b->ssl = NULL;
}

static SSL_CTX *client_ctx(const struct atls_config *c)
{
	SSL_CTX *ctx = NULL;
	char *msg = NULL;
	assert_int_equal(atls_ctx_new_client(c, &ctx, &msg), 0);
	return ctx;
}

static SSL_CTX *server_ctx(const struct atls_config *c)
{
	SSL_CTX *ctx = NULL;
	char *msg = NULL;
	assert_int_equal(atls_ctx_new_server(c, &ctx, &msg), 0);
	return ctx;
}

static char *protos[] = {"h2", NULL};

/* One refused handshake against the attesting server; returns the client's failure code. */
static enum attest_error refused_by_client(struct atls_issuer *is, EVP_PKEY *key,
					   const struct atls_verifier *v, char **ret_msg)
{
	struct atls_config sc = {.issuer = is, .key = key, .alpn = protos};
	struct atls_config cc = {.verifier = v, .alpn = protos};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_false(cli.connect);
	assert_false(srv.ok);
	/* The attester learns of the refusal through a certificate alert. */
	assert_int_equal(srv.reason, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE);
	assert_null(atls_ssl_peer(cli.ssl));
	const struct atls_failure *f = atls_ssl_failure(cli.ssl);
	assert_non_null(f);
	assert_non_null(f->message);
	enum attest_error code = f->code;
	if (ret_msg)
		*ret_msg = str_dup(f->message);
	sides_done(&cli, &srv);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);
	return code;
}

static void test_tls_server_attests(void **state)
{
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &is), 0);
	struct accept_rule rule = {.check_measurement = true};
	memcpy(rule.measurement, sim_default.measurement, 48);
	struct atls_verifier v = {
	    .test_anchor_pem = pki->ark_pem, .accept = accept_cb, .userdata = &rule};
	char *sp[] = {"http/1.1", "h2", NULL};
	struct atls_config sc = {.issuer = is, .alpn = sp};
	struct atls_config cc = {.verifier = &v, .alpn = protos};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_int_equal(SSL_version(cli.ssl), TLS1_3_VERSION);
	assert_int_equal(rule.calls, 1);
	const struct atls_peer *p = atls_ssl_peer(cli.ssl);
	assert_non_null(p);
	assert_int_equal(p->kind, ATLS_EVIDENCE_SNP_SIM);
	assert_memory_equal(p->measurement, sim_default.measurement, 48);
	assert_string_equal(p->policy_digest_hex,
			    "abcdef0000000000000000000000000000000000000000000000000000000000");
	assert_non_null(p->snp);
	assert_null(atls_ssl_failure(cli.ssl));
	assert_null(atls_ssl_failure(srv.ssl));
	assert_null(atls_ssl_peer(srv.ssl)); /* the client did not attest */
	/* The application protocol was chosen, never the nonce. */
	char alpn[64];
	assert_int_equal(atls_ssl_get_alpn(cli.ssl, alpn, sizeof(alpn)), 0);
	assert_string_equal(alpn, "h2");
	/* The certificate the client saw is an attester certificate bound to this TLS key. */
	X509 *peer = SSL_get1_peer_certificate(cli.ssl);
	assert_non_null(peer);
	enum atls_evidence_kind kind;
	const uint8_t *ev;
	size_t len;
	assert_int_equal(atls_cert_get_evidence(peer, &kind, &ev, &len), 0);
	assert_int_equal(kind, ATLS_EVIDENCE_SNP_SIM);
	X509 *first = X509_dup(peer);
	X509_free(peer);
	sides_done(&cli, &srv);

	/* A second connection: new nonce, new key, new certificate. */
	handshake(&cli, &srv);
	assert_true(cli.ok);
	peer = SSL_get1_peer_certificate(cli.ssl);
	assert_int_not_equal(X509_cmp(peer, first), 0);
	assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(peer), X509_get0_pubkey(first)), 1);
	X509_free(peer);
	X509_free(first);
	sides_done(&cli, &srv);
	assert_int_equal(rule.calls, 2);

	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);
	atls_issuer_free(is);
}

static void test_tls_mutual(void **state)
{
	struct atls_sim_params cp = sim_default;
	cp.measurement[0] = 0x99;
	cp.host_data[0] = 0x42;
	struct atls_issuer *sis = NULL, *cis = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &sis), 0);
	assert_int_equal(atls_issuer_new_sim(pki, &cp, &cis), 0);
	struct accept_rule srule = {}, crule = {};
	struct atls_verifier sv = {
	    .test_anchor_pem = pki->ark_pem, .accept = accept_cb, .userdata = &srule};
	struct atls_verifier cv = {
	    .test_anchor_pem = pki->ark_pem, .accept = accept_cb, .userdata = &crule};
	EVP_PKEY *owner = NULL; /* the client certifies its own key */
	assert_int_equal(tls_key_generate(&owner), 0);
	struct atls_config sc = {.issuer = sis, .verifier = &sv, .alpn = protos};
	struct atls_config cc = {.issuer = cis, .key = owner, .verifier = &cv, .alpn = protos};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_true(cli.ok);
	assert_true(srv.ok);
	const struct atls_peer *sp = atls_ssl_peer(srv.ssl), *cpeer = atls_ssl_peer(cli.ssl);
	assert_non_null(sp);
	assert_non_null(cpeer);
	assert_int_equal(sp->measurement[0], 0x99); /* the server saw the client's */
	assert_int_equal(sp->policy_digest[0], 0x42);
	assert_int_equal(cpeer->measurement[0], 0x11);
	assert_int_equal(srule.calls, 1);
	assert_int_equal(crule.calls, 1);
	X509 *cc_cert = SSL_get1_peer_certificate(srv.ssl);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cc_cert), owner), 1);
	X509_free(cc_cert);
	sides_done(&cli, &srv);

	/* The server refuses the client's policy digest: the client learns it from the alert. */
	srule.check_digest = true;
	str_copy(srule.digest_hex, sizeof(srule.digest_hex), "ff");
	handshake(&cli, &srv);
	assert_false(srv.connect);
	assert_false(cli.ok);
	assert_int_equal(cli.reason, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE);
	const struct atls_failure *f = atls_ssl_failure(srv.ssl);
	assert_non_null(f);
	assert_int_equal(f->code, ATTEST_E_POLICY_DIGEST);
	assert_null(atls_ssl_peer(srv.ssl));
	assert_null(atls_ssl_failure(cli.ssl));
	sides_done(&cli, &srv);

	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);
	EVP_PKEY_free(owner);
	atls_issuer_free(sis);
	atls_issuer_free(cis);
}

static void test_tls_client_attests(void **state)
{
	struct atls_issuer *cis = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &cis), 0);
	EVP_PKEY *skey = NULL;
	X509 *scert = NULL;
	assert_int_equal(tls_key_generate(&skey), 0);
	assert_int_equal(tls_ca_create(skey, &scert), 0);
	struct atls_verifier sv = {.test_anchor_pem = pki->ark_pem};
	struct atls_config sc = {.cert = scert, .cert_key = skey, .verifier = &sv};
	struct atls_config cc = {.issuer = cis};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_non_null(atls_ssl_peer(srv.ssl));
	assert_null(atls_ssl_peer(cli.ssl));
	sides_done(&cli, &srv);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);

	/* A client without an issuer cannot satisfy the verifying server. */
	struct atls_config plain = {};
	srv.ctx = server_ctx(&sc);
	cli.ctx = client_ctx(&plain);
	handshake(&cli, &srv);
	assert_false(srv.connect);
	assert_null(atls_ssl_peer(srv.ssl));
	sides_done(&cli, &srv);
	SSL_CTX_free(cli.ctx);
	/* A client attesting with the simulated OID to a server without a test anchor. */
	SSL_CTX_free(srv.ctx);
	struct atls_verifier strict = {};
	sc.verifier = &strict;
	srv.ctx = server_ctx(&sc);
	cli.ctx = client_ctx(&cc);
	handshake(&cli, &srv);
	assert_false(srv.connect);
	const struct atls_failure *f = atls_ssl_failure(srv.ssl);
	assert_non_null(f);
	assert_int_equal(f->code, ATTEST_E_FORMAT);
	sides_done(&cli, &srv);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);

	X509_free(scert);
	EVP_PKEY_free(skey);
	atls_issuer_free(cis);
}

/* A client that sends no nonce (plain ALPN, or none at all) to an attesting server. */
/* A plain TLS 1.3 client that sets its own ALPN list (wire list, may be NULL). */
static SSL_CTX *plain_client_ctx(const uint8_t *alpn, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (alpn)
		assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned int)len), 0);
	return ctx;
}

static void test_tls_missing_nonce(void **state)
{
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &is), 0);
	struct atls_config sc = {.issuer = is, .alpn = protos};
	/* No ALPN, an ALPN list without a nonce, a malformed nonce entry, another version. */
	static const uint8_t h2[] = "\x02h2",
			     bad[] = "\x0f"
				     "atls:v1:nonce:0",
			     v2[] =
				 "\x4e"
				 "atls:v2:nonce:"
				 "0000000000000000000000000000000000000000000000000000000000000000";
	const struct {
		const uint8_t *alpn;
		size_t len;
	} cases[] = {{NULL, 0}, {h2, 3}, {bad, sizeof(bad) - 1}, {v2, sizeof(v2) - 1}};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct side srv = {.ctx = server_ctx(&sc)},
			    cli = {.ctx = plain_client_ctx(cases[i].alpn, cases[i].len),
				   .plain = true};
		handshake(&cli, &srv);
		assert_false(srv.connect);
		assert_false(cli.connect);
		const struct atls_failure *f = atls_ssl_failure(srv.ssl);
		assert_non_null(f);
		assert_int_equal(f->code, ATTEST_E_FORMAT);
		if (i < 2)
			assert_non_null(strstr(f->message, "nonce"));
		sides_done(&cli, &srv);
		SSL_CTX_free(srv.ctx);
		SSL_CTX_free(cli.ctx);
	}
	/* An aTLS client that does not verify still sends a nonce, so the server attests. */
	struct atls_config cc = {.alpn = protos};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_true(cli.ok);
	assert_true(srv.ok);
	assert_null(atls_ssl_failure(srv.ssl));
	sides_done(&cli, &srv);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);
	atls_issuer_free(is);
}

/* An issuer wrapping another: replays its first evidence, or breaks the report signature. */
enum wrap_mode { WRAP_REPLAY, WRAP_TAMPER };
struct wrap_issuer {
	struct atls_issuer base;
	struct atls_issuer *inner;
	enum wrap_mode mode;
	uint8_t *saved;
	size_t saved_len;
};

static int wrap_get(struct atls_issuer *is, const uint8_t rd[64], uint8_t **ret, size_t *ret_len,
		    char **ret_msg)
{
	struct wrap_issuer *w = (struct wrap_issuer *)is;
	if (w->mode == WRAP_REPLAY && w->saved) {
		*ret = malloc(w->saved_len);
		memcpy(*ret, w->saved, w->saved_len);
		*ret_len = w->saved_len;
		return 0;
	}
	int r = w->inner->get_evidence(w->inner, rd, ret, ret_len, ret_msg);
	if (r < 0)
		return r;
	if (w->mode == WRAP_REPLAY) {
		w->saved = malloc(*ret_len);
		memcpy(w->saved, *ret, *ret_len);
		w->saved_len = *ret_len;
	} else {
		struct atls_evidence e;
		assert_int_equal(atls_evidence_decode(*ret, *ret_len, &e, NULL), 0);
		size_t n;
		const uint8_t *rep = atls_evidence_get(&e, ATLS_ENTRY_SNP_REPORT, &n);
		(*ret)[(size_t)(rep - *ret) + 0x2A0 + 5] ^= 0x01; /* SIGNATURE_R */
	}
	return 0;
}

static void test_tls_refusals(void **state)
{
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &is), 0);
	struct atls_verifier v = {.test_anchor_pem = pki->ark_pem};
	char *msg = NULL;

	/* Replayed evidence: the same key, but bound to the first connection's nonce. */
	EVP_PKEY *key = NULL;
	assert_int_equal(tls_key_generate(&key), 0);
	struct wrap_issuer replay = {
	    .base = {.kind = ATLS_EVIDENCE_SNP_SIM, .get_evidence = wrap_get},
	    .inner = is,
	    .mode = WRAP_REPLAY};
	{
		struct atls_config sc = {.issuer = &replay.base, .key = key, .alpn = protos};
		struct atls_config cc = {.verifier = &v, .alpn = protos};
		struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
		handshake(&cli, &srv);
		assert_true(cli.ok); /* the first one is genuine */
		sides_done(&cli, &srv);
		SSL_CTX_free(srv.ctx);
		SSL_CTX_free(cli.ctx);
	}
	assert_non_null(replay.saved);
	assert_int_equal(refused_by_client(&replay.base, key, &v, &msg), ATTEST_E_REPORT_DATA);
	assert_non_null(strstr(msg, "REPORT_DATA"));
	msg = mfree(msg);
	free(replay.saved);

	/* A tampered report signature. */
	struct wrap_issuer tamper = {
	    .base = {.kind = ATLS_EVIDENCE_SNP_SIM, .get_evidence = wrap_get},
	    .inner = is,
	    .mode = WRAP_TAMPER};
	assert_int_equal(refused_by_client(&tamper.base, NULL, &v, NULL), ATTEST_E_SIGNATURE);

	/* A debug-policy guest. */
	struct atls_sim_params p = sim_default;
	p.policy = 0x30000 | ATTEST_SNP_POLICY_DEBUG;
	struct atls_issuer *debug = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &p, &debug), 0);
	assert_int_equal(refused_by_client(debug, NULL, &v, NULL), ATTEST_E_DEBUG);
	atls_issuer_free(debug);

	/* The caller refuses the measurement, then the policy digest. */
	struct accept_rule rule = {.check_measurement = true, .measurement = {0x11, 0x22, 0x34}};
	struct atls_verifier cb = v;
	cb.accept = accept_cb;
	cb.userdata = &rule;
	assert_int_equal(refused_by_client(is, NULL, &cb, &msg), ATTEST_E_MEASUREMENT);
	assert_non_null(strstr(msg, "measurement not in the reference values"));
	msg = mfree(msg);
	assert_int_equal(rule.calls, 1);
	memcpy(rule.measurement, sim_default.measurement, 48);
	rule.check_digest = true;
	str_copy(rule.digest_hex, sizeof(rule.digest_hex),
		 "abcdef0000000000000000000000000000000000000000000000000000000001");
	assert_int_equal(refused_by_client(is, NULL, &cb, NULL), ATTEST_E_POLICY_DIGEST);

	/* The simulated OID without a test anchor. */
	struct atls_verifier plain = {};
	assert_int_equal(refused_by_client(is, NULL, &plain, &msg), ATTEST_E_FORMAT);
	assert_non_null(strstr(msg, "1.3.9901.2.99"));
	msg = mfree(msg);

	/* Expired: the verifier's clock is past the certificate's two hours. */
	struct atls_verifier late = v;
	late.now_sec = time(NULL) + 3 * 3600;
	assert_int_equal(refused_by_client(is, NULL, &late, &msg), ATTEST_E_CHAIN);
	assert_non_null(strstr(msg, "expired"));
	msg = mfree(msg);

	/* An issuer that fails: the server records a local failure. */
	EVP_PKEY_free(key);
	atls_issuer_free(is);
}

static int fail_get(struct atls_issuer *is, const uint8_t rd[64], uint8_t **ret, size_t *ret_len,
		    char **ret_msg)
{
	*ret_msg = str_dup("no evidence today");
	return -EIO;
}

static void test_tls_issuer_failure(void **state)
{
	struct atls_issuer failing = {.kind = ATLS_EVIDENCE_SNP, .get_evidence = fail_get};
	struct atls_verifier v = {};
	struct atls_config sc = {.issuer = &failing};
	struct atls_config cc = {.verifier = &v};
	struct side srv = {.ctx = server_ctx(&sc)}, cli = {.ctx = client_ctx(&cc)};
	handshake(&cli, &srv);
	assert_false(srv.connect);
	assert_false(cli.connect);
	const struct atls_failure *f = atls_ssl_failure(srv.ssl);
	assert_non_null(f);
	assert_int_equal(f->code, ATTEST_OK);
	assert_int_equal(f->err, -EIO);
	assert_non_null(strstr(f->message, "no evidence today"));
	sides_done(&cli, &srv);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cli.ctx);

	/* Configuration errors. */
	SSL_CTX *ctx = NULL;
	char *msg = NULL;
	struct atls_config none = {};
	assert_int_equal(atls_ctx_new_server(&none, &ctx, &msg), -EINVAL);
	msg = mfree(msg);
	char *bad[] = {"atls:v1:nonce:00", NULL};
	struct atls_config badalpn = {.verifier = &v, .alpn = bad};
	assert_int_equal(atls_ctx_new_client(&badalpn, &ctx, &msg), -EINVAL);
	free(msg);
}

/* ---- the per-thread chain cache ---- */

struct cached_run {
	const uint8_t *evidence;
	size_t len;
	const uint8_t *report_data;
	const struct atls_verifier *v;
	int result;
};

static void *verify_in_thread(void *arg)
{
	struct cached_run *r = arg;
	struct atls_verified out;
	r->result = atls_evidence_verify(ATLS_EVIDENCE_SNP_SIM, r->evidence, r->len, r->report_data,
					 r->v, &out, NULL, NULL);
	if (r->result == 0)
		atls_verified_done(&out);
	return NULL;
}

static void test_evidence_verify_thread_cache(void **state)
{
	struct atls_issuer *is = NULL;
	assert_int_equal(atls_issuer_new_sim(pki, &sim_default, &is), 0);
	uint8_t rd[ATLS_REPORT_DATA_SIZE];
	memset(rd, 0x5c, sizeof(rd));
	uint8_t *ev = NULL;
	size_t len = 0;
	char *msg = NULL;
	assert_int_equal(is->get_evidence(is, rd, &ev, &len, &msg), 0);
	struct atls_verifier v = {.test_anchor_pem = pki->ark_pem, .snp_cache_per_thread = true};

	/* Accepted again and again (the second time from the cache), in this thread and another. */
	for (int i = 0; i < 3; i++) {
		struct atls_verified out;
		assert_int_equal(
		    atls_evidence_verify(ATLS_EVIDENCE_SNP_SIM, ev, len, rd, &v, &out, NULL, NULL),
		    0);
		assert_memory_equal(out.peer.policy_digest, sim_default.host_data, 32);
		atls_verified_done(&out);
	}
	struct cached_run run = {ev, len, rd, &v, -1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, verify_in_thread, &run), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(run.result, 0);

	/* A cached chain does not excuse the report: other report data, or a changed report
	 * byte, is still refused. */
	uint8_t other[ATLS_REPORT_DATA_SIZE];
	memset(other, 0x5d, sizeof(other));
	struct atls_verified out;
	enum attest_error code = ATTEST_OK;
	assert_int_equal(
	    atls_evidence_verify(ATLS_EVIDENCE_SNP_SIM, ev, len, other, &v, &out, &code, &msg),
	    -EACCES);
	assert_int_equal(code, ATTEST_E_REPORT_DATA);
	free(msg);
	msg = NULL;
	struct atls_evidence e;
	assert_int_equal(atls_evidence_decode(ev, len, &e, NULL), 0);
	size_t rlen = 0;
	uint8_t *report = (uint8_t *)atls_evidence_get(&e, ATLS_ENTRY_SNP_REPORT, &rlen);
	assert_non_null(report);
	report[0x90] ^= 1; /* inside MEASUREMENT, covered by the signature */
	assert_int_equal(
	    atls_evidence_verify(ATLS_EVIDENCE_SNP_SIM, ev, len, rd, &v, &out, &code, &msg),
	    -EACCES);
	assert_int_equal(code, ATTEST_E_SIGNATURE);
	free(msg);
	free(ev);
	atls_issuer_free(is);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_container),
	    cmocka_unit_test(test_binding),
	    cmocka_unit_test(test_alpn_nonce),
	    cmocka_unit_test(test_ca_nonce),
	    cmocka_unit_test(test_cert_shape),
	    cmocka_unit_test(test_cert_table),
	    cmocka_unit_test(test_device_absent),
	    cmocka_unit_test(test_verify_sim),
	    cmocka_unit_test(test_verify_debug_policy),
	    cmocka_unit_test(test_verify_real_snp),
	    cmocka_unit_test(test_verify_real_tdx),
	    cmocka_unit_test(test_pki_files),
	    cmocka_unit_test(test_tls_server_attests),
	    cmocka_unit_test(test_tls_mutual),
	    cmocka_unit_test(test_tls_client_attests),
	    cmocka_unit_test(test_tls_missing_nonce),
	    cmocka_unit_test(test_evidence_verify_thread_cache),
	    cmocka_unit_test(test_tls_refusals),
	    cmocka_unit_test(test_tls_issuer_failure),
	};
	/* A peer that aborts leaves writes to a closed socket. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
