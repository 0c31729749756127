/* lib/ttrpc: ttRPC (WIRE.md section 1) on the event loop: frame codec, zero-copy envelope
 * codec, connections over Unix/TCP sockets with optional TLS, server, client, a frame-level relay
 * (the agent proxy of the adaptor and the forwarder) and a dialer that retries until a deadline.
 * Everything runs on the loop thread. */
#pragma once

#include "base/base.h"
#include "loop/loop.h"

struct ssl_st;     /* OpenSSL SSL */
struct ssl_ctx_st; /* OpenSSL SSL_CTX */

/* ---- constants ---- */

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MAX_DATA_BYTES 4194304u

enum ttrpc_type { TTRPC_TYPE_REQUEST = 1, TTRPC_TYPE_RESPONSE = 2, TTRPC_TYPE_DATA = 3 };

enum {
	TTRPC_FLAG_REMOTE_CLOSED = 0x01,
	TTRPC_FLAG_REMOTE_OPEN = 0x02,
	TTRPC_FLAG_NO_DATA = 0x04,
};

enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_ABORTED = 10,
	TTRPC_OUT_OF_RANGE = 11,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
};
/* "OK", "NOT_FOUND", ...; "CODE(<n>)" style text for unknown values is not returned: NULL. */
const char *ttrpc_code_name(int code);

/* ---- frame header ---- */

struct ttrpc_header {
	uint32_t length; /* data bytes after the header */
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};
void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *ret);

/* ---- envelope codec (zero copy: views point into the frame data) ---- */

struct ttrpc_bytes {
	const uint8_t *data;
	size_t len;
};

struct ttrpc_kv {
	const char *key;
	const char *value;
};

struct ttrpc_request_view {
	struct ttrpc_bytes service;
	struct ttrpc_bytes method;
	struct ttrpc_bytes payload;
	int64_t timeout_nano;
	/* The raw encoded metadata entries (each a complete field-5 record, tag included), in
	 * order, so a relay can re-emit them unchanged. */
	struct ttrpc_bytes metadata_raw;
	size_t n_metadata;
};

/* Parse a ttrpc.Request. Unknown fields are skipped. -EBADMSG on malformed protobuf (bad varint,
 * truncated length, wrong wire type for a known field, groups) and when metadata entries are
 * split by a known field (metadata_raw must be one span; no real encoder does that). Every
 * metadata entry is validated here, so next_metadata cannot fail after a successful parse.
 * Views of absent fields are empty but never NULL. */
int ttrpc_request_parse(const uint8_t *data, size_t len, struct ttrpc_request_view *ret);
/* Iterate metadata of a parsed request: *pos starts at 0; returns 1 with key/value views, 0 at
 * the end, -EBADMSG on malformed entries. */
int ttrpc_request_next_metadata(const struct ttrpc_request_view *req, size_t *pos,
				struct ttrpc_bytes *ret_key, struct ttrpc_bytes *ret_value);
/* Encode a ttrpc.Request into out (appended). metadata_raw (may be empty) is copied verbatim
 * after the other fields; md/n_md are encoded after that. */
int ttrpc_request_encode(struct buf *out, const char *service, const char *method,
			 const void *payload, size_t payload_len, int64_t timeout_nano,
			 const struct ttrpc_bytes *metadata_raw, const struct ttrpc_kv *md,
			 size_t n_md);

struct ttrpc_response_view {
	bool has_status;
	int32_t code;
	struct ttrpc_bytes message;
	struct ttrpc_bytes payload;
};
/* Parse a ttrpc.Response; both OK encodings (status absent, status empty) give code 0. */
int ttrpc_response_parse(const uint8_t *data, size_t len, struct ttrpc_response_view *ret);
/* Encode a Response: code 0 omits the status (Go form); otherwise status {code, message}. */
int ttrpc_response_encode(struct buf *out, int32_t code, const char *message, const void *payload,
			  size_t payload_len);

/* ---- connection: framing over a socket, optional TLS ---- */

struct ttrpc_conn;

struct ttrpc_conn_ops {
	/* A complete frame (length <= TTRPC_MAX_DATA_BYTES). `data` is valid during the call. */
	void (*on_frame)(struct ttrpc_conn *c, const struct ttrpc_header *h, const uint8_t *data,
			 void *userdata);
	/* A frame whose length exceeded the limit; its data has been discarded. May be NULL. */
	void (*on_oversize)(struct ttrpc_conn *c, const struct ttrpc_header *h, void *userdata);
	/* TLS handshake finished (for plain sockets: on the first loop iteration after new); no
	 * frame is delivered before it. May be NULL. */
	void (*on_ready)(struct ttrpc_conn *c, void *userdata);
	/* The pending output fell below the low watermark after having been above the high one.
	 * May be NULL. */
	void (*on_drain)(struct ttrpc_conn *c, void *userdata);
	/* Peer closed, I/O or TLS error (error < 0) or clean EOF (0). Called once; the conn sends
	 * and receives nothing more; the owner frees it (may do so inside this callback). */
	void (*on_close)(struct ttrpc_conn *c, int error, void *userdata);
};

