/* lib/attest: the SEV-SNP attestation report (ATTESTATION.md 1): bounded parsing of every field,
 * the TCB layouts and the JSON view used by `peerpodctl attest show` and the tests. */
#include <stdio.h>

#include "attest/attest.h"

const char *attest_snp_product_name(enum attest_snp_product p)
{
	switch (p) {
	case ATTEST_SNP_MILAN:
		return "Milan";
	case ATTEST_SNP_GENOA:
		return "Genoa";
	case ATTEST_SNP_TURIN:
		return "Turin";
	default:
		return NULL;
	}
}

enum attest_snp_product attest_snp_product_from_name(const char *s)
{
	if (!s)
		return ATTEST_SNP_PRODUCT_UNKNOWN;
	size_t n = strcspn(s, "-");
	for (enum attest_snp_product p = ATTEST_SNP_MILAN; p <= ATTEST_SNP_TURIN; p++) {
		const char *name = attest_snp_product_name(p);
		if (strlen(name) == n && strncmp(s, name, n) == 0)
			return p;
	}
	return ATTEST_SNP_PRODUCT_UNKNOWN;
}

void attest_snp_tcb_decode(uint64_t raw, bool turin, struct attest_snp_tcb *ret)
{
	uint8_t b[8];
	for (size_t i = 0; i < 8; i++)
		b[i] = (uint8_t)(raw >> (8 * i));
	if (turin)
		*ret = (struct attest_snp_tcb){
		    .fmc = b[0], .bootloader = b[1], .tee = b[2], .snp = b[3], .microcode = b[7]};
	else
		*ret = (struct attest_snp_tcb){
		    .bootloader = b[0], .tee = b[1], .snp = b[6], .microcode = b[7]};
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static enum attest_snp_product product_from_cpuid(uint8_t fam, uint8_t mod)
{
	if (fam == 0x19 && mod <= 0x0F)
		return ATTEST_SNP_MILAN;
	if (fam == 0x19 && ((mod >= 0x10 && mod <= 0x1F) || (mod >= 0xA0 && mod <= 0xAF)))
		return ATTEST_SNP_GENOA;
	if (fam == 0x1A && mod <= 0x11)
		return ATTEST_SNP_TURIN;
	return ATTEST_SNP_PRODUCT_UNKNOWN;
}

int attest_snp_report_parse(const uint8_t *data, size_t len, struct attest_snp_report *ret,
			    char **ret_msg)
{
	if (!data || len != ATTEST_SNP_REPORT_SIZE)
		return str_set_message(ret_msg, EBADMSG, "report is %zu bytes, expected %u", len,
				       ATTEST_SNP_REPORT_SIZE);
	const uint8_t *p = data;
	struct attest_snp_report r = {};
	memcpy(r.raw, p, ATTEST_SNP_REPORT_SIZE);
	r.version = le32(p + 0x000);
	if (r.version < 2)
		return str_set_message(ret_msg, EBADMSG, "report version %u < 2", r.version);
	r.guest_svn = le32(p + 0x004);
	r.policy = le64(p + 0x008);
	memcpy(r.family_id, p + 0x010, 16);
	memcpy(r.image_id, p + 0x020, 16);
	r.vmpl = le32(p + 0x030);
	r.signature_algo = le32(p + 0x034);
	r.current_tcb = le64(p + 0x038);
	r.platform_info = le64(p + 0x040);
	r.signer_info = le32(p + 0x048);
	r.author_key_en = r.signer_info & 1;
	r.mask_chip_key = (r.signer_info >> 1) & 1;
	r.signing_key = (r.signer_info >> 2) & 7;
	memcpy(r.report_data, p + 0x050, 64);
	memcpy(r.measurement, p + 0x090, 48);
	memcpy(r.host_data, p + 0x0C0, 32);
	memcpy(r.id_key_digest, p + 0x0E0, 48);
	memcpy(r.author_key_digest, p + 0x110, 48);
	memcpy(r.report_id, p + 0x140, 32);
	memcpy(r.report_id_ma, p + 0x160, 32);
	r.reported_tcb = le64(p + 0x180);
	memcpy(r.chip_id, p + 0x1A0, 64);
	r.committed_tcb = le64(p + 0x1E0);
	r.current_build = p[0x1E8];
	r.current_minor = p[0x1E9];
	r.current_major = p[0x1EA];
	r.committed_build = p[0x1EC];
	r.committed_minor = p[0x1ED];
	r.committed_major = p[0x1EE];
	r.launch_tcb = le64(p + 0x1F0);
	memcpy(r.signature_r, p + 0x2A0, 72);
	memcpy(r.signature_s, p + 0x2E8, 72);

	const char *bad = NULL;
	if (r.signer_info >> 5)
		bad = "SIGNER_INFO bits 5-31";
	else if (!all_zero(p + 0x04C, 4))
		bad = "reserved 0x04C";
	else if (!all_zero(p + 0x18B, 21))
		bad = "reserved 0x18B";
	else if (r.version < 3 && !all_zero(p + 0x188, 3))
		bad = "CPUID bytes of a version 2 report";
	else if (p[0x1EB] != 0)
		bad = "reserved 0x1EB";
	else if (p[0x1EF] != 0)
		bad = "reserved 0x1EF";
	else if (r.version < 5 && !all_zero(p + 0x1F8, 16))
		bad = "mitigation vectors of a report before version 5";
	else if (!all_zero(p + 0x208, 152))
		bad = "reserved 0x208";
	else if (r.policy >> 26)
		bad = "POLICY bits 26-63";
	if (bad)
		return str_set_message(ret_msg, EBADMSG, "non-zero MBZ field: %s", bad);
	if (!(r.policy & ATTEST_SNP_POLICY_RESERVED_1))
		return str_set_message(ret_msg, EBADMSG, "POLICY bit 17 is not set (0x%016llx)",
				       (unsigned long long)r.policy);
	if (r.version >= 3) {
		r.cpuid_fam_id = p[0x188];
		r.cpuid_mod_id = p[0x189];
		r.cpuid_step = p[0x18A];
		r.cpuid_product = product_from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id);
	}
	if (r.version >= 5) {
		r.launch_mit_vector = le64(p + 0x1F8);
		r.current_mit_vector = le64(p + 0x200);
	}
	*ret = r;
	return 0;
}

