/* Unit tests of the agent-protocol-forwarder: apf.json, option and TLS precedence, the two
 * rewrites, the listen address, sd_notify, and the relay end to end over loopback. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmocka.h>

#include "agent.pb-c.h"
#include "podvm/forwarder/forwarder.h"

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
	const char *base = config_getenv("TMPDIR");
	char *t = str_printf("%s/test-forwarder-XXXXXX", str_empty(base) ? "/tmp" : base);
	assert_non_null(t);
	assert_non_null(mkdtemp(t));
	return t;
}

static uint8_t *pack_message(const ProtobufCMessage *m, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	assert_int_equal(protobuf_c_message_pack(m, p), n);
	*ret_len = n;
	return p;
}

static void assert_bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
}

static int rewrite(const char *service, const char *method, const uint8_t *payload, size_t len,
		   const char *netns, struct buf *out, char **msg)
{
	return forwarder_rewrite(service, strlen(service), method, strlen(method), payload, len,
				 netns, out, msg);
}

/* ---- apf.json ---- */

/* What the Go adaptor writes (json.MarshalIndent with four spaces), plus a key from the future. */
static const char full_apf_json[] =
    "{\n"
    "    \"pod-network\": {\n"
    "        \"podip\": \"10.244.1.7/24\",\n"
    "        \"pod-hw-addr\": \"0a:58:0a:f4:01:07\",\n"
    "        \"interface\": \"eth0\",\n"
    "        \"worker-node-ip\": \"192.168.122.63/24\",\n"
    "        \"tunnel-type\": \"vxlan\",\n"
    "        \"routes\": [\n"
    "            {\n"
    "                \"dst\": \"0.0.0.0/0\",\n"
    "                \"gw\": \"10.244.1.1\",\n"
    "                \"dev\": \"eth0\"\n"
    "            },\n"
    "            {\n"
    "                \"dst\": \"10.96.0.0/12\",\n"
    "                \"gw\": \"10.244.1.1\",\n"
    "                \"dev\": \"eth0\",\n"
    "                \"protocol\": \"static\"\n"
    "            },\n"
    "            {\n"
    "                \"dst\": \"10.244.1.0/24\",\n"
    "                \"gw\": \"\",\n"
    "                \"dev\": \"eth0\",\n"
    "                \"protocol\": \"kernel\",\n"
    "                \"scope\": \"link\"\n"
    "            }\n"
    "        ],\n"
    "        \"neighbors\": [\n"
    "            {\n"
    "                \"ip\": \"10.244.1.1\",\n"
    "                \"hw-addr\": \"0a:58:0a:f4:01:01\",\n"
    "                \"dev\": \"eth0\",\n"
    "                \"state\": \"permanent\"\n"
    "            }\n"
    "        ],\n"
    "        \"mtu\": 1450,\n"
    "        \"index\": 3,\n"
    "        \"vxlan-port\": 4789,\n"
    "        \"vxlan-id\": 555003,\n"
    "        \"dedicated\": true,\n"
    "        \"external-net-via-pod-vm\": false\n"
    "    },\n"
    "    \"pod-namespace\": \"default\",\n"
    "    \"pod-name\": \"nginx-7c5ddbdf54-x2kq9\",\n"
    "    \"tls-server-key\": \"-----BEGIN PRIVATE KEY-----\\nS0VZ\\n-----END PRIVATE "
    "KEY-----\\n\",\n"
    "    \"tls-server-cert\": \"-----BEGIN CERTIFICATE-----\\nQ0VSVA==\\n-----END "
    "CERTIFICATE-----\\n\",\n"
    "    \"tls-client-ca\": \"-----BEGIN CERTIFICATE-----\\nQ0E=\\n-----END "
    "CERTIFICATE-----\\n\",\n"
    "    \"tls-min-version\": \"VersionTLS13\",\n"
    "    \"tls-cipher-suites\": [\n"
    "        \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\",\n"
    "        \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"\n"
    "    ],\n"
    "    \"sc-pp-prv\": \"legacy\",\n"
    "    \"future-key\": {\"nested\": [1, 2.5, null]}\n"
    "}\n";

static void test_apf_full(void **state)
{
	struct apf_config c;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(apf_config_parse(full_apf_json, strlen(full_apf_json), &c, &msg), 0);
	assert_null(msg);

	const struct apf_pod_network *n = &c.pod_network;
	assert_string_equal(n->podip, "10.244.1.7/24");
	assert_string_equal(n->pod_hw_addr, "0a:58:0a:f4:01:07");
	assert_string_equal(n->interface, "eth0");
	assert_string_equal(n->worker_node_ip, "192.168.122.63/24");
	assert_string_equal(n->tunnel_type, "vxlan");
	assert_int_equal(n->mtu, 1450);
	assert_int_equal(n->index, 3);
	assert_int_equal(n->vxlan_port, 4789);
	assert_int_equal(n->vxlan_id, 555003);
	assert_true(n->dedicated);
	assert_false(n->external_net_via_pod_vm);

	assert_int_equal(n->n_routes, 3);
	assert_string_equal(n->routes[0].dst, "0.0.0.0/0");
	assert_string_equal(n->routes[0].gw, "10.244.1.1");
	assert_string_equal(n->routes[0].dev, "eth0");
	assert_int_equal(n->routes[0].protocol, APF_ROUTE_PROTOCOL_UNSPEC);
	assert_int_equal(n->routes[0].scope, APF_ROUTE_SCOPE_UNIVERSE);
	assert_string_equal(n->routes[1].dst, "10.96.0.0/12");
	assert_int_equal(n->routes[1].protocol, APF_ROUTE_PROTOCOL_STATIC);
	assert_string_equal(n->routes[2].gw, "");
	assert_int_equal(n->routes[2].protocol, APF_ROUTE_PROTOCOL_KERNEL);
	assert_int_equal(n->routes[2].scope, APF_ROUTE_SCOPE_LINK);

	assert_int_equal(n->n_neighbors, 1);
	assert_string_equal(n->neighbors[0].ip, "10.244.1.1");
	assert_string_equal(n->neighbors[0].hw_addr, "0a:58:0a:f4:01:01");
	assert_string_equal(n->neighbors[0].dev, "eth0");
	assert_int_equal(n->neighbors[0].state, APF_NEIGHBOR_PERMANENT);

	assert_string_equal(c.pod_namespace, "default");
	assert_string_equal(c.pod_name, "nginx-7c5ddbdf54-x2kq9");
	assert_string_equal(c.tls_server_key,
			    "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n");
	assert_true(str_startswith(c.tls_server_cert, "-----BEGIN CERTIFICATE-----\nQ0VSVA=="));
	assert_true(str_startswith(c.tls_client_ca, "-----BEGIN CERTIFICATE-----\nQ0E="));
	assert_string_equal(c.tls_min_version, "VersionTLS13");
	assert_int_equal(strv_length(c.tls_cipher_suites), 2);
	assert_string_equal(c.tls_cipher_suites[1], "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");

	apf_config_done(&c);
	assert_null(c.pod_name);
	apf_config_done(&c); /* twice is fine */
	apf_config_done(NULL);
}

static void assert_empty_config(const struct apf_config *c)
{
	const struct apf_pod_network *n = &c->pod_network;
	const char *strings[] = {n->podip,          n->pod_hw_addr,    n->interface,
				 n->worker_node_ip, n->tunnel_type,    c->pod_namespace,
				 c->pod_name,       c->tls_server_key, c->tls_server_cert,
				 c->tls_client_ca,  c->tls_min_version};
	for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
		assert_non_null(strings[i]);
		assert_string_equal(strings[i], "");
	}
	assert_int_equal(n->n_routes, 0);
	assert_int_equal(n->n_neighbors, 0);
	assert_int_equal(n->mtu, 0);
	assert_int_equal(n->vxlan_id, 0);
	assert_int_equal(n->vxlan_port, 0);
	assert_false(n->dedicated);
	assert_null(c->tls_cipher_suites);
}

static void test_apf_missing_members(void **state)
{
	const char *inputs[] = {
	    "{}",
	    "null",
	    "  {\"pod-network\": {}}\n",
	    "{\"pod-network\": null, \"pod-name\": null, \"tls-cipher-suites\": null}",
	    "{\"pod-network\": {\"routes\": [], \"neighbors\": null, \"mtu\": null}}",
	};
	for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
		struct apf_config c;
		_cleanup_free_ char *msg = NULL;
		assert_int_equal(apf_config_parse(inputs[i], strlen(inputs[i]), &c, &msg), 0);
		assert_empty_config(&c);
		apf_config_done(&c);
	}

	/* Partly filled: what is there is read, the rest is empty. */
	const char *partial = "{\"pod-name\": \"p\", \"pod-network\": {\"routes\": [null, "
			      "{\"dst\": \"10.0.0.0/8\"}], \"neighbors\": [{}]}}";
	struct apf_config c;
	assert_int_equal(apf_config_parse(partial, strlen(partial), &c, NULL), 0);
	assert_string_equal(c.pod_name, "p");
	assert_string_equal(c.pod_namespace, "");
	assert_int_equal(c.pod_network.n_routes, 2);
	assert_string_equal(c.pod_network.routes[0].dst, "");
	assert_string_equal(c.pod_network.routes[1].dst, "10.0.0.0/8");
	assert_string_equal(c.pod_network.routes[1].gw, "");
	assert_int_equal(c.pod_network.n_neighbors, 1);
	assert_string_equal(c.pod_network.neighbors[0].ip, "");
	assert_int_equal(c.pod_network.neighbors[0].state, APF_NEIGHBOR_NONE);
	apf_config_done(&c);
}

