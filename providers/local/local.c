/* providers/local: a provider without VMs, for development, tests and benchmarks. Each
 * "instance" is an agent-protocol-forwarder child process with the pod's apf.json, listening on
 * the forwarder port of its own loopback address (127.1.x.y), exactly as it would in a VM. The
 * forwarders run in their own sessions, so they outlive an adaptor restart like VMs do; their
 * records live in <data-dir>/local/<instance-name>/instance.json. An optional boot command plays
 * the VM's boot chain (process-user-data, attestation client): it runs in a session of its own
 * beside the forwarder, is not waited for, and its whole process group dies with the instance. */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <limits.h>

#include "provider.h"

#define INSTANCE_FILE_MAX_BYTES (16u << 10)
#define ID_PREFIX "local-"
#define STOP_GRACE_MS 5000
#define ADDR_SLOTS 65536 /* 127.1.0.0/16 */

struct local_settings {
	char *agent_socket;
	char *forwarder;
	int64_t create_delay_ns;
	char *boot_command;
};

static const struct config_option local_options[] = {
    {"local-agent-socket", "LOCAL_AGENT_SOCKET", CONFIG_STRING, "/run/kata-containers/agent.sock",
     offsetof(struct local_settings, agent_socket), "agent socket the forwarders relay to", NULL},
    {"local-forwarder", "LOCAL_FORWARDER", CONFIG_STRING, NULL,
     offsetof(struct local_settings, forwarder),
     "agent-protocol-forwarder binary (default: next to the adaptor, then PATH)", NULL},
    {"local-create-delay", "LOCAL_CREATE_DELAY", CONFIG_DURATION, "0s",
     offsetof(struct local_settings, create_delay_ns),
     "delay of each instance creation, modelling a slow cloud", NULL},
    {"local-boot-command", "LOCAL_BOOT_COMMAND", CONFIG_STRING, NULL,
     offsetof(struct local_settings, boot_command),
     "program run as <program> <instance-dir> in each instance's own session before its "
     "forwarder, not waited for (the VM's boot chain); env INSTANCE_DIR, INSTANCE_IP, "
     "USER_DATA_FILE; empty = none",
     NULL},
};

struct provider {
	const struct local_settings *settings;
	char *dir;
	char *forwarder;
	uint16_t port;
	bool disable_tls;
	pthread_mutex_t lock;
	uint8_t used[ADDR_SLOTS / 8];
};

/* ---- addresses ---- */

static bool slot_usable(unsigned n)
{
	unsigned last = n & 0xff;
	return last != 0 && last != 255;
}

static void slot_to_ip(unsigned n, char buf[16])
{
	snprintf(buf, 16, "127.1.%u.%u", n >> 8, n & 0xff);
}

static int ip_to_slot(const char *ip)
{
	unsigned a, b;
	char tail;
	if (sscanf(ip, "127.1.%u.%u%c", &a, &b, &tail) != 2 || a > 255 || b > 255)
		return -EINVAL;
	return (int)(a << 8 | b);
}

static void slot_set(struct provider *p, int n, bool used)
{
	if (n < 0 || n >= ADDR_SLOTS)
		return;
	if (used)
		p->used[n / 8] |= (uint8_t)(1u << (n % 8));
	else
		p->used[n / 8] &= (uint8_t) ~(1u << (n % 8));
}

static int slot_alloc(struct provider *p)
{
	for (unsigned n = 1; n < ADDR_SLOTS; n++)
		if (slot_usable(n) && !(p->used[n / 8] & (1u << (n % 8)))) {
			slot_set(p, (int)n, true);
			return (int)n;
		}
	return -EADDRNOTAVAIL;
}

/* ---- instance records ---- */

struct record {
	char *id, *name, *sandbox_id, *node, *ip;
	int64_t pid;
	int64_t start_time; /* /proc/<pid>/stat field 22, guards against pid reuse */
	int64_t hook_pid;   /* the boot command: session and process group leader, 0 = none */
	int64_t hook_start_time;
};