/* Adopt a connected socket (made non-blocking here) and optionally an SSL object (ownership of
 * both passes to the conn on success; on failure the caller keeps them). If the SSL handshake is
 * not finished the conn completes it first (the SSL must have its connect or accept state set);
 * handshake_timeout_ns (relative, 0 = none) bounds that. The SSL's BIO is replaced by one on
 * the socket that never raises SIGPIPE. */
int ttrpc_conn_new(struct loop *l, int fd, struct ssl_st *ssl, int64_t handshake_timeout_ns,
		   const struct ttrpc_conn_ops *ops, void *userdata, struct ttrpc_conn **ret);
/* Close and free; safe inside callbacks and with NULL; on_close is not called. Returns NULL. */
struct ttrpc_conn *ttrpc_conn_free(struct ttrpc_conn *c);
/* Queue a frame (header + data copied). -EMSGSIZE above the limit, -ENOTCONN when closed. */
int ttrpc_conn_send(struct ttrpc_conn *c, uint32_t stream_id, uint8_t type, uint8_t flags,
		    const void *data, size_t len);
/* Queue a frame whose data is two pieces (avoids a copy when rewriting headers). */
int ttrpc_conn_sendv(struct ttrpc_conn *c, const struct ttrpc_header *h, const void *a, size_t alen,
		     const void *b, size_t blen);
size_t ttrpc_conn_pending_bytes(const struct ttrpc_conn *c);
/* Stop or resume reading (flow control). */
void ttrpc_conn_set_read_paused(struct ttrpc_conn *c, bool paused);
/* Close after the pending output is flushed; on_close is then called with 0. */
void ttrpc_conn_shutdown(struct ttrpc_conn *c);
void ttrpc_conn_set_userdata(struct ttrpc_conn *c, void *userdata);
void *ttrpc_conn_get_userdata(const struct ttrpc_conn *c);
int ttrpc_conn_get_fd(const struct ttrpc_conn *c);
/* The connection's SSL (NULL for a plain socket); owned by the conn. */
struct ssl_st *ttrpc_conn_get_ssl(const struct ttrpc_conn *c);
/* Pending-output watermarks for on_drain and for relays: high 8 MiB, low 1 MiB by default. */
#define TTRPC_CONN_HIGH_WATERMARK_BYTES (8u << 20)
#define TTRPC_CONN_LOW_WATERMARK_BYTES (1u << 20)

/* ---- server ---- */

struct ttrpc_server;
struct ttrpc_call;

/* A method handler. The handler (or later code) must finish the call exactly once with
 * ttrpc_call_reply* , which also frees it; the call stays valid until then even if the
 * connection closes or the deadline passes (the reply is then dropped). */
typedef void (*ttrpc_method_fn)(struct ttrpc_call *call, const uint8_t *payload, size_t len,
				void *userdata);

int ttrpc_server_new(struct loop *l, struct ttrpc_server **ret);
/* Closes listeners and connections; outstanding calls become cancelled and are freed when
 * replied. Returns NULL. */
struct ttrpc_server *ttrpc_server_free(struct ttrpc_server *s);
int ttrpc_server_add_method(struct ttrpc_server *s, const char *service, const char *method,
			    ttrpc_method_fn fn, void *userdata);
/* Create the parent directory, remove a stale socket, bind, chmod, listen. */
int ttrpc_server_listen_unix(struct ttrpc_server *s, const char *path, mode_t mode);
/* Adopt a listening socket (closed by ttrpc_server_free; kept by the caller on failure); with tls
 * set (the server takes its own reference), each accepted connection does a server handshake
 * bounded by 10 s. */
int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd, struct ssl_ctx_st *tls);
/* Serve an already accepted connection. */
int ttrpc_server_add_connection(struct ttrpc_server *s, int fd, struct ssl_st *ssl);
size_t ttrpc_server_n_connections(const struct ttrpc_server *s);

