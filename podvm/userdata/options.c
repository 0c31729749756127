/* process-user-data: the flags of `provision-files` and their resolution into a run config. */
#include "userdata-prog.h"

#include <stddef.h>

#include "log/log.h"

int pud_parse_timeout(const char *s, int64_t *ret_ns)
{
	uint64_t secs;
	int64_t ns;
	if (str_empty(s))
		return -EINVAL;
	if (parse_u64(s, &secs) >= 0) {
		if (secs == 0 || secs > INT64_MAX / NSEC_PER_SEC)
			return -EINVAL;
		ns = (int64_t)secs * NSEC_PER_SEC;
	} else if (parse_duration(s, &ns) < 0 || ns <= 0)
		return -EINVAL;
	*ret_ns = ns;
	return 0;
}

static const char *const provider_names[] = {
    [PUD_PROVIDER_AUTO] = "auto", [PUD_PROVIDER_CIDATA] = "cidata", [PUD_PROVIDER_AZURE] = "azure",
    [PUD_PROVIDER_AWS] = "aws",   [PUD_PROVIDER_NONE] = "none",
};

int pud_parse_provider(const char *s, enum pud_provider *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(provider_names); i++)
		if (str_eq(s, provider_names[i])) {
			*ret = (enum pud_provider)i;
			return 0;
		}
	return -EINVAL;
}

const char *pud_provider_to_string(enum pud_provider p)
{
	return (size_t)p < ELEMENTSOF(provider_names) ? provider_names[p] : "unknown";
}

static int validate_timeout(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	int64_t ns;
	if (s && pud_parse_timeout(s, &ns) < 0)
		return str_set_message(ret_msg, EINVAL,
				       "invalid timeout \"%s\": want seconds or a duration", s);
	return 0;
}

static int validate_provider(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	enum pud_provider p;
	if (s && pud_parse_provider(s, &p) < 0)
		return str_set_message(
		    ret_msg, EINVAL,
		    "invalid provider \"%s\": want auto, cidata, azure, aws or none", s);
	return 0;
}

static int validate_positive(const void *field, char **ret_msg)
{
	if (*(const int64_t *)field <= 0)
		return str_set_message(ret_msg, EINVAL, "must be a positive duration");
	return 0;
}

#define OPT(name, member) .flag = name, .offset = offsetof(struct pud_options, member)

const struct config_option pud_option_table[] = {
    {OPT("user-data-fetch-timeout", user_data_fetch_timeout), .type = CONFIG_STRING,
     .def = PUD_DEFAULT_FETCH_TIMEOUT,
     .help = "give up fetching user data after this many seconds (or a duration)",
     .validate = validate_timeout},
    {OPT("t", t), .type = CONFIG_STRING, .help = "short for -user-data-fetch-timeout",
     .validate = validate_timeout},
    {OPT("provider", provider), .type = CONFIG_STRING, .def = "auto",
     .help = "user data source: auto, cidata, azure, aws or none", .validate = validate_provider},
    {OPT("cidata-dir", cidata_dir), .type = CONFIG_STRING, .def = PUD_DEFAULT_CIDATA_DIR,
     .help = "where the cidata volume is mounted"},
    {OPT("output-root", output_root), .type = CONFIG_STRING, .def = PUD_DEFAULT_OUTPUT_ROOT,
     .help = "directory the in-VM paths are written under"},
    {OPT("dmi-sys-vendor", dmi_sys_vendor_path), .type = CONFIG_STRING,
     .def = PUD_DEFAULT_DMI_SYS_VENDOR, .help = "file holding the DMI system manufacturer"},
    {OPT("tpm-device", tpm_device), .type = CONFIG_STRING, .def = PUD_DEFAULT_TPM_DEVICE,
     .help = "TPM resource manager device for the initdata PCR extension"},
    {OPT("log-level", log_level), .type = CONFIG_STRING, .def = "info",
     .help = "error, warning, info or debug", .validate = log_validate_level_option},
};
const size_t pud_n_options = ELEMENTSOF(pud_option_table);

/* Not shown in the help: only tests shorten the fixed retry interval of WIRE.md 5.2. */
const struct config_option pud_hidden_option_table[] = {
    {OPT("retry-interval", retry_interval_ns), .type = CONFIG_DURATION,
     .def = PUD_DEFAULT_RETRY_INTERVAL, .validate = validate_positive},
};
const size_t pud_n_hidden_options = ELEMENTSOF(pud_hidden_option_table);

int pud_config_from_options(const struct pud_options *o, struct pud_config *ret, char **ret_msg)
{
	struct pud_config c = {
	    .retry_interval_ns = o->retry_interval_ns,
	    .cidata_dir = o->cidata_dir ? o->cidata_dir : PUD_DEFAULT_CIDATA_DIR,
	    .output_root = o->output_root ? o->output_root : PUD_DEFAULT_OUTPUT_ROOT,
	    .dmi_sys_vendor_path =
		o->dmi_sys_vendor_path ? o->dmi_sys_vendor_path : PUD_DEFAULT_DMI_SYS_VENDOR,
	    .tpm_device = o->tpm_device,
	};
	const char *timeout = o->t ? o->t : o->user_data_fetch_timeout;
	if (pud_parse_timeout(timeout ? timeout : PUD_DEFAULT_FETCH_TIMEOUT, &c.fetch_timeout_ns) <
	    0)
		return str_set_message(ret_msg, EINVAL, "invalid user data fetch timeout");
	if (pud_parse_provider(o->provider ? o->provider : "auto", &c.provider) < 0)
		return str_set_message(ret_msg, EINVAL, "invalid provider");
	if (c.retry_interval_ns <= 0)
		c.retry_interval_ns = 5 * NSEC_PER_SEC;
	*ret = c;
	return 0;
}
