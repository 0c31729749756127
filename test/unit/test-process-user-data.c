/* Unit tests for process-user-data provision-files, end to end in a temp dir with local IMDS
 * stand-ins (WIRE.md 5.2 to 5.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "http-test-server.h"
#include "podvm/userdata/userdata-prog.h"
#include "userdata/userdata.h"

struct fixture {
	char dir[64];
	char *cidata;
	char *root;
	char *dmi;
	struct pud_config cfg;
};

static char endpoint[64];

static const char *fake_getenv(const char *name)
{
	if (str_eq(name, "AZURE_IMDS_ENDPOINT") ||
	    str_eq(name, "AWS_EC2_METADATA_SERVICE_ENDPOINT"))
		return endpoint[0] ? endpoint : NULL;
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	str_copy(f->dir, sizeof(f->dir), "/tmp/test-pud-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->cidata = str_printf("%s/cidata", f->dir);
	f->root = str_printf("%s/root", f->dir);
	f->dmi = str_printf("%s/sys_vendor", f->dir);
	assert_int_equal(mkdir(f->cidata, 0755), 0);
	f->cfg = (struct pud_config){
	    .fetch_timeout_ns = 60 * NSEC_PER_SEC,
	    .retry_interval_ns = 10 * NSEC_PER_MSEC,
	    .provider = PUD_PROVIDER_CIDATA,
	    .cidata_dir = f->cidata,
	    .output_root = f->root,
	    .dmi_sys_vendor_path = f->dmi,
	    .tpm_device = NULL,
	};
	umask(022);
	endpoint[0] = 0;
	config_set_getenv(fake_getenv);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	free(f->cidata);
	free(f->root);
	free(f->dmi);
	free(f);
	config_set_getenv(NULL);
	return 0;
}

static void set_endpoint(const struct test_server *s)
{
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u/", s->port);
}

/* Read an output file; NULL if absent. Checks its mode. */
static char *read_out(struct fixture *f, const char *path, size_t *ret_len)
{
	_cleanup_free_ char *full = pud_output_path(f->root, path);
	char *s = NULL;
	size_t len = 0;
	if (read_file_bounded(full, 1 << 20, &s, &len) < 0)
		return NULL;
	struct stat st;
	assert_int_equal(stat(full, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	if (ret_len)
		*ret_len = len;
	return s;
}

static void assert_out(struct fixture *f, const char *path, const char *want)
{
	_cleanup_free_ char *got = read_out(f, path, NULL);
	if (!got)
		fail_msg("%s was not written", path);
	assert_string_equal(got, want);
}

static void assert_absent(struct fixture *f, const char *path)
{
	_cleanup_free_ char *full = pud_output_path(f->root, path);
	assert_int_equal(access(full, F_OK), -1);
}

static const char *basic_doc = "#cloud-config\n"
			       "\n"
			       "write_files:\n"
			       "  - path: /run/peerpod/apf.json\n"
			       "    content: |\n"
			       "      {\"pod-network\": {}}\n"
			       "  - path: /run/peerpod/scratch-space.marker\n";

static const char *custom_toml = "algorithm = \"sha384\"\n"
				 "version = \"0.1.0\"\n"
				 "\n"
				 "[data]\n"
				 "\"aa.toml\" = '''\n"
				 "[token_configs]\n"
				 "'''\n"
				 "\"cdh.toml\" = \"socket = 'unix:///run/cdh.sock'\\n\"\n"
				 "\"policy.rego\" = \"\"\"\n"
				 "package agent_policy\n"
				 "\"\"\"\n"
				 "\"other.txt\" = 'ignored'\n";

static void test_cidata_end_to_end(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *enc = NULL;
	assert_int_equal(initdata_encode(custom_toml, strlen(custom_toml), &enc), 0);
	/* Split the base64 over two lines as a wrapping encoder would. */
	_cleanup_free_ char *doc =
	    str_printf("#cloud-config\n\nwrite_files:\n"
		       "  - path: /run/peerpod/apf.json\n    content: |\n      {\"a\": 1}\n"
		       "  - path: /run/peerpod/aa.toml\n    content: from user data\n"
		       "  - path: /etc/passwd\n    content: 'root::0:0::/:/bin/sh'\n"
		       "  - path: /run/peerpod/../../etc/shadow\n    content: x\n"
		       "  - path: /run/peerpod/initdata\n    content: |\n      %.10s\n      %s\n"
		       "  - path: /run/peerpod/scratch-space.marker\n",
		       enc, enc + 10);
	_cleanup_free_ char *ud = str_printf("%s/user-data", f->cidata);
	assert_int_equal(write_file_atomic(ud, doc, strlen(doc), 0644), 0);

	assert_int_equal(pud_provision_files(&f->cfg), 0);

	assert_out(f, "/run/peerpod/apf.json", "{\"a\": 1}\n");
	assert_out(f, "/run/peerpod/scratch-space.marker", "");
	/* initdata entries overwrite the user data file of the same name. */
	assert_out(f, "/run/peerpod/aa.toml", "[token_configs]\n");
	assert_out(f, "/run/peerpod/cdh.toml", "socket = 'unix:///run/cdh.sock'\n");
	assert_out(f, "/run/peerpod/policy.rego", "package agent_policy\n");
	assert_absent(f, "/run/peerpod/other.txt");
	assert_absent(f, "/etc/passwd");
	assert_absent(f, "/etc/shadow");
	assert_absent(f, "/etc");

	/* The digest is sha384 of the TOML bytes, lowercase hex, no newline. */
	uint8_t md[48];
	unsigned n;
	assert_true(EVP_Digest(custom_toml, strlen(custom_toml), md, &n, EVP_sha384(), NULL));
	_cleanup_free_ char *want = hex_encode(md, n);
	assert_out(f, PUD_PATH_INITDATA_DIGEST, want);

	_cleanup_free_ char *dir = pud_output_path(f->root, "/run/peerpod");
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

static void test_default_initdata_without_source(void **state)
{
	struct fixture *f = *state;
	f->cfg.provider = PUD_PROVIDER_NONE;
	_cleanup_free_ char *tpm = str_printf("%s/no-tpm", f->dir);
	f->cfg.tpm_device = tpm;
	assert_int_equal(pud_provision_files(&f->cfg), 0);
	assert_out(f, PUD_PATH_INITDATA_DIGEST, INITDATA_DEFAULT_SHA256);
	assert_out(f, "/run/peerpod/aa.toml", "");
	assert_absent(f, "/run/peerpod/apf.json");
	/* The written default decodes to the 66-byte document. */
	_cleanup_free_ char *enc = read_out(f, USERDATA_PATH_INITDATA, NULL);
	assert_non_null(enc);
	_cleanup_free_ char *toml = NULL, *msg = NULL;
	size_t len;
	assert_int_equal(initdata_decode(enc, strlen(enc), &toml, &len, &msg), 0);
	assert_string_equal(toml, INITDATA_DEFAULT_TOML);
}

static void test_bad_initdata_fails(void **state)
{
	struct fixture *f = *state;
	f->cfg.provider = PUD_PROVIDER_NONE;
	const char *bad = "algorithm = \"md5\"\nversion = \"0.1.0\"\n";
	_cleanup_free_ char *enc = NULL;
	assert_int_equal(initdata_encode(bad, strlen(bad), &enc), 0);
	_cleanup_free_ char *p = pud_output_path(f->root, USERDATA_PATH_INITDATA);
	assert_int_equal(mkdir_p(f->root, 0755), 0);
	_cleanup_free_ char *d = pud_output_path(f->root, "/run/peerpod");
	assert_int_equal(mkdir_p(d, 0755), 0);
	assert_int_equal(write_file_atomic(p, enc, strlen(enc), 0644), 0);
	assert_int_equal(pud_provision_files(&f->cfg), -ENOTSUP);
	assert_absent(f, PUD_PATH_INITDATA_DIGEST);

	assert_int_equal(write_file_atomic(p, "%%%", 3, 0644), 0);
	assert_int_equal(pud_process_initdata(&f->cfg), -EINVAL);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	f->cfg.fetch_timeout_ns = 50 * NSEC_PER_MSEC;
	/* No user-data file: every attempt fails. */
	assert_int_equal(pud_provision_files(&f->cfg), -ETIMEDOUT);
	assert_absent(f, PUD_PATH_INITDATA_DIGEST);

	/* A document that never parses also times out. */
	_cleanup_free_ char *ud = str_printf("%s/user-data", f->cidata);
	assert_int_equal(write_file_atomic(ud, "runcmd: [x]\n", 12, 0644), 0);
	assert_int_equal(pud_provision_files(&f->cfg), -ETIMEDOUT);
}

static void test_aws_imdsv2(void **state)
{
	struct fixture *f = *state;
	struct ts_response resp[] = {
	    {200, NULL, "TOKEN-abc", 0},
	    {200, NULL, basic_doc, 0},
	};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 2), 0);
	set_endpoint(&s);
	f->cfg.provider = PUD_PROVIDER_AWS;
	assert_int_equal(pud_provision_files(&f->cfg), 0);
	assert_out(f, "/run/peerpod/apf.json", "{\"pod-network\": {}}\n");

	assert_int_equal(ts_n_requests(&s), 2);
	char v[64];
	assert_string_equal(s.requests[0].method, "PUT");
	assert_string_equal(s.requests[0].target, "/latest/api/token");
	assert_true(ts_request_header(&s.requests[0], "X-aws-ec2-metadata-token-ttl-seconds", v,
				      sizeof(v)));
	assert_string_equal(v, "60");
	assert_string_equal(s.requests[1].method, "GET");
	assert_string_equal(s.requests[1].target, "/latest/user-data");
	assert_true(ts_request_header(&s.requests[1], "X-aws-ec2-metadata-token", v, sizeof(v)));
	assert_string_equal(v, "TOKEN-abc");
	ts_stop(&s);
}

static void test_aws_imdsv1_fallback(void **state)
{
	struct fixture *f = *state;
	struct ts_response resp[] = {
	    {403, NULL, "forbidden", 0},
	    {200, NULL, basic_doc, 0},
	};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 2), 0);
	set_endpoint(&s);
	/* Auto detection through the DMI vendor file. */
	assert_int_equal(write_file_atomic(f->dmi, "Amazon EC2\n", 11, 0644), 0);
	assert_true(pud_dmi_vendor_is(f->dmi, "Amazon EC2"));
	assert_false(pud_dmi_vendor_is(f->dmi, "Alibaba Cloud"));
	f->cfg.provider = PUD_PROVIDER_AWS;
	assert_int_equal(pud_provision_files(&f->cfg), 0);
	assert_out(f, "/run/peerpod/apf.json", "{\"pod-network\": {}}\n");
	assert_int_equal(ts_n_requests(&s), 2);
	char v[64];
	assert_string_equal(s.requests[1].target, "/latest/user-data");
	assert_false(ts_request_header(&s.requests[1], "X-aws-ec2-metadata-token", v, sizeof(v)));
	ts_stop(&s);
}