const char *ttrpc_call_service(const struct ttrpc_call *c);
const char *ttrpc_call_method(const struct ttrpc_call *c);
/* Absolute CLOCK_MONOTONIC deadline from timeout_nano, 0 when none. */
int64_t ttrpc_call_deadline_ns(const struct ttrpc_call *c);
/* timeout_nano exactly as the client sent it (<= 0: none). */
int64_t ttrpc_call_timeout_nano(const struct ttrpc_call *c);
/* Metadata as received (views valid for the call's life). */
size_t ttrpc_call_n_metadata(const struct ttrpc_call *c);
const struct ttrpc_kv *ttrpc_call_metadata(const struct ttrpc_call *c);
/* Called at most once when the call can no longer be answered usefully: the deadline passed (the
 * server has then already answered DEADLINE_EXCEEDED) or the connection closed. */
typedef void (*ttrpc_cancel_fn)(struct ttrpc_call *c, int code, void *userdata);
void ttrpc_call_set_cancel(struct ttrpc_call *c, ttrpc_cancel_fn fn, void *userdata);
bool ttrpc_call_is_cancelled(const struct ttrpc_call *c);
/* The SSL of the call's connection (e.g. to read the verified aTLS peer); NULL for a plain socket
 * or once the connection has closed. Valid during the handler. */
struct ssl_st *ttrpc_call_get_ssl(const struct ttrpc_call *c);
/* Both return 0 also when the reply is dropped (cancelled call); a payload too large for a frame
 * is answered with RESOURCE_EXHAUSTED instead and gives -EMSGSIZE. The call is freed in all
 * cases. */
int ttrpc_call_reply(struct ttrpc_call *c, const void *payload, size_t len);
int ttrpc_call_reply_error(struct ttrpc_call *c, int code, const char *fmt, ...) _printf_(3, 4);

/* ---- client ---- */

struct ttrpc_client;

/* code: 0 OK, >0 ttRPC status code from the server, <0 local errno (-ETIMEDOUT for the own
 * deadline, -ECONNRESET when the connection closed). message: the server's status text or a
 * local description. payload is valid during the call; empty for errors. */
typedef void (*ttrpc_reply_fn)(struct ttrpc_client *c, int code, const char *message,
			       const uint8_t *payload, size_t len, void *userdata);

int ttrpc_client_new(struct loop *l, int fd, struct ssl_st *ssl, struct ttrpc_client **ret);
/* Pending calls are answered with -ECANCELED before it returns. Returns NULL. */
struct ttrpc_client *ttrpc_client_free(struct ttrpc_client *c);
/* Start a unary call. timeout_ns is relative (0 = none): it is sent as timeout_nano and enforced
 * locally as well. On failure (<0: -ENOTCONN, -EMSGSIZE, ...) fn is never called; otherwise it
 * is called exactly once, never from inside this function. */
int ttrpc_client_call(struct ttrpc_client *c, const char *service, const char *method,
		      const void *payload, size_t len, int64_t timeout_ns,
		      const struct ttrpc_kv *md, size_t n_md, ttrpc_reply_fn fn, void *userdata);
bool ttrpc_client_is_connected(const struct ttrpc_client *c);

/* Blocking convenience for programs without their own loop (CLI, tests): one connection on a
 * private loop. */
struct ttrpc_sync_client;
/* Connect to a Unix socket path when address contains '/', else to "host:port" ("[v6]:port";
 * a host name is resolved, blocking). With tls, a client handshake follows on either; a non-NULL
 * server_name is checked against the certificate (SSL_set1_host) and sent as SNI. timeout_ns
 * bounds connect + handshake (0 = the dialer's default, 5 s). One attempt, no retries. */
int ttrpc_sync_client_connect(const char *address, struct ssl_ctx_st *tls, const char *server_name,
			      int64_t timeout_ns, struct ttrpc_sync_client **ret);
/* Adopt a connected socket and an SSL whose handshake is finished (or NULL for plain); ownership
 * passes on success, the caller keeps both on failure. For connections set up by the caller
 * (e.g. an aTLS handshake with its own deadline). */
int ttrpc_sync_client_new(int fd, struct ssl_st *ssl, struct ttrpc_sync_client **ret);
struct ttrpc_sync_client *ttrpc_sync_client_free(struct ttrpc_sync_client *c);
/* Returns the call's code as for ttrpc_reply_fn; on 0 *ret_payload (malloc'd, may be NULL for an
 * empty message) and *ret_len are set; on a non-zero code *ret_message (malloc'd) if requested. */
int ttrpc_sync_client_call(struct ttrpc_sync_client *c, const char *service, const char *method,
			   const void *payload, size_t len, int64_t timeout_ns,
			   uint8_t **ret_payload, size_t *ret_len, char **ret_message);

