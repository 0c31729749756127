/* Unit tests for providers/libvirt against libvirt's in-process test:///default driver (no
 * daemon): options and defaults, create/list/delete with rollback, the cidata ISO read back by
 * a small ISO 9660 + Rock Ridge reader, the metadata parser, and the domain XML (plain,
 * kernel boot, SEV-SNP, TDX) checked with virt-xml-validate.
 * The test driver has no virStorageVolUpload and no DHCP: the provider's test hooks capture the
 * uploaded bytes and hand out a documentation-range address (192.0.2.0/24, never contacted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <libvirt/virterror.h>

#include "libvirt/libvirt-internal.h"

/* ---- fake environment ---- */

static const char *fake_env[8][2];

static const char *lookup_env(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_env) && fake_env[i][0]; i++)
		if (strcmp(fake_env[i][0], name) == 0)
			return fake_env[i][1];
	return NULL;
}

static void quiet(void *u, virErrorPtr e)
{
}

/* ---- a tiny ISO 9660 reader: PVD label and the root directory's Rock Ridge names ---- */

#define SECTOR 2048

struct iso_file {
	char name[64];
	const uint8_t *data;
	size_t len;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Returns the number of files, or -1 if the image is malformed. */
static int iso_read(const uint8_t *img, size_t len, char label[33], struct iso_file *files, int max)
{
	if (len < 17 * SECTOR)
		return -1;
	const uint8_t *pvd = img + 16 * SECTOR;
	if (pvd[0] != 1 || memcmp(pvd + 1, "CD001", 5) != 0)
		return -1;
	memcpy(label, pvd + 40, 32);
	label[32] = 0;
	for (int i = 31; i >= 0 && label[i] == ' '; i--)
		label[i] = 0;
	const uint8_t *root = pvd + 156;
	uint64_t extent = (uint64_t)le32(root + 2) * SECTOR, size = le32(root + 10);
	if (extent + size > len)
		return -1;
	int n = 0;
	for (uint64_t off = 0; off < size;) {
		const uint8_t *rec = img + extent + off;
		if (rec[0] == 0) { /* padding to the next sector */
			off = (off / SECTOR + 1) * SECTOR;
			continue;
		}
		uint8_t rlen = rec[0], nlen = rec[32];
		if (rlen < 34 || off + rlen > size || 33u + nlen > rlen)
			return -1;
		bool dot = nlen == 1 && (rec[33] == 0 || rec[33] == 1);
		if (!dot && n < max) {
			struct iso_file *f = &files[n];
			memset(f, 0, sizeof(*f));
			uint64_t fext = (uint64_t)le32(rec + 2) * SECTOR;
			f->len = le32(rec + 10);
			if (fext + f->len > len)
				return -1;
			f->data = img + fext;
			/* the system use area follows the name, padded to an even offset */
			size_t su = 33u + nlen + ((nlen & 1) ? 0 : 1);
			while (su + 4 <= rlen) {
				const uint8_t *e = rec + su;
				if (e[2] < 4 || su + e[2] > rlen)
					break;
				if (e[0] == 'N' && e[1] == 'M' && e[2] >= 5) {
					size_t l = MIN((size_t)e[2] - 5, sizeof(f->name) - 1);
					memcpy(f->name, e + 5, l);
				}
				su += e[2];
			}
			n++;
		}
		off += rlen;
	}
	return n;
}

static const struct iso_file *iso_find(const struct iso_file *files, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(files[i].name, name) == 0)
			return &files[i];
	return NULL;
}

/* ---- running virt-xml-validate ---- */

static bool have_program(const char *path)
{
	return access(path, X_OK) == 0;
}

/* Exit status of argv[0] with output to /dev/null; -1 if it did not run. */
static int run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	extern char **environ;
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -1;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char tmpdir[64];

static int validate_domain(const char *xml)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/domain.xml", tmpdir);
	assert_int_equal(write_file_atomic(path, xml, strlen(xml), 0600), 0);
	char *argv[] = {(char *)"/usr/bin/virt-xml-validate", path, (char *)"domain", NULL};
	return run(argv);
}

