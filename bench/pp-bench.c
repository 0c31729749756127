/* pp-bench: load generator for bench/run.sh. Prints one JSON object per run.
 *   pp-bench rtt ADDRESS SERVICE METHOD PAYLOAD_HEX|@SIZE N     sequential unary calls
 *   pp-bench copy ADDRESS SIZE_BYTES TOTAL_BYTES                 CopyFile chunks (throughput)
 *   pp-bench pods HV_SOCKET N                                    N pods created+started at once
 *   pp-bench sigv4 N                                             SigV4 signatures of a RunInstances
 *                                                                request vs OpenSSL HMAC-SHA256
 * ADDRESS is a Unix socket path. Latencies are wall-clock per call on one connection. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#include "agent.pb-c.h"
#include "aws/aws-internal.h"
#include "hypervisor.pb-c.h"
#include "ttrpc/ttrpc.h"

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int hex_decode(const char *h, uint8_t **ret, size_t *ret_len)
{
	size_t l = strlen(h);
	if (l % 2)
		return -EINVAL;
	uint8_t *b = malloc(l / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < l / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)v;
	}
	*ret = b;
	*ret_len = l / 2;
	return 0;
}

static int run_rtt(const char *addr, const char *service, const char *method, const char *payload,
		   long n)
{
	_cleanup_free_ uint8_t *req = NULL;
	size_t req_len = 0;
	if (payload[0] == '@') {
		/* a ReadStdout request asking for SIZE bytes: 1 KiB request/response when the
		 * container id is padded to SIZE too */
		long size = strtol(payload + 1, NULL, 10);
		_cleanup_free_ char *cid = malloc((size_t)size + 1);
		if (!cid)
			return 1;
		memset(cid, 'c', (size_t)size);
		cid[size] = 0;
		Grpc__ReadStreamRequest r = GRPC__READ_STREAM_REQUEST__INIT;
		r.container_id = cid;
		r.len = (uint32_t)size;
		req_len = grpc__read_stream_request__get_packed_size(&r);
		req = malloc(req_len);
		grpc__read_stream_request__pack(&r, req);
	} else if (hex_decode(payload, &req, &req_len) < 0) {
		fprintf(stderr, "bad payload hex\n");
		return 2;
	}
	struct ttrpc_sync_client *c = NULL;
	int r = ttrpc_sync_client_connect(addr, NULL, NULL, 5 * NSEC_PER_SEC, &c);
	if (r < 0) {
		fprintf(stderr, "connect %s: %s\n", addr, strerror(-r));
		return 1;
	}
	int64_t *lat = calloc((size_t)n, sizeof(int64_t));
	if (!lat)
		return 1;
	/* warm-up */
	for (int i = 0; i < 100; i++) {
		uint8_t *resp = NULL;
		size_t rl;
		r = ttrpc_sync_client_call(c, service, method, req, req_len, 10 * NSEC_PER_SEC,
					   &resp, &rl, NULL);
		free(resp);
		if (r != 0) {
			fprintf(stderr, "call failed: %d\n", r);
			return 1;
		}
	}
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		uint8_t *resp = NULL;
		size_t rl;
		int64_t s = now_ns();
		r = ttrpc_sync_client_call(c, service, method, req, req_len, 10 * NSEC_PER_SEC,
					   &resp, &rl, NULL);
		lat[i] = now_ns() - s;
		free(resp);
		if (r != 0) {
			fprintf(stderr, "call failed: %d\n", r);
			return 1;
		}
	}
	int64_t total = now_ns() - t0;
	ttrpc_sync_client_free(c);
	qsort(lat, (size_t)n, sizeof(int64_t), cmp_i64);
	printf("{\"calls\":%ld,\"p50_us\":%.1f,\"p99_us\":%.1f,\"calls_per_s\":%.0f}\n", n,
	       lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, n / (total / 1e9));
	free(lat);
	return 0;
}

static int run_copy(const char *addr, long chunk, long total_bytes)
{
	_cleanup_free_ uint8_t *data = malloc((size_t)chunk);
	if (!data)
		return 1;
	memset(data, 0xab, (size_t)chunk);
	Grpc__CopyFileRequest m = GRPC__COPY_FILE_REQUEST__INIT;
	m.path = (char *)"/run/kata-containers/shared/containers/bench";
	m.file_size = total_bytes;
	m.file_mode = 0100644;
	m.data.data = data;
	m.data.len = (size_t)chunk;
	/* the largest encoding: offset set to its largest value */
	m.offset = total_bytes;
	_cleanup_free_ uint8_t *req = malloc(grpc__copy_file_request__get_packed_size(&m));
	if (!req)
		return 1;
	struct ttrpc_sync_client *c = NULL;
	int r = ttrpc_sync_client_connect(addr, NULL, NULL, 5 * NSEC_PER_SEC, &c);
	if (r < 0) {
		fprintf(stderr, "connect %s: %s\n", addr, strerror(-r));
		return 1;
	}
	int64_t t0 = now_ns();
	long sent = 0;
	for (long off = 0; off < total_bytes; off += chunk) {
		m.offset = off;
		size_t len = grpc__copy_file_request__pack(&m, req);
		_cleanup_free_ char *msg = NULL;
		r = ttrpc_sync_client_call(c, "grpc.AgentService", "CopyFile", req, len,
					   60 * NSEC_PER_SEC, NULL, NULL, &msg);
		if (r != 0) {
			fprintf(stderr, "CopyFile failed: %d %s\n", r, msg ?: "");
			return 1;
		}
		sent += chunk;
	}
	int64_t total = now_ns() - t0;
	ttrpc_sync_client_free(c);
	printf("{\"bytes\":%ld,\"chunk\":%ld,\"mib_per_s\":%.1f}\n", sent, chunk,
	       sent / 1048576.0 / (total / 1e9));
	return 0;
}