static void record_done(struct record *r)
{
	free(r->id);
	free(r->name);
	free(r->sandbox_id);
	free(r->node);
	free(r->ip);
	*r = (struct record){0};
}

static int record_save(const char *dir, const struct record *rec)
{
	_cleanup_(json_decrefp) json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", rec->id, "name", rec->name,
	    "sandbox-id", rec->sandbox_id ?: "", "node", rec->node ?: "", "ip", rec->ip, "pid",
	    (json_int_t)rec->pid, "start-time", (json_int_t)rec->start_time, "hook-pid",
	    (json_int_t)rec->hook_pid, "hook-start-time", (json_int_t)rec->hook_start_time);
	if (!o)
		return -ENOMEM;
	_cleanup_free_ char *text = json_dumps(o, JSON_INDENT(2));
	_cleanup_free_ char *path = str_printf("%s/instance.json", dir);
	if (!text || !path)
		return -ENOMEM;
	return write_file_atomic(path, text, strlen(text), 0600);
}

static int record_load(const char *dir, struct record *ret)
{
	_cleanup_free_ char *path = str_printf("%s/instance.json", dir);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (!path)
		return -ENOMEM;
	int r = read_file_bounded(path, INSTANCE_FILE_MAX_BYTES, &text, &len);
	if (r < 0)
		return r;
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *o = json_loadb(text, len, 0, &jerr);
	const char *id, *name, *sid, *node, *ip;
	json_int_t pid, st, hook_pid = 0, hook_st = 0;
	/* records written before the boot command existed have no hook fields */
	if (!o ||
	    json_unpack(o, "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s?I, s?I}", "id", &id, "name",
			&name, "sandbox-id", &sid, "node", &node, "ip", &ip, "pid", &pid,
			"start-time", &st, "hook-pid", &hook_pid, "hook-start-time", &hook_st) < 0)
		return -EBADMSG;
	*ret = (struct record){strdup(id), strdup(name), strdup(sid), strdup(node), strdup(ip),
			       pid,        st,           hook_pid,    hook_st};
	if (!ret->id || !ret->name || !ret->sandbox_id || !ret->node || !ret->ip) {
		record_done(ret);
		return -ENOMEM;
	}
	return 0;
}

/* ---- processes ---- */

/* Fields 3 (state), 5 (process group) and 22 (start time) of /proc/<pid>/stat. */
static int proc_stat(pid_t pid, char *ret_state, int64_t *ret_pgrp, int64_t *ret_start_time)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *text = NULL;
	int r = read_file_bounded(path, 4096, &text, NULL);
	if (r < 0)
		return r;
	/* comm may contain spaces and parentheses: fields start after the last ')' */
	char *p = strrchr(text, ')');
	if (!p)
		return -EBADMSG;
	char *save = NULL;
	int field = 3;
	for (char *tok = strtok_r(p + 1, " \n", &save); tok && field <= 22;
	     tok = strtok_r(NULL, " \n", &save), field++) {
		if (field == 3 && ret_state)
			*ret_state = tok[0];
		else if (field == 5 && ret_pgrp && parse_i64(tok, ret_pgrp) < 0)
			return -EBADMSG;
		else if (field == 22)
			return ret_start_time && parse_i64(tok, ret_start_time) < 0 ? -EBADMSG : 0;
	}
	return -EBADMSG;
}

static int64_t process_start_time(pid_t pid)
{
	int64_t v;
	return proc_stat(pid, NULL, NULL, &v) < 0 ? -1 : v;
}

/* Whether the environment of pid holds exactly the entry want ("NAME=value"). */
static bool environ_has(pid_t pid, const char *want)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_bounded(path, 1u << 20, &text, &len) < 0)
		return false;
	for (size_t off = 0; off < len; off += strlen(text + off) + 1)
		if (strcmp(text + off, want) == 0)
			return true;
	return false;
}

/* The live (not zombie) members of process group pgid; with marker, *ret_marked tells whether
 * one of them carries that environment entry. */
