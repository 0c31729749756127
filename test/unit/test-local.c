/* providers/local: create/list/delete with a stand-in forwarder (a shell script that sleeps),
 * and the boot command: its environment and argument, that creation does not wait for it, and
 * that its whole process group dies with the instance, also after its leader exited and after
 * a provider restart (the adaptor's restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "provider.h"

extern const struct provider_ops local_provider_ops;

static char tmpdir[128];

static const char *no_env(const char *name)
{
	return NULL;
}

struct fixture {
	void *settings;
	struct provider *p;
	char data[192];
};

static void write_script(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

static void provider_up(struct fixture *fx, const char *boot_command)
{
	const struct provider_ops *ops = &local_provider_ops;
	char fwd[192], agent[192];
	snprintf(fwd, sizeof(fwd), "%s/fwd.sh", tmpdir);
	snprintf(agent, sizeof(agent), "%s/agent.sock", tmpdir);
	snprintf(fx->data, sizeof(fx->data), "%s/data", tmpdir);
	fx->settings = calloc(1, ops->settings_size);
	assert_non_null(fx->settings);
	char *argv[8] = {"-local-agent-socket", agent, "-local-forwarder", fwd};
	int argc = 4;
	if (boot_command) {
		argv[argc++] = "-local-boot-command";
		argv[argc++] = (char *)boot_command;
	}
	struct config_table t = {ops->options, ops->n_options, fx->settings};
	int ind;
	_cleanup_free_ char *msg = NULL;
	config_set_getenv(no_env);
	assert_int_equal(config_parse(&t, 1, argc, argv, &ind, &msg), 0);
	assert_int_equal(ops->verify_config(fx->settings, NULL), 0);
	struct provider_context ctx = {.data_dir = fx->data,
				       .node_name = "",
				       .program_dir = tmpdir,
				       .forwarder_port = 15150,
				       .disable_tls = true};
	assert_int_equal(ops->init(fx->settings, &ctx, &fx->p, NULL), 0);
}

static void provider_down(struct fixture *fx)
{
	local_provider_ops.done(fx->p);
	config_free(local_provider_ops.options, local_provider_ops.n_options, fx->settings);
	free(fx->settings);
	*fx = (struct fixture){0};
}

static void create(struct fixture *fx, const char *name, struct provider_instance *inst)
{
	struct provider_instance_spec spec = {.instance_name = name,
					      .sandbox_id = "sb1",
					      .pod_name = "web",
					      .pod_namespace = "default",
					      .node_name = "node1",
					      .user_data = "#cloud-config\nwrite_files: []\n",
					      .apf_json = "{}"};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = local_provider_ops.create_instance(fx->p, &spec, inst, &err);
	if (r < 0)
		fail_msg("create: %s", pp_error_message(err, r));
}

static void delete (struct fixture *fx, const char *id)
{
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = local_provider_ops.delete_instance(fx->p, id, &err);
	if (r < 0)
		fail_msg("delete: %s", pp_error_message(err, r));
}

/* Alive and not a zombie (orphans may not be reaped here, pid 1 need not be an init). */
static bool alive(pid_t pid)
{
	char path[64], state = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (p && p[1] == ' ')
		state = p[2];
	return state && state != 'Z';
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Read a file the boot script writes (atomically), waiting up to 10 s. */
static char *wait_file(const char *dir, const char *name)
{
	_cleanup_free_ char *path = str_printf("%s/%s", dir, name);
	assert_non_null(path);
	for (int i = 0; i < 1000; i++) {
		char *text = NULL;
		if (read_file_bounded(path, 65536, &text, NULL) == 0)
			return text;
		sleep_ms(10);
	}
	fail_msg("%s did not appear", path);
	return NULL;
}

static pid_t file_pid(const char *dir, const char *name)
{
	_cleanup_free_ char *text = wait_file(dir, name);
	int32_t v;
	text[strcspn(text, "\n")] = 0;
	assert_int_equal(parse_i32(text, &v), 0);
	return v;
}

static int64_t record_field(const char *dir, const char *field)
{
	_cleanup_free_ char *path = str_printf("%s/instance.json", dir);
	_cleanup_free_ char *text = NULL;
	assert_int_equal(read_file_bounded(path, 65536, &text, NULL), 0);
	_cleanup_free_ char *key = str_printf("\"%s\": ", field);
	char *p = strstr(text, key);
	assert_non_null(p);
	return strtoll(p + strlen(key), NULL, 10);
}

static bool wait_gone(pid_t pid)
{
	for (int i = 0; i < 500 && alive(pid); i++)
		sleep_ms(10);
	return !alive(pid);
}

/* The boot script: records its argument and environment, leaves a background child (the
 * attestation client of a real boot chain) and then sleeps or exits. */
static const char boot_script[] =
    "#!/bin/sh\n"
    "{ echo \"arg=$1\"; echo \"dir=$INSTANCE_DIR\"; echo \"ip=$INSTANCE_IP\";\n"
    "  echo \"ud=$USER_DATA_FILE\"; } >\"$1/boot.env.tmp\" && mv \"$1/boot.env.tmp\" "
    "\"$1/boot.env\"\n"
    "sleep 1000 &\n"
    "echo $! >\"$1/child.tmp\" && mv \"$1/child.tmp\" \"$1/child.pid\"\n"
    "echo $$ >\"$1/leader.tmp\" && mv \"$1/leader.tmp\" \"$1/leader.pid\"\n"
    "[ -n \"$BOOT_EXIT\" ] && exit 0\n"
    "exec sleep 1000\n";

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/pp-local-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	char path[256];
	snprintf(path, sizeof(path), "%s/fwd.sh", tmpdir);
	write_script(path, "#!/bin/sh\nexec sleep 1000\n");
	snprintf(path, sizeof(path), "%s/boot.sh", tmpdir);
	write_script(path, boot_script);
	unsetenv("BOOT_EXIT");
	*state = calloc(1, sizeof(struct fixture));
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	if (fx->p)
		provider_down(fx);
	free(fx);
	(void)rm_rf(tmpdir);
	return 0;
}

