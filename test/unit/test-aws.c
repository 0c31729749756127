/* Unit tests of providers/aws against a small loopback server playing EC2, STS and IMDS: the
 * RunInstances form in each mode, idempotency tokens, the user-data limit, error documents,
 * throttling retries with fresh signatures (checked by re-signing on the server side), delete of
 * a missing instance, DescribeInstances paging, and the three credential sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include "aws/aws-internal.h"
#include "aws/sigv4.h"
#include "base/base.h"

extern const struct provider_ops aws_provider_ops;

#define REGION "us-test-1"
#define MAX_LOG 256

/* ---- a routing loopback server ---- */

struct req {
	char method[16];
	char path[512];
	char *head;
	char *body;
	size_t body_len;
};

struct resp {
	int status;
	char *body; /* malloc'd */
};

struct server {
	int fd;
	int stop[2];
	uint16_t port;
	pthread_t th;
	void (*handle)(const struct req *q, struct resp *r);
};

static bool header(const struct req *q, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(q->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (*v == ' ')
				v++;
			size_t n = MIN(strcspn(v, "\r\n"), size - 1);
			memcpy(out, v, n);
			out[n] = 0;
			return true;
		}
	}
	return false;
}

static void serve_one(struct server *s, int fd)
{
	struct buf in = {0};
	size_t head_len = 0, body_len = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = s->stop[0], .events = POLLIN}};
		if (poll(p, 2, 5000) <= 0 || (p[1].revents & POLLIN))
			goto out;
		char chunk[8192];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0 || buf_append(&in, chunk, (size_t)n, 4 << 20) < 0)
			goto out;
		if (!head_len) {
			uint8_t *e = memmem(in.data, in.len, "\r\n\r\n", 4);
			if (!e)
				continue;
			head_len = (size_t)(e - in.data) + 4;
			char *h = strndup((char *)in.data, head_len);
			char *cl = strcasestr(h, "\r\nContent-Length:");
			if (cl)
				body_len = strtoul(cl + 17, NULL, 10);
			free(h);
		}
		if (in.len >= head_len + body_len)
			break;
	}
	struct req q = {0};
	q.head = strndup((char *)in.data, head_len);
	q.body = strndup((char *)in.data + head_len, body_len);
	q.body_len = body_len;
	sscanf(q.head, "%15s %511s", q.method, q.path);
	struct resp r = {.status = 404};
	s->handle(&q, &r);
	const char *b = r.body ? r.body : "";
	char *h = str_printf("HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			     r.status, strlen(b));
	(void)write_all(fd, h, strlen(h));
	(void)write_all(fd, b, strlen(b));
	free(h);
	free(r.body);
	free(q.head);
	free(q.body);
out:
	buf_done(&in);
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
				      {.fd = s->stop[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno == EINTR)
			continue;
		if (p[1].revents & POLLIN)
			return NULL;
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_one(s, c);
		close(c);
	}
}