static int group_scan(pid_t pgid, const char *marker, bool *ret_marked)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		int32_t pid;
		char state = 0;
		int64_t pgrp = 0;
		if (parse_i32(de->d_name, &pid) < 0 || pid <= 0 ||
		    proc_stat(pid, &state, &pgrp, NULL) < 0 || pgrp != pgid || state == 'Z')
			continue;
		n++;
		if (marker && ret_marked && !*ret_marked && environ_has(pid, marker))
			*ret_marked = true;
	}
	closedir(d);
	return n;
}

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Wait for a process to go away, up to timeout_ms. True if gone. */
static bool wait_gone(pid_t pid, int pidfd, int timeout_ms)
{
	if (pidfd >= 0) {
		struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
		int r;
		do
			r = poll(&pfd, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		(void)waitpid(pid, NULL, WNOHANG); /* reap it if it is our child */
		return r > 0;
	}
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		(void)waitpid(pid, NULL, WNOHANG);
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static int stop_process(const struct record *rec)
{
	if (rec->pid <= 0)
		return 0;
	pid_t pid = (pid_t)rec->pid;
	if (process_start_time(pid) != rec->start_time)
		return 0; /* gone (or the pid now belongs to someone else) */
	_cleanup_close_ int pidfd = pidfd_open_compat(pid);
	if (kill(pid, SIGTERM) < 0)
		return errno == ESRCH ? 0 : -errno;
	if (wait_gone(pid, pidfd, STOP_GRACE_MS))
		return 0;
	if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
		return -errno;
	return wait_gone(pid, pidfd, STOP_GRACE_MS) ? 0 : -ETIMEDOUT;
}

/* Kill the boot command's whole process group: the attestation client it leaves behind must die
 * with the instance. The group is ours if its leader is the recorded process, or, once the
 * leader has exited, if a member still carries the instance's INSTANCE_DIR (a group id is not
 * reused while members are alive). */
static int stop_group(const struct record *rec, const char *marker)
{
	if (rec->hook_pid <= 0)
		return 0;
	pid_t pgid = (pid_t)rec->hook_pid;
	if (process_start_time(pgid) != rec->hook_start_time) {
		bool marked = false;
		if (group_scan(pgid, marker, &marked) <= 0 || !marked)
			return 0;
	}
	for (int round = 0; round < 2; round++) {
		if (kill(-pgid, round == 0 ? SIGTERM : SIGKILL) < 0) {
			(void)waitpid(pgid, NULL, WNOHANG);
			return errno == ESRCH ? 0 : -errno;
		}
		for (int waited = 0; waited < STOP_GRACE_MS; waited += 10) {
			(void)waitpid(pgid, NULL, WNOHANG); /* the leader, while it is our child */
			if (group_scan(pgid, NULL, NULL) == 0)
				return 0;
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return -ETIMEDOUT;
}

/* Start argv[0] with output to logpath, in a session of its own (it outlives us like a VM), and
 * with a clean signal state: we run on a worker thread that blocks every signal. */
static int spawn_session(char *const argv[], char *const envp[], const char *logpath, pid_t *ret)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r != 0)
		return -r;
	*ret = pid;
	return 0;
}

static bool hook_env_name(const char *entry)
{
	return str_startswith(entry, "INSTANCE_DIR=") || str_startswith(entry, "INSTANCE_IP=") ||
	       str_startswith(entry, "USER_DATA_FILE=");
}

/* The boot command: `<command> <instance-dir>` with our environment plus INSTANCE_DIR (also the
 * marker stop_group looks for), INSTANCE_IP and USER_DATA_FILE. */
static int spawn_hook(struct provider *p, const char *dir, const char *ip, pid_t *ret)
{
	extern char **environ;
	_cleanup_free_ char *logpath = str_printf("%s/boot.log", dir);
	_cleanup_free_ char *env_dir = str_printf("INSTANCE_DIR=%s", dir);
	_cleanup_free_ char *env_ip = str_printf("INSTANCE_IP=%s", ip);
	_cleanup_free_ char *env_ud = str_printf("USER_DATA_FILE=%s/user-data", dir);
	size_t n = environ ? strv_length(environ) : 0;
	_cleanup_free_ char **envp = calloc(n + 4, sizeof(char *));
	if (!logpath || !env_dir || !env_ip || !env_ud || !envp)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!hook_env_name(environ[i]))
			envp[k++] = environ[i];
	envp[k++] = env_dir;
	envp[k++] = env_ip;
	envp[k++] = env_ud;
	char *argv[] = {p->settings->boot_command, (char *)dir, NULL};
	return spawn_session(argv, envp, logpath, ret);
}

static int spawn_forwarder(struct provider *p, const char *dir, const char *ip, pid_t *ret)
{
	char listen[64];
	snprintf(listen, sizeof(listen), "%s:%u", ip, p->port);
	_cleanup_free_ char *config = str_printf("%s/apf.json", dir);
	_cleanup_free_ char *logpath = str_printf("%s/forwarder.log", dir);
	if (!config || !logpath)
		return -ENOMEM;
	char *argv[] = {p->forwarder,
			(char *)"-listen",
			listen,
			(char *)"-config",
			config,
			(char *)"-kata-agent-socket",
			p->settings->agent_socket,
			p->disable_tls ? (char *)"-disable-tls" : NULL,
			NULL};
	extern char **environ;
	return spawn_session(argv, environ, logpath, ret);
}

/* The instance directory as an absolute path: the boot command's INSTANCE_DIR. */
static char *instance_dir_abs(const char *dir)
{
	char buf[PATH_MAX];
	return realpath(dir, buf) ? strdup(buf) : strdup(dir);
}

/* ---- provider operations ---- */

static int local_verify_config(const void *settings, struct pp_error **reterr)
{
	const struct local_settings *s = settings;
	if (str_empty(s->agent_socket))
		return pp_error_set(reterr, EINVAL, "-local-agent-socket must not be empty");
	if (s->create_delay_ns < 0)
		return pp_error_set(reterr, EINVAL, "-local-create-delay must not be negative");
	return 0;
}

static void local_done(struct provider *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->dir);
	free(p->forwarder);
	free(p);
}

