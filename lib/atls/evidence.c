/* lib/atls: the evidence container, the report-data binding and the two nonce transports (ALPN
 * entry, CertificateRequest CA list). Everything here parses peer input: bounded, no trust in an
 * unchecked length. */
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "atls/atls-internal.h"

#define MAGIC "ATEV"
#define FORMAT_VERSION 1
#define HEADER_SIZE 8
#define ENTRY_HEADER_SIZE 8

static const uint16_t known_types[] = {
    ATLS_ENTRY_SNP_REPORT,  ATLS_ENTRY_VEK,
    ATLS_ENTRY_ASK,         ATLS_ENTRY_ARK,
    ATLS_ENTRY_AMD_CRL,     ATLS_ENTRY_TDX_QUOTE,
    ATLS_ENTRY_TCB_INFO,    ATLS_ENTRY_TCB_INFO_CHAIN,
    ATLS_ENTRY_QE_IDENTITY, ATLS_ENTRY_QE_IDENTITY_CHAIN,
    ATLS_ENTRY_PCK_CRL,     ATLS_ENTRY_PCK_CRL_CHAIN,
    ATLS_ENTRY_ROOT_CA_CRL,
};

const char *atls_evidence_oid(enum atls_evidence_kind k)
{
	switch (k) {
	case ATLS_EVIDENCE_SNP:
		return ATLS_OID_SNP;
	case ATLS_EVIDENCE_TDX:
		return ATLS_OID_TDX;
	case ATLS_EVIDENCE_SNP_SIM:
		return ATLS_OID_SNP_SIM;
	default:
		return NULL;
	}
}

bool atls_entry_type_known(uint16_t type)
{
	for (size_t i = 0; i < ELEMENTSOF(known_types); i++)
		if (known_types[i] == type)
			return true;
	return false;
}

static size_t encoded_size(const struct atls_evidence *e)
{
	size_t n = HEADER_SIZE;
	for (size_t i = 0; i < e->n; i++)
		n += ENTRY_HEADER_SIZE + e->entries[i].len;
	return n;
}

int atls_evidence_add(struct atls_evidence *e, uint16_t type, const void *value, size_t len)
{
	if (!atls_entry_type_known(type))
		return -EINVAL;
	if (atls_evidence_get(e, type, NULL))
		return -EEXIST;
	if (e->n >= ATLS_EVIDENCE_MAX_ENTRIES || len > ATLS_EVIDENCE_MAX_BYTES ||
	    encoded_size(e) + ENTRY_HEADER_SIZE + len > ATLS_EVIDENCE_MAX_BYTES)
		return -EMSGSIZE;
	e->entries[e->n++] = (struct atls_entry){.type = type, .value = value, .len = len};
	return 0;
}

const uint8_t *atls_evidence_get(const struct atls_evidence *e, uint16_t type, size_t *ret_len)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->entries[i].type == type) {
			if (ret_len)
				*ret_len = e->entries[i].len;
			return e->entries[i].value;
		}
	if (ret_len)
		*ret_len = 0;
	return NULL;
}

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

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int atls_evidence_encode(const struct atls_evidence *e, uint8_t **ret, size_t *ret_len)
{
	size_t total = encoded_size(e);
	if (e->n > ATLS_EVIDENCE_MAX_ENTRIES || total > ATLS_EVIDENCE_MAX_BYTES)
		return -EMSGSIZE;
	for (size_t i = 0; i < e->n; i++) {
		if (!atls_entry_type_known(e->entries[i].type))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (e->entries[j].type == e->entries[i].type)
				return -EEXIST;
	}
	uint8_t *out = malloc(total);
	if (!out)
		return -ENOMEM;
	memcpy(out, MAGIC, 4);
	put16(out + 4, FORMAT_VERSION);
	put16(out + 6, (uint16_t)e->n);
	size_t off = HEADER_SIZE;
	for (size_t i = 0; i < e->n; i++) {
		const struct atls_entry *en = &e->entries[i];
		put16(out + off, en->type);
		put16(out + off + 2, 0);
		put32(out + off + 4, (uint32_t)en->len);
		if (en->len)
			memcpy(out + off + ENTRY_HEADER_SIZE, en->value, en->len);
		off += ENTRY_HEADER_SIZE + en->len;
	}
	*ret = out;
	*ret_len = total;
	return 0;
}

