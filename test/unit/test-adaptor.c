/* Unit tests of the adaptor's pure parts: instance naming, sandbox ids, state.json, apf.json and
 * the cloud-config user-data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>

#include "adaptor/adaptor.h"
#include "userdata/userdata.h"

static void test_instance_name(void **state)
{
	struct {
		const char *pod, *sid, *want;
	} cases[] = {
	    /* WIRE.md 4.4's example */
	    {"My_Pod.1", "88A70031aaaabbbbccccddddeeeeffff00001111222233334444555566667777",
	     "podvm-my-pod-1-88a70031"},
	    {"nginx", "abc", "podvm-nginx-abc"},
	    /* one code point, one '-' */
	    {"caf\xc3\xa9", "0123456789", "podvm-caf--01234567"},
	    /* the pod part is cut to 48 characters */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "deadbeef00",
	     "podvm-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-deadbeef"},
	    /* sid is sanitised before taking 8 characters */
	    {"p", "AB_CD.EF99", "podvm-p-ab-cd-ef"},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *n = naming_instance_name(cases[i].pod, cases[i].sid);
		assert_non_null(n);
		assert_string_equal(n, cases[i].want);
		assert_true(strlen(n) <= 63);
	}
}

static void test_pod_name(void **state)
{
	_cleanup_free_ char *a = naming_pod_name("nginx");
	_cleanup_free_ char *b = naming_pod_name("k8s_nginx_default_1234-5678_0");
	_cleanup_free_ char *c = naming_pod_name("k8s");
	assert_string_equal(a, "nginx");
	assert_string_equal(b, "nginx");
	assert_string_equal(c, "k8s");
}