static bool id_valid(const char *id)
{
	if (!str_startswith(id, ID_PREFIX) || strlen(id) <= strlen(ID_PREFIX) || strlen(id) > 128)
		return false;
	for (const char *c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return true;
}

static int local_init(const void *settings, const struct provider_context *ctx,
		      struct provider **ret, struct pp_error **reterr)
{
	const struct local_settings *s = settings;
	struct provider *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->settings = s;
	p->port = ctx->forwarder_port;
	p->disable_tls = ctx->disable_tls;
	p->dir = str_printf("%s/local", ctx->data_dir);
	if (!str_empty(s->forwarder))
		p->forwarder = strdup(s->forwarder);
	else {
		_cleanup_free_ char *next =
		    str_printf("%s/agent-protocol-forwarder", ctx->program_dir);
		if (next && access(next, X_OK) == 0)
			p->forwarder = TAKE_PTR(next);
		else
			p->forwarder = strdup("agent-protocol-forwarder"); /* from PATH */
	}
	if (!p->dir || !p->forwarder) {
		local_done(p);
		return -ENOMEM;
	}
	int r = mkdir_p(p->dir, 0700);
	if (r < 0) {
		r = pp_error_set(reterr, r, "cannot create %s: %s", p->dir, strerror(-r));
		local_done(p);
		return r;
	}
	/* Addresses of instances that survive from an earlier run stay taken. */
	DIR *d = opendir(p->dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *sub = str_printf("%s/%s", p->dir, de->d_name);
		struct record rec = {0};
		if (sub && record_load(sub, &rec) >= 0)
			slot_set(p, ip_to_slot(rec.ip), true);
		record_done(&rec);
	}
	if (d)
		closedir(d);
	*ret = p;
	return 0;
}

static int local_create_instance(struct provider *p, const struct provider_instance_spec *spec,
				 struct provider_instance *ret, struct pp_error **reterr)
{
	if (p->settings->create_delay_ns > 0) {
		struct timespec ts = {p->settings->create_delay_ns / NSEC_PER_SEC,
				      p->settings->create_delay_ns % NSEC_PER_SEC};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	struct record rec = {0};
	_cleanup_free_ char *dir = NULL;
	char ip[16];
	int r;

	rec.id = str_printf(ID_PREFIX "%s", spec->instance_name);
	rec.name = strdup(spec->instance_name);
	rec.sandbox_id = strdup(spec->sandbox_id);
	rec.node = strdup(spec->node_name ?: "");
	if (!rec.id || !rec.name || !rec.sandbox_id || !rec.node) {
		record_done(&rec);
		return -ENOMEM;
	}
	if (!id_valid(rec.id)) {
		r = pp_error_set(reterr, EINVAL, "invalid instance name \"%s\"", rec.name);
		record_done(&rec);
		return r;
	}
	dir = str_printf("%s/%s", p->dir, rec.name);
	if (!dir) {
		record_done(&rec);
		return -ENOMEM;
	}

	pthread_mutex_lock(&p->lock);
	int slot = slot_alloc(p);
	r = slot < 0 ? slot : (mkdir(dir, 0700) < 0 ? -errno : 0);
	if (r < 0 && slot >= 0)
		slot_set(p, slot, false);
	pthread_mutex_unlock(&p->lock);
	if (r < 0) {
		r = pp_error_set(reterr, r, "cannot create instance %s: %s", rec.name,
				 r == -EEXIST ? "it exists already" : strerror(-r));
		record_done(&rec);
		return r;
	}
	slot_to_ip((unsigned)slot, ip);
	rec.ip = strdup(ip);

	_cleanup_free_ char *apf_path = str_printf("%s/apf.json", dir);
	r = rec.ip && apf_path ? 0 : -ENOMEM;
	if (r == 0)
		r = write_file_atomic(apf_path, spec->apf_json, strlen(spec->apf_json), 0600);
	/* The cloud-config a real VM would read, kept for tests to inspect (it may hold
	 * registry credentials: 0600). */
	_cleanup_free_ char *ud_path = str_printf("%s/user-data", dir);
	if (r == 0 && spec->user_data)
		r = ud_path
			? write_file_atomic(ud_path, spec->user_data, strlen(spec->user_data), 0600)
			: -ENOMEM;
	if (r == 0)
		r = record_save(dir, &rec); /* pid 0: a crash now leaves a record, not a process */
	/* The boot chain first, as in a VM; the forwarder does not wait for it (attestation is
	 * asynchronous to the agent). */
	_cleanup_free_ char *absdir = NULL;
	if (r == 0 && !str_empty(p->settings->boot_command)) {
		pid_t hook = 0;
		absdir = instance_dir_abs(dir);
		r = absdir ? spawn_hook(p, absdir, ip, &hook) : -ENOMEM;
		if (r < 0)
			pp_error_set(reterr, r, "cannot start the boot command %s: %s",
				     p->settings->boot_command, strerror(-r));
		if (r == 0) {
			rec.hook_pid = hook;
			rec.hook_start_time = process_start_time(hook);
			r = record_save(dir, &rec);
		}
	}
	pid_t pid = 0;
	if (r == 0) {
		r = spawn_forwarder(p, dir, ip, &pid);
		if (r < 0)
			pp_error_set(reterr, r, "cannot start %s: %s", p->forwarder, strerror(-r));
	}
	if (r == 0) {
		rec.pid = pid;
		rec.start_time = process_start_time(pid);
		r = record_save(dir, &rec);
		if (r < 0) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, NULL, 0);
		}
	}
	if (r < 0) {
		pp_error_set(reterr, r, "cannot create instance %s: %s", rec.name, strerror(-r));
		(void)stop_group(&rec, NULL);
		(void)rm_rf(dir);
		pthread_mutex_lock(&p->lock);
		slot_set(p, slot, false);
		pthread_mutex_unlock(&p->lock);
		record_done(&rec);
		return r;
	}
	*ret = (struct provider_instance){.id = TAKE_PTR(rec.id), .name = TAKE_PTR(rec.name)};
	ret->ips[0] = TAKE_PTR(rec.ip);
	ret->n_ips = 1;
	ret->sandbox_id = TAKE_PTR(rec.sandbox_id);
	ret->node_name = TAKE_PTR(rec.node);
	record_done(&rec);
	return 0;
}