static void test_apf_go_key_matching(void **state)
{
	/* encoding/json falls back to a case-insensitive match; an exact one wins. */
	const char *json =
	    "{\"POD-NAME\": \"upper\", \"Pod-Network\": {\"PodIP\": \"10.0.0.2/32\"},"
	    " \"pod-namespace\": \"exact\", \"POD-NAMESPACE\": \"folded\"}";
	struct apf_config c;
	assert_int_equal(apf_config_parse(json, strlen(json), &c, NULL), 0);
	assert_string_equal(c.pod_name, "upper");
	assert_string_equal(c.pod_network.podip, "10.0.0.2/32");
	assert_string_equal(c.pod_namespace, "exact");
	apf_config_done(&c);
}

static void test_apf_errors(void **state)
{
	static const struct {
		const char *json;
		const char *key; /* must appear in the message */
	} cases[] = {
	    {"{\"pod-network\": {\"mtu\": \"1450\"}}", "pod-network.mtu"},
	    {"{\"pod-network\": {\"mtu\": 1450.5}}", "pod-network.mtu"},
	    {"{\"pod-network\": {\"mtu\": -1}}", "pod-network.mtu"},
	    {"{\"pod-network\": {\"vxlan-port\": 70000}}", "pod-network.vxlan-port"},
	    {"{\"pod-network\": {\"vxlan-id\": 16777216}}", "pod-network.vxlan-id"},
	    {"{\"pod-network\": {\"index\": true}}", "pod-network.index"},
	    {"{\"pod-network\": {\"dedicated\": \"true\"}}", "pod-network.dedicated"},
	    {"{\"pod-network\": {\"external-net-via-pod-vm\": 1}}",
	     "pod-network.external-net-via-pod-vm"},
	    {"{\"pod-network\": \"eth0\"}", "pod-network"},
	    {"{\"pod-network\": {\"podip\": 10}}", "pod-network.podip"},
	    {"{\"pod-network\": {\"podip\": \"10.244.1.300/24\"}}", "pod-network.podip"},
	    {"{\"pod-network\": {\"podip\": \"10.244.1.7\"}}", "pod-network.podip"},
	    {"{\"pod-network\": {\"worker-node-ip\": \"192.168.1.1/33\"}}",
	     "pod-network.worker-node-ip"},
	    {"{\"pod-network\": {\"interface\": [\"eth0\"]}}", "pod-network.interface"},
	    {"{\"pod-network\": {\"routes\": {}}}", "pod-network.routes"},
	    {"{\"pod-network\": {\"routes\": [\"0.0.0.0/0\"]}}", "pod-network.routes[0]"},
	    {"{\"pod-network\": {\"routes\": [{\"scope\": \"galaxy\"}]}}",
	     "pod-network.routes[0].scope"},
	    {"{\"pod-network\": {\"routes\": [{}, {\"protocol\": \"ospf\"}]}}",
	     "pod-network.routes[1].protocol"},
	    {"{\"pod-network\": {\"routes\": [{\"protocol\": 4}]}}",
	     "pod-network.routes[0].protocol"},
	    {"{\"pod-network\": {\"routes\": [{\"gw\": \"10.0.0.0/8\"}]}}",
	     "pod-network.routes[0].gw"},
	    {"{\"pod-network\": {\"routes\": [{\"dst\": \"default\"}]}}",
	     "pod-network.routes[0].dst"},
	    {"{\"pod-network\": {\"neighbors\": [{\"state\": \"bogus\"}]}}",
	     "pod-network.neighbors[0].state"},
	    {"{\"pod-network\": {\"neighbors\": [{\"ip\": \"not-an-ip\"}]}}",
	     "pod-network.neighbors[0].ip"},
	    {"{\"pod-network\": {\"neighbors\": [{}, {}, {\"dev\": 3}]}}",
	     "pod-network.neighbors[2].dev"},
	    {"{\"pod-name\": 5}", "pod-name"},
	    {"{\"pod-namespace\": {}}", "pod-namespace"},
	    {"{\"tls-server-key\": false}", "tls-server-key"},
	    {"{\"tls-min-version\": 13}", "tls-min-version"},
	    {"{\"tls-cipher-suites\": \"TLS_AES_128_GCM_SHA256\"}", "tls-cipher-suites"},
	    {"{\"tls-cipher-suites\": [\"A\", 1]}", "tls-cipher-suites[1]"},
	    {"{\"pod-name\": \"a\\u0000b\"}", "pod-name"},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct apf_config c;
		_cleanup_free_ char *msg = NULL;
		int r = apf_config_parse(cases[i].json, strlen(cases[i].json), &c, &msg);
		if (r != -EINVAL || !msg || !strstr(msg, cases[i].key))
			fail_msg("case %zu %s: r=%d msg=%s", i, cases[i].json, r,
				 msg ? msg : "(none)");
		/* The key is named as a whole, not as a prefix of a longer one. */
		const char *p = strstr(msg, cases[i].key) + strlen(cases[i].key);
		if (*p != ':')
			fail_msg("case %zu: key not followed by ':' in \"%s\"", i, msg);
		/* Nothing is left behind on failure. */
		assert_null(c.pod_name);
		assert_null(c.pod_network.podip);
		assert_null(c.pod_network.routes);
	}

	/* Not an object, not JSON. */
	const char *bad[] = {"[]", "\"x\"", "42", "{", "", "{\"a\": 1,}", "{} {}"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct apf_config c;
		_cleanup_free_ char *msg = NULL;
		assert_int_equal(apf_config_parse(bad[i], strlen(bad[i]), &c, &msg), -EINVAL);
		assert_non_null(msg);
	}
}

static void test_apf_enum_names(void **state)
{
	static const struct {
		const char *name;
		int value;
	} states[] = {
	    {"none", APF_NEIGHBOR_NONE},           {"incomplete", APF_NEIGHBOR_INCOMPLETE},
	    {"reachable", APF_NEIGHBOR_REACHABLE}, {"stale", APF_NEIGHBOR_STALE},
	    {"delay", APF_NEIGHBOR_DELAY},         {"probe", APF_NEIGHBOR_PROBE},
	    {"failed", APF_NEIGHBOR_FAILED},       {"noarp", APF_NEIGHBOR_NOARP},
	    {"permanent", APF_NEIGHBOR_PERMANENT}};
	for (size_t i = 0; i < ELEMENTSOF(states); i++) {
		_cleanup_free_ char *json = str_printf(
		    "{\"pod-network\": {\"neighbors\": [{\"state\": \"%s\"}]}}", states[i].name);
		struct apf_config c;
		assert_int_equal(apf_config_parse(json, strlen(json), &c, NULL), 0);
		assert_int_equal(c.pod_network.neighbors[0].state, states[i].value);
		assert_string_equal(apf_neighbor_state_to_string(states[i].value), states[i].name);
		apf_config_done(&c);
	}
	static const struct {
		const char *protocol, *scope;
		int p, s;
	} routes[] = {{"boot", "site", APF_ROUTE_PROTOCOL_BOOT, APF_ROUTE_SCOPE_SITE},
		      {"dhcp", "host", APF_ROUTE_PROTOCOL_DHCP, APF_ROUTE_SCOPE_HOST},
		      {"static", "nowhere", APF_ROUTE_PROTOCOL_STATIC, APF_ROUTE_SCOPE_NOWHERE},
		      {"kernel", "link", APF_ROUTE_PROTOCOL_KERNEL, APF_ROUTE_SCOPE_LINK}};
	for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
		_cleanup_free_ char *json =
		    str_printf("{\"pod-network\": {\"routes\": [{\"protocol\": \"%s\", \"scope\": "
			       "\"%s\"}]}}",
			       routes[i].protocol, routes[i].scope);
		struct apf_config c;
		assert_int_equal(apf_config_parse(json, strlen(json), &c, NULL), 0);
		assert_int_equal(c.pod_network.routes[0].protocol, routes[i].p);
		assert_int_equal(c.pod_network.routes[0].scope, routes[i].s);
		assert_string_equal(apf_route_protocol_to_string(routes[i].p), routes[i].protocol);
		assert_string_equal(apf_route_scope_to_string(routes[i].s), routes[i].scope);
		apf_config_done(&c);
	}
	/* Enum names are exact. */
	const char *json = "{\"pod-network\": {\"routes\": [{\"protocol\": \"Static\"}]}}";
	struct apf_config c;
	assert_int_equal(apf_config_parse(json, strlen(json), &c, NULL), -EINVAL);
}