static void server_start(struct server *s, void (*handle)(const struct req *, struct resp *))
{
	memset(s, 0, sizeof(*s));
	s->handle = handle;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(pipe2(s->stop, O_CLOEXEC), 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	(void)write(s->stop[1], "x", 1);
	pthread_join(s->th, NULL);
	close(s->fd);
	close(s->stop[0]);
	close(s->stop[1]);
}

/* ---- form helpers ---- */

/* The decoded value of a form field, or NULL. */
static char *form_get(const char *body, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = body; p && *p;) {
		size_t n = strcspn(p, "&");
		const char *eq = memchr(p, '=', n);
		if (eq) {
			char *k = NULL, *v = NULL;
			size_t kl, vl;
			sigv4_uri_decode(p, (size_t)(eq - p), &k, &kl);
			if (k && kl == nl && memcmp(k, name, nl) == 0) {
				sigv4_uri_decode(eq + 1, n - (size_t)(eq - p) - 1, &v, &vl);
				free(k);
				return v;
			}
			free(k);
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return NULL;
}

static void assert_field(const char *body, const char *name, const char *want)
{
	_cleanup_free_ char *v = form_get(body, name);
	if (!want) {
		if (v)
			fail_msg("field %s = \"%s\", expected absent", name, v);
		return;
	}
	if (!v)
		fail_msg("field %s absent, expected \"%s\"", name, want);
	assert_string_equal(v, want);
}

/* The value of the tag with this key in TagSpecification.<spec>. */
static char *tag_get(const char *body, unsigned spec, const char *key)
{
	for (unsigned i = 1; i < 64; i++) {
		char name[96];
		snprintf(name, sizeof(name), "TagSpecification.%u.Tag.%u.Key", spec, i);
		_cleanup_free_ char *k = form_get(body, name);
		if (!k)
			return NULL;
		if (str_eq(k, key)) {
			snprintf(name, sizeof(name), "TagSpecification.%u.Tag.%u.Value", spec, i);
			return form_get(body, name);
		}
	}
	return NULL;
}

/* ---- the cloud ---- */

struct world {
	pthread_mutex_t lock;
	const char *access_key;
	const char *secret;
	const char *token;
	int throttle; /* answer RequestLimitExceeded this many more times */
	int sts_expiry_s;
	unsigned n_sts, n_imds_creds, n_imds_token, n_run, n_describe, n_terminate;
	char *sts_tokens[8];
	char *run_body;
	char *auth[MAX_LOG];
	char *date[MAX_LOG];
	unsigned n_auth;
	unsigned n_sig_bad;
	const char *terminate_code; /* error of TerminateInstances, NULL = success */
	int pending_polls;          /* DescribeInstances by id answers "pending" this often */
	bool imds;
	char *describe_bodies[8];
	unsigned n_describe_bodies;
};
static struct world W;

static int64_t fake_base_ns;
static unsigned long fake_ticks;
/* every reading is one second later, so consecutive signatures differ */
static int64_t fake_clock(void)
{
	unsigned long t = __atomic_add_fetch(&fake_ticks, 1, __ATOMIC_RELAXED);
	return fake_base_ns + (int64_t)t * NSEC_PER_SEC;
}

static char *iso_time(int64_t ns)
{
	time_t t = (time_t)(ns / NSEC_PER_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	char b[32];
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return strdup(b);
}

static char *xml_error(const char *code, const char *msg)
{
	return str_printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
			  "<Code>%s</Code><Message>%s</Message></Error></Errors>"
			  "<RequestID>req-%s</RequestID></Response>",
			  code, msg, code);
}

/* Re-sign the request as received with the credentials the world expects. */
static bool signature_ok(const struct req *q)
{
	char auth[1024], date[64], host[256], ct[256], tok[1024];
	if (!header(q, "Authorization", auth, sizeof(auth)) ||
	    !header(q, "X-Amz-Date", date, sizeof(date)) ||
	    !header(q, "Host", host, sizeof(host)) || !header(q, "Content-Type", ct, sizeof(ct)))
		return false;
	bool has_tok = header(q, "X-Amz-Security-Token", tok, sizeof(tok));
	if (has_tok != (W.token != NULL) || (has_tok && !str_eq(tok, W.token)))
		return false;
	struct sigv4_credentials c = {W.access_key, W.secret, W.token};
	struct sigv4_signing s = {.credentials = &c,
				  .date_time = date,
				  .region = REGION,
				  .service = "ec2",
				  .flags = SIGV4_NORMALIZE_PATH};
	struct sigv4_header h[] = {{"host", host}, {"content-type", ct}};
	struct sigv4_request r = {.method = "POST",
				  .path = q->path,
				  .headers = h,
				  .n_headers = 2,
				  .payload = q->body,
				  .payload_len = q->body_len};
	struct sigv4_result res = {0};
	bool ok = sigv4_sign_headers(&s, &r, &res) == 0 && str_eq(res.authorization, auth);
	sigv4_result_done(&res);
	return ok;
}

static const char INSTANCE_TYPES[] =
    "<DescribeInstanceTypesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
    "<requestId>r</requestId><instanceTypeSet>"
    "<item><instanceType>m6a.large</instanceType><vCpuInfo><defaultVCpus>2</defaultVCpus>"
    "</vCpuInfo><memoryInfo><sizeInMiB>8192</sizeInMiB></memoryInfo></item>"
    "<item><instanceType>m6a.xlarge</instanceType><vCpuInfo><defaultVCpus>4</defaultVCpus>"
    "</vCpuInfo><memoryInfo><sizeInMiB>16384</sizeInMiB></memoryInfo></item>"
    "<item><instanceType>g5.xlarge</instanceType><vCpuInfo><defaultVCpus>4</defaultVCpus>"
    "</vCpuInfo><memoryInfo><sizeInMiB>16384</sizeInMiB></memoryInfo><gpuInfo><gpus><item>"
    "<name>A10G</name><count>1</count></item></gpus></gpuInfo></item>"
    "</instanceTypeSet></DescribeInstanceTypesResponse>";

static const char IMAGES[] =
    "<DescribeImagesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
    "<requestId>r</requestId><imagesSet><item><imageId>ami-123</imageId>"
    "<rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item>"
    "<deviceName>/dev/xvda</deviceName><ebs><snapshotId>snap-1</snapshotId>"
    "<volumeSize>50</volumeSize></ebs></item></blockDeviceMapping></item></imagesSet>"
    "</DescribeImagesResponse>";

static char *instance_xml(const char *id, const char *state, const char *priv, const char *pub,
			  const char *sid)
{
	return str_printf("<item><instanceId>%s</instanceId><instanceState><code>16</code><name>%s"
			  "</name></instanceState>%s%s%s%s%s%s<tagSet><item><key>Name</key><value>"
			  "podvm-%s</value></item><item><key>peerpod-sandbox-id</key><value>%s"
			  "</value></item><item><key>peerpod-node</key><value>node-1</value>"
			  "</item></tagSet></item>",
			  id, state, priv ? "<privateIpAddress>" : "", priv ?: "",
			  priv ? "</privateIpAddress>" : "", pub ? "<ipAddress>" : "", pub ?: "",
			  pub ? "</ipAddress>" : "", sid, sid);
}

static void handle_ec2(const struct req *q, struct resp *r)
{
	_cleanup_free_ char *action = form_get(q->body, "Action");
	_cleanup_free_ char *version = form_get(q->body, "Version");
	if (!str_eq(version, "2016-11-15") || !signature_ok(q)) {
		W.n_sig_bad++;
		r->status = 401;
		r->body = xml_error("AuthFailure", "AWS was not able to validate the credentials");
		return;
	}
	if (W.n_auth < MAX_LOG) {
		char a[1024], d[64];
		header(q, "Authorization", a, sizeof(a));
		header(q, "X-Amz-Date", d, sizeof(d));
		W.auth[W.n_auth] = strdup(a);
		W.date[W.n_auth++] = strdup(d);
	}
	if (W.throttle > 0) {
		W.throttle--;
		r->status = 400;
		r->body = xml_error("RequestLimitExceeded", "Request limit exceeded.");
		return;
	}
	if (str_eq(action, "DescribeInstanceTypes")) {
		r->status = 200;
		r->body = strdup(INSTANCE_TYPES);
	} else if (str_eq(action, "DescribeImages")) {
		_cleanup_free_ char *id = form_get(q->body, "ImageId.1");
		r->status = str_eq(id, "ami-123") ? 200 : 400;
		r->body = str_eq(id, "ami-123")
			      ? strdup(IMAGES)
			      : xml_error("InvalidAMIID.NotFound", "The image id does not exist");
	} else if (str_eq(action, "RunInstances")) {
		W.n_run++;
		free(W.run_body);
		W.run_body = strdup(q->body);
		_cleanup_free_ char *sid = tag_get(q->body, 1, "peerpod-sandbox-id");
		_cleanup_free_ char *it =
		    instance_xml("i-0abc", "pending", W.pending_polls >= 0 ? "10.0.0.5" : NULL,
				 NULL, sid ?: "?");
		r->status = 200;
		r->body = str_printf("<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/"
				     "2016-11-15/\"><requestId>r</requestId><reservationId>r-1"
				     "</reservationId><instancesSet>%s</instancesSet>"
				     "</RunInstancesResponse>",
				     it);
	} else if (str_eq(action, "DescribeInstances")) {
		W.n_describe++;
		if (W.n_describe_bodies < 8)
			W.describe_bodies[W.n_describe_bodies++] = strdup(q->body);
		_cleanup_free_ char *id = form_get(q->body, "InstanceId.1");
		_cleanup_free_ char *tok = form_get(q->body, "NextToken");
		_cleanup_free_ char *items = NULL;
		const char *next = "";
		if (id) {
			bool pending = W.pending_polls-- > 0;
			items = instance_xml(id, pending ? "pending" : "running", "10.0.0.5",
					     pending ? NULL : "203.0.113.7", "sb-1");
		} else if (!tok) {
			char *a = instance_xml("i-1", "running", "10.0.0.1", NULL, "sb-1");
			char *b = instance_xml("i-2", "stopped", "10.0.0.2", NULL, "sb-2");
			items = str_printf("%s%s", a, b);
			free(a);
			free(b);
			next = "<nextToken>page2</nextToken>";
		} else if (str_eq(tok, "page2")) {
			items = instance_xml("i-3", "pending", "10.0.0.3", "198.51.100.3", "sb-3");
		}
		r->status = 200;
		r->body = str_printf("<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/"
				     "doc/2016-11-15/\"><requestId>r</requestId><reservationSet>"
				     "<item><reservationId>r-1</reservationId><instancesSet>%s"
				     "</instancesSet></item></reservationSet>%s"
				     "</DescribeInstancesResponse>",
				     items ?: "", next);
	} else if (str_eq(action, "TerminateInstances")) {
		W.n_terminate++;
		if (W.terminate_code) {
			r->status = 400;
			r->body = xml_error(W.terminate_code, "The instance ID does not exist");
		} else {
			r->status = 200;
			r->body = strdup("<TerminateInstancesResponse><instancesSet/>"
					 "</TerminateInstancesResponse>");
		}
	} else {
		r->status = 400;
		r->body = xml_error("InvalidAction", "unknown action");
	}
}

static void handle_sts(const struct req *q, struct resp *r)
{
	_cleanup_free_ char *action = form_get(q->body, "Action");
	char auth[64];
	if (!str_eq(action, "AssumeRoleWithWebIdentity") ||
	    header(q, "Authorization", auth, sizeof(auth))) {
		r->status = 400;
		r->body = strdup("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction"
				 "</Code><Message>no</Message></Error><RequestId>x</RequestId>"
				 "</ErrorResponse>");
		return;
	}
	if (W.n_sts < 8)
		W.sts_tokens[W.n_sts] = form_get(q->body, "WebIdentityToken");
	W.n_sts++;
	_cleanup_free_ char *exp = iso_time(fake_clock() + W.sts_expiry_s * NSEC_PER_SEC);
	r->status = 200;
	r->body = str_printf("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/"
			     "doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"
			     "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
			     "<SessionToken>%s</SessionToken><Expiration>%s</Expiration>"
			     "</Credentials></AssumeRoleWithWebIdentityResult>"
			     "</AssumeRoleWithWebIdentityResponse>",
			     W.access_key, W.secret, W.token, exp);
}

static void handle_imds(const struct req *q, struct resp *r, const char *path)
{
	if (!W.imds) {
		r->status = 404;
		return;
	}
	if (str_eq(path, "/latest/api/token")) {
		char ttl[16];
		r->status =
		    str_eq(q->method, "PUT") &&
			    header(q, "X-aws-ec2-metadata-token-ttl-seconds", ttl, sizeof(ttl))
			? 200
			: 400;
		r->body = strdup("imds-token");
		W.n_imds_token++;
		return;
	}
	char tok[64];
	if (!header(q, "X-aws-ec2-metadata-token", tok, sizeof(tok)) ||
	    !str_eq(tok, "imds-token")) {
		r->status = 401;
		return;
	}
	static const char *const kv[][2] = {
	    {"/latest/meta-data/placement/region", REGION},
	    {"/latest/meta-data/mac", "0a:1b:2c:3d:4e:5f"},
	    {"/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/subnet-id",
	     "subnet-imds"},
	    {"/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/security-group-ids",
	     "sg-a\nsg-b"},
	    {"/latest/meta-data/public-keys/", "0=imds-key"},
	    {"/latest/meta-data/iam/security-credentials/", "node-role"},
	};
	for (size_t i = 0; i < ELEMENTSOF(kv); i++)
		if (str_eq(path, kv[i][0])) {
			r->status = 200;
			r->body = strdup(kv[i][1]);
			return;
		}
	if (str_eq(path, "/latest/meta-data/iam/security-credentials/node-role")) {
		W.n_imds_creds++;
		_cleanup_free_ char *exp = iso_time(fake_clock() + 3600 * NSEC_PER_SEC);
		r->status = 200;
		r->body = str_printf("{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":"
				     "\"%s\",\"SecretAccessKey\":\"%s\",\"Token\":\"%s\","
				     "\"Expiration\":\"%s\"}",
				     W.access_key, W.secret, W.token, exp);
	}
}

static void handle(const struct req *q, struct resp *r)
{
	pthread_mutex_lock(&W.lock);
	if (str_startswith(q->path, "/imds/"))
		handle_imds(q, r, q->path + 5);
	else if (str_eq(q->path, "/sts"))
		handle_sts(q, r);
	else if (str_eq(q->path, "/") && str_eq(q->method, "POST"))
		handle_ec2(q, r);
	pthread_mutex_unlock(&W.lock);
}

/* ---- fixture ---- */

struct fx {
	struct server srv;
	char *url, *sts_url, *imds_url;
	char dir[64];
	char *token_file;
	struct aws_settings s;
	struct provider *p;
};

static void world_reset(void)
{
	free(W.run_body);
	for (unsigned i = 0; i < W.n_auth; i++) {
		free(W.auth[i]);
		free(W.date[i]);
	}
	for (unsigned i = 0; i < MIN(W.n_sts, 8u); i++)
		free(W.sts_tokens[i]);
	for (unsigned i = 0; i < W.n_describe_bodies; i++)
		free(W.describe_bodies[i]);
	pthread_mutex_destroy(&W.lock);
	memset(&W, 0, sizeof(W));
	pthread_mutex_init(&W.lock, NULL);
	W.access_key = "AKIDEXAMPLE";
	W.secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	W.sts_expiry_s = 3600;
}

static char *list_of[8][4];

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	world_reset();
	server_start(&f->srv, handle);
	f->url = str_printf("http://127.0.0.1:%u", f->srv.port);
	f->sts_url = str_printf("%s/sts", f->url);
	f->imds_url = str_printf("%s/imds", f->url);
	fake_base_ns = now_realtime_ns();
	fake_ticks = 0;
	aws_tuning.clock_realtime_ns = fake_clock;
	aws_tuning.backoff_initial_ns = 1 * NSEC_PER_MSEC;
	aws_tuning.backoff_max_ns = 5 * NSEC_PER_MSEC;
	aws_tuning.ip_poll_initial_ns = 1 * NSEC_PER_MSEC;
	aws_tuning.ip_wait_ns = 10 * NSEC_PER_SEC;
	aws_tuning.max_attempts = 5;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-aws-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->token_file = str_printf("%s/token", f->dir);
	f->s = (struct aws_settings){
	    .access_key_id = (char *)"AKIDEXAMPLE",
	    .secret_key = (char *)"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	    .region = (char *)REGION,
	    .instance_type = (char *)"m6a.large",
	    .image_id = (char *)"ami-123",
	    .subnet_id = (char *)"subnet-1",
	    .security_group_ids = list_of[0],
	    .lt_name = (char *)"kata",
	    .root_volume_size_gib = 30,
	    .endpoint_url = f->url,
	    .endpoint_url_sts = f->sts_url,
	    .imds_endpoint = f->imds_url,
	};
	list_of[0][0] = (char *)"sg-1";
	list_of[0][1] = (char *)"sg-2";
	list_of[0][2] = NULL;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->p)
		aws_provider_ops.done(f->p);
	server_stop(&f->srv);
	rm_rf(f->dir);
	free(f->url);
	free(f->sts_url);
	free(f->imds_url);
	free(f->token_file);
	free(f);
	world_reset();
	aws_tuning.clock_realtime_ns = NULL;
	return 0;
}

