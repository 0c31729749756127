/* process-user-data: `provision-files` fetches the pod's cloud-config at boot and writes the
 * allowed files and initdata (WIRE.md 5.2 to 5.4). Exits non-zero when no valid user data came
 * in time or a file cannot be written. */
#include <stdio.h>

#include "log/log.h"
#include "userdata-prog.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s provision-files [flags]\n\nFlags:\n", prog);
	config_print_help(f, pud_option_table, pud_n_options);
}

int main(int argc, char **argv)
{
	log_set_program("process-user-data");
	if (argc < 2 || str_eq(argv[1], "-h") || str_eq(argv[1], "--help") ||
	    str_eq(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout, argv[0]);
		return argc < 2 ? 2 : 0;
	}
	if (str_eq(argv[1], "--version") || str_eq(argv[1], "version")) {
		printf("process-user-data %s\n", PP_VERSION);
		return 0;
	}
	if (!str_eq(argv[1], "provision-files")) {
		fprintf(stderr, "%s: unknown command \"%s\"\n", argv[0], argv[1]);
		usage(stderr, argv[0]);
		return 2;
	}

	struct pud_options o = {0};
	const struct config_table tables[] = {
	    {pud_option_table, pud_n_options, &o},
	    {pud_hidden_option_table, pud_n_hidden_options, &o},
	};
	_cleanup_free_ char *msg = NULL;
	int argind = 0;
	/* Flags start after the sub-command. */
	int r = config_parse(tables, ELEMENTSOF(tables), argc - 2, argv + 2, &argind, &msg);
	if (r == -EAGAIN) {
		usage(stdout, argv[0]);
		r = 0;
		goto out;
	}
	if (r == -EALREADY) {
		printf("process-user-data %s\n", PP_VERSION);
		r = 0;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[0], msg ? msg : strerror(-r));
		goto out;
	}
	if (argind < argc - 2) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", argv[0], argv[2 + argind]);
		r = -EINVAL;
		goto out;
	}
	enum log_level level;
	if (o.log_level && log_parse_level(o.log_level, &level) >= 0)
		log_set_level(level);

	struct pud_config c;
	if ((r = pud_config_from_options(&o, &c, &msg)) < 0) {
		fprintf(stderr, "%s: %s\n", argv[0], msg ? msg : strerror(-r));
		goto out;
	}
	log_info("process-user-data %s: provision-files (source %s, timeout %llds)", PP_VERSION,
		 pud_provider_to_string(c.provider),
		 (long long)(c.fetch_timeout_ns / NSEC_PER_SEC));
	r = pud_provision_files(&c);
	if (r < 0)
		log_error_errno(r, "provisioning failed");
out:
	config_free(pud_option_table, pud_n_options, &o);
	config_free(pud_hidden_option_table, pud_n_hidden_options, &o);
	return r < 0 ? 1 : 0;
}
