/* lib/atls: evidence from TEE hardware: SEV-SNP reports and TDX quotes through configfs-tsm
 * (/sys/kernel/config/tsm/report), SEV-SNP extended reports through /dev/sev-guest, and the
 * certificate table that comes with SNP reports. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <linux/sev-guest.h>
#include <openssl/rand.h>

#include "atls/atls-internal.h"

#define OUTBLOB_MAX_BYTES (ATLS_EVIDENCE_MAX_BYTES)
#define CERTS_MAX_BYTES (ATLS_EVIDENCE_MAX_BYTES - 2048)
#define PAGE_BYTES 4096
#define TSM_RETRIES 3
/* MSG_REPORT_RSP: status, report size, 24 reserved bytes, then the report. */
#define REPORT_RSP_HEADER 32

enum backend { BACKEND_TSM, BACKEND_SEV_GUEST };

struct device_issuer {
	struct atls_issuer base;
	enum backend backend;
	char *tsm_dir;
	char *sev_guest_path;
	uint32_t privlevel;
};

static void device_free(struct atls_issuer *is)
{
	struct device_issuer *d = (struct device_issuer *)is;
	free(d->tsm_dir);
	free(d->sev_guest_path);
	free(d);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- certificate table ---- */

struct guid_kind {
	const char *text;
	uint16_t type;
};
static const struct guid_kind guids[] = {
    {"63da758d-e664-4564-adc5-f4b93be8accd", ATLS_ENTRY_VEK}, /* VCEK */
    {"a8074bc2-a25a-483e-aae6-39c045a0b8a1", ATLS_ENTRY_VEK}, /* VLEK */
    {"4ab7b379-bbac-4fe4-a02f-05aef327c782", ATLS_ENTRY_ASK}, /* ASK or ASVK */
    {"c0b406a4-a803-4952-9743-3fb6014cd0ae", ATLS_ENTRY_ARK},
};

static int hexnib(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The GUID's bytes in string order; *mixed gets the mixed-endian (EFI) layout as well, since
 * producers differ. */
static void guid_bytes(const char *text, uint8_t out[16], uint8_t mixed[16])
{
	size_t n = 0;
	for (const char *p = text; *p && n < 16; p++) {
		if (*p == '-')
			continue;
		out[n++] = (uint8_t)(hexnib(p[0]) << 4 | hexnib(p[1]));
		p++;
	}
	memcpy(mixed, out, 16);
	for (int i = 0; i < 4; i++)
		mixed[i] = out[3 - i];
	mixed[4] = out[5], mixed[5] = out[4];
	mixed[6] = out[7], mixed[7] = out[6];
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int atls_snp_cert_table_parse(const uint8_t *table, size_t len, struct atls_evidence *e)
{
	static const uint8_t zero[24];
	for (size_t off = 0;; off += 24) {
		if (len < 24 || off > len - 24)
			return -EBADMSG; /* no terminating entry */
		const uint8_t *ent = table + off;
		if (memcmp(ent, zero, 24) == 0)
			return 0;
		uint32_t o = le32(ent + 16), n = le32(ent + 20);
		if (o > len || n > len - o)
			return -EBADMSG;
		for (size_t i = 0; i < ELEMENTSOF(guids); i++) {
			uint8_t a[16], b[16];
			guid_bytes(guids[i].text, a, b);
			if (memcmp(ent, a, 16) != 0 && memcmp(ent, b, 16) != 0)
				continue;
			if (n == 0)
				break;
			int r = atls_evidence_add(e, guids[i].type, table + o, n);
			if (r == -EEXIST)
				return -EBADMSG; /* VCEK and VLEK, or a GUID twice */
			if (r < 0)
				return r;
			break;
		}
	}
}

/* ---- configfs-tsm ---- */

static int write_attr(const char *dir, const char *name, const void *data, size_t len)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write_all(fd, data, len);
}

static int read_attr(const char *dir, const char *name, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	return read_file_bounded(path, max, ret, ret_len);
}

static int read_u64_attr(const char *dir, const char *name, uint64_t *ret)
{
	_cleanup_free_ char *s = NULL;
	size_t n = 0;
	int r = read_attr(dir, name, 64, &s, &n);
	if (r < 0)
		return r;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
	return parse_u64(s, ret);
}

struct tsm_entry {
	char *path;
};

static void tsm_entry_done(struct tsm_entry *t)
{
	if (t->path) {
		(void)rmdir(t->path);
		free(t->path);
	}
}

/* One report through a fresh entry: outblob and (SNP) auxblob, retried when another writer
 * changed the entry between our write and read (generation moved). */
static int tsm_report(struct device_issuer *d, const uint8_t report_data[64], char **ret_out,
		      size_t *ret_out_len, char **ret_aux, size_t *ret_aux_len, char **ret_msg)
{
	uint8_t rnd[8];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	_cleanup_free_ char *hex = hex_encode(rnd, sizeof(rnd));
	_cleanup_(tsm_entry_done) struct tsm_entry t = {};
	if (!hex || !(t.path = str_printf("%s/atls-%s", d->tsm_dir, hex)))
		return -ENOMEM;
	if (mkdir(t.path, 0700) < 0) {
		int r = -errno;
		t.path = mfree(t.path);
		return str_set_message(ret_msg, r, "configfs-tsm: cannot create %s/atls-*: %s",
				       d->tsm_dir, strerror(-r));
	}
	_cleanup_free_ char *provider = NULL;
	size_t plen = 0;
	if (read_attr(t.path, "provider", 64, &provider, &plen) == 0) {
		const char *want = d->base.kind == ATLS_EVIDENCE_TDX ? "tdx_guest" : "sev_guest";
		if (!str_startswith(provider, want))
			return str_set_message(ret_msg, ENODEV,
					       "configfs-tsm provider is %.*s, expected %s",
					       (int)strcspn(provider, "\n"), provider, want);
	}
	int r;
	if (d->base.kind != ATLS_EVIDENCE_TDX && d->privlevel) {
		char lvl[16];
		int n = snprintf(lvl, sizeof(lvl), "%u", d->privlevel);
		if ((r = write_attr(t.path, "privlevel", lvl, (size_t)n)) < 0)
			return str_set_message(ret_msg, r, "configfs-tsm privlevel: %s",
					       strerror(-r));
	}
	for (int attempt = 0; attempt < TSM_RETRIES; attempt++) {
		uint64_t gen1 = 0, gen2 = 0;
		if ((r = write_attr(t.path, "inblob", report_data, 64)) < 0)
			return str_set_message(ret_msg, r, "configfs-tsm inblob: %s", strerror(-r));
		if ((r = read_u64_attr(t.path, "generation", &gen1)) < 0)
			return str_set_message(ret_msg, r, "configfs-tsm generation: %s",
					       strerror(-r));
		_cleanup_free_ char *out = NULL, *aux = NULL;
		size_t out_len = 0, aux_len = 0;
		if ((r = read_attr(t.path, "outblob", OUTBLOB_MAX_BYTES, &out, &out_len)) < 0)
			return str_set_message(ret_msg, r, "configfs-tsm outblob: %s",
					       strerror(-r));
		if (ret_aux) {
			r = read_attr(t.path, "auxblob", CERTS_MAX_BYTES, &aux, &aux_len);
			if (r < 0 && r != -ENOENT && r != -ENODATA && r != -EOPNOTSUPP)
				return str_set_message(ret_msg, r, "configfs-tsm auxblob: %s",
						       strerror(-r));
		}
		if ((r = read_u64_attr(t.path, "generation", &gen2)) < 0)
			return str_set_message(ret_msg, r, "configfs-tsm generation: %s",
					       strerror(-r));
		if (gen1 != gen2)
			continue;
		*ret_out = TAKE_PTR(out);
		*ret_out_len = out_len;
		if (ret_aux) {
			*ret_aux = TAKE_PTR(aux);
			*ret_aux_len = aux_len;
		}
		return 0;
	}
	return str_set_message(ret_msg, EBUSY, "configfs-tsm entry changed while reading");
}

/* ---- /dev/sev-guest ---- */

static int sev_guest_report(struct device_issuer *d, const uint8_t report_data[64],
			    uint8_t report[ATTEST_SNP_REPORT_SIZE], uint8_t **ret_certs,
			    size_t *ret_certs_len, char **ret_msg)
{
	_cleanup_close_ int fd = open(d->sev_guest_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		return str_set_message(ret_msg, r, "%s: %s", d->sev_guest_path, strerror(-r));
	}
	size_t certs_len = 4 * PAGE_BYTES;
	for (int attempt = 0; attempt < 3; attempt++) {
		_cleanup_free_ uint8_t *certs = aligned_alloc(PAGE_BYTES, certs_len);
		if (!certs)
			return -ENOMEM;
		memset(certs, 0, certs_len);
		struct snp_ext_report_req req = {.certs_address = (uintptr_t)certs,
						 .certs_len = (uint32_t)certs_len};
		memcpy(req.data.user_data, report_data, 64);
		req.data.vmpl = d->privlevel;
		struct snp_report_resp resp = {};
		struct snp_guest_request_ioctl g = {
		    .msg_version = 1, .req_data = (uintptr_t)&req, .resp_data = (uintptr_t)&resp};
		if (ioctl(fd, SNP_GET_EXT_REPORT, &g) < 0) {
			int r = -errno;
			if (g.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN &&
			    req.certs_len > certs_len && req.certs_len <= CERTS_MAX_BYTES) {
				certs_len =
				    (req.certs_len + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
				continue;
			}
			return str_set_message(ret_msg, r,
					       "SNP_GET_EXT_REPORT: %s (firmware error 0x%x, VMM "
					       "error 0x%x)",
					       strerror(-r), g.fw_error, g.vmm_error);
		}
		uint32_t status = le32(resp.data), size = le32(resp.data + 4);
		if (status != 0 || size < ATTEST_SNP_REPORT_SIZE ||
		    size > sizeof(resp.data) - REPORT_RSP_HEADER)
			return str_set_message(ret_msg, EIO,
					       "SNP_GET_EXT_REPORT: status 0x%x, report size %u",
					       status, size);
		memcpy(report, resp.data + REPORT_RSP_HEADER, ATTEST_SNP_REPORT_SIZE);
		*ret_certs = TAKE_PTR(certs);
		*ret_certs_len = certs_len;
		return 0;
	}
	return str_set_message(ret_msg, EMSGSIZE,
			       "SNP_GET_EXT_REPORT: certificate table too large");
}

/* ---- issuers ---- */

static int snp_get_evidence(struct atls_issuer *is, const uint8_t report_data[64], uint8_t **ret,
			    size_t *ret_len, char **ret_msg)
{
	struct device_issuer *d = (struct device_issuer *)is;
	_cleanup_free_ char *out = NULL, *aux = NULL;
	_cleanup_free_ uint8_t *certs = NULL;
	size_t out_len = 0, aux_len = 0, certs_len = 0;
	uint8_t report[ATTEST_SNP_REPORT_SIZE];
	const uint8_t *rep = report;
	int r;
	if (d->backend == BACKEND_TSM) {
		r = tsm_report(d, report_data, &out, &out_len, &aux, &aux_len, ret_msg);
		if (r < 0)
			return r;
		if (out_len < ATTEST_SNP_REPORT_SIZE)
			return str_set_message(ret_msg, EIO, "configfs-tsm: %zu-byte SNP report",
					       out_len);
		rep = (const uint8_t *)out;
	} else {
		r = sev_guest_report(d, report_data, report, &certs, &certs_len, ret_msg);
		if (r < 0)
			return r;
	}
	struct atls_evidence e = {};
	r = atls_evidence_add(&e, ATLS_ENTRY_SNP_REPORT, rep, ATTEST_SNP_REPORT_SIZE);
	const uint8_t *table = aux ? (const uint8_t *)aux : certs;
	size_t table_len = aux ? aux_len : certs_len;
	if (r == 0 && table && table_len > 0)
		r = atls_snp_cert_table_parse(table, table_len, &e);
	if (r == 0)
		r = atls_evidence_encode(&e, ret, ret_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "SNP evidence: %s", strerror(-r));
	return 0;
}

static int tdx_get_evidence(struct atls_issuer *is, const uint8_t report_data[64], uint8_t **ret,
			    size_t *ret_len, char **ret_msg)
{
	struct device_issuer *d = (struct device_issuer *)is;
	_cleanup_free_ char *out = NULL;
	size_t out_len = 0;
	int r = tsm_report(d, report_data, &out, &out_len, NULL, NULL, ret_msg);
	if (r < 0)
		return r;
	if (out_len == 0 || out_len > ATTEST_TDX_QUOTE_MAX_BYTES)
		return str_set_message(ret_msg, EIO, "configfs-tsm: %zu-byte TDX quote", out_len);
	struct atls_evidence e = {};
	r = atls_evidence_add(&e, ATLS_ENTRY_TDX_QUOTE, out, out_len);
	if (r == 0)
		r = atls_evidence_encode(&e, ret, ret_len);
	if (r < 0)
		return str_set_message(ret_msg, r, "TDX evidence: %s", strerror(-r));
	return 0;
}

static int device_new(const struct atls_device_options *o, enum atls_evidence_kind kind,
		      struct atls_issuer **ret, char **ret_msg)
{
	const char *tsm = o && o->tsm_dir ? o->tsm_dir : ATLS_TSM_REPORT_DIR;
	const char *dev = o && o->sev_guest_path ? o->sev_guest_path : ATLS_SEV_GUEST_PATH;
	enum backend b;
	if (is_dir(tsm))
		b = BACKEND_TSM;
	else if (kind == ATLS_EVIDENCE_SNP && access(dev, R_OK | W_OK) == 0)
		b = BACKEND_SEV_GUEST;
	else if (kind == ATLS_EVIDENCE_SNP)
		return str_set_message(ret_msg, ENODEV,
				       "no SEV-SNP guest interface: neither %s (configfs-tsm) nor "
				       "%s is available",
				       tsm, dev);
	else
		return str_set_message(ret_msg, ENODEV,
				       "no TDX guest interface: %s (configfs-tsm) is not available",
				       tsm);
	struct device_issuer *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->base = (struct atls_issuer){
	    .kind = kind,
	    .get_evidence = kind == ATLS_EVIDENCE_TDX ? tdx_get_evidence : snp_get_evidence,
	    .free = device_free,
	};
	d->backend = b;
	d->privlevel = o ? o->privlevel : 0;
	d->tsm_dir = str_dup(tsm);
	d->sev_guest_path = str_dup(dev);
	if (!d->tsm_dir || !d->sev_guest_path) {
		device_free(&d->base);
		return -ENOMEM;
	}
	*ret = &d->base;
	return 0;
}

int atls_issuer_new_snp(const struct atls_device_options *o, struct atls_issuer **ret,
			char **ret_msg)
{
	return device_new(o, ATLS_EVIDENCE_SNP, ret, ret_msg);
}

int atls_issuer_new_tdx(const struct atls_device_options *o, struct atls_issuer **ret,
			char **ret_msg)
{
	return device_new(o, ATLS_EVIDENCE_TDX, ret, ret_msg);
}
