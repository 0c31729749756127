/* Unit tests of `peerpodctl manifest` and its Kubernetes YAML reader: workload kinds, Lists,
 * malformed and hostile YAML, and generate/digest/check end to end with real keys and initdata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cli/cli.h"
#include "manifest/manifest.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

#define MEASUREMENT                                                                              \
	"bece7399a4da054a63a2e3fa1a47ff98c88e391d4379126fc4e75c677f25b6cd6bfd8ef609a8638049633a" \
	"c7e00e4ac1"

static const char COORD_TOML[] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n"
				 "\"aa.toml\" = '''\n'''\ncoordinator = \"coordinator:7777\"\n";
static const char WEB_TOML[] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n"
			       "\"aa.toml\" = '''\n[token_configs]\n'''\n";

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-cli-manifest-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rm_rf(f->dir), 0);
	free(f);
	return 0;
}

static char *path_in(const struct fixture *f, const char *name)
{
	char *p = str_printf("%s/%s", f->dir, name);
	assert_non_null(p);
	return p;
}

static char *write_tmp(const struct fixture *f, const char *name, const char *content)
{
	char *p = path_in(f, name);
	assert_int_equal(write_file_atomic(p, content, strlen(content), 0644), 0);
	return p;
}

static char *encode(const char *toml)
{
	char *enc = NULL;
	assert_int_equal(initdata_encode(toml, strlen(toml), &enc), 0);
	return enc;
}

static void sha256_hex(const char *s, char out[65])
{
	uint8_t md[32];
	SHA256((const uint8_t *)s, strlen(s), md);
	hex_encode_into(md, 32, out);
}

/* ---- YAML reader ---- */

static int read_buf(const char *yaml, struct cli_workload **w, size_t *n, char **msg)
{
	*w = NULL;
	*n = 0;
	*msg = NULL;
	return cli_workloads_from_yaml_buffer(yaml, strlen(yaml), "x.yaml", w, n, msg);
}

static void test_yaml_kinds(void **state)
{
	static const char yaml[] =
	    "# comment\n"
	    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n"
	    "  annotations:\n    io.katacontainers.config.hypervisor.cc_init_data: \"abc\"\n"
	    "spec:\n  runtimeClassName: kata-remote\n  containers: []\n"
	    "---\n"
	    "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 80}]}\n"
	    "---\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod,\n"
	    "  annotations: {peerpod.io/coordinator-role: coordinator}}\n"
	    "spec:\n  replicas: 2\n  template:\n    metadata:\n      labels: {app: web}\n"
	    "    spec: {runtimeClassName: other}\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n"
	    "spec: {template: {metadata: {annotations: {'peerpod.io/coordinator-role': "
	    "'coordinator'}}, spec: {}}}\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ds, namespace: kube-system}\n"
	    "spec: {template: {spec: {runtimeClassName: kata-remote}}}\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\nspec: {template: {}}\n"
	    "---\n"
	    "apiVersion: batch/v1\nkind: Job\nmetadata: {name: job}\n"
	    "spec: {template: {spec: {runtimeClassName: kata-remote}}}\n"
	    "---\n"
	    "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cron}\n"
	    "spec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n"
	    "        metadata:\n          annotations:\n"
	    "            io.katacontainers.config.hypervisor.cc_init_data: |\n"
	    "              line1\n              line2\n"
	    "        spec: {runtimeClassName: kata-remote}\n"
	    "---\n"
	    "apiVersion: batch.volcano.sh/v1alpha1\nkind: Job\nmetadata: {name: vc}\nspec: {}\n"
	    "---\n"
	    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: 'yes'}\n"
	    "...\n";
	struct cli_workload *w;
	size_t n;
	char *msg;
	assert_int_equal(read_buf(yaml, &w, &n, &msg), 0);
	assert_null(msg);
	assert_int_equal(n, 7);

	assert_string_equal(w[0].kind, "Pod");
	assert_string_equal(w[0].api_version, "v1");
	assert_string_equal(w[0].name, "p1");
	assert_string_equal(w[0].namespace, "default");
	assert_string_equal(w[0].runtime_class, "kata-remote");
	assert_string_equal(w[0].initdata, "abc");
	assert_null(w[0].role);

	assert_string_equal(w[1].kind, "Deployment");
	assert_string_equal(w[1].api_version, "apps/v1");
	assert_string_equal(w[1].namespace, "prod");
	assert_string_equal(w[1].runtime_class, "other");
	assert_null(w[1].initdata);
	/* the role may sit on the controller */
	assert_string_equal(w[1].role, "coordinator");

	assert_string_equal(w[2].kind, "StatefulSet");
	assert_null(w[2].runtime_class);
	assert_string_equal(w[2].role, "coordinator");

	assert_string_equal(w[3].kind, "DaemonSet");
	assert_string_equal(w[3].namespace, "kube-system");
	assert_string_equal(w[4].kind, "ReplicaSet");
	assert_string_equal(w[5].kind, "Job");
	assert_string_equal(w[5].api_version, "batch/v1");
	assert_string_equal(w[6].kind, "CronJob");
	assert_string_equal(w[6].name, "cron");
	assert_string_equal(w[6].initdata, "line1\nline2\n");
	assert_string_equal(w[6].runtime_class, "kata-remote");

	/* which workloads get a policy, and with which initdata */
	assert_string_equal(cli_workload_initdata(&w[0], NULL), "abc");
	assert_null(cli_workload_initdata(&w[1], NULL));
	assert_string_equal(cli_workload_initdata(&w[1], "other"), INITDATA_DEFAULT_TOML);
	assert_null(cli_workload_initdata(&w[2], NULL));
	assert_string_equal(cli_workload_initdata(&w[3], NULL), INITDATA_DEFAULT_TOML);
	cli_workloads_free(w, n);
}