static void test_no_boot_command(void **state)
{
	struct fixture *fx = *state;
	provider_up(fx, NULL);
	struct provider_instance inst = {0};
	create(fx, "podvm-web-1", &inst);
	assert_string_equal(inst.id, "local-podvm-web-1");
	assert_true(str_startswith(inst.ips[0], "127.1."));
	_cleanup_free_ char *dir = str_printf("%s/local/podvm-web-1", fx->data);
	assert_int_equal(record_field(dir, "hook-pid"), 0);
	pid_t fwd = (pid_t)record_field(dir, "pid");
	assert_true(fwd > 0 && alive(fwd));
	assert_int_equal(getsid(fwd), fwd);

	struct provider_instance *v = NULL;
	size_t n = 0;
	assert_int_equal(local_provider_ops.list_instances(fx->p, &v, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].sandbox_id, "sb1");
	provider_instances_free(v, n);

	delete (fx, inst.id);
	assert_false(alive(fwd));
	assert_int_equal(access(dir, F_OK), -1);
	delete (fx, inst.id); /* a missing instance deletes fine */
	provider_instance_done(&inst);
}

static void test_boot_command(void **state)
{
	struct fixture *fx = *state;
	char boot[192];
	snprintf(boot, sizeof(boot), "%s/boot.sh", tmpdir);
	provider_up(fx, boot);
	struct provider_instance inst = {0};
	/* the boot script never returns: creating must not wait for it */
	create(fx, "podvm-web-2", &inst);
	_cleanup_free_ char *dir = str_printf("%s/local/podvm-web-2", fx->data);
	char abs[4096];
	assert_non_null(realpath(dir, abs));

	_cleanup_free_ char *env = wait_file(dir, "boot.env");
	_cleanup_free_ char *want =
	    str_printf("arg=%s\ndir=%s\nip=%s\nud=%s/user-data\n", abs, abs, inst.ips[0], abs);
	assert_string_equal(env, want);
	_cleanup_free_ char *ud_path = str_printf("%s/user-data", abs);
	_cleanup_free_ char *ud = NULL;
	assert_int_equal(read_file_bounded(ud_path, 65536, &ud, NULL), 0);
	assert_string_equal(ud, "#cloud-config\nwrite_files: []\n");

	pid_t leader = file_pid(dir, "leader.pid"), child = file_pid(dir, "child.pid");
	assert_int_equal(record_field(dir, "hook-pid"), leader);
	assert_int_equal(getsid(leader), leader); /* a session of its own */
	assert_int_equal(getpgid(child), leader);
	pid_t fwd = (pid_t)record_field(dir, "pid");
	assert_true(alive(fwd) && alive(leader) && alive(child));
	assert_int_not_equal(getsid(fwd), leader);

	delete (fx, inst.id);
	assert_true(wait_gone(child));
	assert_false(alive(leader));
	assert_false(alive(fwd));
	provider_instance_done(&inst);
}