static int local_delete_instance(struct provider *p, const char *instance_id,
				 struct pp_error **reterr)
{
	if (!id_valid(instance_id))
		return pp_error_set(reterr, EINVAL, "invalid instance id \"%s\"", instance_id);
	_cleanup_free_ char *dir = str_printf("%s/%s", p->dir, instance_id + strlen(ID_PREFIX));
	if (!dir)
		return -ENOMEM;
	struct record rec = {0};
	int r = record_load(dir, &rec);
	if (r == -ENOENT) {
		/* Never fully created, or gone already: deleting a missing instance succeeds. */
		(void)rm_rf(dir);
		return 0;
	}
	if (r < 0)
		return pp_error_set(reterr, r, "cannot read the record of %s: %s", instance_id,
				    strerror(-r));
	_cleanup_free_ char *absdir = instance_dir_abs(dir);
	_cleanup_free_ char *marker = absdir ? str_printf("INSTANCE_DIR=%s", absdir) : NULL;
	if (!marker) {
		record_done(&rec);
		return -ENOMEM;
	}
	r = stop_group(&rec, marker);
	if (r < 0) {
		r = pp_error_set(reterr, r,
				 "cannot stop the boot command (process group %lld) of %s: %s",
				 (long long)rec.hook_pid, instance_id, strerror(-r));
		record_done(&rec);
		return r;
	}
	r = stop_process(&rec);
	if (r < 0) {
		r = pp_error_set(reterr, r, "cannot stop the forwarder (pid %lld) of %s: %s",
				 (long long)rec.pid, instance_id, strerror(-r));
		record_done(&rec);
		return r;
	}
	r = rm_rf(dir);
	pthread_mutex_lock(&p->lock);
	slot_set(p, ip_to_slot(rec.ip), false);
	pthread_mutex_unlock(&p->lock);
	record_done(&rec);
	if (r < 0)
		return pp_error_set(reterr, r, "cannot remove %s: %s", dir, strerror(-r));
	return 0;
}