static int init(struct fx *f, struct pp_error **err)
{
	struct provider_context ctx = {.node_name = "node-1"};
	return aws_provider_ops.init(&f->s, &ctx, &f->p, err);
}

static struct provider_instance_spec spec_of(const char *sid, const char *ud)
{
	return (struct provider_instance_spec){
	    .instance_name = "podvm-pod-abc",
	    .sandbox_id = sid,
	    .pod_name = "pod",
	    .pod_namespace = "ns",
	    .node_name = "node-1",
	    .user_data = ud,
	    .image = "",
	    .machine_type = "",
	};
}

/* ---- the RunInstances form (pure) ---- */

static char *form_of(const struct aws_settings *s, const struct provider_instance_spec *spec)
{
	struct aws_run_params rp = {
	    .settings = s,
	    .image_id = "ami-123",
	    .instance_type = "m6a.large",
	    .subnet_id = "subnet-1",
	    .security_group_ids = s->security_group_ids,
	    .key_name = "key-1",
	    .root_device_name = "/dev/xvda",
	    .volume_size_gib = 50,
	    .client_token = "tok",
	};
	struct aws_form form = {0};
	struct pp_error *err = NULL;
	assert_int_equal(aws_run_instances_form(&rp, spec, &form, &err), 0);
	char *body = strdup(aws_form_body(&form));
	aws_form_done(&form);
	return body;
}

