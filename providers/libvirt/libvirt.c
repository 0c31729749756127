/* providers/libvirt: one pod VM per libvirt domain: a qcow2 overlay on the pool's base volume,
 * a cidata ISO volume with the pod's user data, and a domain carrying the project's metadata
 * element, which is how list_instances recognises our domains for the leak sweep. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <libvirt/virterror.h>

#include "libvirt-internal.h"
#include "virt-dl.h"

#define UUID_LEN 36
#define VOL_XML_MAX_BYTES (1u << 20)

static int validate_launch_security(const void *field, char **ret_msg)
{
	const char *s = *(char *const *)field;
	if (str_empty(s) || str_eq(s, "s390-pv") || str_eq(s, "sev-snp") || str_eq(s, "tdx"))
		return 0;
	*ret_msg = str_printf("\"%s\" is not one of s390-pv, sev-snp, tdx (or empty)", s);
	return -EINVAL;
}

static const struct config_option libvirt_options[] = {
    {"uri", "LIBVIRT_URI", CONFIG_STRING, "qemu+ssh://root@192.168.122.1/system?no_verify=1",
     offsetof(struct libvirt_settings, uri), "libvirt connection URI", NULL},
    {"pool-name", "LIBVIRT_POOL", CONFIG_STRING, "default",
     offsetof(struct libvirt_settings, pool_name), "storage pool of the pod VM volumes", NULL},
    {"network-name", "LIBVIRT_NET", CONFIG_STRING, "default",
     offsetof(struct libvirt_settings, network_name), "libvirt network of the pod VMs", NULL},
    {"vol-name", "LIBVIRT_VOL_NAME", CONFIG_STRING, "podvm-base.qcow2",
     offsetof(struct libvirt_settings, vol_name),
     "base volume of the pod VM image (the pod's image annotation overrides it)", NULL},
    {"launch-security", "LIBVIRT_LAUNCH_SECURITY", CONFIG_STRING, NULL,
     offsetof(struct libvirt_settings, launch_security),
     "confidential launch: sev-snp, tdx, s390-pv or empty", validate_launch_security},
    {"firmware", "LIBVIRT_EFI_FIRMWARE", CONFIG_STRING, "/usr/share/OVMF/OVMF_CODE_4M.fd",
     offsetof(struct libvirt_settings, firmware),
     "UEFI firmware of plain pod VMs (confidential ones use libvirt's firmware selection)", NULL},
    {"cpu", "LIBVIRT_CPU", CONFIG_UINT, "2", offsetof(struct libvirt_settings, cpu),
     "vCPUs per pod VM unless the pod asks for some", NULL},
    {"memory", "LIBVIRT_MEMORY", CONFIG_UINT, "8192", offsetof(struct libvirt_settings, memory_mib),
     "memory per pod VM in MiB unless the pod asks for some", NULL},
    {"cpuset", "LIBVIRT_CPUSET", CONFIG_STRING, NULL, offsetof(struct libvirt_settings, cpuset),
     "host CPUs the vCPUs may run on (libvirt cpuset syntax)", NULL},
    {"root-disk-size", "LIBVIRT_ROOT_DISK_SIZE", CONFIG_UINT, "10",
     offsetof(struct libvirt_settings, root_disk_size_gib), "root disk size in GiB", NULL},
    /* The Go adaptor's libvirt "-data-dir"; ours names the adaptor's own directory. */
    {"libvirt-data-dir", NULL, CONFIG_STRING, "/var/lib/libvirt/images",
     offsetof(struct libvirt_settings, data_dir),
     "the Go adaptor's libvirt -data-dir (accepted, unused: volumes live in the pool)", NULL},
    {"disable-cvm", "DISABLECVM", CONFIG_BOOL, "true",
     offsetof(struct libvirt_settings, disable_cvm), "create plain (non-confidential) VMs", NULL},
    {"libvirt-ip-retries", "LIBVIRT_IP_RETRIES", CONFIG_UINT, "20",
     offsetof(struct libvirt_settings, ip_retries),
     "DHCP lease lookups before giving up on a VM's address", NULL},
    {"libvirt-ip-interval", "LIBVIRT_IP_INTERVAL", CONFIG_DURATION, "3s",
     offsetof(struct libvirt_settings, ip_interval_ns), "pause between DHCP lease lookups", NULL},
    {"libvirt-kernel", "LIBVIRT_KERNEL", CONFIG_STRING, NULL,
     offsetof(struct libvirt_settings, kernel),
     "kernel for direct kernel boot (path on the libvirt host)", NULL},
    {"libvirt-initrd", "LIBVIRT_INITRD", CONFIG_STRING, NULL,
     offsetof(struct libvirt_settings, initrd), "initrd for direct kernel boot", NULL},
    {"libvirt-cmdline", "LIBVIRT_CMDLINE", CONFIG_STRING, NULL,
     offsetof(struct libvirt_settings, cmdline), "kernel command line for direct kernel boot",
     NULL},
    {"libvirt-machine", "LIBVIRT_MACHINE", CONFIG_STRING, "q35",
     offsetof(struct libvirt_settings, machine), "QEMU machine type", NULL},
    {"libvirt-console-log-dir", "LIBVIRT_CONSOLE_LOG_DIR", CONFIG_STRING, NULL,
     offsetof(struct libvirt_settings, console_log_dir),
     "directory on the libvirt host for <instance>.log serial logs (empty: pty only)", NULL},
};