static void test_yaml_list(void **state)
{
	static const char yaml[] =
	    "apiVersion: v1\nkind: List\nitems:\n"
	    "- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: ns1}\n  spec: {}\n"
	    "- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n"
	    "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: b}\n"
	    "  spec: {template: {spec: {runtimeClassName: kata-remote}}}\n"
	    "---\n"
	    "apiVersion: v1\nkind: PodList\nitems:\n"
	    "- {apiVersion: v1, kind: Pod, metadata: {name: c}}\n";
	struct cli_workload *w;
	size_t n;
	char *msg;
	assert_int_equal(read_buf(yaml, &w, &n, &msg), 0);
	assert_int_equal(n, 3);
	assert_string_equal(w[0].name, "a");
	assert_string_equal(w[0].namespace, "ns1");
	assert_string_equal(w[1].name, "b");
	assert_string_equal(w[1].kind, "Deployment");
	assert_string_equal(w[2].name, "c");
	cli_workloads_free(w, n);

	/* an empty file and a file of comments have no workloads */
	assert_int_equal(read_buf("", &w, &n, &msg), 0);
	assert_int_equal(n, 0);
	cli_workloads_free(w, n);
	assert_int_equal(read_buf("# nothing\n---\n", &w, &n, &msg), 0);
	assert_int_equal(n, 0);
	cli_workloads_free(w, n);
}

static void expect_error(const char *yaml, const char *want)
{
	struct cli_workload *w;
	size_t n;
	char *msg;
	int r = read_buf(yaml, &w, &n, &msg);
	if (r != -EINVAL || !msg || !strstr(msg, want))
		fail_msg("yaml %s: r=%d msg=%s, want %s", yaml, r, msg ? msg : "(null)", want);
	free(msg);
}

