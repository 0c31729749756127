/* agent-standin internals: a kata-agent stand-in serving grpc.Health and grpc.AgentService over
 * ttRPC, keeping just enough sandbox/container state to validate the shim's call order. */
#pragma once

#include "base/base.h"
#include "loop/loop.h"
#include "ttrpc/ttrpc.h"

#define STANDIN_DEFAULT_SOCKET "/run/kata-containers/agent.sock"

struct standin;

struct standin_options {
	const char *record_path; /* NULL: no recording */
	bool wait_blocks;        /* WaitProcess parks until the container goes away */
};

int standin_new(struct loop *l, const struct standin_options *opts, struct standin **ret);
/* Answers parked calls, closes the server and the record file. Returns NULL. */
struct standin *standin_free(struct standin *s);
int standin_listen(struct standin *s, const char *path);

/* ---- recording (record.c) ---- */

/* Open for appending, created 0644. */
int record_open(const char *path);
/* One JSON line {"service","method","payload_hex","timeout_nano","metadata":[[k,v],...]}, written
 * with a single write(2) so readers never see half a line. */
int record_write(int fd, const char *service, const char *method, const uint8_t *payload,
		 size_t len, int64_t timeout_nano, const struct ttrpc_kv *md, size_t n_md);