/* ---- dialer: connect (+ TLS handshake) with retries and backoff until a deadline ---- */

struct ttrpc_dial;

struct ttrpc_dial_opts {
	const char *unix_path; /* either this ... */
	const char *host;      /* ... or host (numeric IPv4/IPv6) and port */
	uint16_t port;
	struct ssl_ctx_st *tls;      /* client TLS context, or NULL for plain */
	const char *tls_server_name; /* checked against the server certificate; also SNI */
	int64_t deadline_ns;         /* absolute CLOCK_MONOTONIC; 0 = a single attempt */
	int64_t attempt_timeout_ns;  /* per connect+handshake; 0 = 5 s */
	int64_t retry_initial_ns;    /* first back-off; 0 = 100 ms; doubles up to retry_max */
	int64_t retry_max_ns;        /* 0 = 2 s */
};

/* On success error = 0 and fd/ssl are handed over (the SSL handshake is finished). On failure
 * error < 0 and detail describes the last attempt (e.g. "connect 127.0.0.1:15150: Connection
 * refused", "TLS: certificate verify failed"). Called exactly once unless cancelled first. */
typedef void (*ttrpc_dial_fn)(struct ttrpc_dial *d, int error, const char *detail, int fd,
			      struct ssl_st *ssl, void *userdata);
int ttrpc_dial_start(struct loop *l, const struct ttrpc_dial_opts *opts, ttrpc_dial_fn fn,
		     void *userdata, struct ttrpc_dial **ret);
/* Cancel (no callback) or free after completion; NULL-safe. Returns NULL. */
struct ttrpc_dial *ttrpc_dial_free(struct ttrpc_dial *d);

/* ---- relay: many downstream connections <-> one upstream connection ---- */

/* A relay forwards frames without decoding them, except Requests whose method the rewrite hook
 * wants to change. Each downstream Request gets a fresh odd upstream stream id; Responses and
 * Data frames are mapped back. Downstream stream-id rules (odd, increasing) are enforced as by a
 * server. Requests that arrive while no upstream is connected are queued (bounded) and the
 * connect_upstream hook is asked for one; they fail with UNAVAILABLE when it reports failure or
 * when their own deadline passes. When the upstream closes, calls in flight fail with
 * UNAVAILABLE; the next Request asks for a new upstream. */
struct ttrpc_relay;

struct ttrpc_relay_ops {
	/* Called when an upstream is needed; must lead to ttrpc_relay_set_upstream() or
	 * ttrpc_relay_upstream_failed() (now or later). earliest_deadline_ns is the earliest
	 * deadline among the queued requests (0 = none). */
	void (*connect_upstream)(struct ttrpc_relay *r, int64_t earliest_deadline_ns,
				 void *userdata);
	/* Optional. For each Request: return 0 to relay unchanged, 1 after appending a new
	 * payload to new_payload, or <0 to fail the call with INVALID_ARGUMENT (message from
	 * *ret_message if set, malloc'd). */
	int (*rewrite)(const struct ttrpc_request_view *req, struct buf *new_payload,
		       char **ret_message, void *userdata);
	/* Optional: the upstream went away (error < 0) or closed cleanly (0). */
	void (*upstream_closed)(struct ttrpc_relay *r, int error, void *userdata);
};

int ttrpc_relay_new(struct loop *l, const struct ttrpc_relay_ops *ops, void *userdata,
		    struct ttrpc_relay **ret);
/* Closes listeners, downstream and upstream connections. Returns NULL. */
struct ttrpc_relay *ttrpc_relay_free(struct ttrpc_relay *r);
int ttrpc_relay_listen_unix(struct ttrpc_relay *r, const char *path, mode_t mode);
int ttrpc_relay_listen_fd(struct ttrpc_relay *r, int fd, struct ssl_ctx_st *tls);
int ttrpc_relay_add_downstream(struct ttrpc_relay *r, int fd, struct ssl_st *ssl);
/* Hand over a connected upstream (fd and finished SSL, or plain). Queued requests are sent. */
int ttrpc_relay_set_upstream(struct ttrpc_relay *r, int fd, struct ssl_st *ssl);
void ttrpc_relay_upstream_failed(struct ttrpc_relay *r, const char *message);
bool ttrpc_relay_has_upstream(const struct ttrpc_relay *r);
size_t ttrpc_relay_n_downstream(const struct ttrpc_relay *r);
/* Maximum queued requests while connecting (default 256); beyond it: RESOURCE_EXHAUSTED. */
void ttrpc_relay_set_queue_limit(struct ttrpc_relay *r, size_t n);