static void test_yaml_malformed(void **state)
{
	/* syntax error in the second document */
	expect_error("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: [\n",
		     "x.yaml: document 2: line ");
	expect_error("a: b\n  c: d\n", "x.yaml: document 1: line 2: invalid YAML");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n",
		     "document 1: line 1: Pod without metadata.name");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: {name: 12}\n",
		     "metadata.name must be a string");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\n",
		     "not a valid Kubernetes name");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: a.b}\n",
		     "not a valid namespace");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nkind: Pod\n",
		     "duplicate mapping key \"kind\"");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n"
		     "    io.katacontainers.config.hypervisor.cc_init_data: true\n",
		     "io.katacontainers.config.hypervisor.cc_init_data must be a string");
	expect_error("- a\n- b\n", "a Kubernetes object must be a mapping");
	expect_error("metadata: {name: a}\n", "kind is missing");
	expect_error("kind: Pod\nmetadata: {name: a}\n", "apiVersion is missing");
	expect_error("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {}\n",
		     "Deployment \"a\": spec.template is missing");
	expect_error("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: a}\n"
		     "spec: {jobTemplate: {spec: {}}}\n",
		     "spec.jobTemplate.spec.template is missing");
	expect_error("apiVersion: v1\nkind: List\nitems: [{kind: Pod, apiVersion: v1}]\n",
		     "items[0]: line 3: Pod without metadata.name");
	expect_error(
	    "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n",
	    "inside a List");
	expect_error(
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n"
	    "  annotations: {peerpod.io/coordinator-role: coordinator}\n"
	    "spec: {template: {metadata: {annotations: {peerpod.io/coordinator-role: other}}}}\n",
	    "differs between the object and its pod template");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata:\n  <<: {name: a}\n", "merge keys");
	expect_error("apiVersion: v1\nkind: Pod\nmetadata:\n  ? [a]\n  : b\n",
		     "mapping keys must be scalars");

	/* missing file */
	struct cli_workload *w = NULL;
	size_t n = 0;
	char *msg = NULL;
	assert_int_equal(cli_workloads_from_yaml("/nonexistent/x.yaml", &w, &n, &msg), -ENOENT);
	assert_non_null(strstr(msg, "/nonexistent/x.yaml: "));
	free(msg);
	msg = NULL;

	/* over the size limit, refused before parsing */
	size_t big = CLI_YAML_MAX_BYTES + 1;
	char *data = malloc(big);
	assert_non_null(data);
	memset(data, '#', big);
	assert_int_equal(cli_workloads_from_yaml_buffer(data, big, "big.yaml", &w, &n, &msg),
			 -EFBIG);
	assert_non_null(strstr(msg, "big.yaml"));
	free(msg);
	free(data);
}

static void test_yaml_aliases_refused(void **state)
{
	expect_error("apiVersion: v1\nkind: Pod\nmetadata: &m {name: a}\nspec:\n  x: *m\n",
		     "line 5: YAML aliases are not allowed");
	/* billion laughs: refused at the first alias, nothing expanded */
	expect_error("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		     "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
		     "aliases are not allowed");
	/* an anchor alone is harmless */
	struct cli_workload *w;
	size_t n;
	char *msg;
	assert_int_equal(
	    read_buf("apiVersion: v1\nkind: Pod\nmetadata: &m {name: a}\n", &w, &n, &msg), 0);
	assert_int_equal(n, 1);
	cli_workloads_free(w, n);

	/* deep nesting is bounded */
	char deep[1024];
	size_t k = 0;
	k += (size_t)snprintf(deep, sizeof(deep), "a: ");
	for (int i = 0; i < 300; i++)
		deep[k++] = '[';
	deep[k] = 0;
	expect_error(deep, "nested deeper than 128 levels");
}

/* ---- the command ---- */

struct run {
	int rc;
	char *out, *err;
};

static void run_done(struct run *r)
{
	free(r->out);
	free(r->err);
}