/* One connection shared by all workers: libvirt connections are thread-safe and multiplex
 * concurrent calls, so N pods starting at once need no N connections (and no N SSH sessions
 * for qemu+ssh). The mutex guards only the pointer, so that exactly one worker replaces a
 * connection that died (libvirtd restart); each call holds its own reference, and a call still
 * running on the old connection keeps it alive until it returns. */
struct provider {
	const struct libvirt_settings *settings;
	pthread_mutex_t lock;
	virConnectPtr conn;
	struct libvirt_hooks hooks;
};

static void virConnectClosep(virConnectPtr *p)
{
	if (*p)
		virConnectClose(*p);
}
DEFINE_CLEANUP(virDomain, virDomainFree)
DEFINE_CLEANUP(virStoragePool, virStoragePoolFree)
DEFINE_CLEANUP(virStorageVol, virStorageVolFree)
DEFINE_CLEANUP(virNetwork, virNetworkFree)
DEFINE_CLEANUP(virStream, virStreamFree)

static void quiet_errors(void *userdata, virErrorPtr error)
{
	/* libraries never log: errors reach the caller through reterr */
}

/* ---- errors ---- */

static int errno_of(int code)
{
	switch (code) {
	case VIR_ERR_NO_DOMAIN:
	case VIR_ERR_NO_STORAGE_VOL:
	case VIR_ERR_NO_STORAGE_POOL:
	case VIR_ERR_NO_NETWORK:
		return ENOENT;
	case VIR_ERR_NO_SUPPORT:
		return EOPNOTSUPP;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_INVALID_CONN:
		return ECONNRESET;
	case VIR_ERR_OPERATION_INVALID:
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
		return EINVAL;
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_OPERATION_DENIED:
	case VIR_ERR_ACCESS_DENIED:
		return EACCES;
	case VIR_ERR_DOM_EXIST:
	case VIR_ERR_STORAGE_VOL_EXIST:
		return EEXIST;
	default:
		return EIO;
	}
}

/* "<what>: libvirt: <message> (code N)", with the libvirt code in status. */
_printf_(2, 3) static int fail(struct pp_error **reterr, const char *fmt, ...)
{
	virErrorPtr e = virGetLastError();
	int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *what = str_vprintf(fmt, ap);
	va_end(ap);
	bool was_set = reterr && *reterr;
	int r = pp_error_set(reterr, errno_of(code), "%s: libvirt: %s (code %d)",
			     what ?: "libvirt call", e && e->message ? e->message : "unknown error",
			     code);
	if (reterr && *reterr && !was_set)
		(*reterr)->status = code;
	return r;
}

static int last_code(void)
{
	virErrorPtr e = virGetLastError();
	return e ? e->code : VIR_ERR_OK;
}

/* ---- connection ---- */

static int conn_get(struct provider *p, virConnectPtr *ret, struct pp_error **reterr)
{
	pthread_mutex_lock(&p->lock);
	if (!p->conn) {
		p->conn = virConnectOpen(p->settings->uri);
		if (p->conn)
			virConnSetErrorFunc(p->conn, NULL, quiet_errors);
	}
	virConnectPtr c = p->conn;
	if (c)
		virConnectRef(c);
	pthread_mutex_unlock(&p->lock);
	if (!c)
		return fail(reterr, "cannot connect to %s", p->settings->uri);
	*ret = c;
	return 0;
}

/* Forget a connection that failed, unless another worker already replaced it. */
static void conn_reset(struct provider *p, virConnectPtr dead)
{
	virConnectPtr old = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->conn == dead)
		old = TAKE_PTR(p->conn);
	pthread_mutex_unlock(&p->lock);
	if (old)
		virConnectClose(old);
}

static bool conn_lost(virConnectPtr conn, const struct pp_error *err)
{
	int code = err ? err->status : 0;
	if (code == VIR_ERR_NO_CONNECT || code == VIR_ERR_INVALID_CONN)
		return true;
	/* EOF or a broken pipe (VIR_ERR_SYSTEM_ERROR) leaves the connection marked closed */
	return virConnectIsAlive(conn) != 1;
}

typedef int (*conn_op)(struct provider *p, virConnectPtr conn, void *ctx, bool retry,
		       struct pp_error **reterr);

