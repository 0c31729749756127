/* agent-standin: a kata-agent stand-in for tests and benchmarks. Serves grpc.Health and
 * grpc.AgentService on a Unix socket and can record every request as a JSON line. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "log/log.h"
#include "standin.h"

struct settings {
	char *socket;
	char *record;
	bool wait_blocks;
	char *log_level;
};

static const struct config_option options[] = {
    {"socket", "AGENT_STANDIN_SOCKET", CONFIG_STRING, STANDIN_DEFAULT_SOCKET,
     offsetof(struct settings, socket), "Unix socket to serve the agent protocol on", NULL},
    {"record", "AGENT_STANDIN_RECORD", CONFIG_STRING, NULL, offsetof(struct settings, record),
     "append every request as a JSON line to this file", NULL},
    {"wait-blocks", NULL, CONFIG_BOOL, "false", offsetof(struct settings, wait_blocks),
     "WaitProcess blocks until the container is removed (or signalled)", NULL},
    {"log-level", NULL, CONFIG_STRING, "info", offsetof(struct settings, log_level),
     "error, warning, info or debug", NULL},
};

static void on_signal(struct loop_source *src, int signo, void *userdata)
{
	loop_exit(loop_source_get_loop(src), 0);
}

static int run(struct settings *st)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct standin *s = NULL;
	enum log_level level;
	int r;

	if (log_parse_level(st->log_level, &level) < 0)
		return log_error("invalid --log-level %s", st->log_level), 2;
	log_set_level(level);

	r = loop_new(&l);
	if (r < 0)
		return log_error_errno(r, "cannot create the event loop"), 1;
	r = loop_add_signal(l, SIGTERM, on_signal, NULL, NULL);
	if (r >= 0)
		r = loop_add_signal(l, SIGINT, on_signal, NULL, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot watch signals"), 1;

	struct standin_options opts = {.record_path = st->record, .wait_blocks = st->wait_blocks};
	r = standin_new(l, &opts, &s);
	if (r < 0)
		return log_error_errno(r, "cannot start (record file %s)",
				       st->record ? st->record : "none"),
		       1;
	r = standin_listen(s, st->socket);
	if (r < 0) {
		standin_free(s);
		return log_error_errno(r, "cannot listen on %s", st->socket), 1;
	}
	log_info("serving the agent protocol on %s", st->socket);

	r = loop_run(l);
	standin_free(s);
	(void)unlink(st->socket);
	log_info("exiting");
	return r < 0 ? 1 : r;
}

int main(int argc, char **argv)
{
	struct settings st = {};
	struct config_table table = {options, ELEMENTSOF(options), &st};
	_cleanup_free_ char *msg = NULL;
	int argind = 0, r;

	signal(SIGPIPE, SIG_IGN);
	log_set_program("agent-standin");

	r = config_parse(&table, 1, argc - 1, argv + 1, &argind, &msg);
	if (r == -EAGAIN) {
		printf("Usage: agent-standin [OPTIONS]\n\n");
		config_print_help(stdout, options, ELEMENTSOF(options));
		config_free(options, ELEMENTSOF(options), &st);
		exit(0);
	}
	if (r == -EALREADY) {
		printf("agent-standin %s\n", PP_VERSION);
		config_free(options, ELEMENTSOF(options), &st);
		exit(0);
	}
	if (r < 0 || argind != argc - 1) {
		fprintf(stderr, "agent-standin: %s\n", msg ? msg : "unexpected arguments");
		config_free(options, ELEMENTSOF(options), &st);
		exit(2);
	}

	r = run(&st);
	config_free(options, ELEMENTSOF(options), &st);
	exit(r);
}