int atls_evidence_decode(const uint8_t *data, size_t len, struct atls_evidence *ret, char **ret_msg)
{
	struct atls_evidence e = {};
	if (len > ATLS_EVIDENCE_MAX_BYTES)
		return str_set_message(ret_msg, EBADMSG,
				       "evidence container of %zu bytes exceeds %u", len,
				       ATLS_EVIDENCE_MAX_BYTES);
	if (!data || len < HEADER_SIZE || memcmp(data, MAGIC, 4) != 0)
		return str_set_message(ret_msg, EBADMSG,
				       "evidence container lacks the ATEV header");
	if (get16(data + 4) != FORMAT_VERSION)
		return str_set_message(ret_msg, EBADMSG,
				       "evidence container version %u, expected %u",
				       get16(data + 4), FORMAT_VERSION);
	size_t count = get16(data + 6);
	if (count > ATLS_EVIDENCE_MAX_ENTRIES)
		return str_set_message(ret_msg, EBADMSG, "evidence container has %zu entries",
				       count);
	size_t off = HEADER_SIZE;
	for (size_t i = 0; i < count; i++) {
		if (len - off < ENTRY_HEADER_SIZE)
			return str_set_message(ret_msg, EBADMSG,
					       "evidence entry %zu header is truncated", i);
		uint16_t type = get16(data + off);
		uint16_t zero = get16(data + off + 2);
		uint32_t n = get32(data + off + 4);
		off += ENTRY_HEADER_SIZE;
		if (zero != 0)
			return str_set_message(ret_msg, EBADMSG,
					       "evidence entry %zu: reserved field is %u", i, zero);
		if (!atls_entry_type_known(type))
			return str_set_message(ret_msg, EBADMSG,
					       "evidence entry %zu: unknown type %u", i, type);
		if (atls_evidence_get(&e, type, NULL))
			return str_set_message(ret_msg, EBADMSG,
					       "evidence entry %zu: duplicate type %u", i, type);
		if (n > len - off)
			return str_set_message(
			    ret_msg, EBADMSG,
			    "evidence entry %zu (type %u): length %u exceeds the "
			    "%zu bytes left",
			    i, type, n, len - off);
		e.entries[e.n++] = (struct atls_entry){.type = type, .value = data + off, .len = n};
		off += n;
	}
	if (off != len)
		return str_set_message(ret_msg, EBADMSG,
				       "evidence container has %zu trailing bytes", len - off);
	*ret = e;
	return 0;
}

/* ---- binding ---- */

int atls_report_data(EVP_PKEY *key, const uint8_t nonce[ATLS_NONCE_SIZE],
		     uint8_t ret[ATLS_REPORT_DATA_SIZE])
{
	if (!key)
		return -EINVAL;
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	if (n <= 0)
		return -EINVAL;
	int r = -EIO;
	unsigned int olen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (m && EVP_DigestInit_ex(m, EVP_sha512(), NULL) == 1 &&
	    EVP_DigestUpdate(m, der, (size_t)n) == 1 &&
	    EVP_DigestUpdate(m, nonce, ATLS_NONCE_SIZE) == 1 &&
	    EVP_DigestFinal_ex(m, ret, &olen) == 1 && olen == ATLS_REPORT_DATA_SIZE)
		r = 0;
	EVP_MD_CTX_free(m);
	OPENSSL_free(der);
	return r;
}

int atls_nonce_generate(uint8_t ret[ATLS_NONCE_SIZE])
{
	return RAND_bytes(ret, ATLS_NONCE_SIZE) == 1 ? 0 : -EIO;
}

/* ---- ALPN ---- */