/* ---- N pods at once over one connection (like runtime-rs) ---- */

struct pod {
	struct ttrpc_client *client;
	char sid[65];
	int64_t start_ns;
	int64_t done_ns;
	int error;
	long *remaining;
	struct loop *loop;
};

static void on_started(struct ttrpc_client *c, int code, const char *message,
		       const uint8_t *payload, size_t len, void *userdata)
{
	struct pod *p = userdata;
	p->done_ns = now_ns();
	if (code != 0) {
		p->error = code;
		fprintf(stderr, "StartVM %s: %d %s\n", p->sid, code, message ?: "");
	}
	if (--*p->remaining == 0)
		loop_exit(p->loop, 0);
}

static void on_created(struct ttrpc_client *c, int code, const char *message,
		       const uint8_t *payload, size_t len, void *userdata)
{
	struct pod *p = userdata;
	if (code != 0) {
		fprintf(stderr, "CreateVM %s: %d %s\n", p->sid, code, message ?: "");
		p->error = code;
		if (--*p->remaining == 0)
			loop_exit(p->loop, 0);
		return;
	}
	Hypervisor__StartVMRequest r = HYPERVISOR__START_VMREQUEST__INIT;
	r.id = p->sid;
	uint8_t buf[128];
	size_t l = hypervisor__start_vmrequest__pack(&r, buf);
	if (ttrpc_client_call(c, "hypervisor.Hypervisor", "StartVM", buf, l, 600 * NSEC_PER_SEC,
			      NULL, 0, on_started, p) < 0) {
		p->error = -EIO;
		if (--*p->remaining == 0)
			loop_exit(p->loop, 0);
	}
}

static int connect_unix(const char *path);

static int run_pods(const char *hv, long n)
{
	_cleanup_(loop_freep) struct loop *l = NULL;
	if (loop_new(&l) < 0)
		return 1;
	int fd = connect_unix(hv);
	if (fd < 0) {
		fprintf(stderr, "connect %s: %s\n", hv, strerror(-fd));
		return 1;
	}
	struct ttrpc_client *c = NULL;
	if (ttrpc_client_new(l, fd, NULL, &c) < 0)
		return 1;
	struct pod *pods = calloc((size_t)n, sizeof(*pods));
	long remaining = n;
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct pod *p = &pods[i];
		*p = (struct pod){.client = c, .remaining = &remaining, .loop = l, .start_ns = t0};
		snprintf(p->sid, sizeof(p->sid), "%016lx%048x", (unsigned long)t0, (unsigned)i);
		char name[32];
		snprintf(name, sizeof(name), "bench-%ld", i);
		Hypervisor__CreateVMRequest__AnnotationsEntry e1 =
		    HYPERVISOR__CREATE_VMREQUEST__ANNOTATIONS_ENTRY__INIT;
		Hypervisor__CreateVMRequest__AnnotationsEntry e2 =
		    HYPERVISOR__CREATE_VMREQUEST__ANNOTATIONS_ENTRY__INIT;
		e1.key = (char *)"io.kubernetes.cri.sandbox-name";
		e1.value = name;
		e2.key = (char *)"io.kubernetes.cri.sandbox-namespace";
		e2.value = (char *)"bench";
		Hypervisor__CreateVMRequest__AnnotationsEntry *es[] = {&e1, &e2};
		Hypervisor__CreateVMRequest r = HYPERVISOR__CREATE_VMREQUEST__INIT;
		r.id = p->sid;
		r.n_annotations = 2;
		r.annotations = es;
		uint8_t buf[512];
		size_t len = hypervisor__create_vmrequest__pack(&r, buf);
		if (ttrpc_client_call(c, "hypervisor.Hypervisor", "CreateVM", buf, len,
				      60 * NSEC_PER_SEC, NULL, 0, on_created, p) < 0)
			return 1;
	}
	loop_run(l);
	int64_t total = now_ns() - t0;
	int errors = 0;
	int64_t *lat = calloc((size_t)n, sizeof(int64_t));
	for (long i = 0; i < n; i++) {
		errors += pods[i].error != 0;
		lat[i] = pods[i].done_ns - pods[i].start_ns;
	}
	qsort(lat, (size_t)n, sizeof(int64_t), cmp_i64);
	printf("{\"pods\":%ld,\"errors\":%d,\"total_s\":%.3f,\"p50_s\":%.3f,\"max_s\":%.3f}\n", n,
	       errors, total / 1e9, lat[n / 2] / 1e9, lat[n - 1] / 1e9);
	/* print the sandbox ids for the caller to stop */
	for (long i = 0; i < n; i++)
		fprintf(stderr, "sid %s\n", pods[i].sid);
	ttrpc_client_free(c);
	free(lat);
	free(pods);
	return errors ? 1 : 0;
}

