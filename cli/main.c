/* peerpodctl: the operator's tool that drives a hypervisor or agent socket like the Kata shim. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int main(int argc, char **argv)
{
	/* A server closing mid-write must turn into an error, not kill the tool. */
	signal(SIGPIPE, SIG_IGN);
	/* attest has file options of its own, outside the socket commands' option table. */
	if (argc > 1 && str_eq(argv[1], "attest"))
		exit(cli_attest_run(argc - 1, argv + 1, stdout, stderr));
	/* so do the coordinator's commands (cli/manifest.c, cli/coord.c) */
	if (argc > 1 && str_eq(argv[1], "manifest"))
		exit(cli_manifest_run(argc - 1, argv + 1, stdout, stderr));
	if (argc > 1 && cli_coord_is_command(argv[1]))
		exit(cli_coord_run(argc - 1, argv + 1, stdout, stderr));
	exit(cli_run(argc, argv, stdout, stderr));
}