/* Validate with xmllint against a RELAX NG file in the temp dir. */
static int validate_rng(const char *xml, const char *rng)
{
	char xpath[128], rpath[128];
	snprintf(xpath, sizeof(xpath), "%s/fragment.xml", tmpdir);
	snprintf(rpath, sizeof(rpath), "%s/schema.rng", tmpdir);
	assert_int_equal(write_file_atomic(xpath, xml, strlen(xml), 0600), 0);
	assert_int_equal(write_file_atomic(rpath, rng, strlen(rng), 0600), 0);
	char *argv[] = {
	    (char *)"/usr/bin/xmllint", (char *)"--noout", (char *)"--relaxng", rpath, xpath, NULL};
	return run(argv);
}

/* ---- fixture: settings, provider, hooks ---- */

struct fixture {
	struct libvirt_settings s;
	struct provider *p;
	virConnectPtr conn; /* keeps the test driver's shared state alive */
	int uploads;
	uint8_t *iso;
	size_t iso_len;
	bool fail_upload;
	int ip_calls;
	int ip_after; /* hand out the address from this call on; <0: never */
};

static int hook_upload(void *userdata, virConnectPtr conn, virStorageVolPtr vol,
		       const uint8_t *data, size_t len, struct pp_error **reterr)
{
	struct fixture *f = userdata;
	f->uploads++;
	if (f->fail_upload)
		return pp_error_set(reterr, EIO, "injected upload failure");
	free(f->iso);
	f->iso = malloc(len);
	assert_non_null(f->iso);
	memcpy(f->iso, data, len);
	f->iso_len = len;
	return 0;
}

static int hook_lookup_ip(void *userdata, virConnectPtr conn, const char *network, const char *mac,
			  char **ret_ip)
{
	struct fixture *f = userdata;
	assert_string_equal(network, "default");
	assert_int_equal(strlen(mac), 17);
	assert_true(str_startswith(mac, "52:54:00:"));
	int call = f->ip_calls++;
	if (f->ip_after < 0 || call < f->ip_after)
		return -EAGAIN;
	*ret_ip = strdup("192.0.2.10");
	return *ret_ip ? 0 : -ENOMEM;
}

static int parse_options(struct libvirt_settings *s, int argc, char **argv)
{
	struct config_table t = {libvirt_provider_ops.options, libvirt_provider_ops.n_options, s};
	int argind;
	_cleanup_free_ char *msg = NULL;
	return config_parse(&t, 1, argc, argv, &argind, &msg);
}

static int setup(void **state)
{
	memset(fake_env, 0, sizeof(fake_env));
	config_set_getenv(lookup_env);
	virSetErrorFunc(NULL, quiet);
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	char *argv[] = {(char *)"-uri",
			(char *)"test:///default",
			(char *)"-pool-name",
			(char *)"default-pool",
			(char *)"-libvirt-ip-interval",
			(char *)"0s",
			(char *)"-libvirt-ip-retries",
			(char *)"3",
			(char *)"-root-disk-size",
			(char *)"4"};
	assert_int_equal(parse_options(&f->s, ELEMENTSOF(argv), argv), 0);
	assert_int_equal(libvirt_provider_ops.verify_config(&f->s, NULL), 0);
	f->conn = virConnectOpen("test:///default");
	assert_non_null(f->conn);
	virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, "default-pool");
	assert_non_null(pool);
	virStorageVolPtr base = virStorageVolLookupByName(pool, "podvm-base.qcow2");
	if (!base)
		base = virStorageVolCreateXML(pool,
					      "<volume><name>podvm-base.qcow2</name>"
					      "<capacity unit='G'>1</capacity>"
					      "<target><format type='qcow2'/></target></volume>",
					      0);
	assert_non_null(base);
	virStorageVolFree(base);
	virStoragePoolFree(pool);
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(
	    libvirt_provider_ops.init(&f->s, &(struct provider_context){0}, &f->p, &err), 0);
	libvirt_set_hooks(f->p, &(struct libvirt_hooks){.upload = hook_upload,
							.lookup_ip = hook_lookup_ip,
							.userdata = f});
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	libvirt_provider_ops.done(f->p);
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &f->s);
	virConnectClose(f->conn);
	free(f->iso);
	free(f);
	config_set_getenv(NULL);
	return 0;
}