static struct run run_cli(int argc, char **argv)
{
	struct run r = {};
	size_t olen, elen;
	FILE *out = open_memstream(&r.out, &olen), *err = open_memstream(&r.err, &elen);
	assert_non_null(out);
	assert_non_null(err);
	r.rc = cli_manifest_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

#define RUN(...)                                        \
	({                                              \
		char *_argv[] = {__VA_ARGS__};          \
		run_cli((int)ELEMENTSOF(_argv), _argv); \
	})

enum pem_form { PEM_PRIVATE, PEM_SPKI, PEM_PKCS1 };

static char *save_pem(const struct fixture *f, const char *name, EVP_PKEY *k, enum pem_form form)
{
	char *p = path_in(f, name);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	if (form == PEM_PRIVATE) {
		assert_true(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL));
	} else if (form == PEM_SPKI) {
		assert_true(PEM_write_PUBKEY(fp, k));
	} else {
		/* "RSA PUBLIC KEY" (PKCS#1), as the seed-share keys are listed in manifests */
		unsigned char *der = NULL;
		int len = i2d_PublicKey(k, &der);
		assert_true(len > 0);
		char *b64 = NULL;
		assert_int_equal(userdata_base64_encode(der, (size_t)len, &b64), 0);
		OPENSSL_free(der);
		fprintf(fp, "-----BEGIN RSA PUBLIC KEY-----\n");
		for (size_t i = 0; i < strlen(b64); i += 64)
			fprintf(fp, "%.64s\n", b64 + i);
		fprintf(fp, "-----END RSA PUBLIC KEY-----\n");
		free(b64);
	}
	assert_int_equal(fclose(fp), 0);
	return p;
}

static char *der_of(EVP_PKEY *k, bool pkcs1, size_t *len)
{
	unsigned char *der = NULL;
	int n = pkcs1 ? i2d_PublicKey(k, &der) : i2d_PUBKEY(k, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	return (char *)der;
}

static char *workloads_yaml(const struct fixture *f, const char *name, const char *web_role)
{
	_cleanup_free_ char *coord = encode(COORD_TOML), *web = encode(WEB_TOML);
	_cleanup_free_ char *yaml = str_printf(
	    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: coordinator}\n"
	    "spec:\n  template:\n    metadata:\n      annotations:\n"
	    "        " CLI_ROLE_ANNOTATION ": coordinator\n"
	    "        " CLI_INITDATA_ANNOTATION ": %s\n"
	    "    spec: {runtimeClassName: kata-remote}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Service\nmetadata: {name: coordinator}\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
	    "spec:\n  template:\n    metadata:\n      annotations:\n"
	    "        " CLI_INITDATA_ANNOTATION ": %s\n%s%s%s"
	    "    spec: {runtimeClassName: kata-remote}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec: {runtimeClassName: "
	    "kata-remote}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: runc}\nspec: {}\n",
	    coord, web, web_role ? "        " CLI_ROLE_ANNOTATION ": \"" : "",
	    web_role ? web_role : "", web_role ? "\"\n" : "");
	assert_non_null(yaml);
	return write_tmp(f, name, yaml);
}

static void check_sans(const struct manifest_policy *p, const char *name, const char *ns)
{
	assert_int_equal(p->n_sans, 4);
	char buf[256];
	assert_string_equal(p->sans[0], name);
	snprintf(buf, sizeof(buf), "%s.%s", name, ns);
	assert_string_equal(p->sans[1], buf);
	snprintf(buf, sizeof(buf), "%s.%s.svc", name, ns);
	assert_string_equal(p->sans[2], buf);
	snprintf(buf, sizeof(buf), "%s.%s.svc.cluster.local", name, ns);
	assert_string_equal(p->sans[3], buf);
}