/* Run op; if it failed because libvirtd went away (restart), reconnect once and retry. */
static int with_conn(struct provider *p, conn_op op, void *ctx, struct pp_error **reterr)
{
	for (int attempt = 0;; attempt++) {
		_cleanup_(virConnectClosep) virConnectPtr conn = NULL;
		int r = conn_get(p, &conn, reterr);
		if (r < 0)
			return r;
		struct pp_error *err = NULL;
		r = op(p, conn, ctx, attempt > 0, &err);
		if (r >= 0) {
			pp_error_free(err);
			return r;
		}
		if (attempt == 0 && conn_lost(conn, err)) {
			pp_error_free(err);
			conn_reset(p, conn);
			continue;
		}
		if (reterr && !*reterr)
			*reterr = err;
		else
			pp_error_free(err);
		return r;
	}
}

/* ---- helpers ---- */

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {ns / NSEC_PER_SEC, ns % NSEC_PER_SEC};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool uuid_valid(const char *s)
{
	if (!s || strlen(s) != UUID_LEN)
		return false;
	for (size_t i = 0; i < UUID_LEN; i++) {
		char c = s[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? c != '-'
			 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* Instance names follow WIRE 4.4; anything else could escape the volume naming scheme. */
static bool name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return true;
}

/* A volume name from an annotation or setting: one path component. */
static bool vol_name_valid(const char *s)
{
	return !str_empty(s) && strlen(s) <= 255 && !strchr(s, '/') && !str_eq(s, ".") &&
	       !str_eq(s, "..");
}

static bool cpuset_valid(const char *s)
{
	for (; s && *s; s++)
		if (!((*s >= '0' && *s <= '9') || *s == ',' || *s == '-' || *s == '^'))
			return false;
	return true;
}

static int random_mac(char ret[18])
{
	uint8_t b[3];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return -errno;
	/* 52:54:00 is QEMU's locally administered prefix */
	snprintf(ret, 18, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
	return 0;
}

static char *xml_escape(const char *s)
{
	struct buf b = {0};
	int r = 0;
	for (; *s && r >= 0; s++)
		switch (*s) {
		case '&':
			r = buf_printf(&b, "&amp;");
			break;
		case '<':
			r = buf_printf(&b, "&lt;");
			break;
		case '>':
			r = buf_printf(&b, "&gt;");
			break;
		case '\'':
			r = buf_printf(&b, "&apos;");
			break;
		default:
			r = buf_append(&b, s, 1, 0);
		}
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}

/* The driver's domain type: "kvm" where the host offers it, else TCG. Asked of the
 * connection, not of the local /dev/kvm, because libvirtd may run on another host. */
static const char *virt_type(virConnectPtr conn)
{
	_cleanup_free_ char *caps = virConnectGetCapabilities(conn);
	if (caps && (strstr(caps, "<domain type='kvm'") || strstr(caps, "<domain type=\"kvm\"")))
		return "kvm";
	return "qemu";
}

/* The format of the base volume's target ("qcow2", "raw"): the backing format must be named,
 * libvirt refuses to probe it. The XML is libvirt's own rendering of the volume. */
static int base_format(virStorageVolPtr vol, char ret[16])
{
	_cleanup_free_ char *xml = virStorageVolGetXMLDesc(vol, 0);
	if (!xml)
		return -EIO;
	str_copy(ret, 16, "qcow2");
	const char *target = strstr(xml, "<target>");
	const char *fmt = target ? strstr(target, "<format type='") : NULL;
	if (!fmt)
		return 0;
	fmt += strlen("<format type='");
	size_t n = 0;
	while (n < 15 && fmt[n] && fmt[n] != '\'' &&
	       ((fmt[n] >= 'a' && fmt[n] <= 'z') || (fmt[n] >= '0' && fmt[n] <= '9')))
		n++;
	if (n > 0 && fmt[n] == '\'') {
		memcpy(ret, fmt, n);
		ret[n] = 0;
	}
	return 0;
}

static int default_upload(void *userdata, virConnectPtr conn, virStorageVolPtr vol,
			  const uint8_t *data, size_t len, struct pp_error **reterr)
{
	_cleanup_(virStreamFreep) virStream *st = virStreamNew(conn, 0);
	if (!st || virStorageVolUpload(vol, st, 0, len, 0) < 0)
		return fail(reterr, "cannot start the upload");
	for (size_t off = 0; off < len;) {
		size_t chunk = MIN(len - off, (size_t)(256u << 10));
		int n = virStreamSend(st, (const char *)data + off, chunk);
		if (n <= 0) {
			/* report before aborting: every libvirt call resets the last error */
			int r = fail(reterr, "upload failed after %zu of %zu bytes", off, len);
			virStreamAbort(st);
			return r;
		}
		off += (size_t)n;
	}
	return virStreamFinish(st) < 0 ? fail(reterr, "cannot finish the upload") : 0;
}

static int default_lookup_ip(void *userdata, virConnectPtr conn, const char *network,
			     const char *mac, char **ret_ip)
{
	_cleanup_(virNetworkFreep) virNetwork *net = virNetworkLookupByName(conn, network);
	if (!net)
		return -EIO;
	virNetworkDHCPLeasePtr *leases = NULL;
	int n = virNetworkGetDHCPLeases(net, mac, &leases, 0);
	if (n < 0)
		return -EIO;
	int r = -EAGAIN;
	for (int i = 0; i < n; i++) {
		if (r == -EAGAIN && leases[i]->type == VIR_IP_ADDR_TYPE_IPV4 && leases[i]->ipaddr) {
			*ret_ip = strdup(leases[i]->ipaddr);
			r = *ret_ip ? 0 : -ENOMEM;
		}
		virNetworkDHCPLeaseFree(leases[i]);
	}
	free(leases);
	return r;
}

/* Delete a volume by path or by name in a pool; a missing one is fine. */
static int volume_delete(virConnectPtr conn, virStoragePoolPtr pool, const char *path,
			 const char *name, struct pp_error **reterr)
{
	_cleanup_(virStorageVolFreep) virStorageVol *vol =
	    path ? virStorageVolLookupByPath(conn, path)
		 : (pool ? virStorageVolLookupByName(pool, name) : NULL);
	if (!vol)
		return last_code() == VIR_ERR_NO_STORAGE_VOL || (!path && !pool)
			   ? 0
			   : fail(reterr, "cannot find volume %s", path ?: name);
	if (virStorageVolDelete(vol, 0) < 0 && last_code() != VIR_ERR_NO_STORAGE_VOL)
		return fail(reterr, "cannot delete volume %s", path ?: name);
	return 0;
}

/* Stop a domain if it runs, then undefine it and its NVRAM. Older drivers (and the test
 * driver) reject some flags: fall back to fewer. */
static int domain_remove(virDomainPtr dom, const char *name, struct pp_error **reterr)
{
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 &&
	    last_code() != VIR_ERR_OPERATION_INVALID && last_code() != VIR_ERR_NO_DOMAIN)
		return fail(reterr, "cannot stop domain %s", name);
	static const unsigned flag_sets[] = {
	    VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
		VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
	    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
	    0,
	};
	for (size_t i = 0; i < ELEMENTSOF(flag_sets); i++) {
		if (virDomainUndefineFlags(dom, flag_sets[i]) == 0)
			return 0;
		int code = last_code();
		if (code == VIR_ERR_NO_DOMAIN)
			return 0;
		if (code != VIR_ERR_INVALID_ARG && code != VIR_ERR_NO_SUPPORT)
			break;
	}
	return fail(reterr, "cannot undefine domain %s", name);
}

static int domain_metadata(virDomainPtr dom, struct libvirt_metadata *ret)
{
	_cleanup_free_ char *xml =
	    virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LIBVIRT_METADATA_URI, 0);
	if (!xml)
		return last_code() == VIR_ERR_NO_DOMAIN_METADATA ? -ENOENT : -EIO;
	return libvirt_metadata_parse(xml, strlen(xml), ret);
}

/* ---- create ---- */

struct create_ctx {
	const struct provider_instance_spec *spec;
	struct provider_instance *ret;
};

/* What a create made so far, for the rollback. */
struct created {
	char *root_path;
	char *cidata_path;
	virDomainPtr dom;
};

static void rollback(virConnectPtr conn, struct created *c, const char *name)
{
	/* best effort: the caller reports the original failure */
	if (c->dom) {
		(void)domain_remove(c->dom, name, NULL);
		virDomainFree(c->dom);
	}
	if (c->cidata_path)
		(void)volume_delete(conn, NULL, c->cidata_path, NULL, NULL);
	if (c->root_path)
		(void)volume_delete(conn, NULL, c->root_path, NULL, NULL);
	free(c->root_path);
	free(c->cidata_path);
	*c = (struct created){0};
}

/* Leftovers of an attempt that lost its connection midway: same names, ours by construction
 * (the instance name embeds the sandbox id). */
static void remove_leftovers(virConnectPtr conn, virStoragePoolPtr pool, const char *name,
			     const char *root_name, const char *cidata_name)
{
	_cleanup_(virDomainFreep) virDomain *dom = virDomainLookupByName(conn, name);
	struct libvirt_metadata md = {0};
	if (dom && domain_metadata(dom, &md) == 0)
		(void)domain_remove(dom, name, NULL);
	libvirt_metadata_done(&md);
	(void)volume_delete(conn, pool, NULL, root_name, NULL);
	(void)volume_delete(conn, pool, NULL, cidata_name, NULL);
}

static int wait_for_ip(struct provider *p, virConnectPtr conn, const char *mac, const char *name,
		       char **ret_ip, struct pp_error **reterr)
{
	const struct libvirt_settings *s = p->settings;
	for (uint64_t i = 0; i < s->ip_retries; i++) {
		if (i > 0)
			sleep_ns(s->ip_interval_ns);
		int r = p->hooks.lookup_ip(p->hooks.userdata, conn, s->network_name, mac, ret_ip);
		if (r == 0)
			return 0;
		if (r != -EAGAIN)
			return fail(reterr, "cannot read the DHCP leases of network %s",
				    s->network_name);
	}
	return pp_error_set(reterr, ETIMEDOUT,
			    "no DHCP lease for %s (MAC %s) on network %s after %llu lookups", name,
			    mac, s->network_name, (unsigned long long)s->ip_retries);
}

/* Each step records what it made in *made; the caller rolls back on failure. */
static int create_steps(struct provider *p, virConnectPtr conn, virStoragePoolPtr pool,
			const struct provider_instance_spec *spec, const char *root_name,
			const char *cidata_name, struct created *made,
			struct provider_instance *ret, struct pp_error **reterr)
{
	const struct libvirt_settings *s = p->settings;
	const char *name = spec->instance_name;
	const char *base_name = !str_empty(spec->image) ? spec->image : s->vol_name;
	int r;

	/* the root disk: a qcow2 overlay on the base volume, at least as big as the base */
	_cleanup_(virStorageVolFreep) virStorageVol *base =
	    virStorageVolLookupByName(pool, base_name);
	if (!base)
		return fail(reterr, "cannot find base volume %s in pool %s", base_name,
			    s->pool_name);
	_cleanup_free_ char *base_path = virStorageVolGetPath(base);
	virStorageVolInfo info;
	char fmt[16];
	if (!base_path || virStorageVolGetInfo(base, &info) < 0 || base_format(base, fmt) < 0)
		return fail(reterr, "cannot inspect base volume %s", base_name);
	uint64_t size = s->root_disk_size_gib << 30;
	if (size < info.capacity)
		size = info.capacity;
	_cleanup_free_ char *base_esc = xml_escape(base_path);
	_cleanup_free_ char *root_xml =
	    base_esc ? str_printf("<volume><name>%s</name>"
				  "<capacity unit='bytes'>%llu</capacity>"
				  "<target><format type='qcow2'/></target>"
				  "<backingStore><path>%s</path><format type='%s'/></backingStore>"
				  "</volume>",
				  root_name, (unsigned long long)size, base_esc, fmt)
		     : NULL;
	if (!root_xml)
		return -ENOMEM;
	_cleanup_(virStorageVolFreep) virStorageVol *root =
	    virStorageVolCreateXML(pool, root_xml, 0);
	if (!root)
		return fail(reterr, "cannot create volume %s", root_name);
	made->root_path = virStorageVolGetPath(root);
	if (!made->root_path) {
		r = fail(reterr, "cannot get the path of volume %s", root_name);
		(void)virStorageVolDelete(root, 0);
		return r;
	}

	/* the cidata ISO */
	_cleanup_free_ uint8_t *iso = NULL;
	size_t iso_len = 0;
	r = libvirt_cidata_build(spec->user_data ?: "", name, &iso, &iso_len);
	if (r < 0)
		return pp_error_set(reterr, r, "cannot build the cidata image of %s: %s", name,
				    strerror(-r));
	_cleanup_free_ char *cidata_xml =
	    str_printf("<volume><name>%s</name><capacity unit='bytes'>%zu</capacity>"
		       "<target><format type='raw'/></target></volume>",
		       cidata_name, iso_len);
	if (!cidata_xml)
		return -ENOMEM;
	_cleanup_(virStorageVolFreep) virStorageVol *cidata =
	    virStorageVolCreateXML(pool, cidata_xml, 0);
	if (!cidata)
		return fail(reterr, "cannot create volume %s", cidata_name);
	made->cidata_path = virStorageVolGetPath(cidata);
	if (!made->cidata_path) {
		r = fail(reterr, "cannot get the path of volume %s", cidata_name);
		(void)virStorageVolDelete(cidata, 0);
		return r;
	}
	r = p->hooks.upload(p->hooks.userdata, conn, cidata, iso, iso_len, reterr);
	if (r < 0) {
		pp_error_prefix(reterr, "cannot upload volume %s", cidata_name);
		return r;
	}

	/* the domain, with our metadata in its definition so it is never unlabelled */
	char mac[18];
	r = random_mac(mac);
	if (r < 0)
		return pp_error_set(reterr, r, "cannot generate a MAC address: %s", strerror(-r));
	struct libvirt_metadata md = {
	    .sandbox_id = (char *)spec->sandbox_id,
	    .node_name = (char *)(spec->node_name ?: ""),
	    .pod_name = (char *)spec->pod_name,
	    .pod_namespace = (char *)spec->pod_namespace,
	    .mac = mac,
	    .root_volume = made->root_path,
	    .cidata_volume = made->cidata_path,
	};
	_cleanup_free_ char *md_xml = libvirt_metadata_format(&md);
	_cleanup_free_ char *log = !str_empty(s->console_log_dir)
				       ? str_printf("%s/%s.log", s->console_log_dir, name)
				       : NULL;
	enum libvirt_launch launch = LIBVIRT_LAUNCH_NONE;
	if (!s->disable_cvm && str_eq(s->launch_security, "sev-snp"))
		launch = LIBVIRT_LAUNCH_SEV_SNP;
	else if (!s->disable_cvm && str_eq(s->launch_security, "tdx"))
		launch = LIBVIRT_LAUNCH_TDX;
	struct libvirt_domain_params params = {
	    .name = name,
	    .virt_type = virt_type(conn),
	    .machine = s->machine,
	    .vcpus = spec->vcpus ? spec->vcpus : (unsigned)s->cpu,
	    .memory_mib = spec->memory_mib ? spec->memory_mib : s->memory_mib,
	    .cpuset = s->cpuset,
	    .root_path = made->root_path,
	    .cidata_path = made->cidata_path,
	    .network = s->network_name,
	    .mac = mac,
	    .firmware = s->firmware,
	    .kernel = s->kernel,
	    .initrd = s->initrd,
	    .cmdline = s->cmdline,
	    .console_log = log,
	    .launch = launch,
	    .metadata_xml = md_xml,
	};
	_cleanup_free_ char *dom_xml = md_xml ? libvirt_domain_xml(&params) : NULL;
	if (!dom_xml || (!str_empty(s->console_log_dir) && !log))
		return -ENOMEM;
	made->dom = virDomainDefineXML(conn, dom_xml);
	if (!made->dom)
		return fail(reterr, "cannot define domain %s", name);
	if (virDomainCreate(made->dom) < 0)
		return fail(reterr, "cannot start domain %s", name);
	char uuid[VIR_UUID_STRING_BUFLEN];
	if (virDomainGetUUIDString(made->dom, uuid) < 0)
		return fail(reterr, "cannot get the UUID of domain %s", name);
	_cleanup_free_ char *ip = NULL;
	r = wait_for_ip(p, conn, mac, name, &ip, reterr);
	if (r < 0)
		return r;

	*ret = (struct provider_instance){
	    .id = strdup(uuid),
	    .name = strdup(name),
	    .sandbox_id = str_dup(spec->sandbox_id),
	    .node_name = strdup(spec->node_name ?: ""),
	};
	ret->ips[0] = TAKE_PTR(ip);
	ret->n_ips = 1;
	if (!ret->id || !ret->name || !ret->node_name || (spec->sandbox_id && !ret->sandbox_id)) {
		provider_instance_done(ret);
		return -ENOMEM;
	}
	return 0;
}

static int create_op(struct provider *p, virConnectPtr conn, void *ctxp, bool retry,
		     struct pp_error **reterr)
{
	struct create_ctx *ctx = ctxp;
	const char *name = ctx->spec->instance_name;
	_cleanup_free_ char *root_name = str_printf("%s-root.qcow2", name);
	_cleanup_free_ char *cidata_name = str_printf("%s-cidata.iso", name);
	if (!root_name || !cidata_name)
		return -ENOMEM;
	_cleanup_(virStoragePoolFreep) virStoragePool *pool =
	    virStoragePoolLookupByName(conn, p->settings->pool_name);
	if (!pool)
		return fail(reterr, "cannot find storage pool %s", p->settings->pool_name);
	if (retry)
		remove_leftovers(conn, pool, name, root_name, cidata_name);
	struct created made = {0};
	int r =
	    create_steps(p, conn, pool, ctx->spec, root_name, cidata_name, &made, ctx->ret, reterr);
	if (r < 0) {
		rollback(conn, &made, name);
		return r;
	}
	if (made.dom)
		virDomainFree(made.dom);
	free(made.root_path);
	free(made.cidata_path);
	return 0;
}

static int libvirt_create_instance(struct provider *p, const struct provider_instance_spec *spec,
				   struct provider_instance *ret, struct pp_error **reterr)
{
	if (!name_valid(spec->instance_name))
		return pp_error_set(reterr, EINVAL, "invalid instance name \"%s\"",
				    spec->instance_name ?: "");
	if (!str_empty(spec->image) && !vol_name_valid(spec->image))
		return pp_error_set(reterr, EINVAL, "invalid image (volume name) \"%s\"",
				    spec->image);
	struct create_ctx ctx = {spec, ret};
	int r = with_conn(p, create_op, &ctx, reterr);
	if (r < 0)
		pp_error_prefix(reterr, "creating libvirt instance %s", spec->instance_name);
	return r;
}

/* ---- delete ---- */

static int delete_op(struct provider *p, virConnectPtr conn, void *ctxp, bool retry,
		     struct pp_error **reterr)
{
	const char *id = ctxp;
	_cleanup_(virDomainFreep) virDomain *dom = virDomainLookupByUUIDString(conn, id);
	if (!dom)
		return last_code() == VIR_ERR_NO_DOMAIN
			   ? 0
			   : fail(reterr, "cannot look up domain %s", id);
	const char *dname = virDomainGetName(dom);
	_cleanup_free_ char *name = str_dup(dname);
	if (!name)
		return dname ? -ENOMEM : fail(reterr, "cannot get the name of domain %s", id);
	struct libvirt_metadata md = {0};
	int r = domain_metadata(dom, &md);
	if (r == -ENOENT)
		return pp_error_set(reterr, EPERM,
				    "domain %s (%s) carries no peer-pod metadata: not ours, not "
				    "deleting it",
				    id, name);
	if (r == -EIO)
		return fail(reterr, "cannot read the metadata of domain %s", name);
	/* corrupt metadata (-EBADMSG): still ours, the volumes are found by name below */

	/* Stop first (a running VM holds its disks); delete the volumes before undefining, so
	 * a failure leaves the domain behind for the next attempt to find them again. */
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 &&
	    last_code() != VIR_ERR_OPERATION_INVALID) {
		libvirt_metadata_done(&md);
		return fail(reterr, "cannot stop domain %s", name);
	}
	_cleanup_(virStoragePoolFreep) virStoragePool *pool =
	    virStoragePoolLookupByName(conn, p->settings->pool_name);
	_cleanup_free_ char *root_name = str_printf("%s-root.qcow2", name);
	_cleanup_free_ char *cidata_name = str_printf("%s-cidata.iso", name);
	r = root_name && cidata_name ? 0 : -ENOMEM;
	if (r >= 0 && md.root_volume)
		r = volume_delete(conn, NULL, md.root_volume, NULL, reterr);
	if (r >= 0 && md.cidata_volume)
		r = volume_delete(conn, NULL, md.cidata_volume, NULL, reterr);
	if (r >= 0 && pool)
		r = volume_delete(conn, pool, NULL, root_name, reterr);
	if (r >= 0 && pool)
		r = volume_delete(conn, pool, NULL, cidata_name, reterr);
	libvirt_metadata_done(&md);
	if (r < 0)
		return r;
	return domain_remove(dom, name, reterr);
}