static void test_apf_load(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *path = str_printf("%s/apf.json", dir);
	assert_int_equal(write_file_atomic(path, full_apf_json, strlen(full_apf_json), 0600), 0);

	struct apf_config c;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(apf_config_load(path, &c, &msg), 0);
	assert_string_equal(c.pod_network.interface, "eth0");
	apf_config_done(&c);

	/* Over the 1 MiB bound: refused without parsing. */
	size_t big = APF_CONFIG_MAX_BYTES + 1;
	_cleanup_free_ char *text = malloc(big);
	assert_non_null(text);
	memset(text, ' ', big);
	text[0] = '{';
	text[big - 1] = '}';
	assert_int_equal(write_file_atomic(path, text, big, 0600), 0);
	assert_int_equal(apf_config_load(path, &c, &msg), -EFBIG);
	assert_non_null(strstr(msg, path));

	/* Exactly at the bound is fine. */
	assert_int_equal(write_file_atomic(path, text, big - 1, 0600), 0);
	text[big - 2] = '}';
	assert_int_equal(write_file_atomic(path, text, big - 1, 0600), 0);
	assert_int_equal(apf_config_load(path, &c, NULL), 0);
	apf_config_done(&c);

	/* Parse errors name the file and the key. */
	const char *bad = "{\"pod-network\": {\"mtu\": \"x\"}}";
	assert_int_equal(write_file_atomic(path, bad, strlen(bad), 0600), 0);
	free(msg);
	msg = NULL;
	assert_int_equal(apf_config_load(path, &c, &msg), -EINVAL);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, "pod-network.mtu"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(apf_config_load(path, &c, NULL), -ENOENT);
	assert_int_equal(rm_rf(dir), 0);
}

/* ---- options and TLS precedence ---- */

static void test_options_defaults_and_flags(void **state)
{
	struct forwarder_options o = {0};
	const struct config_table t = {forwarder_option_table, forwarder_n_options, &o};
	char *argv0[] = {NULL};
	int argind;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(config_parse(&t, 1, 0, argv0, &argind, &msg), 0);
	assert_string_equal(o.listen, "0.0.0.0:15150");
	assert_string_equal(o.kata_agent_socket, "/run/kata-containers/agent.sock");
	assert_string_equal(o.config, "/run/peerpod/apf.json");
	assert_string_equal(o.pod_namespace, "/run/netns/podns");
	assert_int_equal(o.agent_dial_timeout_ns, 150 * NSEC_PER_SEC);
	assert_false(o.disable_tls);
	assert_null(o.cert_file);
	assert_null(o.tls_cipher_suites);
	forwarder_options_done(&o);

	char *argv1[] = {
	    "-listen",
	    ":15151",
	    "-disable-tls",
	    "--kata-agent-socket=/tmp/a.sock",
	    "-tls-cipher-suites",
	    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	    "-agent-dial-timeout",
	    "2m30s",
	    "-log-format",
	    "json",
	    NULL};
	assert_int_equal(config_parse(&t, 1, ELEMENTSOF(argv1) - 1, argv1, &argind, &msg), 0);
	assert_string_equal(o.listen, ":15151");
	assert_true(o.disable_tls);
	assert_string_equal(o.kata_agent_socket, "/tmp/a.sock");
	assert_int_equal(strv_length(o.tls_cipher_suites), 2);
	assert_int_equal(o.agent_dial_timeout_ns, 150 * NSEC_PER_SEC);
	assert_string_equal(o.log_format, "json");
	forwarder_options_done(&o);

	/* Validators name what is wrong. */
	char *bad[][2] = {{"-listen", "15150"},          {"-log-format", "yaml"},
			  {"-log-level", "loud"},        {"-tls-min-version", "VersionTLS11"},
			  {"-agent-dial-timeout", "0s"}, {"-agent-dial-timeout", "soon"}};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		free(msg);
		msg = NULL;
		o = (struct forwarder_options){0};
		if (config_parse(&t, 1, 2, bad[i], &argind, &msg) >= 0)
			fail_msg("%s %s accepted", bad[i][0], bad[i][1]);
		assert_non_null(msg);
		forwarder_options_done(&o);
	}
}

struct identity {
	EVP_PKEY *ca_key, *server_key, *client_key;
	X509 *ca, *server, *client;
	char *server_pem, *key_pem, *client_pem;
};

static void identity_make(struct identity *id, const char *name)
{
	*id = (struct identity){0};
	assert_int_equal(tls_key_generate(&id->ca_key), 0);
	assert_int_equal(tls_ca_create(id->ca_key, &id->ca), 0);
	assert_int_equal(tls_key_generate(&id->server_key), 0);
	assert_int_equal(
	    tls_cert_issue_server(id->ca, id->ca_key, id->server_key, name, NULL, &id->server), 0);
	assert_int_equal(tls_key_generate(&id->client_key), 0);
	assert_int_equal(tls_cert_create_client(id->client_key, &id->client), 0);
	assert_int_equal(tls_cert_to_pem(id->server, &id->server_pem), 0);
	assert_int_equal(tls_key_to_pem(id->server_key, &id->key_pem), 0);
	assert_int_equal(tls_cert_to_pem(id->client, &id->client_pem), 0);
}

static void identity_done(struct identity *id)
{
	EVP_PKEY_free(id->ca_key);
	EVP_PKEY_free(id->server_key);
	EVP_PKEY_free(id->client_key);
	X509_free(id->ca);
	X509_free(id->server);
	X509_free(id->client);
	free(id->server_pem);
	free_secret(id->key_pem);
	free(id->client_pem);
}

static void test_tls_precedence(void **state)
{
	struct identity from_file, from_flags;
	identity_make(&from_file, "podvm-file-1234abcd");
	identity_make(&from_flags, "podvm-flags-1234abcd");

	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *cert_path = str_printf("%s/server.crt", dir);
	_cleanup_free_ char *key_path = str_printf("%s/server.key", dir);
	_cleanup_free_ char *ca_path = str_printf("%s/ca.crt", dir);
	assert_int_equal(tls_cert_save(cert_path, from_flags.server), 0);
	assert_int_equal(tls_key_save(key_path, from_flags.server_key), 0);
	assert_int_equal(tls_cert_save(ca_path, from_flags.client), 0);

	char *file_suites[] = {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", NULL};
	struct apf_config cfg = {
	    .tls_server_cert = from_file.server_pem,
	    .tls_server_key = from_file.key_pem,
	    .tls_client_ca = from_file.client_pem,
	    .tls_min_version = "VersionTLS12",
	    .tls_cipher_suites = file_suites,
	};
	struct forwarder_options o = {0};
	struct forwarder_tls t;
	_cleanup_free_ char *msg = NULL;

	/* apf.json alone. */
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), 0);
	assert_int_equal(X509_cmp(t.cert, from_file.server), 0);
	assert_int_equal(EVP_PKEY_eq(t.key, from_file.server_key), 1);
	assert_int_equal(X509_cmp(t.client_ca, from_file.client), 0);
	assert_int_equal(t.min_version, TLS1_2_VERSION);
	assert_int_equal(strv_length(t.cipher_suites), 1);
	assert_string_equal(t.cipher_suites[0], file_suites[0]);
	forwarder_tls_done(&t);

	/* Flags win, each group on its own. */
	o.cert_file = cert_path;
	o.cert_key = key_path;
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), 0);
	assert_int_equal(X509_cmp(t.cert, from_flags.server), 0);
	assert_int_equal(EVP_PKEY_eq(t.key, from_flags.server_key), 1);
	assert_int_equal(X509_cmp(t.client_ca, from_file.client), 0);
	forwarder_tls_done(&t);

	o.ca_cert_file = ca_path;
	char *flag_suites[] = {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
			       "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", NULL};
	o.tls_cipher_suites = flag_suites;
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), 0);
	assert_int_equal(X509_cmp(t.client_ca, from_flags.client), 0);
	assert_int_equal(strv_length(t.cipher_suites), 2);
	assert_string_equal(t.cipher_suites[0], flag_suites[0]);

	/* The context presents the flag certificate. */
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	assert_int_equal(forwarder_tls_ctx_new(&t, &ctx, &msg), 0);
	assert_int_equal(X509_cmp(SSL_CTX_get0_certificate(ctx), from_flags.server), 0);
	forwarder_tls_done(&t);

	/* Version: the file's applies only when the flag is unset. */
	o.tls_cipher_suites = NULL;
	cfg.tls_cipher_suites = NULL;
	cfg.tls_min_version = "VersionTLS13";
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), 0);
	assert_int_equal(t.min_version, TLS1_3_VERSION);
	assert_null(t.cipher_suites);
	forwarder_tls_done(&t);
	o.tls_min_version = "VersionTLS12";
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), 0);
	assert_int_equal(t.min_version, TLS1_2_VERSION);
	forwarder_tls_done(&t);

	/* TLS 1.3 minimum with suites is a configuration error. */
	o.tls_min_version = NULL;
	cfg.tls_cipher_suites = file_suites;
	free(msg);
	msg = NULL;
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), -EINVAL);
	assert_non_null(msg);
	cfg.tls_cipher_suites = NULL;

	/* -cert-file without -cert-key. */
	o.cert_key = NULL;
	free(msg);
	msg = NULL;
	assert_int_equal(forwarder_tls_load(&o, &cfg, &t, &msg), -EINVAL);
	assert_non_null(strstr(msg, "-cert-key"));

	/* Nothing at all: refuse, pointing at -disable-tls. */
	struct apf_config empty = {0};
	struct forwarder_options none = {0};
	free(msg);
	msg = NULL;
	assert_int_equal(forwarder_tls_load(&none, &empty, &t, &msg), -EINVAL);
	assert_non_null(strstr(msg, "no TLS material"));
	assert_non_null(strstr(msg, "-disable-tls"));
	assert_null(t.cert);
	free(msg);
	msg = NULL;
	assert_int_equal(forwarder_tls_load(&none, NULL, &t, &msg), -EINVAL);

	/* Server identity without a client CA: mutual TLS needs it. */
	struct apf_config no_ca = {.tls_server_cert = from_file.server_pem,
				   .tls_server_key = from_file.key_pem};
	free(msg);
	msg = NULL;
	assert_int_equal(forwarder_tls_load(&none, &no_ca, &t, &msg), -EINVAL);
	assert_non_null(strstr(msg, "client CA"));
	assert_null(strstr(msg, "server key"));

	/* Bad PEM names its key. */
	struct apf_config bad_pem = {.tls_server_cert = "-----BEGIN CERTIFICATE-----\nx\n",
				     .tls_server_key = from_file.key_pem,
				     .tls_client_ca = from_file.client_pem};
	free(msg);
	msg = NULL;
	assert_true(forwarder_tls_load(&none, &bad_pem, &t, &msg) < 0);
	assert_non_null(strstr(msg, "tls-server-cert"));

	/* Missing flag file names the flag. */
	struct forwarder_options missing = {.ca_cert_file = "/nonexistent/ca.crt"};
	free(msg);
	msg = NULL;
	assert_true(forwarder_tls_load(&missing, &cfg, &t, &msg) < 0);
	assert_non_null(strstr(msg, "-ca-cert-file"));

	identity_done(&from_file);
	identity_done(&from_flags);
	assert_int_equal(rm_rf(dir), 0);
}