static void test_generate(void **state)
{
	struct fixture *f = *state;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_EC_gen("P-256"), *ec2 = EVP_EC_gen("P-384"),
					   *rsa = EVP_RSA_gen(2048);
	assert_non_null(ec);
	assert_non_null(ec2);
	assert_non_null(rsa);
	_cleanup_free_ char *ec_pem = save_pem(f, "owner.pem", ec, PEM_PRIVATE),
			    *ec2_pem = save_pem(f, "owner2.pub", ec2, PEM_SPKI),
			    *rsa_pem = save_pem(f, "share.pub", rsa, PEM_PKCS1),
			    *rsa_priv = save_pem(f, "share.key", rsa, PEM_PRIVATE),
			    *yaml = workloads_yaml(f, "app.yaml", NULL),
			    *out = path_in(f, "manifest.json"), *init = path_in(f, "initdata.txt");

	struct run r = RUN("manifest", "generate", "-o", out, "--initdata-out", init,
			   "--snp-measurement", MEASUREMENT, "--workload-owner-key", ec_pem,
			   "--owner-key", ec2_pem, "--seedshare-owner-key", rsa_pem, yaml);
	if (r.rc != 0)
		fail_msg("rc %d: %s", r.rc, r.err);
	char coord_digest[65], web_digest[65];
	sha256_hex(COORD_TOML, coord_digest);
	sha256_hex(WEB_TOML, web_digest);
	/* the digests are shown once the manifest is in a file */
	assert_non_null(strstr(r.out, coord_digest));
	assert_non_null(strstr(r.out, INITDATA_DEFAULT_SHA256 "  default/Pod/plain"));
	run_done(&r);

	_cleanup_free_ char *json = NULL;
	size_t len;
	assert_int_equal(read_file_bounded(out, MANIFEST_MAX_BYTES, &json, &len), 0);
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	char *msg = NULL;
	assert_int_equal(manifest_parse(json, len, &m, &msg), 0);
	assert_int_equal(m->n_policies, 3);

	const struct manifest_policy *p = manifest_policy_find_hex(m, coord_digest);
	assert_non_null(p);
	assert_true(p->coordinator);
	check_sans(p, "coordinator", "default");
	assert_string_equal(p->workload_secret_id, "apps/v1/StatefulSet/default/coordinator");

	p = manifest_policy_find_hex(m, web_digest);
	assert_non_null(p);
	assert_false(p->coordinator);
	check_sans(p, "web", "shop");
	assert_string_equal(p->workload_secret_id, "apps/v1/Deployment/shop/web");

	/* kata-remote pod without annotation: the default initdata of WIRE 5.4 */
	p = manifest_policy_find_hex(m, INITDATA_DEFAULT_SHA256);
	assert_non_null(p);
	assert_string_equal(p->workload_secret_id, "v1/Pod/default/plain");
	check_sans(p, "plain", "default");

	/* reference values of --snp-measurement: Milan, TCB 0, SMT allowed */
	assert_int_equal(m->snp.n, 1);
	assert_int_equal(m->snp.items[0].product, ATTEST_SNP_MILAN);
	uint8_t meas[48];
	assert_int_equal(manifest_hex_decode(MEASUREMENT, meas, 48), 0);
	assert_memory_equal(m->snp.items[0].measurement, meas, 48);
	assert_int_equal(m->snp.items[0].min_tcb.microcode, 0);
	assert_int_equal(m->n_tdx, 0);
	_cleanup_(json_decrefp) json_t *root = json_loads(json, 0, NULL);
	assert_true(json_is_true(json_object_get(
	    json_object_get(
		json_array_get(json_object_get(json_object_get(root, "ReferenceValues"), "snp"), 0),
		"GuestPolicy"),
	    "SMT")));

	/* owner keys, whether given public or private */
	size_t dl;
	_cleanup_free_ char *d1 = der_of(ec, false, &dl);
	assert_true(manifest_is_workload_owner(m, (uint8_t *)d1, dl));
	_cleanup_free_ char *d2 = der_of(ec2, false, &dl);
	assert_true(manifest_is_workload_owner(m, (uint8_t *)d2, dl));
	_cleanup_free_ char *d3 = der_of(rsa, true, &dl);
	assert_true(manifest_is_seedshare_owner(m, (uint8_t *)d3, dl));
	assert_int_equal(m->n_workload_owners, 2);
	assert_int_equal(m->n_seedshare_owners, 1);
	/* no private key material in the output */
	assert_null(strstr(json, "PRIVATE"));

	/* --initdata-out: the documents to send with SetManifest, one per line */
	_cleanup_free_ char *lines = NULL;
	assert_int_equal(read_file_bounded(init, 1 << 20, &lines, &len), 0);
	_cleanup_strv_free_ char **docs = NULL;
	assert_int_equal(strv_split(lines, "\n", true, &docs), 0);
	assert_int_equal(strv_length(docs), 3);
	assert_int_equal(manifest_check_initdata(m, docs, 3, NULL, &msg), 0);

	/* the same inputs give the same bytes */
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, yaml,
		"--workload-owner-key", ec_pem, "--owner-key", ec2_pem, "--seedshare-key",
		rsa_priv);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, json);
	run_done(&r);

	/* check: parse, then the YAML's initdata against the manifest */
	r = RUN("manifest", "check", "-m", out, yaml);
	if (r.rc != 0)
		fail_msg("check: %s", r.err);
	assert_non_null(strstr(r.out, coord_digest));
	assert_non_null(strstr(r.out, "coordinator  apps/v1/StatefulSet/default/coordinator"));
	assert_non_null(strstr(r.out, "initdata of 3 workloads matches"));
	run_done(&r);
	r = RUN("manifest", "check", "-m", out);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, m->sha256_hex));
	run_done(&r);
	/* YAML that lacks a workload of the manifest */
	_cleanup_free_ char *coord_enc = encode(COORD_TOML);
	_cleanup_free_ char *partial_yaml = str_printf(
	    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  annotations:\n"
	    "    " CLI_ROLE_ANNOTATION ": coordinator\n    " CLI_INITDATA_ANNOTATION ": %s\n",
	    coord_enc);
	_cleanup_free_ char *partial = write_tmp(f, "partial.yaml", partial_yaml);
	r = RUN("manifest", "check", "-m", out, partial);
	assert_int_equal(r.rc, 1);
	run_done(&r);
	/* a role that differs from the manifest's */
	_cleanup_free_ char *swapped = workloads_yaml(f, "swapped.yaml", "coordinator");
	r = RUN("manifest", "check", "-m", out, swapped);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "shop/Deployment/web is a coordinator in the YAML"));
	run_done(&r);
}

