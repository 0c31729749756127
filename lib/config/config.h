/* lib/config: one option table per program. Each option has a flag, an optional environment
 * variable, a default and a validator. Precedence: flag > non-empty environment value > default.
 * Flags accept Go's forms: -name value, -name=value, --name value, --name=value; booleans also
 * accept a bare -name (true) and -name=false. */
#pragma once

#include <stdio.h>

#include "base/base.h"

enum config_type {
	CONFIG_STRING,   /* char *, malloc'd (NULL when empty default) */
	CONFIG_SECRET,   /* char *, like STRING but never printed; wiped on free */
	CONFIG_BOOL,     /* bool; env true only for "1"/"true" in any case (WIRE 8) */
	CONFIG_INT,      /* int64_t */
	CONFIG_UINT,     /* uint64_t */
	CONFIG_PORT,     /* uint16_t, 1..65535 */
	CONFIG_DURATION, /* int64_t nanoseconds, Go duration syntax */
	CONFIG_LIST,     /* char **, comma-separated, NULL-terminated, empty items dropped */
};

struct config_option {
	const char *flag; /* without dashes: "socket"; NULL for an environment-only option */
	const char *env;  /* environment variable, or NULL */
	enum config_type type;
	const char *def; /* default as text, parsed like any other value; NULL = empty */
	size_t offset;   /* offsetof(settings struct, member) */
	const char *help;
	/* Optional extra check after parsing; return <0 and set *ret_msg (malloc'd) to refuse. */
	int (*validate)(const void *field, char **ret_msg);
};

/* Where values came from, for tests; getenv is the default. */
typedef const char *(*config_getenv_fn)(const char *name);
void config_set_getenv(config_getenv_fn fn);
/* The only sanctioned environment lookup outside this module's table parsing. */
const char *config_getenv(const char *name);

/* Parse argv[0..argc) against one or more tables (NULL-terminated array of tables with their
 * sizes, each applying to its own settings struct). Stops at the first non-flag argument or at
 * "--"; *ret_argind is the index of the first argument not consumed. On error returns -EINVAL and
 * sets *ret_msg (malloc'd) to a message naming the option. "-help"/"--help"/"-h" returns -EAGAIN
 * (caller prints help); "--version"/"-version" returns -EALREADY.
 * argv[0] is the first argument parsed, not a program name: pass argv + 1 (or + 2 after a
 * sub-command). The settings structs must start zeroed and be released with config_free whatever
 * this returns. Empty string and list values are stored as NULL. A repeated list flag appends to
 * what earlier occurrences of that flag gave; any other repeated flag keeps the last value.
 * Validators run last, on the final value, also when it is the default. */
struct config_table {
	const struct config_option *options;
	size_t n_options;
	void *settings;
};
int config_parse(const struct config_table *tables, size_t n_tables, int argc, char **argv,
		 int *ret_argind, char **ret_msg);

/* Free every allocated member of a settings struct described by a table. */
void config_free(const struct config_option *options, size_t n_options, void *settings);

/* Print the parsed values of a table, one "NAME=value" line each (NAME is the environment
 * variable, else "-flag"): lists comma-joined, durations in seconds, secrets only as "<set>" or
 * empty. For operators and install checks: what the program will run with. */
void config_print_values(FILE *f, const struct config_option *options, size_t n_options,
			 const void *settings);

/* Print "  -flag (ENV, default X)\n\thelp" lines for a table. */
void config_print_help(FILE *f, const struct config_option *options, size_t n_options);