/* ---- rewrites ---- */

static const uint8_t unknown_field_99[] = {0x98, 0x06, 0x2a}; /* field 99, varint 42 */

static void assert_has_unknown_99(const ProtobufCMessage *m)
{
	bool found = false;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 99 && m->unknown_fields[i].len == 1 &&
		    m->unknown_fields[i].data[0] == 0x2a)
			found = true;
	assert_true(found);
}

static void test_rewrite_create_sandbox(void **state)
{
	char *dns[] = {"nameserver 10.96.0.10",
		       "search default.svc.cluster.local svc.cluster.local", "options ndots:5"};
	char *driver_opts[] = {"image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-"
			       "type\":\"sandbox\"}}"};
	char *mount_opts[] = {"rw", "noatime"};
	uint8_t fs_group[] = {0x10, 0xe8, 0x07, 0x18, 0x01}; /* FSGroup{2: 1000, 3: 1} */
	Grpc__Storage st0 = GRPC__STORAGE__INIT, st1 = GRPC__STORAGE__INIT;
	st0.driver = "image_guest_pull";
	st0.n_driver_options = 1;
	st0.driver_options = driver_opts;
	st0.source = "pause";
	st0.fstype = "overlay";
	st0.mount_point = "/run/kata-containers/abc/rootfs";
	st1.driver = "ephemeral";
	st1.source = "tmpfs";
	st1.fstype = "tmpfs";
	st1.n_options = 2;
	st1.options = mount_opts;
	st1.mount_point = "/run/kata-containers/sandbox/ephemeral/cache";
	st1.fs_group.data = fs_group;
	st1.fs_group.len = sizeof(fs_group);
	st1.shared = true;
	Grpc__Storage *storages[] = {&st0, &st1};
	char *params[] = {"debug=1"};
	Grpc__KernelModule km = GRPC__KERNEL_MODULE__INIT;
	km.name = "virtio_net";
	km.n_parameters = 1;
	km.parameters = params;
	Grpc__KernelModule *kms[] = {&km};

	Grpc__CreateSandboxRequest req = GRPC__CREATE_SANDBOX_REQUEST__INIT;
	req.hostname = "nginx-7c5ddbdf54-x2kq9";
	req.n_dns = ELEMENTSOF(dns);
	req.dns = dns;
	req.n_storages = 2;
	req.storages = storages;
	req.sandbox_pidns = true;
	req.sandbox_id = "88a70031c1a4b7d1f9e2c3b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
	req.guest_hook_path = "/usr/share/oci/hooks";
	req.n_kernel_modules = 1;
	req.kernel_modules = kms;

	size_t n;
	_cleanup_free_ uint8_t *packed = pack_message(&req.base, &n);
	struct buf in = {0};
	assert_int_equal(buf_append(&in, packed, n, 0), 0);
	assert_int_equal(buf_append(&in, unknown_field_99, sizeof(unknown_field_99), 0), 0);

	struct buf out = {0};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(
	    rewrite("grpc.AgentService", "CreateSandbox", in.data, in.len, NULL, &out, &msg), 1);
	assert_null(msg);

	Grpc__CreateSandboxRequest *got =
	    grpc__create_sandbox_request__unpack(NULL, out.len, out.data);
	assert_non_null(got);
	assert_int_equal(got->n_dns, 0);
	assert_string_equal(got->hostname, req.hostname);
	assert_string_equal(got->sandbox_id, req.sandbox_id);
	assert_string_equal(got->guest_hook_path, req.guest_hook_path);
	assert_true(got->sandbox_pidns);
	assert_int_equal(got->n_storages, 2);
	assert_string_equal(got->storages[0]->driver, "image_guest_pull");
	assert_string_equal(got->storages[0]->driver_options[0], driver_opts[0]);
	assert_string_equal(got->storages[1]->mount_point, st1.mount_point);
	assert_int_equal(got->storages[1]->n_options, 2);
	assert_string_equal(got->storages[1]->options[1], "noatime");
	assert_bytes_equal(got->storages[1]->fs_group.data, got->storages[1]->fs_group.len,
			   fs_group, sizeof(fs_group));
	assert_true(got->storages[1]->shared);
	assert_int_equal(got->n_kernel_modules, 1);
	assert_string_equal(got->kernel_modules[0]->parameters[0], "debug=1");
	assert_has_unknown_99(&got->base);

	/* Everything but dns equal: both sides re-encoded with the full schema compare bytewise. */
	Grpc__CreateSandboxRequest *orig =
	    grpc__create_sandbox_request__unpack(NULL, in.len, in.data);
	assert_non_null(orig);
	size_t saved = orig->n_dns;
	orig->n_dns = 0;
	size_t elen, alen;
	_cleanup_free_ uint8_t *expected = pack_message(&orig->base, &elen);
	_cleanup_free_ uint8_t *actual = pack_message(&got->base, &alen);
	assert_bytes_equal(actual, alen, expected, elen);
	orig->n_dns = saved;

	/* Already without dns: relayed as it is. */
	struct buf out2 = {0};
	assert_int_equal(
	    rewrite("grpc.AgentService", "CreateSandbox", expected, elen, NULL, &out2, &msg), 0);
	assert_int_equal(out2.len, 0);

	grpc__create_sandbox_request__free_unpacked(orig, NULL);
	grpc__create_sandbox_request__free_unpacked(got, NULL);
	buf_done(&in);
	buf_done(&out);
	buf_done(&out2);
}

/* A CreateContainerRequest as the Go shim sends it for a pod container, with fields the rewriter
 * does not declare at every level, and an unknown field inside Linux and at the top. */
struct container_fixture {
	Grpc__CreateContainerRequest req;
	Grpc__StringUser su;
	char *gids[2];
	Grpc__Device dev[2];
	Grpc__Device *devs[2];
	char *dev_opts[1];
	Grpc__Storage st;
	Grpc__Storage *sts[1];
	char *st_opts[1];
	Grpc__Spec spec;
	Grpc__Process proc;
	Grpc__User user;
	uint32_t user_gids[2];
	char *args[3];
	char *env[2];
	ProtobufCBinaryData rlimits[1];
	Grpc__Root root;
	Grpc__Mount mount[2];
	Grpc__Mount *mounts[2];
	char *mount_opts[3];
	Grpc__Spec__AnnotationsEntry ann[2];
	Grpc__Spec__AnnotationsEntry *anns[2];
	Grpc__Linux lx;
	Grpc__Linux__SysctlEntry sysctl;
	Grpc__Linux__SysctlEntry *sysctls[1];
	Grpc__LinuxNamespace ns[4];
	Grpc__LinuxNamespace *nss[4];
	ProtobufCBinaryData lx_devices[1];
	char *masked[2];
	char *readonly[1];
	ProtobufCMessageUnknownField lx_unknown;
	Grpc__SharedMount sm;
	Grpc__SharedMount *sms[1];
};

static uint8_t unknown_value = 0x2a;