static void test_azure_base64_retry(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *good = NULL, *bad = NULL;
	assert_int_equal(userdata_base64_encode(basic_doc, strlen(basic_doc), &good), 0);
	const char *malformed = "write_files:\n  - path: /run/peerpod/apf.json\n    mode: 0600\n";
	assert_int_equal(userdata_base64_encode(malformed, strlen(malformed), &bad), 0);
	struct ts_response resp[] = {
	    {500, NULL, "try later", 0}, /* a failed fetch */
	    {200, NULL, bad, 0},         /* a document that does not parse */
	    {200, NULL, good, 0},
	};
	struct test_server s;
	assert_int_equal(ts_start(&s, resp, 3), 0);
	set_endpoint(&s);
	f->cfg.provider = PUD_PROVIDER_AZURE;
	assert_int_equal(pud_provision_files(&f->cfg), 0);
	assert_out(f, "/run/peerpod/apf.json", "{\"pod-network\": {}}\n");
	assert_int_equal(ts_n_requests(&s), 3);
	char v[64];
	assert_string_equal(s.requests[2].method, "GET");
	assert_string_equal(
	    s.requests[2].target,
	    "/metadata/instance/compute/userData?api-version=2021-01-01&format=text");
	assert_true(ts_request_header(&s.requests[2], "Metadata", v, sizeof(v)));
	assert_string_equal(v, "true");
	ts_stop(&s);
}