static int libvirt_delete_instance(struct provider *p, const char *instance_id,
				   struct pp_error **reterr)
{
	if (!uuid_valid(instance_id))
		return pp_error_set(reterr, EINVAL, "invalid libvirt instance id \"%s\"",
				    instance_id ?: "");
	int r = with_conn(p, delete_op, (void *)instance_id, reterr);
	if (r < 0)
		pp_error_prefix(reterr, "deleting libvirt instance %s", instance_id);
	return r;
}

/* ---- list ---- */

struct list_ctx {
	struct provider_instance *v;
	size_t n;
};

static int list_one(struct provider *p, virConnectPtr conn, virDomainPtr dom,
		    struct provider_instance *ret)
{
	struct libvirt_metadata md = {0};
	int r = domain_metadata(dom, &md);
	if (r == -ENOENT || r == -EIO)
		return 0; /* not ours, or gone meanwhile */
	char uuid[VIR_UUID_STRING_BUFLEN];
	const char *name = virDomainGetName(dom);
	if (virDomainGetUUIDString(dom, uuid) < 0 || !name) {
		libvirt_metadata_done(&md);
		return 0;
	}
	/* corrupt metadata (-EBADMSG) still lists the domain by id and name */
	*ret = (struct provider_instance){.id = strdup(uuid),
					  .name = strdup(name),
					  .sandbox_id = TAKE_PTR(md.sandbox_id),
					  .node_name = TAKE_PTR(md.node_name)};
	if (md.mac && virDomainIsActive(dom) == 1 &&
	    p->hooks.lookup_ip(p->hooks.userdata, conn, p->settings->network_name, md.mac,
			       &ret->ips[0]) == 0)
		ret->n_ips = 1;
	libvirt_metadata_done(&md);
	if (!ret->id || !ret->name) {
		provider_instance_done(ret);
		return -ENOMEM;
	}
	return 1;
}

