/* pp-bench: load generator for bench/run.sh. Prints one JSON object per run.
 *   pp-bench rtt ADDRESS SERVICE METHOD PAYLOAD_HEX|@SIZE N     sequential unary calls
 *   pp-bench copy ADDRESS SIZE_BYTES TOTAL_BYTES                 CopyFile chunks (throughput)
 *   pp-bench pods HV_SOCKET N                                    N pods created+started at once
 *   pp-bench sigv4 N                                             SigV4 signatures of a RunInstances
 *                                                                request vs OpenSSL HMAC-SHA256
 *   pp-bench mesh HOST:PORT PKI MEASUREMENT HOST_DATA CLIENTS SECONDS
 *                                                                CLIENTS workloads attesting to a
 *                                                                coordinator's mesh API (aTLS
 *                                                                handshake + NewMeshCert) in a loop
 *   pp-bench evidence PKI MEASUREMENT HOST_DATA SECONDS          simulated SNP evidence: issue and
 *                                                                verify rates (lib/atls), one thread
 * ADDRESS is a Unix socket path. Latencies are wall-clock per call on one connection. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#include "agent.pb-c.h"
#include "atls/atls.h"
#include "aws/aws-internal.h"
#include "coordapi/coordapi.h"
#include "coordinator.pb-c.h"
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

/* ---- coordinator: workloads attesting to the mesh API ---- */

DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_CLEANUP(SSL_CTX, SSL_CTX_free)

struct sim_source {
	struct atls_test_pki *pki;
	struct atls_sim_params params;
};

static int sim_source_load(const char *pki_dir, const char *measurement, const char *host_data,
			   struct sim_source *ret)
{
	_cleanup_free_ char *msg = NULL;
	*ret = (struct sim_source){0};
	if (hex_decode_exact(measurement, strlen(measurement), ret->params.measurement, 48) < 0 ||
	    hex_decode_exact(host_data, strlen(host_data), ret->params.host_data, 32) < 0) {
		fprintf(stderr, "MEASUREMENT must be 96 hex digits, HOST_DATA 64\n");
		return -EINVAL;
	}
	int r = atls_test_pki_load(pki_dir, &ret->pki, &msg);
	if (r < 0)
		fprintf(stderr, "test PKI %s: %s\n", pki_dir, msg ? msg : strerror(-r));
	return r;
}

struct mesh_worker {
	pthread_t thread;
	const char *address;
	const struct sim_source *src;
	int64_t deadline_ns;
	int64_t *handshake_ns, *total_ns; /* per success */
	size_t n, cap;
	long failed;
	char *first_error;
};

static int lat_push(struct mesh_worker *w, int64_t hs, int64_t total)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		int64_t *a = reallocarray(w->handshake_ns, cap, sizeof(int64_t));
		if (!a)
			return -ENOMEM;
		w->handshake_ns = a;
		int64_t *b = reallocarray(w->total_ns, cap, sizeof(int64_t));
		if (!b)
			return -ENOMEM;
		w->total_ns = b;
		w->cap = cap;
	}
	w->handshake_ns[w->n] = hs;
	w->total_ns[w->n++] = total;
	return 0;
}

static void mesh_fail(struct mesh_worker *w, const char *what, int r, const char *msg)
{
	w->failed++;
	if (!w->first_error)
		w->first_error = str_printf("%s: %s", what, msg ? msg : strerror(r < 0 ? -r : r));
}

/* One workload as the attestation client is: its own issuer and one P-256 key for the run, a
 * context whose ALPN list carries a nonce, then handshake + NewMeshCert per iteration. */
