/* peerpodctl: printing results, human-readable or one JSON object per result. */
#include <stdarg.h>

#include "cli.h"

#include "ttrpc/ttrpc.h"

const char *cli_code_name(int code, char *buf, size_t size)
{
	const char *name = ttrpc_code_name(code);
	if (name)
		return name;
	(void)snprintf(buf, size, "CODE(%d)", code);
	return buf;
}

int cli_code_from_errno(int r)
{
	switch (r < 0 ? -r : r) {
	case 0:
		return TTRPC_OK;
	case ETIMEDOUT:
		return TTRPC_DEADLINE_EXCEEDED;
	case ECANCELED:
		return TTRPC_CANCELLED;
	case ECONNRESET:
	case ECONNREFUSED:
	case ECONNABORTED:
	case EPIPE:
	case ENOENT:
	case ENOTCONN:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return TTRPC_UNAVAILABLE;
	case EMSGSIZE:
		return TTRPC_RESOURCE_EXHAUSTED;
	case EINVAL:
		return TTRPC_INVALID_ARGUMENT;
	case EBADMSG:
	case EPROTO:
		return TTRPC_INTERNAL;
	default:
		return TTRPC_UNKNOWN;
	}
}

json_t *cli_result_to_json(const struct cli_result *r)
{
	char buf[32];
	json_t *o = json_object();
	if (!o)
		return NULL;

	bool ok = true;
	if (r->step)
		ok = ok && json_object_set_new(o, "step", json_string(r->step)) == 0;
	ok = ok && json_object_set_new(o, "code", json_integer(r->code)) == 0;
	ok = ok && json_object_set_new(o, "code_name",
				       json_string(cli_code_name(r->code, buf, sizeof(buf)))) == 0;
	if (r->code != 0)
		ok = ok && json_object_set_new(o, "message",
					       json_string(r->message ? r->message : "")) == 0;
	if (r->duration_ns >= 0)
		ok = ok && json_object_set_new(
			       o, "duration_ms",
			       json_real((double)((r->duration_ns + 500) / 1000) / 1e3)) == 0;
	for (size_t i = 0; ok && r->fields && i < r->fields->n; i++)
		ok = json_object_set_new(o, r->fields->items[i].key,
					 json_string(r->fields->items[i].value)) == 0;
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void cli_output_result(const struct cli_output *o, const struct cli_result *r)
{
	char buf[32];

	if (o->json) {
		_cleanup_(json_decrefp) json_t *j = cli_result_to_json(r);
		_cleanup_free_ char *s =
		    j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII |
					  JSON_REAL_PRECISION(12))
		      : NULL;
		if (s)
			fprintf(o->out, "%s\n", s);
		else
			fprintf(o->err, "error: out of memory\n");
		fflush(o->out);
		return;
	}

	if (r->code == 0) {
		if (r->show_step) {
			fprintf(o->out, "%-16s ok %9.3fs", r->step ? r->step : "",
				r->duration_ns >= 0 ? (double)r->duration_ns / 1e9 : 0.0);
			if (!str_empty(r->detail))
				fprintf(o->out, "  %s", r->detail);
			fputc('\n', o->out);
		} else if (r->detail) {
			fprintf(o->out, "%s\n", r->detail);
		}
		fflush(o->out);
		return;
	}

	/* Keep the step lines and the error in order on a terminal. */
	fflush(o->out);
	fprintf(o->err, "error: ");
	if (r->step)
		fprintf(o->err, "%s: ", r->step);
	if (!r->hide_code)
		fprintf(o->err, "%s: ", cli_code_name(r->code, buf, sizeof(buf)));
	fprintf(o->err, "%s\n", r->message ? r->message : "");
	fflush(o->err);
}

int cli_usage_error(FILE *err, const char *command, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", err);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fprintf(err, " (see peerpodctl %s --help)\n", command);
	return CLI_EXIT_USAGE;
}