static void test_generate_reference_file(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *yaml = workloads_yaml(f, "app.yaml", NULL);
	_cleanup_free_ char *rv = write_tmp(
	    f, "rv.json",
	    "{\"snp\": [{\"ProductName\": \"Genoa\", \"TrustedMeasurement\": \"" MEASUREMENT "\", "
	    "\"MinimumTCB\": {\"BootloaderVersion\": 1, \"TEEVersion\": 0, \"SNPVersion\": 2, "
	    "\"MicrocodeVersion\": 3}, \"GuestPolicy\": {}, \"PlatformInfo\": {}}]}");
	struct run r = RUN("manifest", "generate", "--reference-values", rv, yaml);
	if (r.rc != 0)
		fail_msg("rc %d: %s", r.rc, r.err);
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	char *msg = NULL;
	assert_int_equal(manifest_parse(r.out, strlen(r.out), &m, &msg), 0);
	assert_int_equal(m->snp.items[0].product, ATTEST_SNP_GENOA);
	assert_int_equal(m->snp.items[0].min_tcb.microcode, 3);
	/* no owners given: an immutable manifest without recovery */
	assert_int_equal(m->n_workload_owners, 0);
	assert_int_equal(m->n_seedshare_owners, 0);
	run_done(&r);

	/* --snp-min-tcb and a Turin product (FMC) */
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, "--snp-product", "Turin",
		"--snp-min-tcb", "1,2,3,4,5", yaml);
	if (r.rc != 0)
		fail_msg("rc %d: %s", r.rc, r.err);
	_cleanup_(manifest_freep) struct manifest *m2 = NULL;
	assert_int_equal(manifest_parse(r.out, strlen(r.out), &m2, &msg), 0);
	assert_int_equal(m2->snp.items[0].product, ATTEST_SNP_TURIN);
	assert_int_equal(m2->snp.items[0].min_tcb.bootloader, 1);
	assert_int_equal(m2->snp.items[0].min_tcb.microcode, 4);
	assert_int_equal(m2->snp.items[0].min_tcb.fmc, 5);
	run_done(&r);
}