void atls_alpn_nonce_format(const uint8_t nonce[ATLS_NONCE_SIZE], char ret[ATLS_ALPN_NONCE_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t p = strlen(ATLS_ALPN_NONCE_PREFIX);
	memcpy(ret, ATLS_ALPN_NONCE_PREFIX, p);
	for (size_t i = 0; i < ATLS_NONCE_SIZE; i++) {
		ret[p++] = digits[nonce[i] >> 4];
		ret[p++] = digits[nonce[i] & 15];
	}
	ret[p] = 0;
}

int atls_alpn_build(const uint8_t nonce[ATLS_NONCE_SIZE], char *const *protocols, uint8_t **ret,
		    size_t *ret_len)
{
	char entry[ATLS_ALPN_NONCE_LEN + 1];
	atls_alpn_nonce_format(nonce, entry);
	size_t total = 1 + ATLS_ALPN_NONCE_LEN;
	for (size_t i = 0; protocols && protocols[i]; i++) {
		size_t n = strlen(protocols[i]);
		if (n == 0 || n > 255 || str_startswith(protocols[i], ATLS_ALPN_PREFIX))
			return -EINVAL;
		total += 1 + n;
	}
	if (total > 0xffff)
		return -EINVAL;
	uint8_t *out = malloc(total);
	if (!out)
		return -ENOMEM;
	size_t off = 0;
	out[off++] = ATLS_ALPN_NONCE_LEN;
	memcpy(out + off, entry, ATLS_ALPN_NONCE_LEN);
	off += ATLS_ALPN_NONCE_LEN;
	for (size_t i = 0; protocols && protocols[i]; i++) {
		size_t n = strlen(protocols[i]);
		out[off++] = (uint8_t)n;
		memcpy(out + off, protocols[i], n);
		off += n;
	}
	*ret = out;
	*ret_len = total;
	return 0;
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is not the canonical form */
}

static int parse_nonce_entry(const uint8_t *p, size_t n, uint8_t out[ATLS_NONCE_SIZE])
{
	size_t plen = strlen(ATLS_ALPN_NONCE_PREFIX);
	if (n != ATLS_ALPN_NONCE_LEN || memcmp(p, ATLS_ALPN_NONCE_PREFIX, plen) != 0)
		return -EBADMSG;
	for (size_t i = 0; i < ATLS_NONCE_SIZE; i++) {
		int hi = hex_value(p[plen + 2 * i]), lo = hex_value(p[plen + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int atls_alpn_find_nonce(const uint8_t *ext, size_t len, uint8_t ret[ATLS_NONCE_SIZE])
{
	if (!ext || len < 2)
		return -EBADMSG;
	size_t list = (size_t)ext[0] << 8 | ext[1];
	if (list != len - 2 || list == 0)
		return -EBADMSG;
	const uint8_t *p = ext + 2, *end = ext + len;
	bool found = false;
	uint8_t nonce[ATLS_NONCE_SIZE];
	size_t plen = strlen(ATLS_ALPN_PREFIX);
	while (p < end) {
		size_t n = *p++;
		if (n == 0 || n > (size_t)(end - p))
			return -EBADMSG;
		if (n >= plen && memcmp(p, ATLS_ALPN_PREFIX, plen) == 0) {
			if (found || parse_nonce_entry(p, n, nonce) < 0)
				return -EBADMSG;
			found = true;
		}
		p += n;
	}
	if (!found)
		return -ENOENT;
	memcpy(ret, nonce, ATLS_NONCE_SIZE);
	return 0;
}

/* ---- CA list ---- */

int atls_ca_nonce_name(const uint8_t nonce[ATLS_NONCE_SIZE], X509_NAME **ret)
{
	unsigned char b64[ATLS_CA_NONCE_LEN + 1];
	if (EVP_EncodeBlock(b64, nonce, ATLS_NONCE_SIZE) != ATLS_CA_NONCE_LEN)
		return -EIO;
	X509_NAME *name = X509_NAME_new();
	if (!name)
		return -ENOMEM;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC, b64, ATLS_CA_NONCE_LEN,
				       -1, 0) != 1) {
		X509_NAME_free(name);
		return -ENOMEM;
	}
	*ret = name;
	return 0;
}

int atls_ca_list_find_nonce(const STACK_OF(X509_NAME) * names, uint8_t ret[ATLS_NONCE_SIZE])
{
	int count = names ? sk_X509_NAME_num(names) : 0;
	if (count <= 0)
		return -ENOENT;
	if (count != 1)
		return -EBADMSG;
	const X509_NAME *name = sk_X509_NAME_value(names, 0);
	if (!name || X509_NAME_entry_count(name) != 1)
		return -EBADMSG;
	const X509_NAME_ENTRY *ent = X509_NAME_get_entry(name, 0);
	if (!ent || OBJ_obj2nid(X509_NAME_ENTRY_get_object(ent)) != NID_commonName)
		return -EBADMSG;
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(ent);
	if (!s || ASN1_STRING_length(s) != ATLS_CA_NONCE_LEN)
		return -EBADMSG;
	int t = ASN1_STRING_type(s);
	if (t != V_ASN1_UTF8STRING && t != V_ASN1_PRINTABLESTRING && t != V_ASN1_IA5STRING)
		return -EBADMSG;
	const unsigned char *text = ASN1_STRING_get0_data(s);
	uint8_t buf[ATLS_CA_NONCE_LEN];
	/* 44 characters decode to 33 bytes with the padding counted: the last is the '=' pad. */
	if (text[ATLS_CA_NONCE_LEN - 1] != '=' || text[ATLS_CA_NONCE_LEN - 2] == '=' ||
	    EVP_DecodeBlock(buf, text, ATLS_CA_NONCE_LEN) != ATLS_NONCE_SIZE + 1)
		return -EBADMSG;
	/* Only the canonical encoding (no stray bits in the last symbol). */
	unsigned char again[ATLS_CA_NONCE_LEN + 1];
	if (EVP_EncodeBlock(again, buf, ATLS_NONCE_SIZE) != ATLS_CA_NONCE_LEN ||
	    memcmp(again, text, ATLS_CA_NONCE_LEN) != 0)
		return -EBADMSG;
	memcpy(ret, buf, ATLS_NONCE_SIZE);
	return 0;
}