static void *mesh_worker_run(void *arg)
{
	struct mesh_worker *w = arg;
	_cleanup_(atls_issuer_freep) struct atls_issuer *issuer = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = key ? atls_issuer_new_sim(w->src->pki, &w->src->params, &issuer) : -ENOMEM;
	const struct atls_config c = {.issuer = issuer, .key = key};
	if (r == 0)
		r = atls_ctx_new_client(&c, &ctx, &msg);
	uint8_t nonce[ATLS_NONCE_SIZE];
	_cleanup_free_ uint8_t *alpn = NULL;
	size_t alpn_len = 0;
	char *protocols[] = {(char *)COORDAPI_ALPN, NULL};
	if (r == 0 && (r = atls_nonce_generate(nonce)) == 0)
		r = atls_alpn_build(nonce, protocols, &alpn, &alpn_len);
	if (r == 0 && SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned)alpn_len) != 0)
		r = -ENOMEM;
	if (r < 0) {
		mesh_fail(w, "client setup", r, msg);
		return NULL;
	}
	while (now_ns() < w->deadline_ns) {
		_cleanup_(coordapi_conn_freep) struct coordapi_conn *conn = NULL;
		_cleanup_free_ char *err = NULL;
		int64_t t0 = now_ns();
		r = coordapi_connect(w->address, ctx, 30 * NSEC_PER_SEC, &conn, &err);
		int64_t t1 = now_ns();
		if (r < 0) {
			mesh_fail(w, "handshake", r, err);
			continue;
		}
		Coordinator__NewMeshCertRequest req = COORDINATOR__NEW_MESH_CERT_REQUEST__INIT;
		ProtobufCMessage *out = NULL;
		r = coordapi_call(conn, COORDAPI_MESH_SERVICE, "NewMeshCert", &req.base,
				  &coordinator__new_mesh_cert_response__descriptor,
				  30 * NSEC_PER_SEC, &out, &err);
		int64_t t2 = now_ns();
		if (r != 0) {
			mesh_fail(w, "NewMeshCert", r, err);
			continue;
		}
		Coordinator__NewMeshCertResponse *resp = (Coordinator__NewMeshCertResponse *)out;
		bool good = !str_empty(resp->certchainpem);
		if (resp->workloadsecret.data)
			OPENSSL_cleanse(resp->workloadsecret.data, resp->workloadsecret.len);
		protobuf_c_message_free_unpacked(out, NULL);
		if (!good)
			mesh_fail(w, "NewMeshCert", EBADMSG, "no certificate chain");
		else if (lat_push(w, t1 - t0, t2 - t0) < 0)
			break;
	}
	return NULL;
}

static double pct_ms(int64_t *v, size_t n, unsigned pct)
{
	return n ? v[n * pct / 100 < n ? n * pct / 100 : n - 1] / 1e6 : 0;
}

static int run_mesh(const char *address, const char *pki_dir, const char *measurement,
		    const char *host_data, long clients, long seconds)
{
	if (clients <= 0 || clients > 1024 || seconds <= 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	struct sim_source src;
	if (sim_source_load(pki_dir, measurement, host_data, &src) < 0)
		return 1;
	struct mesh_worker *w = calloc((size_t)clients, sizeof(*w));
	if (!w)
		return 1;
	int64_t start = now_ns(), deadline = start + seconds * NSEC_PER_SEC;
	long started = 0;
	for (long i = 0; i < clients; i++) {
		w[i] =
		    (struct mesh_worker){.address = address, .src = &src, .deadline_ns = deadline};
		if (pthread_create(&w[i].thread, NULL, mesh_worker_run, &w[i]) != 0)
			break;
		started++;
	}
	size_t n = 0;
	long failed = 0;
	const char *first_error = NULL;
	for (long i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		n += w[i].n;
		failed += w[i].failed;
		if (!first_error)
			first_error = w[i].first_error;
	}
	double elapsed_s = (now_ns() - start) / 1e9;
	int64_t *hs = calloc(n ? n : 1, sizeof(int64_t)), *tot = calloc(n ? n : 1, sizeof(int64_t));
	if (!hs || !tot)
		return 1;
	for (long i = 0, k = 0; i < started; i++)
		for (size_t j = 0; j < w[i].n; j++, k++) {
			hs[k] = w[i].handshake_ns[j];
			tot[k] = w[i].total_ns[j];
		}
	qsort(hs, n, sizeof(int64_t), cmp_i64);
	qsort(tot, n, sizeof(int64_t), cmp_i64);
	_cleanup_(json_decrefp) json_t *o = json_pack(
	    "{s:s, s:I, s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:s?}", "mode", "mesh", "clients",
	    (json_int_t)started, "seconds", elapsed_s, "issued", (json_int_t)n, "failed",
	    (json_int_t)failed, "issued_per_s", n / elapsed_s, "handshake_p50_ms",
	    pct_ms(hs, n, 50), "handshake_p99_ms", pct_ms(hs, n, 99), "total_p50_ms",
	    pct_ms(tot, n, 50), "total_p99_ms", pct_ms(tot, n, 99), "first_error", first_error);
	_cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text)
		printf("%s\n", text);
	for (long i = 0; i < clients; i++) {
		free(w[i].handshake_ns);
		free(w[i].total_ns);
		free(w[i].first_error);
	}
	free(w);
	free(hs);
	free(tot);
	atls_test_pki_free(src.pki);
	return text && n > 0 ? 0 : 1;
}