static const struct provider_instance_spec spec = {
    .instance_name = "podvm-my-pod-1-88a70031",
    .sandbox_id = "88a70031aa",
    .pod_name = "My_Pod.1",
    .pod_namespace = "default",
    .node_name = "worker-1",
    .user_data = "#cloud-config\n\nwrite_files:\n  - path: /run/peerpod/apf.json\n"
		 "    content: |\n      {}\n",
    .image = "",
};

static bool volume_exists(virConnectPtr conn, const char *name)
{
	virStoragePoolPtr pool = virStoragePoolLookupByName(conn, "default-pool");
	assert_non_null(pool);
	virStorageVolPtr v = virStorageVolLookupByName(pool, name);
	virStoragePoolFree(pool);
	if (v)
		virStorageVolFree(v);
	return v != NULL;
}

static bool domain_exists(virConnectPtr conn, const char *name)
{
	virDomainPtr d = virDomainLookupByName(conn, name);
	if (d)
		virDomainFree(d);
	return d != NULL;
}

/* ---- tests ---- */

static void test_option_defaults(void **state)
{
	memset(fake_env, 0, sizeof(fake_env));
	config_set_getenv(lookup_env);
	struct libvirt_settings s = {0};
	assert_int_equal(parse_options(&s, 0, NULL), 0);
	assert_string_equal(s.uri, "qemu+ssh://root@192.168.122.1/system?no_verify=1");
	assert_string_equal(s.pool_name, "default");
	assert_string_equal(s.network_name, "default");
	assert_string_equal(s.vol_name, "podvm-base.qcow2");
	assert_null(s.launch_security);
	assert_string_equal(s.firmware, "/usr/share/OVMF/OVMF_CODE_4M.fd");
	assert_int_equal(s.cpu, 2);
	assert_int_equal(s.memory_mib, 8192);
	assert_null(s.cpuset);
	assert_int_equal(s.root_disk_size_gib, 10);
	assert_string_equal(s.data_dir, "/var/lib/libvirt/images");
	assert_true(s.disable_cvm);
	assert_int_equal(s.ip_retries, 20);
	assert_int_equal(s.ip_interval_ns, 3 * NSEC_PER_SEC);
	assert_string_equal(s.machine, "q35");
	assert_null(s.kernel);
	assert_int_equal(libvirt_provider_ops.verify_config(&s, NULL), 0);
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &s);

	/* environment names of WIRE 8.4 */
	fake_env[0][0] = "LIBVIRT_POOL", fake_env[0][1] = "images";
	fake_env[1][0] = "DISABLECVM", fake_env[1][1] = "false";
	fake_env[2][0] = "LIBVIRT_LAUNCH_SECURITY", fake_env[2][1] = "sev-snp";
	fake_env[3][0] = "LIBVIRT_MEMORY", fake_env[3][1] = "2048";
	fake_env[4][0] = "LIBVIRT_CPUSET", fake_env[4][1] = "0-3,^2";
	s = (struct libvirt_settings){0};
	assert_int_equal(parse_options(&s, 0, NULL), 0);
	assert_string_equal(s.pool_name, "images");
	assert_false(s.disable_cvm);
	assert_string_equal(s.launch_security, "sev-snp");
	assert_int_equal(s.memory_mib, 2048);
	assert_int_equal(libvirt_provider_ops.verify_config(&s, NULL), 0);
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &s);

	/* refused values */
	memset(fake_env, 0, sizeof(fake_env));
	char *bad[] = {(char *)"-launch-security", (char *)"sev"};
	s = (struct libvirt_settings){0};
	assert_int_equal(parse_options(&s, 2, bad), -EINVAL);
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &s);

	char *nocvm[] = {(char *)"-disable-cvm=false"};
	s = (struct libvirt_settings){0};
	assert_int_equal(parse_options(&s, 1, nocvm), 0);
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(libvirt_provider_ops.verify_config(&s, &err), -EINVAL);
	assert_non_null(strstr(err->message, "launch-security"));
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &s);

	char *cpuset[] = {(char *)"-cpuset", (char *)"0-3;reboot"};
	s = (struct libvirt_settings){0};
	assert_int_equal(parse_options(&s, 2, cpuset), 0);
	assert_int_equal(libvirt_provider_ops.verify_config(&s, NULL), -EINVAL);
	config_free(libvirt_provider_ops.options, libvirt_provider_ops.n_options, &s);
}