static void test_generate_refusals(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *yaml = workloads_yaml(f, "app.yaml", NULL);
	_cleanup_free_ char *enc = encode("algorithm = \"sha256\"\nversion = \"0.1.0\"\n");

	/* two workloads with the same initdata */
	_cleanup_free_ char *dup_yaml = str_printf(
	    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one\n  annotations:\n"
	    "    " CLI_INITDATA_ANNOTATION ": %s\n"
	    "---\n"
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: two}\nspec:\n  template:\n"
	    "    metadata: {annotations: {" CLI_INITDATA_ANNOTATION ": \"%s\"}}\n",
	    enc, enc);
	_cleanup_free_ char *dup = write_tmp(f, "dup.yaml", dup_yaml);
	struct run r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, yaml, dup);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "default/Pod/one"));
	assert_non_null(strstr(r.err, "default/Deployment/two"));
	assert_non_null(strstr(r.err, "same initdata"));
	assert_string_equal(r.out, "");
	run_done(&r);

	/* two kata-remote pods without annotation share the default initdata */
	_cleanup_free_ char *two_plain = write_tmp(
	    f, "plain2.yaml",
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: other}\nspec: {runtimeClassName: "
	    "kata-remote}\n");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, yaml, two_plain);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "default/Pod/plain"));
	assert_non_null(strstr(r.err, "default/Pod/other"));
	run_done(&r);

	/* a role other than coordinator */
	_cleanup_free_ char *bad_role = workloads_yaml(f, "role.yaml", "leader");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, bad_role);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "shop/Deployment/web: " CLI_ROLE_ANNOTATION));
	assert_non_null(strstr(r.err, "leader"));
	run_done(&r);

	/* invalid initdata annotation */
	_cleanup_free_ char *bad_init =
	    write_tmp(f, "badinit.yaml",
		      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  annotations:\n"
		      "    " CLI_INITDATA_ANNOTATION ": \"not initdata\"\n");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, bad_init);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "badinit.yaml: default/Pod/bad: " CLI_INITDATA_ANNOTATION));
	run_done(&r);

	/* no coordinator: the manifest's own validation speaks */
	_cleanup_free_ char *no_coord =
	    write_tmp(f, "nocoord.yaml",
		      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {runtimeClassName: "
		      "kata-remote}\n");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, no_coord);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "oordinator"));
	run_done(&r);

	/* no peer pod at all */
	_cleanup_free_ char *none =
	    write_tmp(f, "none.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, none);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "no workload"));
	run_done(&r);

	/* keys of the wrong kind */
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_RSA_gen(1024), *p521 = EVP_EC_gen("P-521");
	_cleanup_free_ char *rsa_pem = save_pem(f, "small.pem", rsa, PEM_SPKI),
			    *p521_pem = save_pem(f, "p521.pem", p521, PEM_SPKI),
			    *garbage = write_tmp(f, "garbage.pem", "hello\n");
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, "--workload-owner-key",
		rsa_pem, yaml);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "EC P-256 or P-384"));
	run_done(&r);
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, "--workload-owner-key",
		p521_pem, yaml);
	assert_int_equal(r.rc, 1);
	run_done(&r);
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, "--seedshare-owner-key",
		rsa_pem, yaml);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "RSA of 2048"));
	run_done(&r);
	r = RUN("manifest", "generate", "--snp-measurement", MEASUREMENT, "--seedshare-owner-key",
		garbage, yaml);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "garbage.pem: no unencrypted PEM"));
	run_done(&r);
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *yaml = workloads_yaml(f, "app.yaml", NULL);
	struct run r;