static void test_form_cvm(void **state)
{
	struct fx *f = *state;
	char *tags[] = {(char *)"team=blue", (char *)"peerpod-node=evil", (char *)"team=red",
			(char *)"Name=evil", NULL};
	f->s.tags = tags;
	const char *ud = "#cloud-config\nwrite_files: []\n";
	struct provider_instance_spec spec = spec_of("sb-1", ud);
	_cleanup_free_ char *b = form_of(&f->s, &spec);
	assert_field(b, "ImageId", "ami-123");
	assert_field(b, "InstanceType", "m6a.large");
	assert_field(b, "MinCount", "1");
	assert_field(b, "MaxCount", "1");
	assert_field(b, "ClientToken", "tok");
	assert_field(b, "SubnetId", "subnet-1");
	assert_field(b, "SecurityGroupId.1", "sg-1");
	assert_field(b, "SecurityGroupId.2", "sg-2");
	assert_field(b, "KeyName", "key-1");
	assert_field(b, "BlockDeviceMapping.1.DeviceName", "/dev/xvda");
	assert_field(b, "BlockDeviceMapping.1.Ebs.VolumeSize", "50");
	assert_field(b, "CpuOptions.AmdSevSnp", "enabled");
	assert_field(b, "MetadataOptions.HttpTokens", "required");
	assert_field(b, "NetworkInterface.1.DeviceIndex", NULL);
	assert_field(b, "LaunchTemplate.LaunchTemplateName", NULL);
	_cleanup_free_ char *ud64 = form_get(b, "UserData");
	unsigned char dec[256];
	int n = EVP_DecodeBlock(dec, (unsigned char *)ud64, (int)strlen(ud64));
	assert_true(n >= (int)strlen(ud));
	assert_memory_equal(dec, ud, strlen(ud));
	assert_field(b, "TagSpecification.1.ResourceType", "instance");
	assert_field(b, "TagSpecification.2.ResourceType", "volume");
	for (unsigned sp = 1; sp <= 2; sp++) {
		_cleanup_free_ char *name = tag_get(b, sp, "Name");
		_cleanup_free_ char *node = tag_get(b, sp, "peerpod-node");
		_cleanup_free_ char *sid = tag_get(b, sp, "peerpod-sandbox-id");
		_cleanup_free_ char *pod = tag_get(b, sp, "peerpod-pod");
		_cleanup_free_ char *team = tag_get(b, sp, "team");
		assert_string_equal(name, "podvm-pod-abc");
		assert_string_equal(node, "node-1");
		assert_string_equal(sid, "sb-1");
		assert_string_equal(pod, "ns/pod");
		assert_string_equal(team, "red");
	}
	/* each key once: "evil" values must not appear at all */
	assert_null(strstr(b, "evil"));
	f->s.tags = NULL;
}