static void test_create_list_delete(void **state)
{
	struct fixture *f = *state;
	f->ip_after = 2; /* two lookups without a lease first */
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = libvirt_provider_ops.create_instance(f->p, &spec, &inst, &err);
	assert_int_equal(r, 0);
	assert_int_equal(f->ip_calls, 3);
	assert_int_equal(strlen(inst.id), 36);
	assert_string_equal(inst.name, spec.instance_name);
	assert_int_equal(inst.n_ips, 1);
	assert_string_equal(inst.ips[0], "192.0.2.10");
	assert_string_equal(inst.sandbox_id, "88a70031aa");
	assert_true(volume_exists(f->conn, "podvm-my-pod-1-88a70031-root.qcow2"));
	assert_true(volume_exists(f->conn, "podvm-my-pod-1-88a70031-cidata.iso"));

	/* the domain: running, our metadata, root overlay on the base, sized to the setting */
	virDomainPtr dom = virDomainLookupByUUIDString(f->conn, inst.id);
	assert_non_null(dom);
	assert_int_equal(virDomainIsActive(dom), 1);
	_cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
	assert_non_null(strstr(xml, LIBVIRT_METADATA_URI));
	assert_non_null(strstr(xml, "podvm-my-pod-1-88a70031-cidata.iso"));
	assert_non_null(strstr(xml, "<memory unit='KiB'>8388608</memory>"));
	virDomainFree(dom);
	virStoragePoolPtr pool = virStoragePoolLookupByName(f->conn, "default-pool");
	virStorageVolPtr root =
	    virStorageVolLookupByName(pool, "podvm-my-pod-1-88a70031-root.qcow2");
	_cleanup_free_ char *vxml = virStorageVolGetXMLDesc(root, 0);
	assert_non_null(strstr(vxml, "<backingStore>"));
	assert_non_null(strstr(vxml, "podvm-base.qcow2"));
	virStorageVolInfo info;
	assert_int_equal(virStorageVolGetInfo(root, &info), 0);
	assert_int_equal(info.capacity, 4ull << 30);
	virStorageVolFree(root);
	virStoragePoolFree(pool);

	/* the uploaded cidata image */
	assert_int_equal(f->uploads, 1);
	char label[33];
	struct iso_file files[8];
	int n = iso_read(f->iso, f->iso_len, label, files, 8);
	assert_int_equal(n, 3);
	assert_string_equal(label, "cidata");
	const struct iso_file *ud = iso_find(files, n, "user-data");
	const struct iso_file *md = iso_find(files, n, "meta-data");
	const struct iso_file *vd = iso_find(files, n, "vendor-data");
	assert_non_null(ud);
	assert_non_null(md);
	assert_non_null(vd);
	assert_int_equal(ud->len, strlen(spec.user_data));
	assert_memory_equal(ud->data, spec.user_data, ud->len);
	const char *want = "local-hostname: podvm-my-pod-1-88a70031";
	assert_int_equal(md->len, strlen(want));
	assert_memory_equal(md->data, want, md->len);
	assert_int_equal(vd->len, 0);

	/* list: ours only (the driver's own "test" domain carries no metadata) */
	struct provider_instance *v = NULL;
	size_t nv = 0;
	assert_int_equal(libvirt_provider_ops.list_instances(f->p, &v, &nv, &err), 0);
	assert_int_equal(nv, 1);
	assert_string_equal(v[0].id, inst.id);
	assert_string_equal(v[0].name, spec.instance_name);
	assert_string_equal(v[0].sandbox_id, "88a70031aa");
	assert_string_equal(v[0].node_name, "worker-1");
	assert_int_equal(v[0].n_ips, 1);
	provider_instances_free(v, nv);

	/* /readyz's check: the connection answers */
	assert_int_equal(libvirt_provider_ops.check(f->p, &err), 0);
	assert_null(err);

	/* a second create of the same name fails and leaves the first intact */
	struct provider_instance dup = {0};
	pp_error_free(TAKE_PTR(err));
	assert_true(libvirt_provider_ops.create_instance(f->p, &spec, &dup, &err) < 0);
	assert_non_null(strstr(err->message, "libvirt: "));
	assert_non_null(strstr(err->message, "(code "));
	assert_true(domain_exists(f->conn, spec.instance_name));
	assert_true(volume_exists(f->conn, "podvm-my-pod-1-88a70031-root.qcow2"));
	assert_true(volume_exists(f->conn, "podvm-my-pod-1-88a70031-cidata.iso"));

	/* delete, then delete again */
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.delete_instance(f->p, inst.id, &err), 0);
	assert_false(domain_exists(f->conn, spec.instance_name));
	assert_false(volume_exists(f->conn, "podvm-my-pod-1-88a70031-root.qcow2"));
	assert_false(volume_exists(f->conn, "podvm-my-pod-1-88a70031-cidata.iso"));
	assert_int_equal(libvirt_provider_ops.delete_instance(f->p, inst.id, &err), 0);
	assert_int_equal(libvirt_provider_ops.list_instances(f->p, &v, &nv, &err), 0);
	assert_int_equal(nv, 0);
	provider_instances_free(v, nv);
	provider_instance_done(&inst);
}

