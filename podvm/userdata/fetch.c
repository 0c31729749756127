/* process-user-data: where the cloud-config comes from (WIRE.md 5.2): the cidata volume, Azure
 * IMDS or AWS IMDS (v2 with a v1 fallback). */
#include "userdata-prog.h"

#include "http/http.h"
#include "userdata/userdata.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#define AZURE_USER_DATA_PATH \
	"/metadata/instance/compute/userData?api-version=2021-01-01&format=text"
#define AWS_TOKEN_PATH "/latest/api/token"
#define AWS_USER_DATA_PATH "/latest/user-data"
#define FETCH_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define AWS_TOKEN_TIMEOUT_NS (5 * NSEC_PER_SEC)
#define AWS_TOKEN_MAX_BYTES 4096
#define DMI_MAX_BYTES 256

static int set_msg(char **ret_msg, int r, const char *fmt, ...) _printf_(3, 4);
static int set_msg(char **ret_msg, int r, const char *fmt, ...)
{
	if (ret_msg && !*ret_msg) {
		va_list ap;
		va_start(ap, fmt);
		*ret_msg = str_vprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

bool pud_cpuid_is_hyperv(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned eax, ebx, ecx, edx;
	/* The hypervisor-present bit guards the 0x40000000 leaf, which is undefined on bare
	 * metal. */
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 31)))
		return false;
	__cpuid(0x40000000, eax, ebx, ecx, edx);
	char vendor[13];
	memcpy(vendor, &ebx, 4);
	memcpy(vendor + 4, &ecx, 4);
	memcpy(vendor + 8, &edx, 4);
	vendor[12] = 0;
	return strcmp(vendor, "Microsoft Hv") == 0;
#else
	return false;
#endif
}

bool pud_dmi_vendor_is(const char *path, const char *vendor)
{
	_cleanup_free_ char *s = NULL;
	size_t len;
	if (read_file_bounded(path, DMI_MAX_BYTES, &s, &len) < 0)
		return false;
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\r'))
		s[--len] = 0;
	return strcmp(s, vendor) == 0;
}

static char *cidata_file(const struct pud_config *c)
{
	return str_printf("%s/user-data", c->cidata_dir);
}

enum pud_provider pud_detect_provider(const struct pud_config *c)
{
	_cleanup_free_ char *f = cidata_file(c);
	if (f && access(f, F_OK) == 0)
		return PUD_PROVIDER_CIDATA;
	if (pud_cpuid_is_hyperv())
		return PUD_PROVIDER_AZURE;
	if (pud_dmi_vendor_is(c->dmi_sys_vendor_path, "Amazon EC2"))
		return PUD_PROVIDER_AWS;
	return PUD_PROVIDER_NONE;
}

static char *endpoint_url(const char *env, const char *path)
{
	const char *base = config_getenv(env);
	if (str_empty(base))
		base = PUD_DEFAULT_IMDS_ENDPOINT;
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	return str_printf("%.*s%s", (int)n, base, path);
}

static int fetch_cidata(const struct pud_config *c, char **ret, size_t *ret_len, char **ret_msg)
{
	_cleanup_free_ char *f = cidata_file(c);
	if (!f)
		return -ENOMEM;
	int r = read_file_bounded(f, USERDATA_MAX_BYTES, ret, ret_len);
	if (r < 0)
		return set_msg(ret_msg, r, "cannot read %s: %s", f, strerror(-r));
	return 0;
}

static int http_failure(char **ret_msg, int r, struct pp_error *err)
{
	return set_msg(ret_msg, r, "%s", pp_error_message(err, r));
}

static int fetch_azure(char **ret, size_t *ret_len, char **ret_msg)
{
	_cleanup_free_ char *url = endpoint_url("AZURE_IMDS_ENDPOINT", AZURE_USER_DATA_PATH);
	if (!url)
		return -ENOMEM;
	const struct http_header hdrs[] = {{"Metadata", "true"}};
	struct http_request req = {
	    .url = url,
	    .headers = hdrs,
	    .n_headers = ELEMENTSOF(hdrs),
	    .timeout_ns = FETCH_TIMEOUT_NS,
	    .no_proxy = true,
	    /* base64 of the largest accepted document, with room for line breaks */
	    .max_body_bytes = USERDATA_MAX_BYTES / 3 * 4 * 2,
	};
	_cleanup_(http_response_donep) struct http_response resp = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = http_request(&req, &resp, &err);
	if (r < 0)
		return http_failure(ret_msg, r, err);
	uint8_t *data = NULL;
	r = userdata_base64_decode(resp.body, resp.body_len, USERDATA_MAX_BYTES, &data, ret_len);
	if (r < 0)
		return set_msg(ret_msg, r, "Azure user data is not valid base64 (%zu bytes)",
			       resp.body_len);
	*ret = (char *)data;
	return 0;
}

static int fetch_aws(char **ret, size_t *ret_len, char **ret_msg)
{
	_cleanup_free_ char *token_url =
	    endpoint_url("AWS_EC2_METADATA_SERVICE_ENDPOINT", AWS_TOKEN_PATH);
	_cleanup_free_ char *url =
	    endpoint_url("AWS_EC2_METADATA_SERVICE_ENDPOINT", AWS_USER_DATA_PATH);
	if (!token_url || !url)
		return -ENOMEM;

	_cleanup_secret_ char *token = NULL;
	{
		const struct http_header hdrs[] = {{"X-aws-ec2-metadata-token-ttl-seconds", "60"}};
		struct http_request req = {
		    .method = "PUT",
		    .url = token_url,
		    .headers = hdrs,
		    .n_headers = ELEMENTSOF(hdrs),
		    .timeout_ns = AWS_TOKEN_TIMEOUT_NS,
		    .connect_timeout_ns = AWS_TOKEN_TIMEOUT_NS,
		    .max_body_bytes = AWS_TOKEN_MAX_BYTES,
		    .no_proxy = true,
		};
		_cleanup_(http_response_donep) struct http_response resp = {0};
		_cleanup_pp_error_ struct pp_error *err = NULL;
		/* Any failure of the token step means IMDSv1. */
		if (http_request(&req, &resp, &err) == 0 && resp.status == 200 &&
		    resp.body_len > 0 && !strpbrk(resp.body, "\r\n"))
			token = str_dup(resp.body);
		if (resp.body)
			explicit_bzero(resp.body, resp.body_len);
	}

	struct http_header hdrs[] = {{"X-aws-ec2-metadata-token", token}};
	struct http_request req = {
	    .url = url,
	    .headers = hdrs,
	    .n_headers = token ? 1 : 0,
	    .timeout_ns = FETCH_TIMEOUT_NS,
	    .max_body_bytes = USERDATA_MAX_BYTES,
	    .no_proxy = true,
	};
	_cleanup_(http_response_donep) struct http_response resp = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = http_request(&req, &resp, &err);
	if (r < 0)
		return http_failure(ret_msg, r, err);
	*ret_len = resp.body_len;
	*ret = TAKE_PTR(resp.body);
	return 0;
}

int pud_fetch_user_data(const struct pud_config *c, enum pud_provider p, char **ret,
			size_t *ret_len, char **ret_msg)
{
	switch (p) {
	case PUD_PROVIDER_CIDATA:
		return fetch_cidata(c, ret, ret_len, ret_msg);
	case PUD_PROVIDER_AZURE:
		return fetch_azure(ret, ret_len, ret_msg);
	case PUD_PROVIDER_AWS:
		return fetch_aws(ret, ret_len, ret_msg);
	default:
		return set_msg(ret_msg, -EINVAL, "no user data source");
	}
}