static void test_form_disable_cvm(void **state)
{
	struct fx *f = *state;
	f->s.disable_cvm = true;
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	_cleanup_free_ char *b = form_of(&f->s, &spec);
	assert_field(b, "CpuOptions.AmdSevSnp", NULL);
	assert_field(b, "MetadataOptions.HttpTokens", "required");
	assert_field(b, "ImageId", "ami-123");
}

static void test_form_launch_template(void **state)
{
	struct fx *f = *state;
	f->s.use_lt = true;
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	_cleanup_free_ char *b = form_of(&f->s, &spec);
	assert_field(b, "LaunchTemplate.LaunchTemplateName", "kata");
	assert_field(b, "ImageId", NULL);
	assert_field(b, "InstanceType", NULL);
	assert_field(b, "SubnetId", NULL);
	assert_field(b, "SecurityGroupId.1", NULL);
	assert_field(b, "MinCount", "1");
	assert_field(b, "UserData", "eA==");
	_cleanup_free_ char *sid = tag_get(b, 1, "peerpod-sandbox-id");
	assert_string_equal(sid, "sb-1");
}

static void test_form_public_ip(void **state)
{
	struct fx *f = *state;
	f->s.use_public_ip = true;
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	_cleanup_free_ char *b = form_of(&f->s, &spec);
	assert_field(b, "NetworkInterface.1.DeviceIndex", "0");
	assert_field(b, "NetworkInterface.1.AssociatePublicIpAddress", "true");
	assert_field(b, "NetworkInterface.1.SubnetId", "subnet-1");
	assert_field(b, "NetworkInterface.1.SecurityGroupId.1", "sg-1");
	assert_field(b, "NetworkInterface.1.SecurityGroupId.2", "sg-2");
	assert_field(b, "SubnetId", NULL);
	assert_field(b, "SecurityGroupId.1", NULL);
}

static void test_client_token(void **state)
{
	char a[65], b[65], c[65];
	assert_int_equal(aws_client_token("sandbox-1", a), 0);
	assert_int_equal(aws_client_token("sandbox-1", b), 0);
	assert_int_equal(aws_client_token("sandbox-2", c), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_true(aws_client_token("", a) < 0);
}

static void test_user_data_limit(void **state)
{
	struct fx *f = *state;
	char *ud = malloc(AWS_USER_DATA_MAX_BYTES + 2);
	memset(ud, 'a', AWS_USER_DATA_MAX_BYTES + 1);
	ud[AWS_USER_DATA_MAX_BYTES] = 0;
	struct provider_instance_spec spec = spec_of("sb-1", ud);
	free(form_of(&f->s, &spec)); /* exactly 16384: accepted */
	ud[AWS_USER_DATA_MAX_BYTES] = 'a';
	ud[AWS_USER_DATA_MAX_BYTES + 1] = 0;
	struct aws_run_params rp = {.settings = &f->s, .client_token = "t"};
	struct aws_form form = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_run_instances_form(&rp, &spec, &form, &err), -E2BIG);
	aws_form_done(&form);
	assert_non_null(strstr(err->message, "16385 bytes"));
	assert_non_null(strstr(err->message, "16384"));
	free(ud);
}

/* ---- errors and retries ---- */

static void test_error_parse(void **state)
{
	const char ec2[] = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>InvalidAMIID.Mal"
			   "formed</Code><Message>bad &amp; ugly</Message></Error></Errors>"
			   "<RequestID>abc-1</RequestID></Response>";
	struct aws_api_error e = {0};
	assert_int_equal(aws_api_error_parse(ec2, strlen(ec2), &e), 0);
	assert_string_equal(e.code, "InvalidAMIID.Malformed");
	assert_string_equal(e.message, "bad & ugly");
	assert_string_equal(e.request_id, "abc-1");
	aws_api_error_done(&e);
	const char sts[] = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
			   "<Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>"
			   "expired</Message></Error><RequestId>r-2</RequestId></ErrorResponse>";
	assert_int_equal(aws_api_error_parse(sts, strlen(sts), &e), 0);
	assert_string_equal(e.code, "InvalidIdentityToken");
	assert_string_equal(e.request_id, "r-2");
	aws_api_error_done(&e);
	const char dtd[] = "<!DOCTYPE r [<!ENTITY x \"y\">]><Response><Errors><Error><Code>&x;"
			   "</Code></Error></Errors></Response>";
	assert_int_equal(aws_api_error_parse(dtd, strlen(dtd), &e), -EBADMSG);
	assert_int_equal(aws_api_error_parse("<Response/>", 11, &e), -EBADMSG);
	assert_int_equal(aws_api_error_parse("garbage", 7, &e), -EBADMSG);
}