/* The evidence a workload presents (simulated SNP, bound to a fresh key and nonce): how fast the
 * issuer makes it and lib/atls verifies it, with and without the chain cache (the mesh listener
 * verifies without). */
static int run_evidence(const char *pki_dir, const char *measurement, const char *host_data,
			long seconds)
{
	if (seconds <= 0)
		return 2;
	struct sim_source src;
	if (sim_source_load(pki_dir, measurement, host_data, &src) < 0)
		return 1;
	_cleanup_(atls_issuer_freep) struct atls_issuer *issuer = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
	uint8_t nonce[ATLS_NONCE_SIZE], rd[ATLS_REPORT_DATA_SIZE];
	_cleanup_free_ uint8_t *ev = NULL;
	size_t ev_len = 0;
	_cleanup_free_ char *msg = NULL;
	if (!key || atls_issuer_new_sim(src.pki, &src.params, &issuer) < 0 ||
	    atls_nonce_generate(nonce) < 0 || atls_report_data(key, nonce, rd) < 0 ||
	    issuer->get_evidence(issuer, rd, &ev, &ev_len, &msg) < 0) {
		fprintf(stderr, "evidence: %s\n", msg ? msg : "cannot issue");
		return 1;
	}
	int64_t budget = seconds * NSEC_PER_SEC, t0 = now_ns();
	long issued = 0;
	while (now_ns() - t0 < budget / 3) {
		uint8_t *e = NULL;
		size_t l;
		char *m = NULL;
		if (issuer->get_evidence(issuer, rd, &e, &l, &m) < 0) {
			free(m);
			return 1;
		}
		free(e);
		issued++;
	}
	double issue_s = (now_ns() - t0) / 1e9;
	double rate[2];
	for (int cached = 0; cached < 2; cached++) {
		struct attest_snp_cache *cache = cached ? attest_snp_cache_new() : NULL;
		struct atls_verifier v = {.test_anchor_pem = src.pki->ark_pem, .snp_cache = cache};
		long n = 0;
		t0 = now_ns();
		while (now_ns() - t0 < budget / 3) {
			struct atls_verified out = {0};
			enum attest_error code = ATTEST_OK;
			char *m = NULL;
			int r = atls_evidence_verify(ATLS_EVIDENCE_SNP_SIM, ev, ev_len, rd, &v,
						     &out, &code, &m);
			atls_verified_done(&out);
			if (r < 0) {
				fprintf(stderr, "verify: %s: %s\n", attest_error_name(code),
					m ? m : strerror(-r));
				free(m);
				attest_snp_cache_free(cache);
				return 1;
			}
			n++;
		}
		rate[cached] = n / ((now_ns() - t0) / 1e9);
		attest_snp_cache_free(cache);
	}
	printf("{\"mode\":\"evidence\",\"evidence_bytes\":%zu,\"issued_per_s\":%.1f,"
	       "\"verified_per_s\":%.1f,\"verified_cached_per_s\":%.1f}\n",
	       ev_len, issued / issue_s, rate[0], rate[1]);
	atls_test_pki_free(src.pki);
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
	if (argc == 8 && str_eq(argv[1], "mesh"))
		return run_mesh(argv[2], argv[3], argv[4], argv[5], strtol(argv[6], NULL, 10),
				strtol(argv[7], NULL, 10));
	if (argc == 6 && str_eq(argv[1], "evidence"))
		return run_evidence(argv[2], argv[3], argv[4], strtol(argv[5], NULL, 10));
	fprintf(stderr, "usage: pp-bench rtt ADDR SERVICE METHOD HEX|@SIZE N | copy ADDR CHUNK "
			"TOTAL | pods HV N | sigv4 N | mesh HOST:PORT PKI MEASUREMENT HOST_DATA "
			"CLIENTS SECONDS | evidence PKI MEASUREMENT HOST_DATA SECONDS\n");
	return 2;
}