static void test_sandbox_id(void **state)
{
	assert_true(naming_sandbox_id_valid(
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	assert_true(naming_sandbox_id_valid("a-b_c.d"));
	assert_false(naming_sandbox_id_valid(""));
	assert_false(naming_sandbox_id_valid(NULL));
	assert_false(naming_sandbox_id_valid("."));
	assert_false(naming_sandbox_id_valid(".."));
	assert_false(naming_sandbox_id_valid("../etc"));
	assert_false(naming_sandbox_id_valid("a/b"));
	assert_false(naming_sandbox_id_valid("a b"));
	char long_id[130];
	memset(long_id, 'a', 129);
	long_id[129] = 0;
	assert_false(naming_sandbox_id_valid(long_id));
	assert_int_equal(naming_annotation_uint("2"), 2);
	assert_int_equal(naming_annotation_uint("1.5"), 0);
	assert_int_equal(naming_annotation_uint(""), 0);
	assert_int_equal(naming_annotation_uint("-1"), 0);
	assert_int_equal(naming_annotation_uint(NULL), 0);
}

static void test_state_json_roundtrip(void **state)
{
	struct sandbox sb = {
	    .id = (char *)"abc",
	    .pod_name = (char *)"nginx",
	    .pod_namespace = (char *)"default",
	    .netns = (char *)"/var/run/netns/x",
	    .instance_name = (char *)"podvm-nginx-abc",
	    .instance_id = (char *)"local-podvm-nginx-abc",
	    .ips = {(char *)"127.1.0.1"},
	    .n_ips = 1,
	    .vcpus = 2,
	    .memory_mib = 4096,
	    .index = 7,
	    .state = SANDBOX_RUNNING,
	};
	_cleanup_free_ char *json = NULL;
	assert_int_equal(sandbox_to_json(&sb, &json), 0);
	struct sandbox *back = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(sandbox_from_json(json, strlen(json), &back, &msg), 0);
	assert_string_equal(back->id, "abc");
	assert_string_equal(back->pod_name, "nginx");
	assert_string_equal(back->pod_namespace, "default");
	assert_string_equal(back->netns, "/var/run/netns/x");
	assert_string_equal(back->instance_name, "podvm-nginx-abc");
	assert_string_equal(back->instance_id, "local-podvm-nginx-abc");
	assert_int_equal(back->n_ips, 1);
	assert_string_equal(back->ips[0], "127.1.0.1");
	assert_int_equal(back->vcpus, 2);
	assert_int_equal(back->memory_mib, 4096);
	assert_int_equal(back->index, 7);
	assert_int_equal(back->state, SANDBOX_RUNNING);
	sandbox_free(back);
}

static void expect_state_error(const char *json, const char *needle)
{
	struct sandbox *sb = NULL;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(sandbox_from_json(json, strlen(json), &sb, &msg), -EINVAL);
	assert_null(sb);
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

static void test_state_json_invalid(void **state)
{
	expect_state_error("[]", "not a JSON object");
	expect_state_error("{", "line");
	expect_state_error("{\"id\":\"a\"}", "pod-name");
	expect_state_error("{\"id\":\"../x\",\"pod-name\":\"p\",\"pod-namespace\":\"n\","
			   "\"instance-name\":\"i\",\"state\":\"created\"}",
			   "id");
	expect_state_error("{\"id\":\"a\",\"pod-name\":\"p\",\"pod-namespace\":\"n\","
			   "\"instance-name\":\"i\",\"state\":\"flying\"}",
			   "flying");
	expect_state_error("{\"id\":\"a\",\"pod-name\":\"p\",\"pod-namespace\":\"n\","
			   "\"instance-name\":\"i\",\"state\":\"created\",\"ips\":[1]}",
			   "ips");
	expect_state_error("{\"id\":\"a\",\"pod-name\":\"p\",\"pod-namespace\":\"n\","
			   "\"instance-name\":\"i\",\"state\":\"created\",\"vcpus\":-1}",
			   "vcpus");
	expect_state_error("{\"id\":\"a\",\"id\":\"b\"}", "line");
}

static void test_apf_json(void **state)
{
	char *suites[] = {(char *)"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", NULL};
	struct adaptor_settings s = {
	    .tunnel_type = (char *)"vxlan",
	    .vxlan_port = 4789,
	    .vxlan_min_id = 555000,
	    .tls_min_version = (char *)"VersionTLS13",
	    .tls_cipher_suites = suites,
	};
	struct adaptor a = {.settings = &s};
	struct sandbox sb = {
	    .pod_name = (char *)"nginx", .pod_namespace = (char *)"default", .index = 3};
	_cleanup_free_ char *text = NULL;
	assert_int_equal(adaptor_build_apf_json(&a, &sb, "KEY", "CERT", &text), 0);
	/* 4-space indentation, like the Go adaptor */
	assert_non_null(strstr(text, "\n    \"pod-network\": {\n        \""));
	json_error_t err;
	json_t *o = json_loads(text, 0, &err);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "pod-name")), "nginx");
	assert_string_equal(json_string_value(json_object_get(o, "pod-namespace")), "default");
	assert_string_equal(json_string_value(json_object_get(o, "tls-server-key")), "KEY");
	assert_string_equal(json_string_value(json_object_get(o, "tls-server-cert")), "CERT");
	/* no certs object: no client CA to send */
	assert_null(json_object_get(o, "tls-client-ca"));
	assert_string_equal(json_string_value(json_object_get(o, "tls-min-version")),
			    "VersionTLS13");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(o, "tls-cipher-suites"), 0)),
	    suites[0]);
	json_t *net = json_object_get(o, "pod-network");
	assert_string_equal(json_string_value(json_object_get(net, "tunnel-type")), "vxlan");
	assert_int_equal(json_integer_value(json_object_get(net, "index")), 3);
	assert_int_equal(json_integer_value(json_object_get(net, "vxlan-id")), 555003);
	assert_int_equal(json_integer_value(json_object_get(net, "vxlan-port")), 4789);
	json_decref(o);

	/* without TLS material the optional keys are omitted */
	_cleanup_free_ char *plain = NULL;
	s.tls_min_version = NULL;
	s.tls_cipher_suites = NULL;
	assert_int_equal(adaptor_build_apf_json(&a, &sb, NULL, NULL, &plain), 0);
	assert_null(strstr(plain, "tls-"));
}

static void test_user_data(void **state)
{
	struct adaptor_settings s = {.enable_scratch_space = true};
	struct adaptor a = {.settings = &s};
	_cleanup_free_ char *ud = NULL;
	assert_int_equal(adaptor_build_user_data(&a, "{\n    \"a\": 1\n}", "H4sIAAAA", &ud), 0);
	assert_string_equal(ud, "#cloud-config\n"
				"\n"
				"write_files:\n"
				"  - path: /run/peerpod/apf.json\n"
				"    content: |\n"
				"      {\n"
				"          \"a\": 1\n"
				"      }\n"
				"  - path: /run/peerpod/initdata\n"
				"    content: |\n"
				"      H4sIAAAA\n"
				"  - path: /run/peerpod/scratch-space.marker\n");

	/* control characters cannot be carried in a literal block */
	struct userdata_file bad = {"/run/peerpod/apf.json", "a\x01b"};
	_cleanup_free_ char *out = NULL;
	assert_int_equal(userdata_render_cloud_config(&bad, 1, &out), -EINVAL);
	struct userdata_file badpath = {"relative", "x"};
	assert_int_equal(userdata_render_cloud_config(&badpath, 1, &out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_instance_name),      cmocka_unit_test(test_pod_name),
	    cmocka_unit_test(test_sandbox_id),         cmocka_unit_test(test_state_json_roundtrip),
	    cmocka_unit_test(test_state_json_invalid), cmocka_unit_test(test_apf_json),
	    cmocka_unit_test(test_user_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