static void container_fixture_init(struct container_fixture *f)
{
	*f = (struct container_fixture){0};
	f->req = (Grpc__CreateContainerRequest)GRPC__CREATE_CONTAINER_REQUEST__INIT;
	f->req.container_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	f->req.exec_id = f->req.container_id;

	f->su = (Grpc__StringUser)GRPC__STRING_USER__INIT;
	f->su.uid = "1000";
	f->su.gid = "1000";
	f->gids[0] = "10";
	f->gids[1] = "1000";
	f->su.n_additionalgids = 2;
	f->su.additionalgids = f->gids;
	f->req.string_user = &f->su;

	for (int i = 0; i < 2; i++) {
		f->dev[i] = (Grpc__Device)GRPC__DEVICE__INIT;
		f->devs[i] = &f->dev[i];
	}
	f->dev[0].id = "vda";
	f->dev[0].type = "blk";
	f->dev[0].vm_path = "/dev/vda";
	f->dev[0].container_path = "/dev/xvda";
	f->dev_opts[0] = "ro";
	f->dev[0].n_options = 1;
	f->dev[0].options = f->dev_opts;
	f->dev[1].id = "tun";
	f->dev[1].type = "c";
	f->dev[1].container_path = "/dev/net/tun";
	f->req.n_devices = 2;
	f->req.devices = f->devs;

	f->st = (Grpc__Storage)GRPC__STORAGE__INIT;
	f->st.driver = "image_guest_pull";
	f->st_opts[0] = "image_guest_pull={\"metadata\":{\"io.kubernetes.cri.image-name\":"
			"\"docker.io/library/nginx:1.27\"}}";
	f->st.n_driver_options = 1;
	f->st.driver_options = f->st_opts;
	f->st.source = "docker.io/library/nginx:1.27";
	f->st.fstype = "overlay";
	f->st.mount_point = "/run/kata-containers/0123456789abcdef/rootfs";
	f->sts[0] = &f->st;
	f->req.n_storages = 1;
	f->req.storages = f->sts;

	f->user = (Grpc__User)GRPC__USER__INIT;
	f->user.uid = 101;
	f->user.gid = 101;
	f->user_gids[0] = 4;
	f->user_gids[1] = 27;
	f->user.n_additionalgids = 2;
	f->user.additionalgids = f->user_gids;
	f->user.username = "nginx";
	f->proc = (Grpc__Process)GRPC__PROCESS__INIT;
	f->proc.terminal = false;
	f->proc.user = &f->user;
	f->args[0] = "/docker-entrypoint.sh";
	f->args[1] = "nginx";
	f->args[2] = "-g daemon off;";
	f->proc.n_args = 3;
	f->proc.args = f->args;
	f->env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	f->env[1] = "HOSTNAME=nginx";
	f->proc.n_env = 2;
	f->proc.env = f->env;
	f->proc.cwd = "/";
	static uint8_t caps[] = "\x0a\x09"
				"CAP_CHOWN"
				"\x12\x0c"
				"CAP_SETFCAP";
	f->proc.capabilities.data = caps;
	f->proc.capabilities.len = sizeof(caps) - 1;
	static uint8_t rlimit[] = "\x0a\x0d"
				  "RLIMIT_NOFILE"
				  "\x10\x80\x08\x18\x80\x08";
	f->rlimits[0].data = rlimit;
	f->rlimits[0].len = sizeof(rlimit) - 1;
	f->proc.n_rlimits = 1;
	f->proc.rlimits = f->rlimits;
	f->proc.nonewprivileges = true;
	f->proc.apparmorprofile = "cri-containerd.apparmor.d";
	f->proc.oomscoreadj = -997;
	f->proc.selinuxlabel = "system_u:system_r:container_t:s0";

	f->root = (Grpc__Root)GRPC__ROOT__INIT;
	f->root.path = f->st.mount_point;
	f->root.readonly = false;

	for (int i = 0; i < 2; i++) {
		f->mount[i] = (Grpc__Mount)GRPC__MOUNT__INIT;
		f->mounts[i] = &f->mount[i];
	}
	f->mount[0].destination = "/proc";
	f->mount[0].source = "proc";
	f->mount[0].type = "proc";
	f->mount_opts[0] = "nosuid";
	f->mount_opts[1] = "noexec";
	f->mount_opts[2] = "nodev";
	f->mount[0].n_options = 3;
	f->mount[0].options = f->mount_opts;
	f->mount[1].destination = "/etc/resolv.conf";
	f->mount[1].source = "/run/kata-containers/shared/containers/abc-resolv.conf";
	f->mount[1].type = "bind";

	for (int i = 0; i < 2; i++) {
		f->ann[i] = (Grpc__Spec__AnnotationsEntry)GRPC__SPEC__ANNOTATIONS_ENTRY__INIT;
		f->anns[i] = &f->ann[i];
	}
	f->ann[0].key = "io.kubernetes.cri.container-type";
	f->ann[0].value = "container";
	f->ann[1].key = "io.kubernetes.cri.sandbox-id";
	f->ann[1].value = "88a70031c1a4b7d1f9e2c3b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

	f->lx = (Grpc__Linux)GRPC__LINUX__INIT;
	f->sysctl = (Grpc__Linux__SysctlEntry)GRPC__LINUX__SYSCTL_ENTRY__INIT;
	f->sysctl.key = "net.ipv4.ip_unprivileged_port_start";
	f->sysctl.value = "0";
	f->sysctls[0] = &f->sysctl;
	f->lx.n_sysctl = 1;
	f->lx.sysctl = f->sysctls;
	static uint8_t resources[] = "\x12\x06\x08\x80\x80\x80\x40\x10";
	f->lx.resources.data = resources;
	f->lx.resources.len = sizeof(resources) - 1;
	f->lx.cgroupspath = "/kubepods/besteffort/pod1234/0123456789abcdef";
	static const char *types[] = {"pid", "ipc", "uts", "mount"};
	static const char *paths[] = {"", "/proc/1/ns/ipc", "", ""};
	for (int i = 0; i < 4; i++) {
		f->ns[i] = (Grpc__LinuxNamespace)GRPC__LINUX_NAMESPACE__INIT;
		f->ns[i].type = (char *)types[i];
		f->ns[i].path = (char *)paths[i];
		f->nss[i] = &f->ns[i];
	}
	f->lx.n_namespaces = 4;
	f->lx.namespaces = f->nss;
	static uint8_t lxdev[] = "\x0a\x0c"
				 "/dev/net/tun"
				 "\x12\x01"
				 "c";
	f->lx_devices[0].data = lxdev;
	f->lx_devices[0].len = sizeof(lxdev) - 1;
	f->lx.n_devices = 1;
	f->lx.devices = f->lx_devices;
	static uint8_t seccomp[] = "\x0a\x0e"
				   "SCMP_ACT_ERRNO";
	f->lx.seccomp.data = seccomp;
	f->lx.seccomp.len = sizeof(seccomp) - 1;
	f->masked[0] = "/proc/acpi";
	f->masked[1] = "/proc/kcore";
	f->lx.n_maskedpaths = 2;
	f->lx.maskedpaths = f->masked;
	f->readonly[0] = "/proc/sys";
	f->lx.n_readonlypaths = 1;
	f->lx.readonlypaths = f->readonly;
	f->lx_unknown = (ProtobufCMessageUnknownField){
	    .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = &unknown_value};
	f->lx.base.n_unknown_fields = 1;
	f->lx.base.unknown_fields = &f->lx_unknown;

	f->spec = (Grpc__Spec)GRPC__SPEC__INIT;
	f->spec.version = "1.1.0";
	f->spec.process = &f->proc;
	f->spec.root = &f->root;
	f->spec.hostname = "nginx";
	f->spec.n_mounts = 2;
	f->spec.mounts = f->mounts;
	f->spec.n_annotations = 2;
	f->spec.annotations = f->anns;
	f->spec.linux = &f->lx;
	f->req.oci = &f->spec;

	f->req.sandbox_pidns = false;
	f->sm = (Grpc__SharedMount)GRPC__SHARED_MOUNT__INIT;
	f->sm.name = "shared";
	f->sm.src_ctr = "a";
	f->sm.src_path = "/data";
	f->sm.dst_ctr = "b";
	f->sm.dst_path = "/data";
	f->sms[0] = &f->sm;
	f->req.n_shared_mounts = 1;
	f->req.shared_mounts = f->sms;
	f->req.stdin_port = 0;
	f->req.stdout_port = 1025;
	f->req.stderr_port = 1026;
}

/* The rich request, packed, with unknown field 99 appended at the top. */
static void container_fixture_pack(struct buf *out)
{
	struct container_fixture f;
	container_fixture_init(&f);
	size_t n;
	_cleanup_free_ uint8_t *p = pack_message(&f.req.base, &n);
	assert_int_equal(buf_append(out, p, n, 0), 0);
	assert_int_equal(buf_append(out, unknown_field_99, sizeof(unknown_field_99), 0), 0);
}

static void assert_linux_unknown_kept(const Grpc__Linux *lx)
{
	assert_has_unknown_99(&lx->base);
}