static void test_error_to_reterr(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init(f, NULL), 0);
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	spec.image = "ami-missing";
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = aws_provider_ops.create_instance(f->p, &spec, &inst, &err);
	assert_int_equal(r, -ENOENT);
	assert_non_null(err);
	assert_int_equal(err->status, 400);
	assert_string_equal(err->code, "InvalidAMIID.NotFound");
	assert_string_equal(err->request_id, "req-InvalidAMIID.NotFound");
	assert_non_null(strstr(err->message, "The image id does not exist"));
	assert_null(strstr(err->message, W.secret));
	assert_int_equal(W.n_run, 0);
}

static void test_throttle_retried_new_signature(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init(f, NULL), 0);
	unsigned before = W.n_auth;
	W.throttle = 2;
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	/* DescribeImages is throttled twice, then everything succeeds */
	assert_int_equal(aws_provider_ops.create_instance(f->p, &spec, &inst, &err), 0);
	assert_int_equal(W.n_sig_bad, 0);
	assert_true(W.n_auth >= before + 4);
	/* the three attempts of the throttled call were each signed afresh (and verified) */
	assert_string_not_equal(W.auth[before], W.auth[before + 1]);
	assert_string_not_equal(W.auth[before + 1], W.auth[before + 2]);
	assert_string_not_equal(W.date[before], W.date[before + 1]);
	assert_string_equal(inst.id, "i-0abc");
	provider_instance_done(&inst);

	/* throttled beyond the attempts: fails with the code */
	W.throttle = 100;
	pp_error_free(err);
	err = NULL;
	struct provider_instance *v = NULL;
	size_t n = 0;
	assert_int_equal(aws_provider_ops.list_instances(f->p, &v, &n, &err), -EBUSY);
	assert_string_equal(err->code, "RequestLimitExceeded");
	assert_int_equal(err->status, 400);
	W.throttle = 0;
}

static void test_create_private(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init(f, NULL), 0);
	struct provider_instance_spec spec = spec_of("sb-1", "#cloud-config\n");
	spec.machine_type = "m6a.xlarge";
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	/* not allow-listed: WIRE 7's message, no RunInstances */
	assert_int_equal(aws_provider_ops.create_instance(f->p, &spec, &inst, &err), -EINVAL);
	assert_non_null(strstr(err->message, "is not default"));
	assert_int_equal(W.n_run, 0);
	pp_error_free(err);
	err = NULL;
	spec.machine_type = "";
	assert_int_equal(aws_provider_ops.create_instance(f->p, &spec, &inst, &err), 0);
	assert_string_equal(inst.id, "i-0abc");
	assert_int_equal(inst.n_ips, 1);
	assert_string_equal(inst.ips[0], "10.0.0.5");
	assert_string_equal(inst.sandbox_id, "sb-1");
	assert_string_equal(inst.node_name, "node-1");
	/* root volume: the AMI's 50 GiB beats ROOT_VOLUME_SIZE=30 */
	assert_field(W.run_body, "BlockDeviceMapping.1.DeviceName", "/dev/xvda");
	assert_field(W.run_body, "BlockDeviceMapping.1.Ebs.VolumeSize", "50");
	assert_field(W.run_body, "InstanceType", "m6a.large");
	char tok[65];
	aws_client_token("sb-1", tok);
	assert_field(W.run_body, "ClientToken", tok);
	provider_instance_done(&inst);
}

static void test_create_public_ip_waits(void **state)
{
	struct fx *f = *state;
	f->s.use_public_ip = true;
	assert_int_equal(init(f, NULL), 0);
	W.pending_polls = 2;
	struct provider_instance_spec spec = spec_of("sb-1", "x");
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.create_instance(f->p, &spec, &inst, &err), 0);
	assert_int_equal(W.n_describe, 3);
	assert_int_equal(inst.n_ips, 2);
	assert_string_equal(inst.ips[0], "203.0.113.7");
	assert_string_equal(inst.ips[1], "10.0.0.5");
	assert_field(W.run_body, "NetworkInterface.1.AssociatePublicIpAddress", "true");
	provider_instance_done(&inst);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init(f, NULL), 0);
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-0abc", &err), 0);
	W.terminate_code = "InvalidInstanceID.NotFound";
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-0gone", &err), 0);
	W.terminate_code = "InvalidInstanceID.Malformed";
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "bogus", &err), 0);
	assert_null(err);
	W.terminate_code = "UnauthorizedOperation";
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-0abc", &err), -EACCES);
	assert_string_equal(err->code, "UnauthorizedOperation");
	assert_non_null(strstr(err->message, "deleting EC2 instance i-0abc"));
	assert_int_equal(W.n_terminate, 4);
}

static void test_list_paging(void **state)
{
	struct fx *f = *state;
	assert_int_equal(init(f, NULL), 0);
	struct provider_instance *v = NULL;
	size_t n = 0;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.list_instances(f->p, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, "i-1");
	assert_string_equal(v[0].sandbox_id, "sb-1");
	assert_string_equal(v[0].node_name, "node-1");
	assert_string_equal(v[0].name, "podvm-sb-1");
	assert_string_equal(v[0].ips[0], "10.0.0.1");
	assert_string_equal(v[2].id, "i-3");
	assert_int_equal(v[2].n_ips, 2);
	assert_string_equal(v[2].ips[0], "10.0.0.3");
	assert_string_equal(v[2].ips[1], "198.51.100.3");
	provider_instances_free(v, n);
	assert_int_equal(W.n_describe_bodies, 2);
	const char *b = W.describe_bodies[0];
	assert_field(b, "Filter.1.Name", "tag-key");
	assert_field(b, "Filter.1.Value.1", "peerpod-sandbox-id");
	assert_field(b, "Filter.2.Name", "instance-state-name");
	assert_field(b, "Filter.2.Value.1", "pending");
	assert_field(b, "Filter.2.Value.2", "running");
	assert_field(b, "Filter.2.Value.3", "stopping");
	assert_field(b, "Filter.2.Value.4", "stopped");
	assert_field(b, "NextToken", NULL);
	assert_field(W.describe_bodies[1], "NextToken", "page2");
}

/* ---- credentials ---- */

