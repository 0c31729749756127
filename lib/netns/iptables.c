/* lib/netns: the iptables raw-table NOTRACK rules for the vxlan tunnel (WIRE.md 6.2, 6.3),
 * made by running iptables itself: libiptc is not a stable interface, and the nft backend
 * would need libnftables' own rule language. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns-internal.h"

#define OUTPUT_MAX_BYTES (64u * 1024)
#define MAX_ARGS 32

/* Check-then-append is two commands; the adaptor's workers must not interleave them. */
static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;

static void drain(int fd, struct buf *b)
{
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (b->len < OUTPUT_MAX_BYTES)
			(void)buf_append(b, chunk, MIN((size_t)n, OUTPUT_MAX_BYTES - b->len),
					 OUTPUT_MAX_BYTES + 1);
	}
}

static char *buf_to_string(struct buf *b)
{
	char *s = malloc(b->len + 1);
	if (!s)
		return NULL;
	if (b->len)
		memcpy(s, b->data, b->len); /* an empty buf has no data pointer */
	s[b->len] = '\0';
	/* Trailing newlines make poor error messages. */
	for (size_t n = b->len; n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'); n--)
		s[n - 1] = '\0';
	return s;
}

int netns_iptables_run(const struct netns_iptables *ipt, const char *const *args, char **ret_out,
		       char **ret_msg)
{
	const char *binary = ipt && ipt->binary ? ipt->binary : "iptables";
	int nsfd = ipt ? ipt->netns_fd : -1;
	const char *argv[MAX_ARGS + 3];
	size_t argc = 0;
	argv[argc++] = binary;
	argv[argc++] = "-w";
	for (size_t i = 0; args[i]; i++) {
		if (argc >= MAX_ARGS + 2)
			return -E2BIG;
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	_cleanup_close_ int out_r = pipefd[0], out_w = pipefd[1];
	_cleanup_close_ int err_fd = memfd_create("iptables-stderr", MFD_CLOEXEC);
	if (err_fd < 0)
		return -errno;
	_cleanup_close_ int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		return -errno;

	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. */
		if ((nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) || dup2(null_fd, 0) < 0 ||
		    dup2(out_w, 1) < 0 || dup2(err_fd, 2) < 0)
			_exit(127);
		if (strchr(binary, '/'))
			execv(binary, (char *const *)argv);
		else
			execvp(binary, (char *const *)argv);
		_exit(127);
	}
	out_w = safe_close(out_w);
	struct buf out = {0};
	drain(out_r, &out);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			buf_done(&out);
			return -errno;
		}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code == 127) {
		buf_done(&out);
		if (ret_msg) {
			free(*ret_msg);
			*ret_msg = str_printf("cannot run %s", binary);
		}
		return -ENOENT;
	}
	if (ret_out) {
		*ret_out = buf_to_string(&out);
		if (!*ret_out) {
			buf_done(&out);
			return -ENOMEM;
		}
	}
	buf_done(&out);
	if (code != 0 && ret_msg) {
		struct buf err = {0};
		lseek(err_fd, 0, SEEK_SET);
		drain(err_fd, &err);
		_cleanup_free_ char *text = buf_to_string(&err);
		buf_done(&err);
		_cleanup_free_ char *cmd = NULL;
		struct buf c = {0};
		for (size_t i = 0; argv[i]; i++)
			(void)buf_printf(&c, "%s%s", i ? " " : "", argv[i]);
		cmd = buf_to_string(&c);
		buf_done(&c);
		free(*ret_msg);
		*ret_msg = str_printf("%s: exit status %d: %s", cmd ? cmd : binary, code,
				      text && *text ? text : "(no output)");
	}
	return code;
}

/* Run and require success. */
static int run_ok(const struct netns_iptables *ipt, const char *const *args, char **ret_out,
		  char **ret_msg)
{
	int r = netns_iptables_run(ipt, args, ret_out, ret_msg);
	if (r > 0)
		return -EIO;
	return r;
}

static const char *const chains[2][3] = {
    /* builtin, ours, address match */
    {"OUTPUT", "peerpod-OUTPUT", "-d"},
    {"PREROUTING", "peerpod-PREROUTING", "-s"},
};

struct rule_text {
	char addr[64];
	char comment[48];
	char port[8];
};

static int rule_text_init(struct rule_text *t, const char *peer, uint32_t vni, uint16_t port)
{
	if (str_empty(peer))
		return -EINVAL;
	const char *slash = strchr(peer, '/');
	size_t len = slash ? (size_t)(slash - peer) : strlen(peer);
	if (len == 0 || len >= sizeof(t->addr))
		return -EINVAL;
	memcpy(t->addr, peer, len);
	t->addr[len] = '\0';
	snprintf(t->comment, sizeof(t->comment), "peerpod [vni:%" PRIu32 "]", vni);
	snprintf(t->port, sizeof(t->port), "%u", (unsigned)port);
	return 0;
}

