/* attestation-client: runs in each pod VM after process-user-data; attests to the coordinator's
 * mesh API with a fresh key, writes the mesh certificate, CAs and workload secret under
 * /run/peerpod/mesh/ and renews them before they expire (podvm/README.md). */
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "attest-client.h"
#include "log/log.h"
#include "tls/tls.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [flags]\n\n"
		"Attest to the coordinator's mesh API and keep the pod's mesh certificate in\n"
		"<output-root>%s (renewed at -renew-fraction of its validity and on SIGHUP).\n\n"
		"Flags:\n",
		prog, ATTEST_CLIENT_MESH_DIR);
	config_print_help(f, attest_client_option_table, attest_client_n_options);
}

static int make_issuer(const struct attest_client_options *o, struct atls_test_pki **ret_pki,
		       struct atls_issuer **ret)
{
	_cleanup_free_ char *msg = NULL;
	const char *ev = o->evidence ? o->evidence : "auto";
	int r;
	if (str_eq(ev, "sim")) {
		if (str_empty(o->sim_pki) || str_empty(o->sim_measurement)) {
			log_error("-evidence sim needs -sim-pki and -sim-measurement");
			return -EINVAL;
		}
		struct atls_sim_params p = {};
		if (hex_decode_exact(o->sim_measurement, strlen(o->sim_measurement), p.measurement,
				     sizeof(p.measurement)) < 0)
			return log_error_errno(-EINVAL, "-sim-measurement");
		const char *gp = o->sim_guest_policy ? o->sim_guest_policy : "0x30000";
		p.policy = strtoull(gp, NULL, 16);
		if ((r = attest_client_read_host_data(o->output_root, p.host_data, &msg)) < 0) {
			log_error("simulated evidence: %s", msg);
			return r;
		}
		if ((r = atls_test_pki_load(o->sim_pki, ret_pki, &msg)) < 0) {
			log_error("cannot load the test PKI %s: %s", o->sim_pki,
				  msg ? msg : strerror(-r));
			return r;
		}
		if ((r = atls_issuer_new_sim(*ret_pki, &p, ret)) < 0)
			return log_error_errno(r, "simulated issuer");
		log_warning(
		    "simulated SEV-SNP evidence (tests only): nobody outside a test trusts it");
		return 0;
	}
	if (str_eq(ev, "snp") || str_eq(ev, "auto")) {
		r = atls_issuer_new_snp(NULL, ret, &msg);
		if (r >= 0)
			return 0;
		if (str_eq(ev, "snp") || r != -ENODEV) {
			log_error("SEV-SNP evidence: %s", msg ? msg : strerror(-r));
			return r;
		}
		msg = mfree(msg);
	}
	r = atls_issuer_new_tdx(NULL, ret, &msg);
	if (r >= 0)
		return 0;
	if (str_eq(ev, "auto") && r == -ENODEV)
		log_error("no SEV-SNP or TDX guest interface found (-evidence sim is for tests)");
	else
		log_error("TDX evidence: %s", msg ? msg : strerror(-r));
	return r;
}

/* Wait up to delay_ns for a signal: 0 on timeout, else the signal number. */
static int wait_signal(const sigset_t *set, int64_t delay_ns)
{
	int64_t deadline = now_ns() + delay_ns;
	for (;;) {
		int64_t left = deadline - now_ns();
		if (left <= 0)
			return 0;
		struct timespec ts = {.tv_sec = left / NSEC_PER_SEC,
				      .tv_nsec = left % NSEC_PER_SEC};
		int sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
		/* EINTR: another signal; keep waiting. */
	}
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint64_t)now_ns();
	return v;
}

static void format_time(int64_t sec, char buf[32])
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		str_copy(buf, 32, "?");
}