static void test_credentials_env_session_token(void **state)
{
	struct fx *f = *state;
	f->s.session_token = (char *)"session-tok";
	W.token = "session-tok"; /* the server insists on it */
	assert_int_equal(init(f, NULL), 0);
	assert_int_equal(W.n_sig_bad, 0);
	assert_non_null(strstr(W.auth[0], "Credential=AKIDEXAMPLE/"));
	assert_non_null(strstr(W.auth[0], "/" REGION "/ec2/aws4_request"));
	assert_int_equal(W.n_sts + W.n_imds_creds, 0);
	f->s.session_token = NULL;
}

static void write_token(struct fx *f, const char *tok)
{
	assert_int_equal(write_file_atomic(f->token_file, tok, strlen(tok), 0600), 0);
}

static void test_web_identity_refresh(void **state)
{
	struct fx *f = *state;
	f->s.access_key_id = NULL;
	f->s.secret_key = NULL;
	f->s.role_arn = (char *)"arn:aws:iam::123456789012:role/peerpods";
	f->s.web_identity_token_file = f->token_file;
	W.access_key = "ASIASTS";
	W.secret = "sts-secret";
	W.token = "sts-session";
	/* credentials that expire within the refresh window: each use refreshes */
	W.sts_expiry_s = 120;
	write_token(f, "jwt-one\n");
	assert_int_equal(init(f, NULL), 0); /* DescribeInstanceTypes signed with STS creds */
	assert_int_equal(W.n_sig_bad, 0);
	assert_int_equal(W.n_sts, 1);
	assert_string_equal(W.sts_tokens[0], "jwt-one");
	write_token(f, "jwt-two");
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-1", &err), 0);
	assert_int_equal(W.n_sts, 2);
	assert_string_equal(W.sts_tokens[1], "jwt-two"); /* the file is read again */
	/* long-lived now: cached */
	W.sts_expiry_s = 3600;
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-1", &err), 0);
	assert_int_equal(W.n_sts, 3);
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-1", &err), 0);
	assert_int_equal(aws_provider_ops.delete_instance(f->p, "i-1", &err), 0);
	assert_int_equal(W.n_sts, 3);
	assert_int_equal(W.n_sig_bad, 0);
	assert_null(err);
}

struct getter {
	struct aws_credential_provider *cp;
	int r;
};

static void *get_thread(void *arg)
{
	struct getter *g = arg;
	struct aws_credentials c = {0};
	g->r = aws_credential_provider_get(g->cp, &c, NULL);
	aws_credentials_done(&c);
	return NULL;
}

static void test_web_identity_no_stampede(void **state)
{
	struct fx *f = *state;
	W.access_key = "ASIASTS";
	W.secret = "sts-secret";
	W.token = "sts-session";
	write_token(f, "jwt");
	struct aws_settings s = {.role_arn = (char *)"arn:aws:iam::1:role/r",
				 .web_identity_token_file = f->token_file};
	struct aws_credential_provider cp;
	assert_int_equal(aws_credential_provider_init(&cp, &s, f->sts_url, f->imds_url, NULL), 0);
	assert_int_equal(cp.source, AWS_CREDENTIALS_WEB_IDENTITY);
	struct getter g[8];
	pthread_t th[8];
	for (int i = 0; i < 8; i++) {
		g[i] = (struct getter){.cp = &cp};
		pthread_create(&th[i], NULL, get_thread, &g[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].r, 0);
	}
	assert_int_equal(W.n_sts, 1);
	assert_int_equal(cp.n_refreshes, 1);
	/* an expired-token rejection forces the next use to refresh */
	aws_credential_provider_invalidate(&cp, "ASIASTS");
	struct aws_credentials c = {0};
	assert_int_equal(aws_credential_provider_get(&cp, &c, NULL), 0);
	assert_string_equal(c.session_token, "sts-session");
	aws_credentials_done(&c);
	assert_int_equal(W.n_sts, 2);
	aws_credential_provider_done(&cp);
}

static void test_imds_role_and_defaults(void **state)
{
	struct fx *f = *state;
	W.imds = true;
	W.access_key = "ASIAIMDS";
	W.secret = "imds-secret";
	W.token = "imds-session";
	f->s.access_key_id = NULL;
	f->s.secret_key = NULL;
	f->s.region = NULL;
	f->s.subnet_id = NULL;
	f->s.security_group_ids = NULL;
	assert_int_equal(init(f, NULL), 0);
	assert_int_equal(W.n_imds_creds, 1);
	assert_int_equal(W.n_sig_bad, 0);
	assert_non_null(strstr(W.auth[0], "Credential=ASIAIMDS/"));
	struct provider_instance_spec spec = spec_of("sb-9", "x");
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.create_instance(f->p, &spec, &inst, &err), 0);
	assert_field(W.run_body, "SubnetId", "subnet-imds");
	assert_field(W.run_body, "SecurityGroupId.1", "sg-a");
	assert_field(W.run_body, "SecurityGroupId.2", "sg-b");
	assert_field(W.run_body, "KeyName", "imds-key");
	provider_instance_done(&inst);
	assert_int_equal(W.n_imds_creds, 1); /* cached for the hour */
}

static void test_imds_absent(void **state)
{
	struct fx *f = *state;
	f->s.region = NULL; /* W.imds is false: the metadata service answers 404 */
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_true(init(f, &err) < 0);
	assert_non_null(strstr(err->message, "AWS_REGION"));
}