static int list_op(struct provider *p, virConnectPtr conn, void *ctxp, bool retry,
		   struct pp_error **reterr)
{
	struct list_ctx *ctx = ctxp;
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0)
		return fail(reterr, "cannot list domains");
	int r = 0;
	struct provider_instance *v = n > 0 ? calloc((size_t)n, sizeof(*v)) : NULL;
	size_t count = 0;
	if (n > 0 && !v)
		r = -ENOMEM;
	for (int i = 0; i < n; i++) {
		if (r >= 0) {
			int k = list_one(p, conn, doms[i], &v[count]);
			if (k < 0)
				r = k;
			else
				count += (size_t)k;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	if (r < 0) {
		provider_instances_free(v, count);
		return r;
	}
	ctx->v = v;
	ctx->n = count;
	return 0;
}

static int libvirt_list_instances(struct provider *p, struct provider_instance **ret, size_t *ret_n,
				  struct pp_error **reterr)
{
	struct list_ctx ctx = {0};
	int r = with_conn(p, list_op, &ctx, reterr);
	if (r < 0) {
		pp_error_prefix(reterr, "listing libvirt instances");
		return r;
	}
	*ret = ctx.v;
	*ret_n = ctx.n;
	return 0;
}

/* ---- setup ---- */

static int libvirt_verify_config(const void *settings, struct pp_error **reterr)
{
	const struct libvirt_settings *s = settings;
	if (str_empty(s->uri))
		return pp_error_set(reterr, EINVAL, "-uri (LIBVIRT_URI) must not be empty");
	if (str_empty(s->pool_name))
		return pp_error_set(reterr, EINVAL, "-pool-name (LIBVIRT_POOL) must not be empty");
	if (str_empty(s->network_name))
		return pp_error_set(reterr, EINVAL,
				    "-network-name (LIBVIRT_NET) must not be empty");
	if (!vol_name_valid(s->vol_name))
		return pp_error_set(reterr, EINVAL,
				    "-vol-name (LIBVIRT_VOL_NAME) must be a volume name");
	if (s->cpu < 1 || s->cpu > 4096)
		return pp_error_set(reterr, EINVAL, "-cpu (LIBVIRT_CPU) must be 1..4096");
	if (s->memory_mib < 64 || s->memory_mib > (16ull << 20))
		return pp_error_set(reterr, EINVAL,
				    "-memory (LIBVIRT_MEMORY) must be 64..16777216 MiB");
	if (s->root_disk_size_gib > (1ull << 20))
		return pp_error_set(reterr, EINVAL,
				    "-root-disk-size (LIBVIRT_ROOT_DISK_SIZE) "
				    "is too large");
	if (!cpuset_valid(s->cpuset))
		return pp_error_set(reterr, EINVAL,
				    "-cpuset (LIBVIRT_CPUSET) \"%s\" is not a libvirt cpuset",
				    s->cpuset);
	if (s->ip_retries < 1)
		return pp_error_set(reterr, EINVAL, "-libvirt-ip-retries must be at least 1");
	if (s->ip_interval_ns < 0)
		return pp_error_set(reterr, EINVAL, "-libvirt-ip-interval must not be negative");
	if (str_empty(s->machine))
		return pp_error_set(reterr, EINVAL, "-libvirt-machine must not be empty");
	if (!str_empty(s->initrd) && str_empty(s->kernel))
		return pp_error_set(reterr, EINVAL, "-libvirt-initrd needs -libvirt-kernel");
	if (!s->disable_cvm) {
		if (str_eq(s->launch_security, "s390-pv"))
			return pp_error_set(reterr, EOPNOTSUPP,
					    "launch security s390-pv (s390x) is not supported by "
					    "this build");
		if (str_empty(s->launch_security))
			return pp_error_set(reterr, EINVAL,
					    "DISABLECVM=false needs -launch-security "
					    "(LIBVIRT_LAUNCH_SECURITY) sev-snp or tdx on x86_64");
	}
	return 0;
}

static void libvirt_done(struct provider *p)
{
	if (!p)
		return;
	if (p->conn)
		virConnectClose(p->conn);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int libvirt_init(const void *settings, const struct provider_context *ctx,
			struct provider **ret, struct pp_error **reterr)
{
	_cleanup_free_ char *msg = NULL;
	if (virt_api_load(&msg) < 0)
		return fail(reterr, "%s (install libvirt0)", msg);
	virSetErrorFunc(NULL, quiet_errors);
	if (virInitialize() < 0)
		return fail(reterr, "cannot initialise libvirt");
	struct provider *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->settings = settings;
	p->hooks = (struct libvirt_hooks){.upload = default_upload, .lookup_ip = default_lookup_ip};
	/* connect now, so a wrong URI or missing credentials fail at start */
	virConnectPtr conn = NULL;
	int r = conn_get(p, &conn, reterr);
	if (r < 0) {
		libvirt_done(p);
		return r;
	}
	virConnectClose(conn);
	*ret = p;
	return 0;
}

void libvirt_set_hooks(struct provider *p, const struct libvirt_hooks *hooks)
{
	p->hooks = *hooks;
	if (!p->hooks.upload)
		p->hooks.upload = default_upload;
	if (!p->hooks.lookup_ip)
		p->hooks.lookup_ip = default_lookup_ip;
}

static int check_op(struct provider *p, virConnectPtr conn, void *ctx, bool retry,
		    struct pp_error **reterr)
{
	if (virConnectIsAlive(conn) == 1)
		return 0;
	return pp_error_set(reterr, ECONNRESET, "the connection to libvirt is not alive");
}

/* For /readyz: the connection answers (with_conn reconnects once after a libvirtd restart). */
static int libvirt_check(struct provider *p, struct pp_error **reterr)
{
	return with_conn(p, check_op, NULL, reterr);
}

const struct provider_ops libvirt_provider_ops = {
    .name = "libvirt",
    .pod_network = true,
    .options = libvirt_options,
    .n_options = ELEMENTSOF(libvirt_options),
    .settings_size = sizeof(struct libvirt_settings),
    .verify_config = libvirt_verify_config,
    .init = libvirt_init,
    .done = libvirt_done,
    .create_instance = libvirt_create_instance,
    .delete_instance = libvirt_delete_instance,
    .list_instances = libvirt_list_instances,
    .check = libvirt_check,
};
