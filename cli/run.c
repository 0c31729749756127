/* peerpodctl: the command table, usage checks, help and defaults; cli_run is the whole program. */
#include "cli.h"

#include "config/config.h"

#define B(o) CLI_OPT_BIT(CLI_OPT_##o)

struct command {
	const char *name;
	int (*run)(const struct cli_ctx *c);
	uint64_t options; /* beyond the global ones */
	unsigned n_args;  /* positional arguments after the command name */
	bool needs_pod;   /* --pod and --namespace are required */
	bool own_checks;  /* the command checks its options and arguments itself */
	const char *synopsis;
};

static const struct command commands[] = {
    {"version", cli_cmd_version, 0, 0, false, false,
     "version                       client version and the hypervisor's Version"},
    {"create", cli_cmd_create, B(ANNOTATION) | B(NETNS) | B(POD) | B(NAMESPACE), 1, false, false,
     "create SID [--pod NAME --namespace NS] [--netns PATH] [--annotation K=V]...\n"
     "                                CreateVM with the shim's nine annotations; prints the\n"
     "                                agent socket path"},
    {"start", cli_cmd_start, 0, 1, false, false,
     "start SID                     StartVM (default timeout 600s)"},
    {"stop", cli_cmd_stop, 0, 1, false, false, "stop SID                      StopVM"},
    {"info", cli_cmd_info, B(POD) | B(NAMESPACE) | B(WAIT), 0, true, false,
     "info --pod NAME --namespace NS [--wait]\n"
     "                                podvminfo.PodVMInfo/GetInfo: the pod's VM id"},
    {"lifecycle", cli_cmd_lifecycle, B(SID) | B(POD) | B(NAMESPACE) | B(ANNOTATION) | B(NETNS), 0,
     true, false,
     "lifecycle --pod NAME --namespace NS [--sid SID]\n"
     "                                create, start, agent health check, stop; timed"},
    {"agent", cli_cmd_agent, 0, 0, false, true,
     "agent --agent-socket PATH SUBCOMMAND\n"
     "                                drive an agent socket like the shim:\n"
     "      health | version | destroy-sandbox\n"
     "      create-sandbox [--sandbox-id ID] [--hostname H] [--dns LINE]...\n"
     "      create-container --id C [--sandbox-id ID] [-- ARGS...]\n"
     "      start-container --id C | remove-container --id C | wait-process --id C\n"
     "      copy-file --path P [--size N]\n"
     "      call --service S --method M [--payload-hex H]"},
    {"call", cli_cmd_call, B(ADDRESS) | B(SERVICE) | B(METHOD) | B(PAYLOAD_HEX), 0, false, false,
     "call --address ADDR --service S --method M [--payload-hex H]\n"
     "                                one ttRPC call (ADDR: socket path or host:port); prints\n"
     "                                the response payload as hex"},
};

#undef B