/* The leader is gone (reaped, as after an adaptor restart): its child still dies with the
 * instance, found through the group and INSTANCE_DIR. */
static void test_boot_leader_exited(void **state)
{
	struct fixture *fx = *state;
	char boot[192];
	snprintf(boot, sizeof(boot), "%s/boot.sh", tmpdir);
	setenv("BOOT_EXIT", "1", 1);
	provider_up(fx, boot);
	struct provider_instance inst = {0};
	create(fx, "podvm-web-3", &inst);
	_cleanup_free_ char *dir = str_printf("%s/local/podvm-web-3", fx->data);
	pid_t leader = file_pid(dir, "leader.pid"), child = file_pid(dir, "child.pid");
	int status;
	assert_int_equal(waitpid(leader, &status, 0), leader);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(alive(child));

	/* an adaptor restart in between */
	provider_down(fx);
	provider_up(fx, boot);
	delete (fx, inst.id);
	assert_true(wait_gone(child));
	provider_instance_done(&inst);
}

/* A provider restart: the new instance of the provider kills the running boot chain. */
static void test_boot_survives_restart(void **state)
{
	struct fixture *fx = *state;
	char boot[192];
	snprintf(boot, sizeof(boot), "%s/boot.sh", tmpdir);
	provider_up(fx, boot);
	struct provider_instance inst = {0};
	create(fx, "podvm-web-4", &inst);
	_cleanup_free_ char *dir = str_printf("%s/local/podvm-web-4", fx->data);
	pid_t leader = file_pid(dir, "leader.pid"), child = file_pid(dir, "child.pid");
	provider_down(fx);
	assert_true(alive(leader) && alive(child));
	provider_up(fx, boot);
	delete (fx, inst.id);
	assert_true(wait_gone(child));
	assert_false(alive(leader));
	provider_instance_done(&inst);
}

/* A boot command that cannot start fails the creation and leaves nothing behind. */
static void test_boot_command_missing(void **state)
{
	struct fixture *fx = *state;
	char boot[192];
	snprintf(boot, sizeof(boot), "%s/no-such-boot", tmpdir);
	provider_up(fx, boot);
	struct provider_instance_spec spec = {.instance_name = "podvm-web-5",
					      .sandbox_id = "sb5",
					      .user_data = "x",
					      .apf_json = "{}"};
	struct provider_instance inst = {0};
	_cleanup_pp_error_ struct pp_error *err = NULL;
	assert_int_equal(local_provider_ops.create_instance(fx->p, &spec, &inst, &err), -ENOENT);
	assert_non_null(err);
	assert_non_null(strstr(err->message, "boot command"));
	_cleanup_free_ char *dir = str_printf("%s/local/podvm-web-5", fx->data);
	assert_int_equal(access(dir, F_OK), -1);
	struct provider_instance *v = NULL;
	size_t n = 0;
	assert_int_equal(local_provider_ops.list_instances(fx->p, &v, &n, NULL), 0);
	assert_int_equal(n, 0);
	provider_instances_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_no_boot_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_leader_exited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_survives_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_command_missing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