static void test_rewrite_create_container(void **state)
{
	struct buf in = {0}, out = {0};
	container_fixture_pack(&in);
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(rewrite("grpc.AgentService", "CreateContainer", in.data, in.len,
				 "/run/netns/test-podns", &out, &msg),
			 1);

	Grpc__CreateContainerRequest *got =
	    grpc__create_container_request__unpack(NULL, out.len, out.data);
	assert_non_null(got);
	assert_non_null(got->oci);
	assert_non_null(got->oci->linux);
	const Grpc__Linux *lx = got->oci->linux;
	assert_int_equal(lx->n_namespaces, 5);
	static const char *types[] = {"pid", "ipc", "uts", "mount"};
	for (int i = 0; i < 4; i++)
		assert_string_equal(lx->namespaces[i]->type, types[i]);
	assert_string_equal(lx->namespaces[1]->path, "/proc/1/ns/ipc");
	assert_string_equal(lx->namespaces[4]->type, "network");
	assert_string_equal(lx->namespaces[4]->path, "/run/netns/test-podns");
	assert_linux_unknown_kept(lx);
	assert_has_unknown_99(&got->base);

	/* A few fields the rewriter never declares, looked at directly. */
	assert_string_equal(got->container_id,
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_equal(got->n_devices, 2);
	assert_string_equal(got->devices[1]->container_path, "/dev/net/tun");
	assert_string_equal(got->storages[0]->source, "docker.io/library/nginx:1.27");
	assert_string_equal(got->oci->process->args[2], "-g daemon off;");
	assert_int_equal(got->oci->process->user->additionalgids[1], 27);
	assert_int_equal(got->oci->process->oomscoreadj, -997);
	assert_int_equal(got->oci->n_annotations, 2);
	assert_string_equal(got->oci->annotations[1]->key, "io.kubernetes.cri.sandbox-id");
	assert_int_equal(got->oci->n_mounts, 2);
	assert_string_equal(got->oci->mounts[1]->destination, "/etc/resolv.conf");
	assert_string_equal(lx->cgroupspath, "/kubepods/besteffort/pod1234/0123456789abcdef");
	assert_int_equal(got->stderr_port, 1026);

	/* Everything else equal: the original plus the entry, both re-encoded with the schema. */
	Grpc__CreateContainerRequest *orig =
	    grpc__create_container_request__unpack(NULL, in.len, in.data);
	assert_non_null(orig);
	Grpc__LinuxNamespace extra = GRPC__LINUX_NAMESPACE__INIT;
	extra.type = "network";
	extra.path = "/run/netns/test-podns";
	Grpc__Linux *olx = orig->oci->linux;
	Grpc__LinuxNamespace *list[5];
	memcpy(list, olx->namespaces, 4 * sizeof(*list));
	list[4] = &extra;
	Grpc__LinuxNamespace **saved = olx->namespaces;
	olx->namespaces = list;
	olx->n_namespaces = 5;
	size_t elen, alen;
	_cleanup_free_ uint8_t *expected = pack_message(&orig->base, &elen);
	_cleanup_free_ uint8_t *actual = pack_message(&got->base, &alen);
	olx->namespaces = saved;
	olx->n_namespaces = 4;
	assert_bytes_equal(actual, alen, expected, elen);

	/* Rewriting again appends again: the forwarder does not second-guess the shim. */
	struct buf out2 = {0};
	assert_int_equal(
	    rewrite("grpc.AgentService", "CreateContainer", out.data, out.len, NULL, &out2, &msg),
	    1);
	Grpc__CreateContainerRequest *twice =
	    grpc__create_container_request__unpack(NULL, out2.len, out2.data);
	assert_non_null(twice);
	assert_int_equal(twice->oci->linux->n_namespaces, 6);
	assert_string_equal(twice->oci->linux->namespaces[5]->path, "/run/netns/podns");

	grpc__create_container_request__free_unpacked(twice, NULL);
	grpc__create_container_request__free_unpacked(orig, NULL);
	grpc__create_container_request__free_unpacked(got, NULL);
	buf_done(&in);
	buf_done(&out);
	buf_done(&out2);
}

static Grpc__CreateContainerRequest *rewrite_container(const ProtobufCMessage *m)
{
	size_t n;
	_cleanup_free_ uint8_t *p = pack_message(m, &n);
	struct buf out = {0};
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(rewrite("grpc.AgentService", "CreateContainer", p, n, NULL, &out, &msg),
			 1);
	Grpc__CreateContainerRequest *got =
	    grpc__create_container_request__unpack(NULL, out.len, out.data);
	buf_done(&out);
	assert_non_null(got);
	assert_non_null(got->oci);
	assert_non_null(got->oci->linux);
	assert_int_equal(got->oci->linux->n_namespaces, 1);
	assert_string_equal(got->oci->linux->namespaces[0]->type, "network");
	assert_string_equal(got->oci->linux->namespaces[0]->path, "/run/netns/podns");
	return got;
}

static void test_rewrite_create_container_missing_levels(void **state)
{
	/* No OCI at all. */
	Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
	req.container_id = "c1";
	req.stdout_port = 7;
	Grpc__CreateContainerRequest *got = rewrite_container(&req.base);
	assert_string_equal(got->container_id, "c1");
	assert_int_equal(got->stdout_port, 7);
	grpc__create_container_request__free_unpacked(got, NULL);

	/* OCI without Linux. */
	struct container_fixture f;
	container_fixture_init(&f);
	f.spec.linux = NULL;
	got = rewrite_container(&f.req.base);
	assert_string_equal(got->oci->hostname, "nginx");
	assert_string_equal(got->oci->process->cwd, "/");
	assert_int_equal(got->oci->n_annotations, 2);
	grpc__create_container_request__free_unpacked(got, NULL);

	/* Linux without namespaces keeps its other members. */
	container_fixture_init(&f);
	f.lx.n_namespaces = 0;
	f.lx.namespaces = NULL;
	got = rewrite_container(&f.req.base);
	assert_int_equal(got->oci->linux->n_maskedpaths, 2);
	assert_linux_unknown_kept(got->oci->linux);
	grpc__create_container_request__free_unpacked(got, NULL);

	/* An empty payload is an empty request. */
	struct buf out = {0};
	assert_int_equal(rewrite("grpc.AgentService", "CreateContainer", NULL, 0, NULL, &out, NULL),
			 1);
	got = grpc__create_container_request__unpack(NULL, out.len, out.data);
	assert_non_null(got);
	assert_int_equal(got->oci->linux->n_namespaces, 1);
	grpc__create_container_request__free_unpacked(got, NULL);
	buf_done(&out);
}

static void test_rewrite_untouched(void **state)
{
	Grpc__StartContainerRequest start = GRPC__START_CONTAINER_REQUEST__INIT;
	start.container_id = "c1";
	size_t n;
	_cleanup_free_ uint8_t *p = pack_message(&start.base, &n);
	struct buf in = {0};
	container_fixture_pack(&in);

	static const struct {
		const char *service, *method;
	} calls[] = {
	    {"grpc.AgentService", "StartContainer"},   {"grpc.AgentService", "ExecProcess"},
	    {"grpc.AgentService", "SetPolicy"},        {"grpc.AgentService", "CreateContainerX"},
	    {"grpc.AgentService", "createcontainer"},  {"grpc.AgentService", "CreateSandboxes"},
	    {"grpc.AgentServiceX", "CreateContainer"}, {"grpc.Health", "Check"},
	    {"grpc.Other", "CreateSandbox"},           {"", ""},
	};
	for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
		struct buf out = {0};
		_cleanup_free_ char *msg = NULL;
		assert_int_equal(rewrite(calls[i].service, calls[i].method, p, n, NULL, &out, &msg),
				 0);
		assert_int_equal(out.len, 0);
		/* Even a CreateContainer body under another name passes as it is. */
		assert_int_equal(
		    rewrite(calls[i].service, calls[i].method, in.data, in.len, NULL, &out, &msg),
		    0);
		assert_int_equal(out.len, 0);
		assert_null(msg);
	}
	/* Not decoded at all: even garbage passes for other methods. */
	const uint8_t garbage[] = {0xff, 0xff, 0xff};
	struct buf out = {0};
	assert_int_equal(rewrite("grpc.AgentService", "StartContainer", garbage, sizeof(garbage),
				 NULL, &out, NULL),
			 0);
	buf_done(&in);
}