void cli_print_help(FILE *f)
{
	fprintf(f, "Usage: peerpodctl [OPTIONS] COMMAND [ARGS]\n\n"
		   "Drive a peer-pods hypervisor socket the way the Kata shim does.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	/* attest has options of its own (cli/attest.c) */
	fprintf(f, "  attest verify|show|bench --type snp|tdx --evidence FILE ...\n"
		   "                                verify SEV-SNP / TDX evidence offline "
		   "(peerpodctl attest --help)\n");
	fprintf(f, "  manifest generate|digest|check ... FILE.yaml...\n"
		   "                                coordinator manifest from Kubernetes YAML "
		   "(peerpodctl manifest --help)\n");
	/* the coordinator's commands (cli/coord.c) */
	fprintf(f, "  set -c HOST:PORT -m MANIFEST.json [FILE.yaml...|--initdata FILE]\n"
		   "                                attest the coordinator, set the manifest\n"
		   "  verify -c HOST:PORT [-m MANIFEST.json] [-o DIR]\n"
		   "                                attest, check and save the manifest history\n"
		   "  recover -c HOST:PORT --seedshare-key PEM --seedshare-file FILE [--force]\n"
		   "                                hand a stale coordinator its seed\n"
		   "  state -u http://HOST:PORT [-m MANIFEST.json]\n"
		   "                                the coordinator's attested state\n"
		   "  atls-cert --new-pki DIR | --pki DIR ...\n"
		   "                                test only: test PKI, simulated attester "
		   "certificates\n"
		   "                                (peerpodctl set --help for all of these)\n");
	fprintf(f,
		"\nOptions (anywhere on the line):\n"
		"  --socket PATH      hypervisor socket (env %s, default %s)\n"
		"  --timeout DURATION per-call deadline, Go syntax (default 600s for start, 60s "
		"otherwise)\n"
		"  --json             one JSON object per result\n"
		"  --help, --version\n\n"
		"Exit codes: 0 success, 1 a call failed, 2 usage error.\n",
		CLI_SOCKET_ENV, CLI_DEFAULT_SOCKET);
}

static _printf_(2, 3) int usage(FILE *err, const char *fmt, ...)
{
	va_list ap;
	fputs("peerpodctl: ", err);
	va_start(ap, fmt);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fputs(" (see peerpodctl --help)\n", err);
	return CLI_EXIT_USAGE;
}

static int check_command(const struct command *cmd, const struct cli_args *a, FILE *err)
{
	_cleanup_free_ char *msg = NULL;

	if (cli_args_check(a, CLI_OPTS_GLOBAL | cmd->options, cmd->name, &msg) < 0)
		return usage(err, "%s", msg ? msg : "invalid option");
	if (a->n_positional != a->n_before_dashdash)
		return usage(err, "'%s' takes no arguments after --", cmd->name);
	if (a->n_positional - 1 != cmd->n_args) {
		if (cmd->n_args == 1 && a->n_positional == 1)
			return usage(err, "'%s' needs a sandbox id", cmd->name);
		return usage(err, "too many arguments for '%s'", cmd->name);
	}
	if (cmd->n_args == 1 && str_empty(a->positional[1]))
		return usage(err, "'%s' needs a non-empty sandbox id", cmd->name);
	if (cmd->needs_pod && (str_empty(a->pod) || str_empty(a->ns)))
		return usage(err, "'%s' needs --pod NAME and --namespace NS", cmd->name);
	return 0;
}

int cli_run(int argc, char *const *argv, FILE *out, FILE *err)
{
	_cleanup_(cli_args_done) struct cli_args a = {};
	_cleanup_free_ char *msg = NULL;

	if (cli_args_parse(argc - 1, argv + 1, &a, &msg) < 0)
		return usage(err, "%s", msg ? msg : "invalid arguments");
	if (a.help || (a.n_positional > 0 && str_eq(a.positional[0], "help"))) {
		cli_print_help(out);
		return CLI_EXIT_OK;
	}
	if (a.version) {
		fprintf(out, "peerpodctl %s\n", PP_VERSION);
		return CLI_EXIT_OK;
	}
	if (a.n_before_dashdash == 0) {
		cli_print_help(err);
		return CLI_EXIT_USAGE;
	}

	const struct command *cmd = NULL;
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (str_eq(commands[i].name, a.positional[0]))
			cmd = &commands[i];
	if (!cmd)
		return usage(err, "unknown command '%s'", a.positional[0]);
	if (!cmd->own_checks) {
		int r = check_command(cmd, &a, err);
		if (r != 0)
			return r;
	}

	const char *socket = a.socket;
	if (str_empty(socket))
		socket = config_getenv(CLI_SOCKET_ENV);
	if (str_empty(socket))
		socket = CLI_DEFAULT_SOCKET;
	_cleanup_free_ char *address = cli_unix_address(socket);
	if (!address) {
		fprintf(err, "error: out of memory\n");
		return CLI_EXIT_FAILED;
	}

	struct cli_ctx ctx = {
	    .args = &a,
	    .out = {.out = out, .err = err, .json = a.json},
	    .socket = address,
	};
	return cmd->run(&ctx);
}
