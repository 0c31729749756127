/* peerpodctl attest: verify or show SEV-SNP reports and TDX quotes from files, offline, and
 * measure the SNP verification rate. */
#include <getopt.h>
#include <time.h>

#include "attest/attest.h"
#include "cli.h"

enum {
	OPT_TYPE = 256,
	OPT_EVIDENCE,
	OPT_VCEK,
	OPT_CHAIN,
	OPT_COLLATERAL,
	OPT_AT,
	OPT_REFERENCE,
	OPT_REPORT_DATA,
	OPT_SKIP_CRL,
	OPT_SKIP_COLLATERAL,
	OPT_TRUST_ANCHOR,
	OPT_JSON,
	OPT_SECONDS,
	OPT_HELP
};

static const struct option options[] = {
    {"type", required_argument, NULL, OPT_TYPE},
    {"evidence", required_argument, NULL, OPT_EVIDENCE},
    {"vcek", required_argument, NULL, OPT_VCEK},
    {"vlek", required_argument, NULL, OPT_VCEK},
    {"chain", required_argument, NULL, OPT_CHAIN},
    {"collateral", required_argument, NULL, OPT_COLLATERAL},
    {"at", required_argument, NULL, OPT_AT},
    {"reference", required_argument, NULL, OPT_REFERENCE},
    {"report-data", required_argument, NULL, OPT_REPORT_DATA},
    {"skip-crl", no_argument, NULL, OPT_SKIP_CRL},
    {"skip-collateral", no_argument, NULL, OPT_SKIP_COLLATERAL},
    {"trust-anchor", required_argument, NULL, OPT_TRUST_ANCHOR},
    {"json", no_argument, NULL, OPT_JSON},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"help", no_argument, NULL, OPT_HELP},
    {},
};

static void attest_usage(FILE *f)
{
	fputs("usage: peerpodctl attest verify --type snp|tdx --evidence FILE [--vcek FILE]\n"
	      "         [--chain FILE] [--collateral DIR] [--at RFC3339] [--reference FILE.json]\n"
	      "         [--report-data HEX] [--skip-crl] [--skip-collateral] [--trust-anchor PEM]\n"
	      "         [--json]\n"
	      "       peerpodctl attest show --type snp|tdx --evidence FILE [--json]\n"
	      "       peerpodctl attest bench --type snp|tdx --evidence FILE [verify options]\n"
	      "         [--seconds N]\n"
	      "exit status: 0 accepted, 1 rejected or unreadable input, 2 usage error\n",
	      f);
}

/* TDX with chain and collateral cached: two P-256 verifications (QE report, quote) and the
 * binding hash per quote. attest_tdx_bench_files() verifies the quote fully once before its
 * rounds; that setup is measured separately (n = 0) and subtracted. */
static int bench_tdx(const struct attest_files *f, long seconds, bool json, FILE *out, FILE *err)
{
	_cleanup_free_ char *msg = NULL;
	int64_t t0 = now_ns();
	int r = attest_tdx_bench_files(f, 0, &msg);
	int64_t setup = now_ns() - t0;
	unsigned n = 256;
	int64_t rounds_ns = 0;
	while (r == 0) {
		t0 = now_ns();
		r = attest_tdx_bench_files(f, n, &msg);
		rounds_ns = now_ns() - t0 - setup;
		if (r < 0 || rounds_ns >= seconds * NSEC_PER_SEC || n >= (1u << 24))
			break;
		n *= 2;
	}
	if (r < 0) {
		fprintf(err, "error: %s\n", msg ? msg : strerror(-r));
		return CLI_EXIT_FAILED;
	}
	double secs = rounds_ns > 0 ? (double)rounds_ns / NSEC_PER_SEC : 0;
	double rate = secs > 0 ? n / secs : 0;
	if (json)
		fprintf(out,
			"{\"type\":\"tdx\",\"verifications\":%u,\"seconds\":%.3f,"
			"\"verifications_per_second\":%.1f,\"accepted\":true}\n",
			n, secs, rate);
	else
		fprintf(out, "%u verifications in %.3f s: %.1f verifications/s (all accepted)\n", n,
			secs, rate);
	return CLI_EXIT_OK;
}