static void test_rewrite_garbage(void **state)
{
	static const struct {
		const char *method;
		uint8_t data[12];
		size_t len;
	} cases[] = {
	    /* field 6 (OCI) claims 16 bytes, has 1 */
	    {"CreateContainer", {0x32, 0x10, 0x01}, 3},
	    /* OCI -> Linux (8) -> Namespaces (6) truncated inside */
	    {"CreateContainer", {0x32, 0x04, 0x42, 0x02, 0x32, 0x05}, 6},
	    /* a varint that never ends */
	    {"CreateSandbox",
	     {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	     12},
	    /* dns (#2) with the varint wire type */
	    {"CreateSandbox", {0x10, 0x01}, 2},
	    /* OCI (#6) with the fixed64 wire type, cut short */
	    {"CreateContainer", {0x31, 0x01, 0x02}, 3},
	    /* wire type 7 does not exist */
	    {"CreateSandbox", {0x0f}, 1},
	    /* field number 0 behind an over-long tag varint (fixed64 value) */
	    {"CreateSandbox", {0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}, 10},
	    /* the same inside OCI */
	    {"CreateContainer", {0x32, 0x0a, 0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}, 12},
	    /* field number 2^29 (above the maximum) inside OCI -> Linux, varint 0 */
	    {"CreateContainer", {0x32, 0x08, 0x42, 0x06, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, 10},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct buf out = {0};
		_cleanup_free_ char *msg = NULL;
		int r = rewrite("grpc.AgentService", cases[i].method, cases[i].data, cases[i].len,
				NULL, &out, &msg);
		if (r >= 0)
			fail_msg("case %zu accepted (%d)", i, r);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(msg);
		assert_non_null(strstr(msg, cases[i].method));
		assert_int_equal(out.len, 0);
		buf_done(&out);
	}
	/* Without a message pointer it still fails. */
	assert_int_equal(rewrite("grpc.AgentService", "CreateContainer", cases[0].data,
				 cases[0].len, NULL, &(struct buf){0}, NULL),
			 -EBADMSG);
}

/* ---- listen address, sd_notify ---- */

static void test_parse_listen(void **state)
{
	static const struct {
		const char *in, *host;
		uint16_t port;
	} good[] = {{"0.0.0.0:15150", "0.0.0.0", 15150}, {":15150", "", 15150},
		    {"127.0.0.1:0", "127.0.0.1", 0},     {"[::1]:80", "::1", 80},
		    {"[::]:65535", "::", 65535},         {"localhost:8080", "localhost", 8080}};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		_cleanup_free_ char *host = NULL;
		uint16_t port = 1;
		assert_int_equal(forwarder_parse_listen(good[i].in, &host, &port), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	const char *bad[] = {"15150", "::1:80", "[::1]80", "[]:80", "a:",    "a:65536",
			     "a:-1",  "a:+1",   "a:http",  "",      "[::1]", "1.2.3.4:1 "};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *host = NULL;
		uint16_t port;
		if (forwarder_parse_listen(bad[i], &host, &port) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	}
}

static void test_listen_socket(void **state)
{
	int fd = -1;
	_cleanup_free_ char *msg = NULL;
	uint16_t port = 0;
	assert_int_equal(forwarder_listen_socket("127.0.0.1:0", &fd, &msg), 0);
	assert_int_equal(forwarder_socket_port(fd, &port), 0);
	assert_true(port != 0);

	/* SO_REUSEADDR is set and the socket listens. */
	int v = 0;
	socklen_t vl = sizeof(v);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &vl), 0);
	assert_int_equal(v, 1);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), 0);
	assert_int_equal(v, 1);

	/* The port is taken now. */
	_cleanup_free_ char *again = str_printf("127.0.0.1:%u", port);
	int fd2 = -1;
	assert_int_equal(forwarder_listen_socket(again, &fd2, &msg), -EADDRINUSE);
	assert_non_null(strstr(msg, again));
	close(fd);

	/* ":port" binds every address. */
	assert_int_equal(forwarder_listen_socket(":0", &fd, NULL), 0);
	close(fd);
}

static void test_sd_notify(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *path = str_printf("%s/notify", dir);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_int_equal(str_copy(sa.sun_path, sizeof(sa.sun_path), path), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);

	assert_int_equal(forwarder_sd_notify(path, "READY=1"), 0);
	char got[64];
	ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	assert_int_equal(n, 7);
	assert_memory_equal(got, "READY=1", 7);

	/* Abstract namespace: '@' stands for the leading NUL, no terminator. */
	_cleanup_close_ int afd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(afd >= 0);
	char name[64];
	int len = snprintf(name, sizeof(name), "@pp-test-forwarder-%d-%u", (int)getpid(),
			   (unsigned)now_ns());
	struct sockaddr_un aa = {.sun_family = AF_UNIX};
	memcpy(aa.sun_path + 1, name + 1, (size_t)len - 1);
	assert_int_equal(bind(afd, (struct sockaddr *)&aa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)len)),
			 0);
	assert_int_equal(forwarder_sd_notify(name, "READY=1\nSTATUS=serving"), 0);
	n = recv(afd, got, sizeof(got), MSG_DONTWAIT);
	assert_int_equal(n, 22);
	assert_memory_equal(got, "READY=1\nSTATUS=serving", 22);

	/* No socket configured: nothing to do. Unsupported forms and absent peers fail. */
	assert_int_equal(forwarder_sd_notify(NULL, "READY=1"), 0);
	assert_int_equal(forwarder_sd_notify("", "READY=1"), 0);
	assert_int_equal(forwarder_sd_notify("relative/path", "READY=1"), -EINVAL);
	assert_int_equal(forwarder_sd_notify("vsock:2:9999", "READY=1"), -EINVAL);
	_cleanup_free_ char *gone = str_printf("%s/absent", dir);
	assert_true(forwarder_sd_notify(gone, "READY=1") < 0);
	assert_int_equal(rm_rf(dir), 0);
}

/* ---- the relay end to end: client -> forwarder (TCP, plain) -> agent (Unix socket) ---- */

struct fake_agent {
	unsigned n_calls;
	char method[64];
	struct buf last; /* payload of the last call */
};

static void on_agent_call(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			  void *userdata)
{
	struct fake_agent *a = userdata;
	a->n_calls++;
	str_copy(a->method, sizeof(a->method), ttrpc_call_method(call));
	a->last.len = 0;
	/* No cmocka asserts on this thread: a failure shows as a mismatch in the test. */
	if (buf_append(&a->last, payload ? payload : (const uint8_t *)"", len, 0) < 0) {
		ttrpc_call_reply_error(call, TTRPC_INTERNAL, "out of memory");
		return;
	}
	ttrpc_call_reply(call, NULL, 0);
}

struct relay_env {
	char *dir;
	char *agent_socket;
	int listen_fd, listen_fd_noagent;
	uint16_t port, port_noagent;
	int stop_pipe[2];
	pthread_t thread;
	struct fake_agent agent;
	int setup_error;
};

static void on_stop(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	loop_exit(loop_source_get_loop(s), 0);
}

/* Everything on the loop lives on this thread; the test talks to it over sockets only. */
static void *relay_thread(void *p)
{
	struct relay_env *e = p;
	_cleanup_(loop_freep) struct loop *l = NULL;
	struct ttrpc_server *agent = NULL;
	_cleanup_(forwarder_freep) struct forwarder *f = NULL, *f2 = NULL;
	_cleanup_free_ char *absent = str_printf("%s/absent.sock", e->dir);
	int r;
	if ((r = loop_new(&l)) < 0 || (r = ttrpc_server_new(l, &agent)) < 0)
		goto out;
	const char *methods[] = {"CreateSandbox", "CreateContainer", "StartContainer"};
	for (size_t i = 0; i < ELEMENTSOF(methods); i++)
		if ((r = ttrpc_server_add_method(agent, "grpc.AgentService", methods[i],
						 on_agent_call, &e->agent)) < 0)
			goto out;
	if ((r = ttrpc_server_listen_unix(agent, e->agent_socket, 0600)) < 0 ||
	    (r = forwarder_new(l, e->listen_fd, NULL, e->agent_socket, 30 * NSEC_PER_SEC,
			       "/run/netns/relay-test", &f)) < 0)
		goto out;
	/* A short dial limit so the failure case ends quickly. */
	if ((r = forwarder_new(l, e->listen_fd_noagent, NULL, absent, 300 * NSEC_PER_MSEC, NULL,
			       &f2)) < 0)
		goto out;
	if ((r = loop_add_io(l, e->stop_pipe[0], EPOLLIN, on_stop, NULL, NULL)) < 0)
		goto out;
	r = loop_run(l);
out:
	e->setup_error = r;
	f = forwarder_free(f);
	f2 = forwarder_free(f2);
	ttrpc_server_free(agent);
	return NULL;
}

static int relay_setup(void **state)
{
	struct relay_env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->dir = make_tmpdir();
	e->agent_socket = str_printf("%s/agent.sock", e->dir);
	assert_int_equal(forwarder_listen_socket("127.0.0.1:0", &e->listen_fd, NULL), 0);
	assert_int_equal(forwarder_socket_port(e->listen_fd, &e->port), 0);
	assert_int_equal(forwarder_listen_socket("127.0.0.1:0", &e->listen_fd_noagent, NULL), 0);
	assert_int_equal(forwarder_socket_port(e->listen_fd_noagent, &e->port_noagent), 0);
	assert_int_equal(pipe2(e->stop_pipe, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&e->thread, NULL, relay_thread, e), 0);
	*state = e;
	return 0;
}

static int relay_teardown(void **state)
{
	struct relay_env *e = *state;
	assert_int_equal(write(e->stop_pipe[1], "x", 1), 1);
	pthread_join(e->thread, NULL);
	close(e->stop_pipe[0]);
	close(e->stop_pipe[1]);
	rm_rf(e->dir);
	free(e->dir);
	free(e->agent_socket);
	buf_done(&e->agent.last);
	free(e);
	return 0;
}

