/* Unit tests of lib/k8s: kubeconfig variants, in-cluster configuration with token rotation,
 * request and patch encoding, Status errors, retries; and the adaptor's pull-secret merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "adaptor/adaptor.h"
#include "http-test-server.h"
#include "k8s/k8s.h"
#include "userdata/userdata.h"

static const char kubeconfig[] = "apiVersion: v1\n"
				 "kind: Config\n"
				 "current-context: dev\n"
				 "contexts:\n"
				 "- name: dev\n"
				 "  context: {cluster: c1, user: u1, namespace: team}\n"
				 "- name: other\n"
				 "  context: {cluster: c2, user: u2}\n"
				 "clusters:\n"
				 "- name: c1\n"
				 "  cluster:\n"
				 "    server: https://10.0.0.1:6443/\n"
				 "    certificate-authority: ca.pem\n"
				 "- name: c2\n"
				 "  cluster:\n"
				 "    server: https://kube.example\n"
				 "    insecure-skip-tls-verify: true\n"
				 "    certificate-authority-data: LS0tLS1CRUdJTg==\n"
				 "users:\n"
				 "- name: u1\n"
				 "  user: {token: abc}\n"
				 "- name: u2\n"
				 "  user:\n"
				 "    client-certificate-data: Y2VydA==\n"
				 "    client-key-data: a2V5\n";

static void test_kubeconfig_current_context(void **state)
{
	struct k8s_config *c = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(k8s_config_parse_kubeconfig(kubeconfig, strlen(kubeconfig), "/etc/kube",
						     NULL, &c, &msg),
			 0);
	assert_string_equal(c->server, "https://10.0.0.1:6443");
	assert_string_equal(c->ca_file, "/etc/kube/ca.pem");
	assert_string_equal(c->token, "abc");
	assert_string_equal(c->namespace, "team");
	assert_false(c->insecure_skip_tls_verify);
	assert_null(c->client_cert_data);
	k8s_config_free(c);
}

static void test_kubeconfig_named_context(void **state)
{
	struct k8s_config *c = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(
	    k8s_config_parse_kubeconfig(kubeconfig, strlen(kubeconfig), "/x", "other", &c, &msg),
	    0);
	assert_string_equal(c->server, "https://kube.example");
	assert_true(c->insecure_skip_tls_verify);
	assert_string_equal(c->ca_data, "-----BEGIN");
	assert_string_equal(c->client_cert_data, "cert");
	assert_string_equal(c->client_key_data, "key");
	assert_null(c->token);
	assert_string_equal(c->namespace, "default");
	k8s_config_free(c);
}

static void test_kubeconfig_errors(void **state)
{
	static const struct {
		const char *doc, *context, *want;
	} cases[] = {
	    {"kind: Config\n", NULL, "no current-context"},
	    {kubeconfig, "missing", "context \"missing\" not found"},
	    {"current-context: a\ncontexts: [{name: a, context: {cluster: x}}]\n", NULL,
	     "cluster \"x\""},
	    {"current-context: a\ncontexts: [{name: a, context: {cluster: x}}]\n"
	     "clusters: [{name: x, cluster: {server: 'ftp://h'}}]\n",
	     NULL, "no http(s) server"},
	    {"current-context: a\ncontexts: [{name: a, context: {cluster: x, user: u}}]\n"
	     "clusters: [{name: x, cluster: {server: 'https://h'}}]\n"
	     "users: [{name: u, user: {client-certificate-data: Y2VydA==}}]\n",
	     NULL, "without a key"},
	    {"current-context: a\ncontexts: [{name: a, context: {cluster: x}}]\n"
	     "clusters: [{name: x, cluster: {server: 'https://h', certificate-authority-data: "
	     "'!!'}}]\n",
	     NULL, "not valid base64"},
	    {"a: [b\n", NULL, "YAML error"},
	    {"- just\n- a list\n", NULL, "not a mapping"},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct k8s_config *c = NULL;
		_cleanup_free_ char *msg = NULL;
		int r = k8s_config_parse_kubeconfig(cases[i].doc, strlen(cases[i].doc), "/",
						    cases[i].context, &c, &msg);
		assert_int_equal(r, -EINVAL);
		assert_null(c);
		assert_non_null(msg);
		if (!strstr(msg, cases[i].want))
			fail_msg("case %zu: %s", i, msg);
	}
}

static void test_kubeconfig_alias_bomb(void **state)
{
	/* every level doubles: 2^30 nodes if expanded naively */
	struct buf b = {0};
	assert_int_equal(buf_printf(&b, "a0: &a0 [x, x]\n"), 0);
	for (int i = 1; i < 30; i++)
		assert_int_equal(buf_printf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1), 0);
	struct k8s_config *c = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(k8s_config_parse_kubeconfig((char *)b.data, b.len, "/", NULL, &c, &msg),
			 -EINVAL);
	buf_done(&b);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	_cleanup_free_ char *p = str_printf("%s/%s", dir, name);
	assert_int_equal(write_file_atomic(p, text, strlen(text), 0600), 0);
}