#define USAGE(...)                                                             \
	do {                                                                   \
		r = RUN(__VA_ARGS__);                                          \
		if (r.rc != CLI_EXIT_USAGE)                                    \
			fail_msg("rc %d (out %s err %s)", r.rc, r.out, r.err); \
		assert_non_null(strstr(r.err, "error: "));                     \
		run_done(&r);                                                  \
	} while (0)
	USAGE("manifest", "generate", yaml);
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT, "--reference-values", "x",
	      yaml);
	USAGE("manifest", "generate", "--snp-measurement", "abcd", yaml);
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT, "--snp-product", "Naples",
	      yaml);
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT, "--snp-min-tcb", "1,2,3",
	      yaml);
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT, "--snp-min-tcb",
	      "1,2,3,256", yaml);
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT, "--snp-min-tcb",
	      "1,2,3,4,5", yaml); /* FMC only for Turin */
	USAGE("manifest", "generate", "--snp-measurement", MEASUREMENT);
	USAGE("manifest", "generate", "--bogus", yaml);
	USAGE("manifest", "generate", "--snp-measurement");
	USAGE("manifest", "frobnicate", yaml);
	USAGE("manifest", "digest", "-o", "x", yaml);
	USAGE("manifest", "digest", "-m", "x", yaml);
	USAGE("manifest", "check", yaml);
#undef USAGE
	r = RUN("manifest");
	assert_int_equal(r.rc, CLI_EXIT_USAGE);
	assert_non_null(strstr(r.err, "usage: "));
	run_done(&r);
	r = RUN("manifest", "--help");
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "manifest generate"));
	run_done(&r);
}

static void test_digest(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *yaml = workloads_yaml(f, "app.yaml", NULL);
	struct run r = RUN("manifest", "digest", yaml);
	assert_int_equal(r.rc, 0);
	char coord_digest[65], web_digest[65];
	sha256_hex(COORD_TOML, coord_digest);
	sha256_hex(WEB_TOML, web_digest);
	_cleanup_free_ char *want = str_printf(
	    "%s  default/StatefulSet/coordinator\n%s  shop/Deployment/web\n"
	    "adb48cc14fea9403d3d51f3b5f5068fd4d80445a14e94f1b3d5dbabaad66478d  default/Pod/plain\n",
	    coord_digest, web_digest);
	assert_string_equal(r.out, want);
	run_done(&r);

	/* another runtime class: the annotated workloads stay, the plain kata-remote pod goes */
	r = RUN("manifest", "digest", "--runtime-class", "kata-qemu", yaml);
	assert_int_equal(r.rc, 0);
	assert_null(strstr(r.out, "plain"));
	assert_non_null(strstr(r.out, "shop/Deployment/web"));
	run_done(&r);

	/* plain TOML in the annotation is accepted too and has the same digest */
	_cleanup_free_ char *toml_yaml =
	    write_tmp(f, "toml.yaml",
		      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n"
		      "    " CLI_INITDATA_ANNOTATION ": |-\n"
		      "      algorithm = \"sha256\"\n      version = \"0.1.0\"\n\n      [data]\n"
		      "      \"aa.toml\" = '''\n      '''\n");
	r = RUN("manifest", "digest", toml_yaml);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, INITDATA_DEFAULT_SHA256 "  default/Pod/t\n");
	run_done(&r);

	/* malformed YAML: the file and document are named */
	_cleanup_free_ char *bad =
	    write_tmp(f, "bad.yaml", "apiVersion: v1\nkind: Service\n---\n: : :\n  - [\n");
	r = RUN("manifest", "digest", bad);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "bad.yaml: document 2: "));
	run_done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_yaml_kinds),
	    cmocka_unit_test(test_yaml_list),
	    cmocka_unit_test(test_yaml_malformed),
	    cmocka_unit_test(test_yaml_aliases_refused),
	    cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_generate_reference_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_generate_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_digest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