#define RULE_ARGS(op, chain, match, t)                                                          \
	{                                                                                       \
		"-t", "raw", op, chain, "-m", "comment", "--comment", (t)->comment, match,      \
		    (t)->addr, "-p", "udp", "-m", "udp", "--dport", (t)->port, "-j", "NOTRACK", \
		    NULL                                                                        \
	}

static int add_locked(const struct netns_iptables *ipt, const struct rule_text *t, char **ret_msg)
{
	int r;
	for (size_t i = 0; i < ELEMENTSOF(chains); i++) {
		const char *builtin = chains[i][0], *ours = chains[i][1], *match = chains[i][2];
		const char *list[] = {"-t", "raw", "-S", ours, NULL};
		if ((r = netns_iptables_run(ipt, list, NULL, NULL)) < 0)
			return r;
		if (r != 0) {
			const char *create[] = {"-t", "raw", "-N", ours, NULL};
			if ((r = run_ok(ipt, create, NULL, ret_msg)) < 0)
				return r;
		}
		const char *check_jump[] = {"-t", "raw", "-C", builtin, "-j", ours, NULL};
		if ((r = netns_iptables_run(ipt, check_jump, NULL, NULL)) < 0)
			return r;
		if (r != 0) {
			const char *jump[] = {"-t", "raw", "-A", builtin, "-j", ours, NULL};
			if ((r = run_ok(ipt, jump, NULL, ret_msg)) < 0)
				return r;
		}
		const char *check[] = RULE_ARGS("-C", ours, match, t);
		if ((r = netns_iptables_run(ipt, check, NULL, NULL)) < 0)
			return r;
		if (r != 0) {
			const char *append[] = RULE_ARGS("-A", ours, match, t);
			if ((r = run_ok(ipt, append, NULL, ret_msg)) < 0)
				return r;
		}
	}
	return 0;
}

int netns_iptables_add(const struct netns_iptables *ipt, const char *peer, uint32_t vni,
		       uint16_t port, char **ret_msg)
{
	struct rule_text t;
	int r = rule_text_init(&t, peer, vni, port);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rules_lock);
	r = add_locked(ipt, &t, ret_msg);
	pthread_mutex_unlock(&rules_lock);
	return r;
}

/* A chain listed by -S with nothing but its own "-N <chain>" line is empty. */
static bool chain_empty(const char *listing)
{
	size_t lines = 0;
	for (const char *p = listing; *p; p++)
		if (*p == '\n')
			lines++;
	if (*listing && listing[strlen(listing) - 1] != '\n')
		lines++;
	return lines <= 1;
}

static int del_locked(const struct netns_iptables *ipt, const struct rule_text *t, char **ret_msg)
{
	int r;
	for (size_t i = 0; i < ELEMENTSOF(chains); i++) {
		const char *builtin = chains[i][0], *ours = chains[i][1], *match = chains[i][2];
		_cleanup_free_ char *listing = NULL;
		const char *list[] = {"-t", "raw", "-S", ours, NULL};
		if ((r = netns_iptables_run(ipt, list, &listing, NULL)) < 0)
			return r;
		if (r != 0)
			continue; /* no chain: nothing of ours here */
		/* Bounded: the rule was appended once, but an older run may have left copies. */
		for (int n = 0; n < 16; n++) {
			const char *check[] = RULE_ARGS("-C", ours, match, t);
			if ((r = netns_iptables_run(ipt, check, NULL, NULL)) < 0)
				return r;
			if (r != 0)
				break;
			const char *del[] = RULE_ARGS("-D", ours, match, t);
			if ((r = run_ok(ipt, del, NULL, ret_msg)) < 0)
				return r;
		}
		free(listing);
		listing = NULL;
		if ((r = run_ok(ipt, list, &listing, ret_msg)) < 0)
			return r;
		if (!chain_empty(listing))
			continue; /* other pods' rules remain */
		for (int n = 0; n < 16; n++) {
			const char *check_jump[] = {"-t", "raw", "-C", builtin, "-j", ours, NULL};
			if ((r = netns_iptables_run(ipt, check_jump, NULL, NULL)) < 0)
				return r;
			if (r != 0)
				break;
			const char *del_jump[] = {"-t", "raw", "-D", builtin, "-j", ours, NULL};
			if ((r = run_ok(ipt, del_jump, NULL, ret_msg)) < 0)
				return r;
		}
		const char *del_chain[] = {"-t", "raw", "-X", ours, NULL};
		if ((r = run_ok(ipt, del_chain, NULL, ret_msg)) < 0)
			return r;
	}
	return 0;
}

int netns_iptables_del(const struct netns_iptables *ipt, const char *peer, uint32_t vni,
		       uint16_t port, char **ret_msg)
{
	struct rule_text t;
	int r = rule_text_init(&t, peer, vni, port);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rules_lock);
	r = del_locked(ipt, &t, ret_msg);
	pthread_mutex_unlock(&rules_lock);
	return r;
}