/* ---- JSON view ---- */

static json_t *hex_json(const uint8_t *p, size_t n)
{
	_cleanup_free_ char *h = hex_encode(p, n);
	return h ? json_string(h) : NULL;
}

static json_t *u64_hex_json(uint64_t v, int width)
{
	char b[32];
	snprintf(b, sizeof(b), "0x%0*llx", width, (unsigned long long)v);
	return json_string(b);
}

static json_t *tcb_json(uint64_t raw, bool turin)
{
	struct attest_snp_tcb t;
	attest_snp_tcb_decode(raw, turin, &t);
	json_t *o = json_pack("{s:i, s:i, s:i, s:i}", "bootloader", t.bootloader, "tee", t.tee,
			      "snp", t.snp, "microcode", t.microcode);
	if (o && turin && json_object_set_new(o, "fmc", json_integer(t.fmc)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int set(json_t *o, const char *key, json_t *v)
{
	if (!v)
		return -ENOMEM;
	return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

#define BIT(v, n) ((int)(((v) >> (n)) & 1))

int attest_snp_report_to_json(const struct attest_snp_report *r, enum attest_snp_product layout,
			      json_t **ret)
{
	if (layout == ATTEST_SNP_PRODUCT_UNKNOWN)
		layout = r->cpuid_product;
	bool turin = layout == ATTEST_SNP_TURIN;
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	uint64_t pol = r->policy, pi = r->platform_info;
	int k = 0;
	k |= set(o, "version", json_integer(r->version));
	k |= set(o, "guest_svn", json_integer(r->guest_svn));
	k |= set(o, "policy", u64_hex_json(pol, 16));
	k |= set(o, "policy_decoded",
		 json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
			   "abi_minor", (int)(pol & 0xff), "abi_major", (int)((pol >> 8) & 0xff),
			   "smt", BIT(pol, 16), "reserved_bit17_must_be_1", BIT(pol, 17),
			   "migrate_ma", BIT(pol, 18), "debug", BIT(pol, 19), "single_socket",
			   BIT(pol, 20), "cxl_allow", BIT(pol, 21), "mem_aes_256_xts", BIT(pol, 22),
			   "rapl_dis", BIT(pol, 23), "ciphertext_hiding", BIT(pol, 24),
			   "page_swap_disable", BIT(pol, 25)));
	k |= set(o, "family_id", hex_json(r->family_id, 16));
	k |= set(o, "image_id", hex_json(r->image_id, 16));
	k |= set(o, "vmpl", json_integer(r->vmpl));
	k |= set(o, "signature_algo", json_integer(r->signature_algo));
	k |= set(o, "current_tcb", u64_hex_json(r->current_tcb, 16));
	k |= set(o, "platform_info", u64_hex_json(pi, 16));
	k |= set(o, "flags_0x48", u64_hex_json(r->signer_info, 8));
	k |= set(o, "author_key_en", json_integer(r->author_key_en));
	k |= set(o, "mask_chip_key", json_integer(r->mask_chip_key));
	k |= set(o, "signing_key", json_integer(r->signing_key));
	k |= set(o, "report_data", hex_json(r->report_data, 64));
	k |= set(o, "measurement", hex_json(r->measurement, 48));
	k |= set(o, "host_data", hex_json(r->host_data, 32));
	k |= set(o, "id_key_digest", hex_json(r->id_key_digest, 48));
	k |= set(o, "author_key_digest", hex_json(r->author_key_digest, 48));
	k |= set(o, "report_id", hex_json(r->report_id, 32));
	k |= set(o, "report_id_ma", hex_json(r->report_id_ma, 32));
	k |= set(o, "reported_tcb", u64_hex_json(r->reported_tcb, 16));
	if (r->version >= 3) {
		k |= set(o, "cpuid_fam_id", u64_hex_json(r->cpuid_fam_id, 2));
		k |= set(o, "cpuid_mod_id", u64_hex_json(r->cpuid_mod_id, 2));
		k |= set(o, "cpuid_step", u64_hex_json(r->cpuid_step, 2));
	}
	k |= set(o, "chip_id", hex_json(r->chip_id, 64));
	k |= set(o, "committed_tcb", u64_hex_json(r->committed_tcb, 16));
	k |= set(o, "current_build", json_integer(r->current_build));
	k |= set(o, "current_minor", json_integer(r->current_minor));
	k |= set(o, "current_major", json_integer(r->current_major));
	k |= set(o, "committed_build", json_integer(r->committed_build));
	k |= set(o, "committed_minor", json_integer(r->committed_minor));
	k |= set(o, "committed_major", json_integer(r->committed_major));
	k |= set(o, "launch_tcb", u64_hex_json(r->launch_tcb, 16));
	if (r->version >= 5) {
		k |= set(o, "launch_mit_vector", u64_hex_json(r->launch_mit_vector, 16));
		k |= set(o, "current_mit_vector", u64_hex_json(r->current_mit_vector, 16));
	}
	k |= set(o, "signature_r_le", hex_json(r->signature_r, 72));
	k |= set(o, "signature_s_le", hex_json(r->signature_s, 72));
	k |= set(o, "reported_tcb_parts", tcb_json(r->reported_tcb, turin));
	k |= set(o, "current_tcb_parts", tcb_json(r->current_tcb, turin));
	k |= set(o, "committed_tcb_parts", tcb_json(r->committed_tcb, turin));
	k |= set(o, "launch_tcb_parts", tcb_json(r->launch_tcb, turin));
	k |= set(o, "platform_info_decoded",
		 json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "smt_en", BIT(pi, 0), "tsme_en",
			   BIT(pi, 1), "ecc_en", BIT(pi, 2), "rapl_dis", BIT(pi, 3),
			   "ciphertext_hiding_en", BIT(pi, 4), "alias_check_complete", BIT(pi, 5),
			   "tio_en", BIT(pi, 7)));
	k |= set(o, "tcb_layout", json_string(turin ? "turin" : "milan/genoa"));
	k |= set(
	    o, "sig_reserved_all_zero",
	    json_boolean(all_zero(r->signature_r + 48, 24) && all_zero(r->signature_s + 48, 24)));
	const char *pn = attest_snp_product_name(layout);
	if (pn)
		k |= set(o, "product", json_string(pn));
	if (k) {
		json_decref(o);
		return -ENOMEM;
	}
	*ret = o;
	return 0;
}

int attest_snp_show_file(const char *evidence, json_t **ret, char **ret_msg)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r = read_file_bounded(evidence, ATTEST_SNP_FILE_MAX_BYTES, &data, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "cannot read %s: %s", evidence, strerror(-r));
	struct attest_snp_report rep;
	r = attest_snp_report_parse((const uint8_t *)data, len, &rep, ret_msg);
	if (r < 0)
		return r;
	return attest_snp_report_to_json(&rep, ATTEST_SNP_PRODUCT_UNKNOWN, ret);
}