static void test_delete_refuses_foreign_and_bad_ids(void **state)
{
	struct fixture *f = *state;
	virDomainPtr dom = virDomainLookupByName(f->conn, "test");
	assert_non_null(dom);
	char uuid[VIR_UUID_STRING_BUFLEN];
	assert_int_equal(virDomainGetUUIDString(dom, uuid), 0);
	virDomainFree(dom);
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(libvirt_provider_ops.delete_instance(f->p, uuid, &err), -EPERM);
	assert_true(domain_exists(f->conn, "test"));
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.delete_instance(f->p, "../etc", &err), -EINVAL);
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.delete_instance(
			     f->p, "00000000-0000-0000-0000-000000000000", &err),
			 0);
}

static void assert_nothing_left(struct fixture *f)
{
	assert_false(domain_exists(f->conn, spec.instance_name));
	assert_false(volume_exists(f->conn, "podvm-my-pod-1-88a70031-root.qcow2"));
	assert_false(volume_exists(f->conn, "podvm-my-pod-1-88a70031-cidata.iso"));
}

static void test_create_rollback(void **state)
{
	struct fixture *f = *state;
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;

	f->fail_upload = true;
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &spec, &inst, &err), -EIO);
	assert_non_null(strstr(err->message, "injected upload failure"));
	assert_nothing_left(f);

	f->fail_upload = false;
	f->ip_after = -1;
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &spec, &inst, &err),
			 -ETIMEDOUT);
	assert_int_equal(f->ip_calls, 3); /* -libvirt-ip-retries */
	assert_non_null(strstr(err->message, "no DHCP lease"));
	assert_nothing_left(f);

	/* the image annotation names the base volume */
	struct provider_instance_spec other = spec;
	other.image = "missing-base.qcow2";
	f->ip_after = 0;
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &other, &inst, &err), -ENOENT);
	assert_non_null(strstr(err->message, "missing-base.qcow2"));
	assert_non_null(strstr(err->message, "(code 50)")); /* VIR_ERR_NO_STORAGE_VOL */
	assert_nothing_left(f);

	other.image = "../../etc/passwd";
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &other, &inst, &err), -EINVAL);
	other.image = "";
	other.instance_name = "Bad Name";
	pp_error_free(TAKE_PTR(err));
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &other, &inst, &err), -EINVAL);
}