static void test_in_cluster_and_token_rotation(void **state)
{
	char dir[] = "/tmp/test-k8s.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct k8s_config *c = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(k8s_config_in_cluster(dir, "10.96.0.1", "443", NULL, &c, &msg), -ENOENT);
	msg = mfree(msg);
	write_text(dir, "token", "first\n");
	write_text(dir, "namespace", "kube-system\n");
	assert_int_equal(k8s_config_in_cluster(dir, NULL, NULL, NULL, &c, &msg), -ENOENT);
	msg = mfree(msg);
	assert_int_equal(k8s_config_in_cluster(dir, "fd00::1", "6443", NULL, &c, &msg), 0);
	assert_string_equal(c->server, "https://[fd00::1]:6443");
	assert_string_equal(c->namespace, "kube-system");
	assert_null(c->ca_file);
	k8s_config_free(c);

	struct test_server s;
	const struct ts_response resp[] = {{200, NULL, "{}"}};
	assert_int_equal(ts_start(&s, resp, 1), 0);
	_cleanup_free_ char *url = ts_url(&s, "");
	assert_int_equal(k8s_config_in_cluster(dir, "ignored", "1", url, &c, &msg), 0);
	struct k8s_client *k = NULL;
	assert_int_equal(k8s_client_new(c, NULL, &k), 0);
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(k8s_get(k, "/api/v1/nodes/n", NULL, &err), 0);
	write_text(dir, "token", "second"); /* a new file, as the kubelet swaps it */
	assert_int_equal(k8s_get(k, "/api/v1/nodes/n", NULL, &err), 0);
	assert_int_equal(ts_n_requests(&s), 2);
	char v[128];
	assert_true(ts_request_header(&s.requests[0], "Authorization", v, sizeof(v)));
	assert_string_equal(v, "Bearer first");
	assert_true(ts_request_header(&s.requests[1], "Authorization", v, sizeof(v)));
	assert_string_equal(v, "Bearer second");
	k8s_client_free(k);
	ts_stop(&s);
	assert_int_equal(rm_rf(dir), 0);
}

static struct k8s_client *client_for(struct test_server *s, unsigned retries)
{
	struct k8s_config *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->server = ts_url(s, "");
	c->token = strdup("tkn");
	struct k8s_client_options o = {
	    .max_retries = retries, .backoff_initial_ns = 1000000, .backoff_max_ns = 2000000};
	struct k8s_client *k = NULL;
	assert_int_equal(k8s_client_new(c, &o, &k), 0);
	return k;
}