static int run(const struct attest_client_options *o, double fraction, const sigset_t *sigs)
{
	_cleanup_free_ char *address = NULL, *msg = NULL;
	int r = attest_client_coordinator_address(o->output_root, o->coordinator, &address, &msg);
	if (r < 0) {
		log_error("%s", msg ? msg : strerror(-r));
		return ATTEST_CLIENT_EXIT_USAGE;
	}
	_cleanup_(atls_test_pki_freep) struct atls_test_pki *pki = NULL;
	_cleanup_(atls_issuer_freep) struct atls_issuer *issuer = NULL;
	if (make_issuer(o, &pki, &issuer) < 0)
		return ATTEST_CLIENT_EXIT_FAILED;
	/* One key per run: every renewal certifies the same key. */
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	if ((r = tls_key_generate(&key)) < 0) {
		log_error_errno(r, "cannot generate the mesh key");
		return ATTEST_CLIENT_EXIT_FAILED;
	}
	log_info("attestation-client %s: coordinator %s, %s evidence, output under %s%s",
		 PP_VERSION, address, atls_evidence_oid(issuer->kind),
		 str_empty(o->output_root) ? "/" : o->output_root, ATTEST_CLIENT_MESH_DIR);

	int64_t start = now_ns();
	unsigned attempt = 0, failures = 0;
	bool have_cert = false;
	for (;;) {
		struct attest_client_answer a = {};
		_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
		msg = mfree(msg);
		r = attest_client_ctx_new(issuer, key, &ctx, &msg);
		if (r >= 0)
			r = attest_client_fetch(address, ctx, key, &a, &msg);
		if (r >= 0)
			r = attest_client_write_files(o->output_root, key, &a, &msg);
		int64_t delay;
		if (r >= 0) {
			char nb[32], na[32];
			format_time(a.not_before_sec, nb);
			format_time(a.not_after_sec, na);
			delay = attest_client_renew_delay_ns(a.not_before_sec, a.not_after_sec,
							     fraction,
							     now_realtime_ns() / NSEC_PER_SEC);
			log_info("mesh certificate written (valid %s .. %s%s%s)", nb, na,
				 a.has_secret ? ", workload secret " : "",
				 a.has_secret ? a.secret_id : "");
			if (!o->once)
				log_info("next renewal in %llds",
					 (long long)(delay / NSEC_PER_SEC));
			attest_client_answer_done(&a);
			if (o->once)
				return ATTEST_CLIENT_EXIT_OK;
			have_cert = true;
			attempt = 0;
			failures = 0;
		} else {
			attest_client_answer_done(&a);
			failures++;
			delay = attest_client_backoff_ns(attempt, o->retry_initial_ns,
							 o->retry_max_ns, random_u64());
			if (attempt < 64)
				attempt++;
			int64_t elapsed = now_ns() - start;
			if (!have_cert && o->timeout_ns > 0 && elapsed >= o->timeout_ns) {
				log_error("attempt %u failed: %s; giving up after %llds (-timeout)",
					  failures, msg ? msg : strerror(-r),
					  (long long)(elapsed / NSEC_PER_SEC));
				return ATTEST_CLIENT_EXIT_FAILED;
			}
			if (!have_cert && o->timeout_ns > 0 && delay > o->timeout_ns - elapsed)
				delay = o->timeout_ns - elapsed;
			log_warning("attempt %u failed: %s; retrying in %.1fs", failures,
				    msg ? msg : strerror(-r), (double)delay / NSEC_PER_SEC);
		}
		int sig = wait_signal(sigs, delay);
		if (sig == SIGHUP) {
			log_info("SIGHUP: attesting again now");
			attempt = 0;
		} else if (sig != 0) {
			log_info("received %s, exiting", strsignal(sig));
			return ATTEST_CLIENT_EXIT_OK;
		}
	}
}

int main(int argc, char **argv)
{
	log_set_program("attestation-client");
	signal(SIGPIPE, SIG_IGN);
	/* Signals are taken synchronously while waiting; network steps are bounded. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	struct attest_client_options o = {0};
	const struct config_table tables[] = {
	    {attest_client_option_table, attest_client_n_options, &o},
	    {attest_client_hidden_option_table, attest_client_n_hidden_options, &o},
	};
	_cleanup_free_ char *msg = NULL;
	int argind = 0, code = ATTEST_CLIENT_EXIT_USAGE;
	int r = config_parse(tables, ELEMENTSOF(tables), argc - 1, argv + 1, &argind, &msg);
	if (r == -EAGAIN) {
		usage(stdout, argv[0]);
		code = ATTEST_CLIENT_EXIT_OK;
		goto out;
	}
	if (r == -EALREADY) {
		printf("attestation-client %s\n", PP_VERSION);
		code = ATTEST_CLIENT_EXIT_OK;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[0], msg ? msg : strerror(-r));
		goto out;
	}
	if (argind < argc - 1) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", argv[0], argv[1 + argind]);
		goto out;
	}
	enum log_level level;
	if (o.log_level && log_parse_level(o.log_level, &level) >= 0)
		log_set_level(level);
	double fraction = 0.8;
	(void)attest_client_parse_fraction(
	    o.renew_fraction ? o.renew_fraction : ATTEST_CLIENT_DEFAULT_RENEW_FRACTION, &fraction);
	code = run(&o, fraction, &sigs);
out:
	config_free(attest_client_option_table, attest_client_n_options, &o);
	config_free(attest_client_hidden_option_table, attest_client_n_hidden_options, &o);
	return code;
}