static struct ttrpc_sync_client *relay_connect(uint16_t port)
{
	_cleanup_free_ char *addr = str_printf("127.0.0.1:%u", port);
	struct ttrpc_sync_client *c = NULL;
	int r = ttrpc_sync_client_connect(addr, NULL, NULL, 10 * NSEC_PER_SEC, &c);
	if (r < 0)
		fail_msg("connect %s: %s", addr, strerror(-r));
	return c;
}

static int relay_call(struct ttrpc_sync_client *c, const char *method, const void *payload,
		      size_t len, char **ret_message)
{
	_cleanup_free_ uint8_t *reply = NULL;
	size_t reply_len = 0;
	return ttrpc_sync_client_call(c, "grpc.AgentService", method, payload, len,
				      20 * NSEC_PER_SEC, &reply, &reply_len, ret_message);
}

static void test_relay_end_to_end(void **state)
{
	struct relay_env *e = *state;
	struct ttrpc_sync_client *c = relay_connect(e->port);

	/* CreateContainer reaches the agent with the pod netns appended. */
	struct buf in = {0};
	container_fixture_pack(&in);
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(relay_call(c, "CreateContainer", in.data, in.len, &msg), 0);
	assert_int_equal(e->agent.n_calls, 1);
	assert_string_equal(e->agent.method, "CreateContainer");
	Grpc__CreateContainerRequest *got =
	    grpc__create_container_request__unpack(NULL, e->agent.last.len, e->agent.last.data);
	assert_non_null(got);
	assert_int_equal(got->oci->linux->n_namespaces, 5);
	assert_string_equal(got->oci->linux->namespaces[4]->type, "network");
	assert_string_equal(got->oci->linux->namespaces[4]->path, "/run/netns/relay-test");
	grpc__create_container_request__free_unpacked(got, NULL);

	/* Other calls arrive byte for byte. */
	const uint8_t start[] = {0x0a, 0x02, 'c', '1', 0xa0, 0x06, 0x01}; /* + unknown field 100 */
	assert_int_equal(relay_call(c, "StartContainer", start, sizeof(start), &msg), 0);
	assert_int_equal(e->agent.n_calls, 2);
	assert_bytes_equal(e->agent.last.data, e->agent.last.len, start, sizeof(start));

	/* Undecodable CreateContainer: INVALID_ARGUMENT, the agent never sees it. */
	const uint8_t garbage[] = {0x32, 0x10, 0x01};
	free(msg);
	msg = NULL;
	assert_int_equal(relay_call(c, "CreateContainer", garbage, sizeof(garbage), &msg),
			 TTRPC_INVALID_ARGUMENT);
	assert_non_null(msg);
	assert_int_equal(e->agent.n_calls, 2);

	/* CreateSandbox loses its dns. */
	char *dns[] = {"nameserver 10.96.0.10"};
	Grpc__CreateSandboxRequest sb = GRPC__CREATE_SANDBOX_REQUEST__INIT;
	sb.hostname = "pod";
	sb.n_dns = 1;
	sb.dns = dns;
	size_t n;
	_cleanup_free_ uint8_t *p = pack_message(&sb.base, &n);
	assert_int_equal(relay_call(c, "CreateSandbox", p, n, &msg), 0);
	assert_int_equal(e->agent.n_calls, 3);
	Grpc__CreateSandboxRequest *gs =
	    grpc__create_sandbox_request__unpack(NULL, e->agent.last.len, e->agent.last.data);
	assert_non_null(gs);
	assert_int_equal(gs->n_dns, 0);
	assert_string_equal(gs->hostname, "pod");
	grpc__create_sandbox_request__free_unpacked(gs, NULL);

	ttrpc_sync_client_free(c);
	buf_done(&in);
}

static void test_relay_agent_missing(void **state)
{
	struct relay_env *e = *state;
	struct ttrpc_sync_client *c = relay_connect(e->port_noagent);
	_cleanup_free_ char *msg = NULL;
	const uint8_t start[] = {0x0a, 0x02, 'c', '1'};
	assert_int_equal(relay_call(c, "StartContainer", start, sizeof(start), &msg),
			 TTRPC_UNAVAILABLE);
	assert_non_null(msg);
	/* The next call asks for a connection again and fails the same way. */
	free(msg);
	msg = NULL;
	assert_int_equal(relay_call(c, "StartContainer", start, sizeof(start), &msg),
			 TTRPC_UNAVAILABLE);
	ttrpc_sync_client_free(c);
}

/* ---- fuzz seeds ---- */

/* With FORWARDER_WRITE_CORPUS=<repo>/test/fuzz/corpus this (re)writes the seed files of
 * fuzz-forwarder-rewrite and fuzz-apf-config from the fixtures above. */
static void write_seed(const char *dir, const char *name, uint8_t selector, const void *data,
		       size_t len)
{
	struct buf b = {0};
	if (selector != 0xff)
		assert_int_equal(buf_append(&b, &selector, 1, 0), 0);
	assert_int_equal(buf_append(&b, data, len, 0), 0);
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(
	    write_file_atomic(path, b.data ? b.data : (const uint8_t *)"", b.len, 0644), 0);
	buf_done(&b);
}

static void test_write_corpus(void **state)
{
	const char *root = config_getenv("FORWARDER_WRITE_CORPUS");
	if (str_empty(root))
		skip();
	_cleanup_free_ char *rw = str_printf("%s/forwarder-rewrite", root);
	_cleanup_free_ char *apf = str_printf("%s/apf-config", root);

	/* Selector byte: 0 CreateSandbox, 1 CreateContainer (see the fuzz target). */
	struct buf in = {0};
	container_fixture_pack(&in);
	write_seed(rw, "create-container-full", 1, in.data, in.len);
	buf_done(&in);

	struct container_fixture f;
	container_fixture_init(&f);
	f.spec.linux = NULL;
	size_t n;
	_cleanup_free_ uint8_t *p1 = pack_message(&f.req.base, &n);
	write_seed(rw, "create-container-no-linux", 1, p1, n);

	Grpc__CreateContainerRequest bare = GRPC__CREATE_CONTAINER_REQUEST__INIT;
	bare.container_id = "c1";
	_cleanup_free_ uint8_t *p2 = pack_message(&bare.base, &n);
	write_seed(rw, "create-container-no-oci", 1, p2, n);

	char *dns[] = {"nameserver 10.96.0.10", "search default.svc.cluster.local",
		       "options ndots:5"};
	Grpc__Storage st = GRPC__STORAGE__INIT;
	st.driver = "image_guest_pull";
	st.source = "pause";
	st.fstype = "overlay";
	st.mount_point = "/run/kata-containers/sandbox/rootfs";
	Grpc__Storage *sts[] = {&st};
	Grpc__CreateSandboxRequest sb = GRPC__CREATE_SANDBOX_REQUEST__INIT;
	sb.hostname = "nginx-7c5ddbdf54-x2kq9";
	sb.n_dns = 3;
	sb.dns = dns;
	sb.n_storages = 1;
	sb.storages = sts;
	sb.sandbox_pidns = true;
	sb.sandbox_id = "88a70031c1a4b7d1f9e2c3b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
	_cleanup_free_ uint8_t *p3 = pack_message(&sb.base, &n);
	write_seed(rw, "create-sandbox-dns", 0, p3, n);
	sb.n_dns = 0;
	_cleanup_free_ uint8_t *p4 = pack_message(&sb.base, &n);
	write_seed(rw, "create-sandbox-no-dns", 0, p4, n);

	write_seed(apf, "full.json", 0xff, full_apf_json, strlen(full_apf_json));
	const char *minimal = "{\n    \"pod-network\": {\n        \"podip\": \"10.244.0.5/32\",\n"
			      "        \"mtu\": 1500\n    },\n    \"pod-name\": \"p\"\n}\n";
	write_seed(apf, "minimal.json", 0xff, minimal, strlen(minimal));
	const char *bad = "{\"pod-network\": {\"routes\": [{\"scope\": \"galaxy\"}]}}";
	write_seed(apf, "bad-scope.json", 0xff, bad, strlen(bad));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apf_full),
	    cmocka_unit_test(test_apf_missing_members),
	    cmocka_unit_test(test_apf_go_key_matching),
	    cmocka_unit_test(test_apf_errors),
	    cmocka_unit_test(test_apf_enum_names),
	    cmocka_unit_test(test_apf_load),
	    cmocka_unit_test(test_options_defaults_and_flags),
	    cmocka_unit_test(test_tls_precedence),
	    cmocka_unit_test(test_rewrite_create_sandbox),
	    cmocka_unit_test(test_rewrite_create_container),
	    cmocka_unit_test(test_rewrite_create_container_missing_levels),
	    cmocka_unit_test(test_rewrite_untouched),
	    cmocka_unit_test(test_rewrite_garbage),
	    cmocka_unit_test(test_parse_listen),
	    cmocka_unit_test(test_listen_socket),
	    cmocka_unit_test(test_sd_notify),
	    cmocka_unit_test_setup_teardown(test_relay_end_to_end, relay_setup, relay_teardown),
	    cmocka_unit_test_setup_teardown(test_relay_agent_missing, relay_setup, relay_teardown),
	    cmocka_unit_test(test_write_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