static void test_detect(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *ud = str_printf("%s/user-data", f->cidata);
	assert_int_equal(write_file_atomic(ud, basic_doc, strlen(basic_doc), 0644), 0);
	assert_int_equal(pud_detect_provider(&f->cfg), PUD_PROVIDER_CIDATA);
	f->cfg.provider = PUD_PROVIDER_AUTO;
	assert_int_equal(pud_provision_files(&f->cfg), 0);
	assert_out(f, "/run/peerpod/apf.json", "{\"pod-network\": {}}\n");
}

static void test_allow_list(void **state)
{
	assert_true(pud_path_allowed("/run/peerpod/aa.toml"));
	assert_true(pud_path_allowed("/run/peerpod/cdh.toml"));
	assert_true(pud_path_allowed("/run/peerpod/apf.json"));
	assert_true(pud_path_allowed("/run/peerpod/auth.json"));
	assert_true(pud_path_allowed("/run/peerpod/initdata"));
	assert_true(pud_path_allowed("/run/peerpod/scratch-space.marker"));
	assert_false(pud_path_allowed("/run/peerpod/policy.rego"));
	assert_false(pud_path_allowed("/run/peerpod/initdata.digest"));
	assert_false(pud_path_allowed("/run/peerpod//apf.json"));
	assert_false(pud_path_allowed("run/peerpod/apf.json"));
	assert_false(pud_path_allowed("/etc/passwd"));
	_cleanup_free_ char *a = pud_output_path("/", "/run/x");
	_cleanup_free_ char *b = pud_output_path("/tmp/r/", "/run/x");
	assert_string_equal(a, "/run/x");
	assert_string_equal(b, "/tmp/r/run/x");
}

