/* A tiny HTTP/1.1 server for unit tests: one thread on 127.0.0.1 answering canned responses in
 * order (the last one repeats) and recording each request. One connection at a time, closed
 * after each response. Header-only so every test binary can include it. */
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/base.h"

#define TS_MAX_RESPONSES 16
#define TS_MAX_REQUESTS 64

struct ts_response {
	int status;          /* 0: never answer, hold the connection until the client closes it */
	const char *headers; /* extra header lines, each ending in "\r\n"; may be NULL */
	const char *body;    /* may be NULL */
	size_t body_len;     /* 0: strlen(body) */
};

struct ts_request {
	char method[16];
	char target[512];
	char *head; /* the whole request head, NUL-terminated */
	char *body;
	size_t body_len;
};

struct test_server {
	int listen_fd;
	int stop_pipe[2];
	uint16_t port;
	pthread_t thread;
	pthread_mutex_t lock;
	struct ts_response responses[TS_MAX_RESPONSES];
	size_t n_responses;
	struct ts_request requests[TS_MAX_REQUESTS];
	size_t n_requests;
};

/* Wait until fd is readable or the server is told to stop; false when stopping. */
static inline bool ts_wait(struct test_server *s, int fd)
{
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
			      {.fd = s->stop_pipe[0], .events = POLLIN}};
	for (;;) {
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (p[1].revents & POLLIN))
			return false;
		if (p[0].revents)
			return true;
	}
}

static inline void ts_handle(struct test_server *s, int fd)
{
	struct buf in = {0};
	size_t head_len = 0, content_len = 0;
	for (;;) {
		if (!ts_wait(s, fd))
			goto out;
		char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			goto out;
		if (buf_append(&in, chunk, (size_t)n, 1 << 20) < 0)
			goto out;
		if (!head_len) {
			uint8_t *end = memmem(in.data, in.len, "\r\n\r\n", 4);
			if (!end)
				continue;
			head_len = (size_t)(end - in.data) + 4;
			char *cl = memmem(in.data, head_len, "\r\nContent-Length:", 17);
			if (!cl)
				cl = memmem(in.data, head_len, "\r\ncontent-length:", 17);
			if (cl)
				content_len = strtoul(cl + 17, NULL, 10);
		}
		if (in.len >= head_len + content_len)
			break;
	}

	pthread_mutex_lock(&s->lock);
	size_t idx = s->n_requests;
	if (idx < TS_MAX_REQUESTS) {
		struct ts_request *q = &s->requests[idx];
		q->head = strndup((char *)in.data, head_len);
		q->body = strndup((char *)in.data + head_len, content_len);
		q->body_len = content_len;
		sscanf(q->head, "%15s %511s", q->method, q->target);
		s->n_requests++;
	}
	struct ts_response resp = {0};
	if (s->n_responses > 0)
		resp = s->responses[MIN(idx, s->n_responses - 1)];
	pthread_mutex_unlock(&s->lock);

	if (resp.status == 0) {
		/* Hold until the client gives up and closes. */
		char c;
		while (ts_wait(s, fd) && read(fd, &c, 1) > 0)
			;
		goto out;
	}
	size_t body_len = resp.body ? (resp.body_len ? resp.body_len : strlen(resp.body)) : 0;
	char *head =
	    str_printf("HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
		       resp.status, body_len, resp.headers ? resp.headers : "");
	if (head) {
		(void)write_all(fd, head, strlen(head));
		if (body_len)
			(void)write_all(fd, resp.body, body_len);
		free(head);
	}
out:
	buf_done(&in);
}

static inline void *ts_main(void *arg)
{
	struct test_server *s = arg;
	for (;;) {
		if (!ts_wait(s, s->listen_fd))
			return NULL;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		ts_handle(s, fd);
		close(fd);
	}
}

/* Start a server; responses are copied by pointer and must outlive it. */
static inline int ts_start(struct test_server *s, const struct ts_response *responses, size_t n)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	if (n > TS_MAX_RESPONSES)
		return -EINVAL;
	memcpy(s->responses, responses, n * sizeof(*responses));
	s->n_responses = n;
	s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->listen_fd, 16) < 0 ||
	    getsockname(s->listen_fd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	s->port = ntohs(a.sin_port);
	return -pthread_create(&s->thread, NULL, ts_main, s);
}

/* Replace the canned responses (between requests). */
static inline void ts_set_responses(struct test_server *s, const struct ts_response *responses,
				    size_t n)
{
	pthread_mutex_lock(&s->lock);
	memcpy(s->responses, responses, MIN(n, (size_t)TS_MAX_RESPONSES) * sizeof(*responses));
	s->n_responses = MIN(n, (size_t)TS_MAX_RESPONSES);
	pthread_mutex_unlock(&s->lock);
}

static inline size_t ts_n_requests(struct test_server *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n_requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* The value of a request header (case-insensitive name), copied into out; false if absent. */
static inline bool ts_request_header(const struct ts_request *q, const char *name, char *out,
				     size_t size)
{
	size_t nl = strlen(name);
	for (const char *line = strstr(q->head, "\r\n"); line && line[2];
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (*v == ' ')
				v++;
			size_t l = strcspn(v, "\r\n");
			if (l >= size)
				l = size - 1;
			memcpy(out, v, l);
			out[l] = 0;
			return true;
		}
	}
	return false;
}

static inline char *ts_url(const struct test_server *s, const char *path)
{
	return str_printf("http://127.0.0.1:%u%s", s->port, path);
}

static inline void ts_stop(struct test_server *s)
{
	(void)write(s->stop_pipe[1], "x", 1);
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	for (size_t i = 0; i < s->n_requests && i < TS_MAX_REQUESTS; i++) {
		free(s->requests[i].head);
		free(s->requests[i].body);
	}
	pthread_mutex_destroy(&s->lock);
}