#include <sys/socket.h>
#include <sys/un.h>

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (str_copy(sa.sun_path, sizeof(sa.sun_path), path) < 0)
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* ---- SigV4 signing of a typical RunInstances request, against raw HMAC-SHA256 ---- */

static int run_sigv4(long n)
{
	if (n <= 0)
		return 2;
	/* a pod's user data is a few KiB of cloud-config (apf.json + initdata) */
	char ud[4096];
	memset(ud, 'x', sizeof(ud) - 1);
	ud[sizeof(ud) - 1] = 0;
	char *sgs[] = {(char *)"sg-0123456789abcdef0", NULL};
	char *tags[] = {(char *)"team=peerpods", NULL};
	struct aws_settings s = {.instance_type = (char *)"m6a.large", .tags = tags};
	struct aws_run_params rp = {
	    .settings = &s,
	    .image_id = "ami-0123456789abcdef0",
	    .instance_type = "m6a.large",
	    .subnet_id = "subnet-0123456789abcdef0",
	    .security_group_ids = sgs,
	    .root_device_name = "/dev/xvda",
	    .volume_size_gib = 30,
	    .client_token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	};
	struct provider_instance_spec spec = {
	    .instance_name = "podvm-nginx-1a2b3c4d",
	    .sandbox_id = "1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b",
	    .pod_name = "nginx",
	    .pod_namespace = "default",
	    .node_name = "worker-0",
	    .user_data = ud,
	};
	struct aws_form f = {0};
	aws_form_add(&f, "Action", "RunInstances");
	aws_form_add(&f, "Version", EC2_API_VERSION);
	if (aws_run_instances_form(&rp, &spec, &f, NULL) < 0 || !aws_form_body(&f))
		return 1;
	const char *body = aws_form_body(&f);
	size_t len = f.b.len;
	struct sigv4_credentials c = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				      NULL};
	struct sigv4_signing sg = {.credentials = &c,
				   .date_time = "20240101T000000Z",
				   .region = "us-east-1",
				   .service = "ec2",
				   .flags = SIGV4_NORMALIZE_PATH};
	const struct sigv4_header h[] = {{"host", "ec2.us-east-1.amazonaws.com"},
					 {"content-type", AWS_FORM_CONTENT_TYPE}};
	struct sigv4_request rq = {.method = "POST",
				   .path = "/",
				   .headers = h,
				   .n_headers = 2,
				   .payload = body,
				   .payload_len = len};
	/* as the provider signs: no key cache, the key derived every time */
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct sigv4_result res = {0};
		if (sigv4_sign_headers(&sg, &rq, &res) < 0)
			return 1;
		sigv4_result_done(&res);
	}
	int64_t sign_ns = now_ns() - t0;
	/* one HMAC-SHA256 over the same body with a 32-byte key */
	uint8_t key[32] = {1}, md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (!HMAC(EVP_sha256(), key, sizeof(key), (const uint8_t *)body, len, md, &md_len))
			return 1;
	int64_t hmac_ns = now_ns() - t0;
	double sign_per_s = n / (sign_ns / 1e9), hmac_per_s = n / (hmac_ns / 1e9);
	printf("{\"mode\":\"sigv4\",\"n\":%ld,\"body_bytes\":%zu,\"sign_per_s\":%.0f,"
	       "\"hmac_sha256_per_s\":%.0f,\"hmac_per_sign\":%.2f}\n",
	       n, len, sign_per_s, hmac_per_s, hmac_per_s / sign_per_s);
	aws_form_done(&f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && str_eq(argv[1], "rtt"))
		return run_rtt(argv[2], argv[3], argv[4], argv[5], strtol(argv[6], NULL, 10));
	if (argc == 5 && str_eq(argv[1], "copy"))
		return run_copy(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	if (argc == 4 && str_eq(argv[1], "pods"))
		return run_pods(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 3 && str_eq(argv[1], "sigv4"))
		return run_sigv4(strtol(argv[2], NULL, 10));
	fprintf(stderr, "usage: pp-bench rtt ADDR SERVICE METHOD HEX|@SIZE N | copy ADDR CHUNK "
			"TOTAL | pods HV N | sigv4 N\n");
	return 2;
}