static void test_options(void **state)
{
	char *argv[] = {"-t", "7", "--provider=aws", "--retry-interval", "1s", NULL};
	struct pud_options o = {0};
	const struct config_table tables[] = {
	    {pud_option_table, pud_n_options, &o},
	    {pud_hidden_option_table, pud_n_hidden_options, &o},
	};
	_cleanup_free_ char *msg = NULL;
	int argind;
	assert_int_equal(config_parse(tables, 2, 5, argv, &argind, &msg), 0);
	struct pud_config c;
	assert_int_equal(pud_config_from_options(&o, &c, &msg), 0);
	assert_int_equal(c.fetch_timeout_ns, 7 * NSEC_PER_SEC);
	assert_int_equal(c.retry_interval_ns, NSEC_PER_SEC);
	assert_int_equal(c.provider, PUD_PROVIDER_AWS);
	assert_string_equal(c.cidata_dir, "/media/cidata");
	assert_string_equal(c.output_root, "/");
	config_free(pud_option_table, pud_n_options, &o);
	config_free(pud_hidden_option_table, pud_n_hidden_options, &o);

	char *argv2[] = {"--user-data-fetch-timeout", "3m", NULL};
	struct pud_options o2 = {0};
	const struct config_table t2[] = {{pud_option_table, pud_n_options, &o2},
					  {pud_hidden_option_table, pud_n_hidden_options, &o2}};
	assert_int_equal(config_parse(t2, 2, 2, argv2, &argind, &msg), 0);
	assert_int_equal(pud_config_from_options(&o2, &c, &msg), 0);
	assert_int_equal(c.fetch_timeout_ns, 180 * NSEC_PER_SEC);
	assert_int_equal(c.retry_interval_ns, 5 * NSEC_PER_SEC);
	assert_int_equal(c.provider, PUD_PROVIDER_AUTO);
	config_free(pud_option_table, pud_n_options, &o2);
	config_free(pud_hidden_option_table, pud_n_hidden_options, &o2);

	char *argv3[] = {"--provider", "gcp", NULL};
	struct pud_options o3 = {0};
	const struct config_table t3[] = {{pud_option_table, pud_n_options, &o3}};
	assert_int_equal(config_parse(t3, 1, 2, argv3, &argind, &msg), -EINVAL);
	config_free(pud_option_table, pud_n_options, &o3);
	int64_t ns;
	assert_int_equal(pud_parse_timeout("0", &ns), -EINVAL);
	assert_int_equal(pud_parse_timeout("-5s", &ns), -EINVAL);
	assert_int_equal(pud_parse_timeout("soon", &ns), -EINVAL);
}

