/* lib/log: leveled logging to stderr, text or JSON lines. Only programs log; libraries return
 * errors. Lines about a pod carry its sandbox id, pod name and instance id. */
#pragma once

#include "base/base.h"

enum log_level {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7
};
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Context fields attached to a line; any member may be NULL. */
struct log_fields {
	const char *sandbox_id;
	const char *pod;      /* "<namespace>/<name>" */
	const char *instance; /* instance id or name */
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_format(enum log_format format);
/* Parses "text"/"json" and "error"/"warning"/"info"/"debug". */
int log_parse_format(const char *s, enum log_format *ret);
int log_parse_level(const char *s, enum log_level *ret);
/* Validators for lib/config option tables whose field is a char * holding a format or a
 * level name (NULL is accepted: the caller's default applies). */
int log_validate_format_option(const void *field, char **ret_msg);
int log_validate_level_option(const void *field, char **ret_msg);
/* Program name printed in text lines (default: none). */
void log_set_program(const char *name);

/* Emit one line; returns `error` (so `return log_error_errno(r, ...)` works). `error` is a
 * negative or positive errno, or 0; when non-zero it is appended as ": <strerror>" unless the
 * message contains %m, which is expanded to strerror(error) as in glibc. Thread-safe: each line
 * is written with one write(2). */
int log_emit(enum log_level level, int error, const struct log_fields *fields, const char *fmt, ...)
    _printf_(4, 5);

#define log_error(...) log_emit(LOG_LEVEL_ERROR, 0, NULL, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_LEVEL_WARNING, 0, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LEVEL_INFO, 0, NULL, __VA_ARGS__)
#define log_debug(...) \
	(log_get_level() >= LOG_LEVEL_DEBUG ? log_emit(LOG_LEVEL_DEBUG, 0, NULL, __VA_ARGS__) : 0)
#define log_error_errno(e, ...) log_emit(LOG_LEVEL_ERROR, (e), NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_emit(LOG_LEVEL_WARNING, (e), NULL, __VA_ARGS__)
/* With pod context: logp_info(&fields, "started"). */
#define logp_error(f, ...) log_emit(LOG_LEVEL_ERROR, 0, (f), __VA_ARGS__)
#define logp_warning(f, ...) log_emit(LOG_LEVEL_WARNING, 0, (f), __VA_ARGS__)
#define logp_info(f, ...) log_emit(LOG_LEVEL_INFO, 0, (f), __VA_ARGS__)
#define logp_debug(f, ...) \
	(log_get_level() >= LOG_LEVEL_DEBUG ? log_emit(LOG_LEVEL_DEBUG, 0, (f), __VA_ARGS__) : 0)
#define logp_error_errno(f, e, ...) log_emit(LOG_LEVEL_ERROR, (e), (f), __VA_ARGS__)
#define logp_warning_errno(f, e, ...) log_emit(LOG_LEVEL_WARNING, (e), (f), __VA_ARGS__)