static void test_annotations_override_sizes(void **state)
{
	struct fixture *f = *state;
	struct provider_instance_spec big = spec;
	big.vcpus = 3;
	big.memory_mib = 1536;
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(libvirt_provider_ops.create_instance(f->p, &big, &inst, &err), 0);
	virDomainPtr dom = virDomainLookupByUUIDString(f->conn, inst.id);
	assert_non_null(dom);
	virDomainInfo info;
	assert_int_equal(virDomainGetInfo(dom, &info), 0);
	assert_int_equal(info.nrVirtCpu, 3);
	assert_int_equal(info.maxMem, 1536 * 1024);
	virDomainFree(dom);
	assert_int_equal(libvirt_provider_ops.delete_instance(f->p, inst.id, &err), 0);
	provider_instance_done(&inst);
}

static void test_metadata_roundtrip(void **state)
{
	struct libvirt_metadata m = {.sandbox_id = (char *)"sid&<>\"'\t\n",
				     .node_name = (char *)"node-ü",
				     .pod_name = (char *)"p",
				     .mac = (char *)"52:54:00:aa:bb:cc"};
	_cleanup_free_ char *xml = libvirt_metadata_format(&m);
	assert_non_null(xml);
	struct libvirt_metadata out = {0};
	assert_int_equal(libvirt_metadata_parse(xml, strlen(xml), &out), 0);
	assert_string_equal(out.sandbox_id, m.sandbox_id);
	assert_string_equal(out.node_name, m.node_name);
	assert_string_equal(out.pod_name, "p");
	assert_null(out.pod_namespace);
	libvirt_metadata_done(&out);

	/* what libvirt hands back: prefixed, single quotes, explicit end tag, references */
	const char *ok = "<peerpod:instance xmlns:peerpod='x' sandbox-id='a&#x41;&#66;' "
			 "node=\"n\"></peerpod:instance>\n";
	assert_int_equal(libvirt_metadata_parse(ok, strlen(ok), &out), 0);
	assert_string_equal(out.sandbox_id, "aAB");
	libvirt_metadata_done(&out);

	const char *bad[] = {
	    "",
	    "<instance",
	    "<other sandbox-id='a'/>",
	    "<instance unknown='a'/>",
	    "<instance node='a' node='b'/>",
	    "<instance node='a'><child/></instance>",
	    "<instance node='a'>text</instance>",
	    "<instance node='a'></instancex>",
	    "<instance node='a&bogus;'/>",
	    "<instance node='&#0;'/>",
	    "<instance node='&#xD800;'/>",
	    "<instance node='a<b'/>",
	    "<instance node='a'/><instance/>",
	    "<instance node='a'node='b'/>",
	    "<a:b:instance/>",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(libvirt_metadata_parse(bad[i], strlen(bad[i]), &out), -EBADMSG);

	/* values are bounded */
	struct buf b = {0};
	assert_int_equal(buf_printf(&b, "<instance node='"), 0);
	for (int i = 0; i < LIBVIRT_METADATA_VALUE_MAX + 1; i++)
		assert_int_equal(buf_printf(&b, "x"), 0);
	assert_int_equal(buf_printf(&b, "'/>"), 0);
	assert_int_equal(libvirt_metadata_parse((char *)b.data, b.len, &out), -EBADMSG);
	buf_done(&b);
}

static void test_cidata_image(void **state)
{
	uint8_t *img = NULL;
	size_t len = 0;
	assert_int_equal(libvirt_cidata_build("", "h", &img, &len), 0);
	assert_int_equal(len % SECTOR, 0);
	/* the label where blkid looks for it */
	assert_memory_equal(img + 32768 + 40, "cidata", 6);
	char label[33];
	struct iso_file files[8];
	int n = iso_read(img, len, label, files, 8);
	assert_int_equal(n, 3);
	assert_non_null(iso_find(files, n, "user-data"));
	assert_int_equal(iso_find(files, n, "user-data")->len, 0);
	assert_int_equal(iso_find(files, n, "meta-data")->len, strlen("local-hostname: h"));
	free(img);
	assert_int_equal(libvirt_cidata_build("x", "", &img, &len), -EINVAL);
}

static struct libvirt_domain_params domain_params(enum libvirt_launch launch)
{
	return (struct libvirt_domain_params){
	    .name = "podvm-a-12345678",
	    .virt_type = "qemu",
	    .machine = "q35",
	    .vcpus = 2,
	    .memory_mib = 2048,
	    .cpuset = "0-3",
	    .root_path = "/var/lib/libvirt/images/podvm-a-12345678-root.qcow2",
	    .cidata_path = "/var/lib/libvirt/images/podvm-a-12345678-cidata.iso",
	    .network = "default",
	    .mac = "52:54:00:12:34:56",
	    .firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd",
	    .launch = launch,
	    .metadata_xml = "<instance sandbox-id=\"s&amp;1\" node=\"n\"/>",
	};
}

/* libvirt 9.0's schema predates <launchSecurity type='sev-snp'|'tdx'> (10.5 / 11.x): the
 * element is checked on its own against these patterns written from libvirt's documentation,
 * and the rest of the domain against the installed schema. */
static const char *launch_rng =
    "<grammar xmlns='http://relaxng.org/ns/structure/1.0' "
    "datatypeLibrary='http://www.w3.org/2001/XMLSchema-datatypes'>"
    "<start><element name='launchSecurity'><choice>"
    "<group><attribute name='type'><value>sev-snp</value></attribute>"
    "<optional><attribute name='kernelHashes'><choice><value>yes</value><value>no</value>"
    "</choice></attribute></optional>"
    "<interleave><optional><element name='cbitpos'><data type='unsignedInt'/></element>"
    "</optional><optional><element name='reducedPhysBits'><data type='unsignedInt'/></element>"
    "</optional><optional><element name='policy'><data type='string'><param name='pattern'>"
    "0x[0-9a-fA-F]{1,16}</param></data></element></optional></interleave></group>"
    "<group><attribute name='type'><value>tdx</value></attribute>"
    "<optional><element name='policy'><data type='string'><param name='pattern'>"
    "0x[0-9a-fA-F]{1,16}</param></data></element></optional></group>"
    "</choice></element></start></grammar>";

static char *cut_launch_security(const char *xml, char **ret_fragment)
{
	const char *a = strstr(xml, "  <launchSecurity");
	const char *end = strstr(xml, "</launchSecurity>\n");
	assert_non_null(a);
	assert_non_null(end);
	end += strlen("</launchSecurity>\n");
	*ret_fragment = strndup(a, (size_t)(end - a));
	return str_printf("%.*s%s", (int)(a - xml), xml, end);
}

static void test_domain_xml(void **state)
{
	if (!have_program("/usr/bin/virt-xml-validate")) {
		print_message("SKIP: virt-xml-validate not installed, domain XML not validated\n");
		skip();
	}
	/* the validator can fail: a broken document is refused */
	assert_int_not_equal(validate_domain("<domain type='qemu'><name>x</name><bogus/></domain>"),
			     0);

	struct libvirt_domain_params plain = domain_params(LIBVIRT_LAUNCH_NONE);
	_cleanup_free_ char *x1 = libvirt_domain_xml(&plain);
	assert_int_equal(validate_domain(x1), 0);
	assert_non_null(strstr(x1, "<domain type='qemu'>"));
	assert_non_null(strstr(x1, "<loader readonly='yes' type='pflash'>"));
	assert_non_null(strstr(x1, "<vcpu placement='static' cpuset='0-3'>2</vcpu>"));
	assert_non_null(strstr(x1, "<target dev='sda' bus='scsi'/>"));
	assert_non_null(strstr(x1, "<controller type='scsi' model='virtio-scsi'/>"));
	assert_non_null(strstr(x1, "<peerpod:instance xmlns:peerpod='" LIBVIRT_METADATA_URI
				   "' sandbox-id=\"s&amp;1\" node=\"n\"/>"));
	assert_null(strstr(x1, "launchSecurity"));

	struct libvirt_domain_params kernel = plain;
	kernel.kernel = "/boot/vmlinuz";
	kernel.initrd = "/boot/initrd.img";
	kernel.cmdline = "console=ttyS0 quiet & more";
	kernel.console_log = "/var/log/pp/podvm-a-12345678.log";
	kernel.virt_type = "kvm";
	_cleanup_free_ char *x2 = libvirt_domain_xml(&kernel);
	assert_int_equal(validate_domain(x2), 0);
	assert_non_null(strstr(x2, "<cmdline>console=ttyS0 quiet &amp; more</cmdline>"));
	assert_null(strstr(x2, "<loader")); /* SeaBIOS boots the kernel directly */
	assert_null(strstr(x2, "<boot dev="));
	assert_non_null(strstr(x2, "<cpu mode='host-passthrough'/>"));
	assert_non_null(strstr(x2, "<log file='/var/log/pp/podvm-a-12345678.log'"));

	bool have_xmllint = have_program("/usr/bin/xmllint");
	if (!have_xmllint)
		print_message(
		    "note: xmllint not installed, launchSecurity fragments not checked\n");
	enum libvirt_launch kinds[] = {LIBVIRT_LAUNCH_SEV_SNP, LIBVIRT_LAUNCH_TDX};
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		struct libvirt_domain_params cvm = domain_params(kinds[i]);
		cvm.kernel = i == 0 ? "/boot/vmlinuz" : NULL;
		_cleanup_free_ char *x = libvirt_domain_xml(&cvm);
		assert_non_null(strstr(x, "<os firmware='efi'>"));
		assert_non_null(strstr(x, "<loader stateless='yes'/>"));
		assert_null(strstr(x, "OVMF_CODE_4M")); /* firmware chosen by libvirt */
		assert_non_null(strstr(x, "<driver iommu='on'/>"));
		assert_non_null(strstr(x, "<memballoon model='none'/>"));
		_cleanup_free_ char *frag = NULL;
		_cleanup_free_ char *rest = cut_launch_security(x, &frag);
		assert_int_equal(validate_domain(rest), 0);
		if (i == 0) {
			assert_non_null(strstr(frag, "type='sev-snp' kernelHashes='yes'"));
			assert_non_null(strstr(frag, "<cbitpos>51</cbitpos>"));
			assert_non_null(strstr(frag, "<policy>0x00030000</policy>"));
		} else {
			assert_non_null(strstr(frag, "type='tdx'"));
			assert_non_null(strstr(frag, "<policy>0x10000000</policy>"));
			assert_non_null(strstr(x, "<ioapic driver='qemu'/>"));
		}
		if (have_xmllint) {
			assert_int_equal(validate_rng(frag, launch_rng), 0);
			/* and the fragment check can fail */
			assert_int_not_equal(
			    validate_rng("<launchSecurity type='sev-snp'><policy>3</policy>"
					 "</launchSecurity>",
					 launch_rng),
			    0);
		}
	}
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-libvirt-XXXXXX", "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return rm_rf(tmpdir) < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_option_defaults),
	    cmocka_unit_test_setup_teardown(test_create_list_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_refuses_foreign_and_bad_ids, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_create_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_annotations_override_sizes, setup, teardown),
	    cmocka_unit_test(test_metadata_roundtrip),
	    cmocka_unit_test(test_cidata_image),
	    cmocka_unit_test(test_domain_xml),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
