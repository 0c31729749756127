/* coordinator: the attestation coordinator daemon (ATTESTATION.md 5-10): manifest history, mesh
 * CA and certificates for attested workloads, user and peer recovery, HTTP attestation.
 * Usage: coordinator [flags] */
#include <signal.h>
#include <stdio.h>

#include "coordinator/daemon.h"
#include "log/log.h"

#define TEST_ANCHOR_MAX_BYTES (64 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: coordinator [flags]\n\nFlags (flag > environment variable > default):\n");
	config_print_help(f, coord_options, coord_n_options);
}

static int parse_hex_u64(const char *s, uint64_t *ret)
{
	if (str_startswith(s, "0x") || str_startswith(s, "0X"))
		s += 2;
	size_t n = strlen(s);
	if (n == 0 || n > 16)
		return -EINVAL;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		int d = hex_digit_value(s[i]);
		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	*ret = v;
	return 0;
}

/* This coordinator's own evidence. */
static int issuer_setup(const struct coord_settings *s, struct atls_test_pki **ret_pki,
			struct atls_issuer **ret)
{
	const char *ev = s->evidence ? s->evidence : "auto";
	_cleanup_free_ char *msg = NULL, *msg2 = NULL;
	int r;
	if (str_eq(ev, "sim")) {
		struct atls_sim_params p = {0};
		if (str_empty(s->sim_pki) || str_empty(s->sim_measurement) ||
		    str_empty(s->sim_host_data)) {
			log_error(
			    "-evidence sim needs -sim-pki, -sim-measurement and -sim-host-data");
			return -EINVAL;
		}
		if (hex_decode_exact(s->sim_measurement, strlen(s->sim_measurement), p.measurement,
				     sizeof(p.measurement)) < 0 ||
		    hex_decode_exact(s->sim_host_data, strlen(s->sim_host_data), p.host_data,
				     sizeof(p.host_data)) < 0) {
			log_error("-sim-measurement must be 96 and -sim-host-data 64 hex digits");
			return -EINVAL;
		}
		if (!str_empty(s->sim_guest_policy) &&
		    parse_hex_u64(s->sim_guest_policy, &p.policy) < 0) {
			log_error("-sim-guest-policy: not a hex number: %s", s->sim_guest_policy);
			return -EINVAL;
		}
		r = atls_test_pki_load(s->sim_pki, ret_pki, &msg);
		if (r < 0) {
			log_error("-sim-pki %s: %s", s->sim_pki, msg ? msg : strerror(-r));
			return r;
		}
		r = atls_issuer_new_sim(*ret_pki, &p, ret);
		if (r < 0)
			return log_error_errno(r, "simulated evidence");
		log_warning("TEST MODE: this coordinator presents simulated SEV-SNP evidence; "
			    "nobody outside a test trusts it");
		return 0;
	}
	if (str_eq(ev, "snp") || str_eq(ev, "auto")) {
		r = atls_issuer_new_snp(NULL, ret, &msg);
		if (r >= 0 || str_eq(ev, "snp")) {
			if (r < 0)
				log_error("SEV-SNP evidence: %s", msg ? msg : strerror(-r));
			return r;
		}
	}
	r = atls_issuer_new_tdx(NULL, ret, &msg2);
	if (r < 0) {
		if (str_eq(ev, "tdx"))
			log_error("TDX evidence: %s", msg2 ? msg2 : strerror(-r));
		else
			log_error("no TEE evidence available: SEV-SNP: %s; TDX: %s (tests: "
				  "-evidence sim)",
				  msg ? msg : "unavailable", msg2 ? msg2 : strerror(-r));
	}
	return r;
}

static int store_setup(const struct coord_settings *s, struct store **ret)
{
	int r;
	if (!str_empty(s->etcd_endpoints)) {
		struct store_etcd_options o = {
		    .endpoints = s->etcd_endpoints,
		    .prefix = s->etcd_prefix,
		    .timeout_ns = s->etcd_timeout_ns,
		    .ca_file = s->etcd_ca_file,
		    .cert_file = s->etcd_cert_file,
		    .key_file = s->etcd_key_file,
		};
		_cleanup_free_ char *msg = NULL;
		r = store_open_etcd(&o, ret, &msg);
		if (r < 0)
			log_error("etcd %s: %s", s->etcd_endpoints, msg ? msg : strerror(-r));
		else
			log_info("manifest history in etcd %s", s->etcd_endpoints);
		return r;
	}
	r = store_open_dir(s->data_dir, ret);
	if (r < 0)
		return log_error_errno(r, "cannot open the history in %s", s->data_dir);
	log_info("manifest history in %s", s->data_dir);
	return 0;
}

static void on_signal(struct loop_source *s, int signo, void *userdata)
{
	log_info("%s: stopping", strsignal(signo));
	loop_exit(loop_source_get_loop(s), 0);
}

