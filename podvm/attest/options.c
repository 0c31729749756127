/* attestation-client: the flag table (lib/config) and its validators. */
#include "attest-client.h"

#include <math.h>
#include <stddef.h>

#include "log/log.h"

int attest_client_parse_fraction(const char *s, double *ret)
{
	if (str_empty(s))
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || !end || *end || !isfinite(v) || v <= 0 || v > 1)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int validate_fraction(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	double v;
	if (s && attest_client_parse_fraction(s, &v) < 0)
		return str_set_message(ret_msg, EINVAL,
				       "invalid renew fraction \"%s\": want a number in (0, 1]", s);
	return 0;
}

static int validate_evidence(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	if (s && !str_eq(s, "auto") && !str_eq(s, "snp") && !str_eq(s, "tdx") && !str_eq(s, "sim"))
		return str_set_message(ret_msg, EINVAL,
				       "invalid evidence \"%s\": want auto, snp, tdx or sim", s);
	return 0;
}

static int validate_hex96(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	uint8_t m[48];
	if (s && hex_decode_exact(s, strlen(s), m, sizeof(m)) < 0)
		return str_set_message(ret_msg, EINVAL, "want 96 hex digits, not \"%s\"", s);
	return 0;
}

static int validate_guest_policy(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	if (!s)
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 16);
	if (errno != 0 || !end || *end || end == s || s[0] == '-' || v == 0)
		return str_set_message(ret_msg, EINVAL,
				       "invalid guest policy \"%s\": want hex, e.g. 0x30000", s);
	return 0;
}

static int validate_non_negative(const void *field, char **ret_msg)
{
	if (*(const int64_t *)field < 0)
		return str_set_message(ret_msg, EINVAL, "must not be negative");
	return 0;
}

static int validate_positive(const void *field, char **ret_msg)
{
	if (*(const int64_t *)field <= 0)
		return str_set_message(ret_msg, EINVAL, "must be a positive duration");
	return 0;
}

#define OPT(name, member) .flag = name, .offset = offsetof(struct attest_client_options, member)

const struct config_option attest_client_option_table[] = {
    {OPT("coordinator", coordinator), .env = ATTEST_CLIENT_ADDRESS_ENV, .type = CONFIG_STRING,
     .help = "the coordinator's mesh API, HOST:PORT (default: the initdata [data] entry "
	     "\"coordinator\")"},
    {OPT("output-root", output_root), .type = CONFIG_STRING, .def = "/",
     .help = "directory the in-VM paths are read and written under"},
    {OPT("evidence", evidence), .type = CONFIG_STRING, .def = "auto",
     .help = "evidence source: auto (SEV-SNP, else TDX), snp, tdx or sim (tests only)",
     .validate = validate_evidence},
    {OPT("sim-pki", sim_pki), .type = CONFIG_STRING,
     .help = "sim: the test PKI directory (peerpodctl atls-cert --new-pki)"},
    {OPT("sim-measurement", sim_measurement), .type = CONFIG_STRING,
     .help = "sim: MEASUREMENT, 96 hex digits", .validate = validate_hex96},
    {OPT("sim-guest-policy", sim_guest_policy), .type = CONFIG_STRING, .def = "0x30000",
     .help = "sim: the guest POLICY, hex", .validate = validate_guest_policy},
    {OPT("once", once), .type = CONFIG_BOOL, .def = "false",
     .help = "exit 0 after the first success instead of renewing"},
    {OPT("timeout", timeout_ns), .type = CONFIG_DURATION, .def = "0",
     .help = "give up the first attestation after this long (0: never)",
     .validate = validate_non_negative},
    {OPT("retry-max", retry_max_ns), .type = CONFIG_DURATION,
     .def = ATTEST_CLIENT_DEFAULT_RETRY_MAX,
     .help = "backoff cap between attempts (starts at 1s, doubles, with jitter)",
     .validate = validate_positive},
    {OPT("renew-fraction", renew_fraction), .type = CONFIG_STRING,
     .def = ATTEST_CLIENT_DEFAULT_RENEW_FRACTION,
     .help = "renew once this fraction of the certificate's validity has passed (also on "
	     "SIGHUP)",
     .validate = validate_fraction},
    {OPT("log-level", log_level), .type = CONFIG_STRING, .def = "info",
     .help = "error, warning, info or debug", .validate = log_validate_level_option},
};
const size_t attest_client_n_options = ELEMENTSOF(attest_client_option_table);

/* Not shown in the help: tests shorten the first backoff step. */
const struct config_option attest_client_hidden_option_table[] = {
    {OPT("retry-initial", retry_initial_ns), .type = CONFIG_DURATION,
     .def = ATTEST_CLIENT_DEFAULT_RETRY_INITIAL, .validate = validate_positive},
};
const size_t attest_client_n_hidden_options = ELEMENTSOF(attest_client_hidden_option_table);