/* RFC 3339: 2026-06-01T00:00:00Z, optional fraction, Z or +hh:mm/-hh:mm. */
static int parse_rfc3339(const char *s, int64_t *ret)
{
	struct tm tm = {};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		p = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '+' ? 1 : -1;
		if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' &&
		      p[4] >= '0' && p[4] <= '9' && p[5] >= '0' && p[5] <= '9'))
			return -EINVAL;
		off = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
			      ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret = (int64_t)t - off;
	return 0;
}

static const char *status_word(enum attest_check_status s)
{
	return s == ATTEST_CHECK_PASS ? "pass" : s == ATTEST_CHECK_FAIL ? "FAIL" : "skip";
}

static int print_result(const struct attest_result *res, bool json, FILE *out, FILE *err)
{
	if (json) {
		json_t *j = NULL;
		if (attest_result_to_json(res, &j) < 0) {
			fputs("error: out of memory\n", err);
			return CLI_EXIT_FAILED;
		}
		char *s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (!s) {
			fputs("error: out of memory\n", err);
			return CLI_EXIT_FAILED;
		}
		fprintf(out, "%s\n", s);
		free(s);
	} else {
		for (size_t i = 0; i < res->n_checks; i++)
			fprintf(out, "%-4s  %-16s %s\n", status_word(res->checks[i].status),
				res->checks[i].name, res->checks[i].message);
		if (res->accepted)
			fputs("ACCEPTED\n", out);
		else
			fprintf(out, "REJECTED: %s\n", attest_error_name(res->error));
	}
	return res->accepted ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

int cli_attest_run(int argc, char *const *argv, FILE *out, FILE *err)
{
	struct attest_files f = {};
	const char *type = NULL, *at = NULL, *report_data_hex = NULL;
	bool json = false, help = false, have_seconds = false;
	uint32_t seconds = 3;
	_cleanup_free_ uint8_t *report_data = NULL;

	if (argc < 2) {
		attest_usage(err);
		return CLI_EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (str_eq(verb, "--help") || str_eq(verb, "-h") || str_eq(verb, "help")) {
		attest_usage(out);
		return CLI_EXIT_OK;
	}
	optind = 0; /* reset getopt, also for repeated calls from tests */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc - 1, argv + 1, ":", options, NULL)) != -1) {
		switch (c) {
		case OPT_TYPE:
			type = optarg;
			break;
		case OPT_EVIDENCE:
			f.evidence = optarg;
			break;
		case OPT_VCEK:
			f.vek = optarg;
			break;
		case OPT_CHAIN:
			f.chain = optarg;
			break;
		case OPT_COLLATERAL:
			f.collateral_dir = optarg;
			break;
		case OPT_AT:
			at = optarg;
			break;
		case OPT_REFERENCE:
			f.reference = optarg;
			break;
		case OPT_REPORT_DATA:
			report_data_hex = optarg;
			break;
		case OPT_SKIP_CRL:
			f.skip_crl = true;
			break;
		case OPT_SKIP_COLLATERAL:
			f.skip_collateral = true;
			break;
		case OPT_TRUST_ANCHOR:
			f.trust_anchor = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_SECONDS:
			if (parse_u32(optarg, &seconds) < 0 || seconds == 0 || seconds > 3600)
				return cli_usage_error(err, "attest",
						       "--seconds needs 1..3600, not '%s'", optarg);
			have_seconds = true;
			break;
		case OPT_HELP:
			help = true;
			break;
		case ':':
			return cli_usage_error(err, "attest", "option '%s' needs a value",
					       argv[optind]);
		default:
			return cli_usage_error(err, "attest", "unknown option '%s'", argv[optind]);
		}
	}
	if (help) {
		attest_usage(out);
		return CLI_EXIT_OK;
	}
	if (optind + 1 < argc)
		return cli_usage_error(err, "attest", "unexpected argument '%s'", argv[optind + 1]);
	bool verify = str_eq(verb, "verify"), show = str_eq(verb, "show"),
	     bench = str_eq(verb, "bench");
	if (!verify && !show && !bench)
		return cli_usage_error(err, "attest", "unknown attest command '%s'", verb);
	bool snp = str_eq(type, "snp"), tdx = str_eq(type, "tdx");
	if (!snp && !tdx)
		return cli_usage_error(err, "attest", "--type must be snp or tdx");
	if (!f.evidence)
		return cli_usage_error(err, "attest", "--evidence FILE is required");
	if (show && (f.vek || f.chain || f.collateral_dir || at || f.reference || report_data_hex ||
		     f.skip_crl || f.skip_collateral || f.trust_anchor || have_seconds))
		return cli_usage_error(err, "attest",
				       "'attest show' takes only --type, --evidence and --json");
	if (!bench && have_seconds)
		return cli_usage_error(err, "attest", "--seconds is only for 'attest bench'");

	_cleanup_free_ char *msg = NULL;
	if (show) {
		json_t *j = NULL;
		int r = snp ? attest_snp_show_file(f.evidence, &j, &msg)
			    : attest_tdx_show_file(f.evidence, &j, &msg);
		if (r < 0) {
			fprintf(err, "error: %s\n", msg ? msg : strerror(-r));
			return CLI_EXIT_FAILED;
		}
		char *s = json_dumps(j, json ? JSON_COMPACT : JSON_INDENT(2));
		json_decref(j);
		if (!s) {
			fputs("error: out of memory\n", err);
			return CLI_EXIT_FAILED;
		}
		fprintf(out, "%s\n", s);
		free(s);
		return CLI_EXIT_OK;
	}

	if (at) {
		if (parse_rfc3339(at, &f.now_sec) < 0)
			return cli_usage_error(err, "attest",
					       "--at needs an RFC 3339 time, not '%s'", at);
	} else {
		f.now_sec = now_realtime_ns() / NSEC_PER_SEC;
	}
	if (report_data_hex) {
		size_t n = 0;
		if (cli_hex_decode(report_data_hex, &report_data, &n) < 0 || n != 64)
			return cli_usage_error(err, "attest",
					       "--report-data needs 128 hex digits, not '%s'",
					       report_data_hex);
		f.report_data = report_data;
	}

	if (bench && !snp)
		return bench_tdx(&f, seconds, json, out, err);
	if (bench) {
		struct attest_snp_cache *cache = attest_snp_cache_new();
		if (!cache) {
			fputs("error: out of memory\n", err);
			return CLI_EXIT_FAILED;
		}
		uint64_t n = 0;
		bool accepted = true;
		int64_t start = now_ns(), end = start + (int64_t)seconds * NSEC_PER_SEC, t = start;
		while (t < end) {
			struct attest_result res = {};
			int r = attest_snp_verify_files_cached(&f, cache, &res, &msg);
			accepted = accepted && r == 0 && res.accepted;
			attest_result_done(&res);
			if (r < 0) {
				attest_snp_cache_free(cache);
				fprintf(err, "error: %s\n", msg ? msg : strerror(-r));
				return CLI_EXIT_FAILED;
			}
			n++;
			t = now_ns();
		}
		attest_snp_cache_free(cache);
		double secs = (double)(t - start) / NSEC_PER_SEC;
		double rate = secs > 0 ? (double)n / secs : 0;
		if (json)
			fprintf(out,
				"{\"type\":\"snp\",\"verifications\":%llu,\"seconds\":%.3f,"
				"\"verifications_per_second\":%.1f,\"accepted\":%s}\n",
				(unsigned long long)n, secs, rate, accepted ? "true" : "false");
		else
			fprintf(out, "%llu verifications in %.3f s: %.1f verifications/s (%s)\n",
				(unsigned long long)n, secs, rate,
				accepted ? "all accepted" : "REJECTED");
		return accepted ? CLI_EXIT_OK : CLI_EXIT_FAILED;
	}

	struct attest_result res = {};
	int r =
	    snp ? attest_snp_verify_files(&f, &res, &msg) : attest_tdx_verify_files(&f, &res, &msg);
	if (r < 0) {
		attest_result_done(&res);
		fprintf(err, "error: %s\n", msg ? msg : strerror(-r));
		return CLI_EXIT_FAILED;
	}
	int code = print_result(&res, json, out, err);
	attest_result_done(&res);
	return code;
}