static void test_patch_encoding(void **state)
{
	struct test_server s;
	const struct ts_response resp[] = {{200, NULL, "{\"kind\":\"Node\"}"}};
	assert_int_equal(ts_start(&s, resp, 1), 0);
	struct k8s_client *k = client_for(&s, 0);
	_cleanup_free_ char *tok = k8s_pointer_escape("kata.peerpods.io/vm~x");
	assert_string_equal(tok, "kata.peerpods.io~1vm~0x");
	_cleanup_free_ char *q = k8s_url_escape("kata.peerpods.io/node=w 1");
	assert_string_equal(q, "kata.peerpods.io%2Fnode%3Dw%201");
	json_t *ops = json_array();
	json_array_append_new(ops, k8s_patch_op("add", "/status/capacity/x", json_string("10")));
	json_array_append_new(ops, k8s_patch_op("remove", "/metadata/finalizers", NULL));
	json_t *merge = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", "a", "b");
	json_t *out = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(k8s_json_patch(k, "/api/v1/nodes/n/status", ops, &out, &err), 0);
	assert_string_equal(k8s_json_str(out, "kind", NULL), "Node");
	json_decref(out);
	assert_int_equal(k8s_merge_patch(k, "/api/v1/nodes/n", merge, NULL, &err), 0);
	assert_int_equal(k8s_delete(k, "/x", NULL, &err), 0);
	assert_int_equal(ts_n_requests(&s), 3);
	char v[256];
	assert_string_equal(s.requests[0].method, "PATCH");
	assert_string_equal(s.requests[0].target, "/api/v1/nodes/n/status");
	assert_true(ts_request_header(&s.requests[0], "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json-patch+json");
	assert_memory_equal(s.requests[0].body,
			    "[{\"op\":\"add\",\"path\":\"/status/capacity/x\",\"value\":\"10\"},"
			    "{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]",
			    s.requests[0].body_len);
	assert_true(ts_request_header(&s.requests[1], "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/merge-patch+json");
	assert_memory_equal(s.requests[1].body, "{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}",
			    s.requests[1].body_len);
	assert_string_equal(s.requests[2].method, "DELETE");
	assert_true(ts_request_header(&s.requests[2], "Authorization", v, sizeof(v)));
	assert_string_equal(v, "Bearer tkn");
	json_decref(ops);
	json_decref(merge);
	k8s_client_free(k);
	ts_stop(&s);
}

static void test_status_errors(void **state)
{
	struct test_server s;
	static const char conflict[] =
	    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
	    "\"peerpods \\\"x\\\" already exists\",\"reason\":\"AlreadyExists\",\"code\":409}";
	const struct ts_response resp[] = {{409, NULL, conflict}};
	assert_int_equal(ts_start(&s, resp, 1), 0);
	struct k8s_client *k = client_for(&s, 3);
	struct pp_error *err = NULL;
	json_t *body = json_object();
	assert_int_equal(k8s_post(k, "/apis/g/v1/namespaces/d/peerpods", body, NULL, &err),
			 -EEXIST);
	assert_int_equal(err->status, 409);
	assert_string_equal(err->code, "AlreadyExists");
	assert_non_null(strstr(err->message, "peerpods \"x\" already exists"));
	assert_int_equal(ts_n_requests(&s), 1); /* not retried */
	pp_error_free(err);
	err = NULL;
	/* not a Status: HTTP status and an excerpt */
	assert_int_equal(k8s_status_error(404, "<html>", 6, "GET /x", &err), -ENOENT);
	assert_int_equal(err->status, 404);
	assert_non_null(strstr(err->message, "HTTP 404: <html>"));
	pp_error_free(err);
	err = NULL;
	assert_int_equal(
	    k8s_status_error(422, "{\"kind\":\"Status\",\"reason\":\"Invalid\"}", 36, NULL, &err),
	    -EINVAL);
	assert_string_equal(err->code, "Invalid");
	pp_error_free(err);
	json_decref(body);
	k8s_client_free(k);
	ts_stop(&s);
}

static void test_retries(void **state)
{
	struct test_server s;
	const struct ts_response resp[] = {
	    {503, NULL, "{\"kind\":\"Status\",\"code\":503,\"reason\":\"ServiceUnavailable\"}"},
	    {429, "Retry-After: 0\r\n", "{}"},
	    {200, NULL, "{\"ok\":true}"}};
	assert_int_equal(ts_start(&s, resp, 3), 0);
	struct k8s_client *k = client_for(&s, 2);
	json_t *out = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(k8s_get(k, "/x", &out, &err), 0);
	assert_true(json_is_true(json_object_get(out, "ok")));
	assert_int_equal(ts_n_requests(&s), 3);
	json_decref(out);
	k8s_client_free(k);
	ts_stop(&s);

	/* retries exhausted: the last Status */
	const struct ts_response fail503[] = {
	    {503, NULL, "{\"kind\":\"Status\",\"code\":503,\"message\":\"etcd down\"}"}};
	assert_int_equal(ts_start(&s, fail503, 1), 0);
	k = client_for(&s, 1);
	struct pp_error *e2 = NULL;
	assert_int_equal(k8s_get(k, "/x", NULL, &e2), -EIO);
	assert_int_equal(ts_n_requests(&s), 2);
	assert_non_null(strstr(e2->message, "etcd down"));
	pp_error_free(e2);
	k8s_client_free(k);
	ts_stop(&s);
}

static void test_parse_time(void **state)
{
	int64_t t;
	assert_int_equal(k8s_parse_time("1970-01-01T00:01:00Z", &t), 0);
	assert_int_equal(t, 60);
	assert_int_equal(k8s_parse_time("2024-01-02T03:04:05.123+01:00", &t), 0);
	assert_int_equal(t, 1704164645 - 3600);
	assert_int_equal(k8s_parse_time("2024-01-02", &t), -EINVAL);
	assert_int_equal(k8s_parse_time("2024-13-02T03:04:05Z", &t), -EINVAL);
	assert_int_equal(k8s_parse_time("2024-01-02T03:04:05Zjunk", &t), -EINVAL);
}

static json_t *secret(const char *type, const char *key, const char *json_text)
{
	_cleanup_free_ char *b64 = NULL;
	assert_int_equal(userdata_base64_encode(json_text, strlen(json_text), &b64), 0);
	return json_pack("{s:s, s:{s:s}}", "type", type, "data", key, b64);
}

static void test_merge_pull_secrets(void **state)
{
	json_t *auths = json_object();
	json_t *a = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson",
			   "{\"auths\":{\"r1\":{\"auth\":\"AAA\"}}}");
	json_t *b = secret("kubernetes.io/dockercfg", ".dockercfg",
			   "{\"r2\":{\"auth\":\"BBB\"},\"r1\":{\"auth\":\"lost\"}}");
	json_t *c = secret("Opaque", "x", "{}");
	json_t *bad = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", "[1]");
	assert_int_equal(adaptor_k8s_merge_secret(a, auths), 0);
	assert_int_equal(adaptor_k8s_merge_secret(b, auths), 0);
	assert_int_equal(adaptor_k8s_merge_secret(c, auths), 0);
	assert_int_equal(adaptor_k8s_merge_secret(bad, auths), -EINVAL);
	_cleanup_free_ char *text = json_dumps(auths, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(text, "{\"r1\":{\"auth\":\"AAA\"},\"r2\":{\"auth\":\"BBB\"}}");
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(bad);
	json_decref(auths);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kubeconfig_current_context),
	    cmocka_unit_test(test_kubeconfig_named_context),
	    cmocka_unit_test(test_kubeconfig_errors),
	    cmocka_unit_test(test_kubeconfig_alias_bomb),
	    cmocka_unit_test(test_in_cluster_and_token_rotation),
	    cmocka_unit_test(test_patch_encoding),
	    cmocka_unit_test(test_status_errors),
	    cmocka_unit_test(test_retries),
	    cmocka_unit_test(test_parse_time),
	    cmocka_unit_test(test_merge_pull_secrets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