static void test_tpm_command(void **state)
{
	uint8_t digest[32];
	for (int i = 0; i < 32; i++)
		digest[i] = (uint8_t)i;
	uint8_t cmd[PUD_TPM_EXTEND_CMD_SIZE];
	pud_tpm_pcr_extend_command(8, digest, cmd);
	static const uint8_t head[] = {
	    0x80, 0x02, 0x00, 0x00, 0x00, 0x41, /* TPM_ST_SESSIONS, size 65 */
	    0x00, 0x00, 0x01, 0x82,             /* TPM_CC_PCR_Extend */
	    0x00, 0x00, 0x00, 0x08,             /* PCR 8 */
	    0x00, 0x00, 0x00, 0x09,             /* auth size */
	    0x40, 0x00, 0x00, 0x09,             /* TPM_RS_PW */
	    0x00, 0x00, 0x00, 0x00, 0x00,       /* nonce, attributes, hmac */
	    0x00, 0x00, 0x00, 0x01,             /* one digest */
	    0x00, 0x0b,                         /* sha256 */
	};
	assert_int_equal(sizeof(head) + 32, PUD_TPM_EXTEND_CMD_SIZE);
	assert_memory_equal(cmd, head, sizeof(head));
	assert_memory_equal(cmd + sizeof(head), digest, 32);

	/* Over a socket pair standing in for the device: success, then a TPM error code. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	static const uint8_t ok[] = {0x80, 0x02, 0, 0, 0, 0x13, 0, 0, 0, 0,
				     0,    0,    0, 0, 0, 0,    0, 0, 0};
	assert_int_equal(write(sv[1], ok, sizeof(ok)), (ssize_t)sizeof(ok));
	assert_int_equal(pud_tpm_pcr_extend_fd(sv[0], 8, digest, NULL), 0);
	uint8_t got[128];
	assert_int_equal(read(sv[1], got, sizeof(got)), PUD_TPM_EXTEND_CMD_SIZE);
	assert_memory_equal(got, cmd, PUD_TPM_EXTEND_CMD_SIZE);
	static const uint8_t err[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x09, 0x8e};
	assert_int_equal(write(sv[1], err, sizeof(err)), (ssize_t)sizeof(err));
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(pud_tpm_pcr_extend_fd(sv[0], 8, digest, &msg), -EIO);
	assert_non_null(strstr(msg, "0x98e"));
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(pud_tpm_pcr_extend("/nonexistent/tpmrm0", 8, digest, NULL), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cidata_end_to_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_default_initdata_without_source, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_initdata_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_aws_imdsv2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_aws_imdsv1_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_azure_base64_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_detect, setup, teardown),
	    cmocka_unit_test(test_allow_list),
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_tpm_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