static void test_parsers(void **state)
{
	const char it[] =
	    "<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>"
	    "p4d.24xlarge</instanceType><vCpuInfo><defaultVCpus>96</defaultVCpus>"
	    "</vCpuInfo><memoryInfo><sizeInMiB>1179648</sizeInMiB></memoryInfo>"
	    "<gpuInfo><gpus><item><count>4</count></item><item><count>4</count>"
	    "</item></gpus></gpuInfo></item></instanceTypeSet><nextToken>n</nextToken>"
	    "</DescribeInstanceTypesResponse>";
	struct instance_type_spec *v = NULL;
	size_t n = 0;
	char *next = NULL;
	assert_int_equal(ec2_instance_types_parse(it, strlen(it), &v, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].name, "p4d.24xlarge");
	assert_int_equal(v[0].vcpus, 96);
	assert_int_equal(v[0].memory_mib, 1179648);
	assert_int_equal(v[0].gpus, 8);
	assert_string_equal(next, "n");
	free(next);
	ec2_instance_types_free(v, n);

	struct aws_credentials c = {0};
	const char js[] = "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\","
			  "\"Token\":\"T\",\"Expiration\":\"2030-01-02T03:04:05Z\"}";
	assert_int_equal(imds_credentials_parse(js, strlen(js), &c), 0);
	assert_string_equal(c.session_token, "T");
	assert_int_equal(c.expires_ns, 1893553445LL * NSEC_PER_SEC);
	aws_credentials_done(&c);
	assert_int_equal(imds_credentials_parse("{\"Code\":\"Failure\"}", 18, &c), -EBADMSG);

	int64_t t;
	assert_int_equal(aws_time_parse("2030-01-02T03:04:05.123Z", &t), 0);
	assert_int_equal(t, 1893553445LL * NSEC_PER_SEC);
	assert_true(aws_time_parse("2030-01-02 03:04:05", &t) < 0);

	char *name = NULL;
	assert_int_equal(aws_imds_key_name_parse("0=my-key\n", NULL, &name), 0);
	assert_string_equal(name, "my-key");
	free(name);
	assert_int_equal(aws_imds_key_name_parse(NULL, "ssh-rsa AAAAB3 other-key\n", &name), 0);
	assert_string_equal(name, "other-key");
	free(name);
	assert_int_equal(aws_imds_key_name_parse(NULL, "ssh-rsa AAAAB3\n", &name), -ENOENT);
}

static void test_verify_config(void **state)
{
	struct fx *f = *state;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), 0);
	f->s.image_id = NULL;
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), -EINVAL);
	assert_non_null(strstr(err->message, "PODVM_AMI_ID"));
	pp_error_free(err);
	err = NULL;
	f->s.use_lt = true; /* a launch template needs no image */
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), 0);
	f->s.secret_key = NULL;
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), -EINVAL);
	assert_non_null(strstr(err->message, "AWS_SECRET_ACCESS_KEY"));
	pp_error_free(err);
	err = NULL;
	f->s.access_key_id = NULL;
	f->s.role_arn = (char *)"arn:aws:iam::1:role/r";
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), -EINVAL);
	assert_non_null(strstr(err->message, "AWS_WEB_IDENTITY_TOKEN_FILE"));
	pp_error_free(err);
	err = NULL;
	f->s.role_arn = NULL;
	f->s.endpoint_url_ec2 = (char *)"ftp://x";
	assert_int_equal(aws_provider_ops.verify_config(&f->s, &err), -EINVAL);
	assert_non_null(strstr(err->message, "AWS_ENDPOINT_URL_EC2"));
}

static void test_cloud_config_verify(void **state)
{
	struct fx *f = *state;
	f->s.image_id = (char *)"ami-missing";
	struct provider_context ctx = {.cloud_config_verify = true};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(aws_provider_ops.init(&f->s, &ctx, &f->p, &err), -ENOENT);
	assert_string_equal(err->code, "InvalidAMIID.NotFound");
	f->p = NULL;
}

static void test_options_table(void **state)
{
	/* WIRE 8.2's flags and variables, all present */
	static const char *const want[][2] = {
	    {"aws-access-key-id", "AWS_ACCESS_KEY_ID"},
	    {"aws-secret-key", "AWS_SECRET_ACCESS_KEY"},
	    {"aws-session-token", "AWS_SESSION_TOKEN"},
	    {"aws-region", "AWS_REGION"},
	    {"instance-type", "PODVM_INSTANCE_TYPE"},
	    {"instance-types", "PODVM_INSTANCE_TYPES"},
	    {"imageid", "PODVM_AMI_ID"},
	    {"keyname", "SSH_KP_NAME"},
	    {"subnetid", "AWS_SUBNET_ID"},
	    {"securitygroupids", "AWS_SG_IDS"},
	    {"use-lt", "USE_PODVM_LAUNCHTEMPLATE"},
	    {"aws-lt-name", "PODVM_LAUNCHTEMPLATE_NAME"},
	    {"use-public-ip", "USE_PUBLIC_IP"},
	    {"root-volume-size", "ROOT_VOLUME_SIZE"},
	    {"disable-cvm", "DISABLECVM"},
	    {"tags", "TAGS"},
	    {"aws-profile", NULL},
	};
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		bool found = false;
		for (size_t k = 0; k < aws_provider_ops.n_options; k++) {
			const struct config_option *o = &aws_provider_ops.options[k];
			if (str_eq(o->flag, want[i][0]) && str_eq(o->env, want[i][1]))
				found = true;
			if (str_eq(o->flag, want[i][0]) && i < 3)
				assert_int_equal(o->type, CONFIG_SECRET);
		}
		if (!found)
			fail_msg("option -%s missing", want[i][0]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_form_cvm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_form_disable_cvm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_form_launch_template, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_form_public_ip, setup, teardown),
	    cmocka_unit_test(test_client_token),
	    cmocka_unit_test_setup_teardown(test_user_data_limit, setup, teardown),
	    cmocka_unit_test(test_error_parse),
	    cmocka_unit_test_setup_teardown(test_error_to_reterr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_throttle_retried_new_signature, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_private, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_public_ip_waits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credentials_env_session_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_web_identity_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_web_identity_no_stampede, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_imds_role_and_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_imds_absent, setup, teardown),
	    cmocka_unit_test(test_parsers),
	    cmocka_unit_test_setup_teardown(test_verify_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cloud_config_verify, setup, teardown),
	    cmocka_unit_test(test_options_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