static int local_list_instances(struct provider *p, struct provider_instance **ret, size_t *ret_n,
				struct pp_error **reterr)
{
	DIR *d = opendir(p->dir);
	if (!d)
		return pp_error_set(reterr, errno, "cannot list %s: %m", p->dir);
	struct provider_instance *v = NULL;
	size_t n = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *sub = str_printf("%s/%s", p->dir, de->d_name);
		struct record rec = {0};
		if (!sub) {
			r = -ENOMEM;
			break;
		}
		if (record_load(sub, &rec) < 0) {
			/* a directory without a record: an interrupted create */
			_cleanup_free_ char *id = str_printf(ID_PREFIX "%s", de->d_name);
			if (!id) {
				r = -ENOMEM;
				break;
			}
			rec = (struct record){.id = TAKE_PTR(id), .name = strdup(de->d_name)};
		}
		struct provider_instance *nv = reallocarray(v, n + 1, sizeof(*v));
		if (!nv) {
			record_done(&rec);
			r = -ENOMEM;
			break;
		}
		v = nv;
		v[n] = (struct provider_instance){.id = TAKE_PTR(rec.id),
						  .name = TAKE_PTR(rec.name),
						  .sandbox_id = TAKE_PTR(rec.sandbox_id),
						  .node_name = TAKE_PTR(rec.node)};
		if (rec.ip) {
			v[n].ips[0] = TAKE_PTR(rec.ip);
			v[n].n_ips = 1;
		}
		n++;
		record_done(&rec);
	}
	closedir(d);
	if (r < 0) {
		provider_instances_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

const struct provider_ops local_provider_ops = {
    .name = "local",
    .options = local_options,
    .n_options = ELEMENTSOF(local_options),
    .settings_size = sizeof(struct local_settings),
    .verify_config = local_verify_config,
    .init = local_init,
    .done = local_done,
    .create_instance = local_create_instance,
    .delete_instance = local_delete_instance,
    .list_instances = local_list_instances,
};
