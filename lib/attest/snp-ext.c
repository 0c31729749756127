/* lib/attest: the AMD extensions of VCEK/VLEK certificates (ATTESTATION.md 2), decoded by hand
 * from the extnValue bytes with every length checked. */
#include <stdio.h>

#include "attest/snp-internal.h"

#define OID_PREFIX "1.3.6.1.4.1.3704.1."

/* A DER INTEGER in 0..255; SPLs above 127 need a leading zero byte (217 = 02 02 00 D9). */
static int der_small_uint(const uint8_t *v, size_t len, uint8_t *ret)
{
	if (len < 3 || v[0] != 0x02 || v[1] >= 0x80 || (size_t)v[1] + 2 != len)
		return -EBADMSG;
	const uint8_t *p = v + 2;
	size_t n = v[1];
	if (p[0] & 0x80)
		return -ERANGE; /* negative */
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	if (n != 1)
		return -ERANGE;
	*ret = p[0];
	return 0;
}

/* A DER IA5String of printable ASCII into a NUL-terminated buffer. */
static int der_ia5(const uint8_t *v, size_t len, char *out, size_t out_size)
{
	if (len < 2 || v[0] != 0x16)
		return -EBADMSG;
	size_t n, hdr;
	if (v[1] < 0x80) {
		n = v[1];
		hdr = 2;
	} else if (v[1] == 0x81 && len >= 3 && v[2] >= 0x80) {
		n = v[2];
		hdr = 3;
	} else {
		return -EBADMSG;
	}
	if (hdr + n != len || n >= out_size)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (v[hdr + i] < 0x20 || v[hdr + i] > 0x7e)
			return -EBADMSG;
	memcpy(out, v + hdr, n);
	out[n] = 0;
	return 0;
}

int attest_snp_vek_ext_add(struct attest_snp_vek_ext *e, const char *oid, const uint8_t *value,
			   size_t len, char **ret_msg)
{
	if (!str_startswith(oid, OID_PREFIX))
		return 0;
	const char *arc = oid + strlen(OID_PREFIX);
	int r;
	if (str_eq(arc, "1")) {
		if (e->has_struct_version)
			goto dup;
		r = der_small_uint(value, len, &e->struct_version);
		if (r < 0)
			goto bad;
		e->has_struct_version = true;
	} else if (str_eq(arc, "2")) {
		if (e->has_product_name)
			goto dup;
		r = der_ia5(value, len, e->product_name, sizeof(e->product_name));
		if (r < 0)
			goto bad;
		e->has_product_name = true;
	} else if (str_startswith(arc, "3.") && strlen(arc) == 3 && arc[2] >= '1' &&
		   arc[2] <= '9') {
		unsigned n = (unsigned)(arc[2] - '0');
		if (e->spl_present & (1u << n))
			goto dup;
		r = der_small_uint(value, len, &e->spl[n]);
		if (r < 0)
			goto bad;
		e->spl_present |= (uint16_t)(1u << n);
	} else if (str_eq(arc, "4")) {
		if (e->hwid_len)
			goto dup;
		if (len != 64 && len != 8) {
			r = -EBADMSG;
			goto bad;
		}
		memcpy(e->hwid, value, len);
		e->hwid_len = len;
	} else if (str_eq(arc, "5")) {
		if (e->has_csp_id)
			goto dup;
		r = der_ia5(value, len, e->csp_id, sizeof(e->csp_id));
		if (r < 0)
			goto bad;
		e->has_csp_id = true;
	}
	return 0;
dup:
	return str_set_message(ret_msg, EBADMSG, "extension %s appears twice", oid);
bad:
	return str_set_message(ret_msg, EBADMSG, "extension %s: %s", oid,
			       r == -ERANGE ? "value outside 0..255" : "bad encoding");
}

int snp_vek_ext_from_x509(X509 *x, struct attest_snp_vek_ext *ret, char **ret_msg)
{
	struct attest_snp_vek_ext e = {};
	int n = X509_get_ext_count(x);
	for (int i = 0; i < n; i++) {
		X509_EXTENSION *ext = X509_get_ext(x, i);
		if (!ext)
			continue;
		char oid[96];
		int l = OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
		if (l <= 0 || (size_t)l >= sizeof(oid))
			continue;
		const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
		if (!v)
			continue;
		int r = attest_snp_vek_ext_add(&e, oid, ASN1_STRING_get0_data(v),
					       (size_t)ASN1_STRING_length(v), ret_msg);
		if (r < 0)
			return r;
	}
	*ret = e;
	return 0;
}

int attest_snp_vek_ext_parse_der(const uint8_t *der, size_t len, struct attest_snp_vek_ext *ret,
				 char **ret_msg)
{
	if (len > ATTEST_SNP_FILE_MAX_BYTES || len > INT32_MAX)
		return str_set_message(ret_msg, EFBIG, "certificate too large");
	const unsigned char *p = der;
	_cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)len);
	if (!x || p != der + len)
		return str_set_message(ret_msg, EBADMSG, "not a DER certificate");
	return snp_vek_ext_from_x509(x, ret, ret_msg);
}