int main(int argc, char **argv)
{
	log_set_program("coordinator");
	struct coord_settings settings = {0};
	struct config_table table = {coord_options, coord_n_options, &settings};
	int argind = 0, r;
	_cleanup_free_ char *msg = NULL;
	r = config_parse(&table, 1, argc - 1, argv + 1, &argind, &msg);
	if (r == -EAGAIN) {
		usage(stdout);
		config_free(coord_options, coord_n_options, &settings);
		return 0;
	}
	if (r == -EALREADY) {
		printf("coordinator %s\n", PP_VERSION);
		config_free(coord_options, coord_n_options, &settings);
		return 0;
	}
	if (r < 0 || argind < argc - 1) {
		if (r < 0)
			fprintf(stderr, "error: %s\n", msg ?: strerror(-r));
		else
			fprintf(stderr, "error: unexpected argument \"%s\"\n", argv[1 + argind]);
		config_free(coord_options, coord_n_options, &settings);
		return 2;
	}
	if (settings.print_config) {
		config_print_values(stdout, coord_options, coord_n_options, &settings);
		config_free(coord_options, coord_n_options, &settings);
		return 0;
	}
	enum log_format lfmt;
	enum log_level llvl;
	/* validated by the option table */
	(void)log_parse_format(settings.log_format, &lfmt);
	(void)log_parse_level(settings.log_level, &llvl);
	log_set_format(lfmt);
	log_set_level(llvl);
	signal(SIGPIPE, SIG_IGN);

	int ret = 1;
	struct atls_test_pki *pki = NULL;
	struct atls_issuer *issuer = NULL;
	struct store *store = NULL;
	struct history *history = NULL;
	struct loop *loop = NULL;
	struct coord *d = NULL;
	struct coord_crl_cache *crl = NULL;
	_cleanup_free_ char *anchor = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;

	if (issuer_setup(&settings, &pki, &issuer) < 0) {
		ret = 2;
		goto out;
	}
	if (!str_empty(settings.test_trust_anchor)) {
		size_t len = 0;
		r = read_file_bounded(settings.test_trust_anchor, TEST_ANCHOR_MAX_BYTES, &anchor,
				      &len);
		if (r < 0) {
			log_error_errno(r, "-test-trust-anchor %s", settings.test_trust_anchor);
			ret = 2;
			goto out;
		}
		log_warning("TEST MODE: simulated evidence signed by the test trust anchor %s is "
			    "accepted from workloads and peers; never use this in production",
			    settings.test_trust_anchor);
	}
	if (coord_crl_cache_new(settings.offline ? NULL : settings.amd_kds_url,
				settings.attest_cache_dir, 0, &crl) < 0) {
		log_error("out of memory");
		goto out;
	}
	if (settings.offline && str_empty(settings.attest_cache_dir))
		log_warning(
		    "-offline without -attest-cache-dir: SEV-SNP evidence must carry its CRL");
	if (store_setup(&settings, &store) < 0)
		goto out;
	r = history_open(store, &history, &err);
	if (r < 0) {
		log_error("cannot open the manifest history: %s", pp_error_message(err, r));
		goto out;
	}
	log_info("history state at start: %s", history_state_name(history_get_state(history)));

	r = loop_new(&loop);
	if (r < 0) {
		log_error_errno(r, "cannot create the event loop");
		goto out;
	}
	loop_set_pool_size(loop, (unsigned)settings.worker_pool_size);
	struct coord_deps deps = {
	    .loop = loop,
	    .settings = &settings,
	    .store = store,
	    .history = history,
	    .issuer = issuer,
	    .test_anchor_pem = anchor,
	    .crl = crl,
	};
	r = coord_new(&deps, &d, &msg);
	if (r < 0) {
		log_error("cannot set up: %s", msg ? msg : strerror(-r));
		goto out;
	}
	r = coord_start(d, &msg);
	if (r < 0) {
		log_error("%s", msg ? msg : strerror(-r));
		goto out;
	}
	if (loop_add_signal(loop, SIGTERM, on_signal, NULL, NULL) < 0 ||
	    loop_add_signal(loop, SIGINT, on_signal, NULL, NULL) < 0) {
		log_error("cannot set up signal handling");
		goto out;
	}
	log_info("coordinator %s running%s", PP_VERSION, anchor ? " (TEST MODE)" : "");
	r = loop_run(loop);
	ret = r < 0 ? 1 : 0;
	log_info("exiting");
out:
	/* Work on the workers finishes inside loop_free and reports to d. */
	coord_stop(d);
	loop = loop_free(loop);
	coord_free(d);
	coord_crl_cache_free(crl);
	history_free(history);
	store_free(store);
	atls_issuer_free(issuer);
	atls_test_pki_free(pki);
	config_free(coord_options, coord_n_options, &settings);
	return ret;
}
