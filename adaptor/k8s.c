/* adaptor/k8s.c: the adaptor's Kubernetes integration (WIRE.md 8.5, 8.7): the node's
 * kata.peerpods.io/vm extended resource with the owner handshake, PeerPod objects with their
 * finalizer, the startup cleanup of PeerPods left behind, image pull secrets for auth.json, and
 * the /startup condition on this node's pods. Every API call runs on the worker pool; the loop
 * thread only keeps the results. Without NODE_NAME or a cluster, all of it is off. */
#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "adaptor.h"
#include "k8s/k8s.h"
#include "log/log.h"
#include "userdata/userdata.h"

#define RESOURCE_NAME "kata.peerpods.io/vm"
#define OWNER_ANNOTATION "kata.peerpods.io/caa-owner"
#define NODE_LABEL "kata.peerpods.io/node"
#define PEERPOD_FINALIZER "peer.pod/finalizer"
#define PEERPOD_API "/apis/confidentialcontainers.org/v1alpha1"
#define AUTH_JSON_MAX_BYTES 12288
#define STARTUP_CHECK_INTERVAL_NS (2 * NSEC_PER_SEC)
#define PENDING_DIR ".k8s-release"
#define PENDING_FILE_MAX_BYTES 1024
#define SECRET_MAX_PULL_SECRETS 32

struct pending {
	char *ns, *name;
	bool released; /* set by a release work on its copy */
	struct pending *next;
};

struct adaptor_k8s {
	struct adaptor *adaptor;
	struct k8s_client *client; /* background work: retries */
	struct k8s_client *fast;   /* on a pod's start or stop: one attempt per call */
	char *node, *pod_uid, *runtimeclass;
	int64_t start_realtime_s;
	/* loop thread */
	bool start_done;
	bool pods_ready;
	char pods_reason[METRICS_PROBE_REASON_MAX];
	struct loop_source *startup_timer, *retry_timer;
	bool release_running;
	char *pending_dir;
	struct pending *pending;
};

/* ---- setup ---- */

static int load_config(const struct adaptor_settings *s, struct k8s_config **ret, char **ret_msg)
{
	if (!str_empty(s->kubeconfig))
		return k8s_config_load_kubeconfig(s->kubeconfig, NULL, ret, ret_msg);
	return k8s_config_in_cluster(s->k8s_serviceaccount_dir, s->k8s_service_host,
				     s->k8s_service_port, s->k8s_api_server, ret, ret_msg);
}

static void pending_free(struct pending *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->name);
	free(p);
}

static char *pending_path(struct adaptor_k8s *k, const char *ns, const char *name)
{
	/* namespaces and object names never hold '_' */
	return str_printf("%s/%s_%s", k->pending_dir, ns, name);
}

static int pending_add(struct adaptor_k8s *k, const char *ns, const char *name, bool persist)
{
	for (struct pending *p = k->pending; p; p = p->next)
		if (str_eq(p->ns, ns) && str_eq(p->name, name))
			return 0;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p || !(p->ns = strdup(ns)) || !(p->name = strdup(name))) {
		pending_free(p);
		return -ENOMEM;
	}
	p->next = k->pending;
	k->pending = p;
	if (!persist)
		return 0;
	_cleanup_free_ char *path = pending_path(k, ns, name);
	int r = path ? mkdir_p(k->pending_dir, 0700) : -ENOMEM;
	if (r >= 0)
		r = write_file_atomic(path, "", 0, 0600);
	return r;
}

static void pending_remove(struct adaptor_k8s *k, const char *ns, const char *name)
{
	for (struct pending **p = &k->pending; *p; p = &(*p)->next)
		if (str_eq((*p)->ns, ns) && str_eq((*p)->name, name)) {
			struct pending *d = *p;
			*p = d->next;
			pending_free(d);
			break;
		}
	_cleanup_free_ char *path = pending_path(k, ns, name);
	if (path)
		(void)unlink(path);
	if (!k->pending)
		(void)rmdir(k->pending_dir);
}

static void pending_load(struct adaptor_k8s *k)
{
	DIR *d = opendir(k->pending_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *sep = strchr(de->d_name, '_');
		if (de->d_name[0] == '.' || !sep || sep == de->d_name || !sep[1])
			continue;
		_cleanup_free_ char *ns = strndup(de->d_name, (size_t)(sep - de->d_name));
		if (ns)
			(void)pending_add(k, ns, sep + 1, false);
	}
	if (d)
		closedir(d);
}

int adaptor_k8s_init(struct adaptor *a)
{
	const struct adaptor_settings *s = a->settings;
	if (str_empty(s->node_name)) {
		log_info("Kubernetes integration off: NODE_NAME is not set");
		return 0;
	}
	_cleanup_free_ char *msg = NULL;
	struct k8s_config *c1 = NULL, *c2 = NULL;
	int r = load_config(s, &c1, &msg);
	if (r == -ENOENT && str_empty(s->kubeconfig)) {
		log_info("Kubernetes integration off: %s", msg ?: "not in a cluster");
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "Kubernetes configuration: %s", msg ?: strerror(-r));
	free(msg);
	msg = NULL;
	r = load_config(s, &c2, &msg);
	if (r < 0) {
		k8s_config_free(c1);
		return log_error_errno(r, "Kubernetes configuration: %s", msg ?: strerror(-r));
	}
	struct adaptor_k8s *k = calloc(1, sizeof(*k));
	if (!k) {
		k8s_config_free(c1);
		k8s_config_free(c2);
		return -ENOMEM;
	}
	k->adaptor = a;
	k->start_realtime_s = now_realtime_ns() / NSEC_PER_SEC;
	struct k8s_client_options bg = {.timeout_ns = s->k8s_timeout_ns,
					.connect_timeout_ns = s->k8s_timeout_ns,
					.max_retries = 3};
	struct k8s_client_options fast = {.timeout_ns = s->k8s_timeout_ns,
					  .connect_timeout_ns = s->k8s_timeout_ns};
	const char *server = c1->server;
	log_info("Kubernetes integration on: API server %s, node %s", server, s->node_name);
	r = k8s_client_new(c1, &bg, &k->client);
	if (r >= 0)
		r = k8s_client_new(c2, &fast, &k->fast);
	else
		k8s_config_free(c2);
	k->node = strdup(s->node_name);
	k->pod_uid = strdup(s->pod_uid ?: "");
	k->runtimeclass = strdup(s->runtimeclass_name ?: "kata-remote");
	k->pending_dir = str_printf("%s/" PENDING_DIR, s->pods_dir);
	a->k8s = k;
	if (r < 0 || !k->node || !k->pod_uid || !k->runtimeclass || !k->pending_dir)
		return r < 0 ? r : -ENOMEM;
	if (str_empty(k->pod_uid))
		log_warning("POD_UID is not set: the node resource's owner handshake uses an empty "
			    "owner");
	pending_load(k);
	return 0;
}

void adaptor_k8s_free(struct adaptor *a)
{
	struct adaptor_k8s *k = a->k8s;
	if (!k)
		return;
	k8s_client_free(k->client);
	k8s_client_free(k->fast);
	free(k->node);
	free(k->pod_uid);
	free(k->runtimeclass);
	free(k->pending_dir);
	loop_source_free(k->startup_timer);
	loop_source_free(k->retry_timer);
	while (k->pending) {
		struct pending *p = k->pending;
		k->pending = p->next;
		pending_free(p);
	}
	free(k);
	a->k8s = NULL;
}

/* ---- paths ---- */

static char *node_path(struct adaptor_k8s *k, const char *suffix)
{
	_cleanup_free_ char *n = k8s_url_escape(k->node);
	return n ? str_printf("/api/v1/nodes/%s%s", n, suffix) : NULL;
}

static char *ns_path(const char *ns, const char *kind, const char *name)
{
	_cleanup_free_ char *n = k8s_url_escape(ns), *o = k8s_url_escape(name);
	return n && o ? str_printf("/api/v1/namespaces/%s/%s/%s", n, kind, o) : NULL;
}

static char *peerpod_path(const char *ns, const char *name)
{
	_cleanup_free_ char *n = k8s_url_escape(ns), *o = name ? k8s_url_escape(name) : NULL;
	if (!n || (name && !o))
		return NULL;
	return name ? str_printf(PEERPOD_API "/namespaces/%s/peerpods/%s", n, o)
		    : str_printf(PEERPOD_API "/namespaces/%s/peerpods", n);
}

/* ---- node resource (WIRE.md 8.7) ---- */

static int advertise(struct adaptor_k8s *k, int64_t limit)
{
	_cleanup_pp_error_ struct pp_error *err = NULL;
	_cleanup_free_ char *path = node_path(k, ""), *status = node_path(k, "/status");
	_cleanup_free_ char *val = str_printf("%lld", (long long)limit);
	if (!path || !status || !val)
		return -ENOMEM;
	_cleanup_(json_decrefp) json_t *merge =
	    json_pack("{s:{s:{s:s}}}", "metadata", "annotations", OWNER_ANNOTATION, k->pod_uid);
	_cleanup_(json_decrefp) json_t *ops = json_array();
	if (!merge || !ops ||
	    json_array_append_new(ops, k8s_patch_op("add", "/status/capacity/kata.peerpods.io~1vm",
						    json_string(val))) < 0)
		return -ENOMEM;
	int r = k8s_merge_patch(k->client, path, merge, NULL, &err);
	if (r >= 0)
		r = k8s_json_patch(k->client, status, ops, NULL, &err);
	if (r < 0)
		return log_warning_errno(r, "advertising %s on node %s: %s", RESOURCE_NAME, k->node,
					 pp_error_message(err, r));
	log_info("node %s advertises %s: %s (owner %s)", k->node, RESOURCE_NAME, val, k->pod_uid);
	return 0;
}

static int unadvertise(void *data)
{
	struct adaptor_k8s *k = data;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	_cleanup_free_ char *path = node_path(k, ""), *status = node_path(k, "/status");
	_cleanup_(json_decrefp) json_t *node = NULL;
	if (!path || !status)
		return -ENOMEM;
	int r = k8s_get(k->fast, path, &node, &err);
	if (r < 0)
		return log_warning_errno(r, "reading node %s at shutdown: %s", k->node,
					 pp_error_message(err, r));
	const char *owner = k8s_json_str(node, "metadata", "annotations", OWNER_ANNOTATION, NULL);
	if (!str_eq(owner, k->pod_uid)) {
		log_info("node %s: %s belongs to %s now; leaving it", k->node, RESOURCE_NAME,
			 owner ?: "nobody");
		return 0;
	}
	if (!k8s_json_str(node, "status", "capacity", RESOURCE_NAME, NULL))
		return 0;
	_cleanup_(json_decrefp) json_t *ops = json_array();
	if (!ops ||
	    json_array_append_new(
		ops, k8s_patch_op("remove", "/status/capacity/kata.peerpods.io~1vm", NULL)) < 0)
		return -ENOMEM;
	r = k8s_json_patch(k->fast, status, ops, NULL, &err);
	if (r < 0)
		return log_warning_errno(r, "removing %s from node %s: %s", RESOURCE_NAME, k->node,
					 pp_error_message(err, r));
	log_info("node %s: %s removed", k->node, RESOURCE_NAME);
	return 0;
}

static void unadvertise_done(struct loop *l, int r, void *data)
{
}

void adaptor_k8s_shutdown(struct adaptor *a)
{
	struct adaptor_k8s *k = a->k8s;
	if (!k || a->settings->peerpods_limit_per_node < 0)
		return;
	loop_source_free(k->startup_timer);
	k->startup_timer = NULL;
	if (loop_submit_work(a->loop, unadvertise, unadvertise_done, k) < 0)
		log_warning("cannot schedule the removal of %s", RESOURCE_NAME);
}

/* ---- PeerPods (WIRE.md 8.7) ---- */

static bool has_finalizer(const json_t *obj)
{
	const json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
	size_t i;
	json_t *v;
	json_array_foreach(f, i, v) if (json_is_string(v) && str_eq(json_string_value(v),
								    PEERPOD_FINALIZER)) return true;
	return false;
}

/* 0 when the finalizer is gone (or the object is); a removal of a missing path is 422. */
static int release(struct k8s_client *c, const char *ns, const char *name, struct pp_error **reterr)
{
	_cleanup_free_ char *path = peerpod_path(ns, name);
	_cleanup_(json_decrefp) json_t *ops = json_array();
	if (!path || !ops ||
	    json_array_append_new(ops, k8s_patch_op("remove", "/metadata/finalizers", NULL)) < 0)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	_cleanup_pp_error_ struct pp_error *err = NULL;
	int r = k8s_json_patch(c, path, ops, NULL, &err);
	if (r == -ENOENT || (r == -EINVAL && err && err->status == 422))
		return 0;
	if (r < 0 && reterr && !*reterr)
		*reterr = TAKE_PTR(err);
	return r;
}

int adaptor_k8s_peerpod_release(struct adaptor_k8s *k, const char *ns, const char *name,
				struct pp_error **reterr)
{
	return release(k->fast, ns, name, reterr);
}

static char *peerpod_name(const char *pod)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	uint8_t rnd[5];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return NULL;
	char suffix[6];
	for (size_t i = 0; i < 5; i++)
		suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	suffix[5] = 0;
	/* object names are at most 253 characters */
	return str_printf("%.*s-resource-%s", 253 - 15, pod, suffix);
}

static bool label_value_ok(const char *v)
{
	size_t n = strlen(v);
	if (n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || strchr("-_.", v[i])))
			return false;
	return true;
}

int adaptor_k8s_peerpod_create(struct adaptor_k8s *k, const char *ns, const char *pod,
			       const char *pod_uid, const char *instance_id, char **ret_name,
			       struct pp_error **reterr)
{
	_cleanup_free_ char *name = peerpod_name(pod);
	_cleanup_free_ char *path = peerpod_path(ns, NULL);
	if (!name || !path)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	_cleanup_(json_decrefp) json_t *obj =
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:[s], s:[{s:s, s:s, s:s, s:s, s:b, s:b}]},"
		      " s:{s:s, s:s}}",
		      "apiVersion", "confidentialcontainers.org/v1alpha1", "kind", "PeerPod",
		      "metadata", "name", name, "namespace", ns, "finalizers", PEERPOD_FINALIZER,
		      "ownerReferences", "apiVersion", "v1", "kind", "Pod", "name", pod, "uid",
		      pod_uid, "controller", 1, "blockOwnerDeletion", 1, "spec", "cloudProvider",
		      k->adaptor->provider_ops->name, "instanceID", instance_id);
	if (!obj)
		return pp_error_set(reterr, ENOMEM, "out of memory");
	if (label_value_ok(k->node)) {
		json_t *labels = json_pack("{s:s}", NODE_LABEL, k->node);
		if (!labels ||
		    json_object_set_new(json_object_get(obj, "metadata"), "labels", labels) < 0)
			return pp_error_set(reterr, ENOMEM, "out of memory");
	}
	int r = k8s_post(k->fast, path, obj, NULL, reterr);
	if (r < 0)
		return r;
	*ret_name = TAKE_PTR(name);
	return 0;
}

/* ---- image pull secrets -> auth.json (WIRE.md 5.1) ---- */

static void add_secret_names(const json_t *list, char **names, size_t *n)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *name = k8s_json_str(v, "name", NULL);
		if (str_empty(name) || *n >= SECRET_MAX_PULL_SECRETS)
			continue;
		bool dup = false;
		for (size_t j = 0; j < *n; j++)
			dup |= str_eq(names[j], name);
		if (!dup && (names[*n] = strdup(name)))
			(*n)++;
	}
}

/* Merge one secret's registries into auths; the first secret naming a registry wins. */
int adaptor_k8s_merge_secret(const json_t *secret, json_t *auths)
{
	const char *type = k8s_json_str(secret, "type", NULL);
	const char *key = str_eq(type, "kubernetes.io/dockerconfigjson") ? ".dockerconfigjson"
			  : str_eq(type, "kubernetes.io/dockercfg")      ? ".dockercfg"
									 : NULL;
	if (!key)
		return 0;
	const char *b64 = k8s_json_str(secret, "data", key, NULL);
	if (!b64)
		return -EINVAL;
	uint8_t *raw = NULL;
	size_t len;
	int r = userdata_base64_decode(b64, strlen(b64), 1024 * 1024, &raw, &len);
	if (r < 0)
		return r;
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *doc = json_loadb((const char *)raw, len, 0, &jerr);
	explicit_bzero(raw, len);
	free(raw);
	if (!json_is_object(doc))
		return -EINVAL;
	/* .dockercfg is the bare registry map; .dockerconfigjson wraps it in "auths" */
	json_t *map = str_eq(key, ".dockerconfigjson") ? json_object_get(doc, "auths") : doc;
	if (!json_is_object(map))
		return -EINVAL;
	const char *reg;
	json_t *v;
	json_object_foreach(map, reg, v)
	{
		if (!json_is_object(v) || json_object_get(auths, reg))
			continue;
		if (json_object_set(auths, reg, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

int adaptor_k8s_pod_prepare(struct adaptor_k8s *k, const char *ns, const char *pod, char **ret_uid,
			    char **ret_auth_json, char **ret_msg)
{
	_cleanup_pp_error_ struct pp_error *err = NULL;
	_cleanup_free_ char *path = ns_path(ns, "pods", pod);
	_cleanup_(json_decrefp) json_t *obj = NULL;
	if (!path)
		return -ENOMEM;
	int r = k8s_get(k->fast, path, &obj, &err);
	if (r < 0)
		return str_set_message(ret_msg, r, "reading pod %s/%s: %s", ns, pod,
				       pp_error_message(err, r));
	const char *uid = k8s_json_str(obj, "metadata", "uid", NULL);
	if (str_empty(uid))
		return str_set_message(ret_msg, EBADMSG, "pod %s/%s has no uid", ns, pod);
	if (!(*ret_uid = strdup(uid)))
		return -ENOMEM;

	char *names[SECRET_MAX_PULL_SECRETS];
	size_t n = 0;
	add_secret_names(json_object_get(json_object_get(obj, "spec"), "imagePullSecrets"), names,
			 &n);
	const char *sa = k8s_json_str(obj, "spec", "serviceAccountName", NULL);
	_cleanup_free_ char *sa_path =
	    ns_path(ns, "serviceaccounts", str_empty(sa) ? "default" : sa);
	_cleanup_(json_decrefp) json_t *sa_obj = NULL;
	_cleanup_free_ char *warn = NULL;
	pp_error_free(err);
	err = NULL;
	r = sa_path ? k8s_get(k->fast, sa_path, &sa_obj, &err) : -ENOMEM;
	if (r >= 0)
		add_secret_names(json_object_get(sa_obj, "imagePullSecrets"), names, &n);
	else if (r != -ENOENT)
		warn = str_printf("reading service account %s: %s", sa ?: "default",
				  pp_error_message(err, r));

	_cleanup_(json_decrefp) json_t *auths = json_object();
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sp = ns_path(ns, "secrets", names[i]);
		_cleanup_(json_decrefp) json_t *secret = NULL;
		pp_error_free(err);
		err = NULL;
		r = sp ? k8s_get(k->fast, sp, &secret, &err) : -ENOMEM;
		if (r >= 0)
			r = adaptor_k8s_merge_secret(secret, auths);
		if (r < 0 && !warn)
			warn = str_printf("image pull secret %s/%s: %s", ns, names[i],
					  err ? pp_error_message(err, r) : "not a registry secret");
		if (secret) {
			/* the decoded JSON is copied into auths; wipe what the answer held */
			json_t *data = json_object_get(secret, "data");
			const char *key;
			json_t *v;
			json_object_foreach(data, key, v) if (json_is_string(v))
			    explicit_bzero((char *)json_string_value(v), json_string_length(v));
		}
		free(names[i]);
	}
	if (auths && json_object_size(auths) > 0) {
		_cleanup_(json_decrefp) json_t *doc = json_pack("{s:O}", "auths", auths);
		char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		if (!text)
			return -ENOMEM;
		if (strlen(text) > AUTH_JSON_MAX_BYTES) {
			if (!warn)
				warn = str_printf("auth.json dropped: %zu bytes, more than %d",
						  strlen(text), AUTH_JSON_MAX_BYTES);
			free_secret(text);
		} else
			*ret_auth_json = text;
	}
	if (warn)
		*ret_msg = TAKE_PTR(warn);
	return 0;
}

/* ---- startup: advertise, clean up, check pods ---- */

struct start_work {
	struct adaptor_k8s *k;
	int64_t limit;
	char **owned; /* instance ids the restored sandboxes own */
};

static bool owned(char **v, const char *id)
{
	for (; v && *v; v++)
		if (str_eq(*v, id))
			return true;
	return false;
}

static bool pod_gone(struct adaptor_k8s *k, const char *ns, const json_t *pp)
{
	const json_t *refs = json_object_get(json_object_get(pp, "metadata"), "ownerReferences");
	size_t i;
	json_t *ref;
	json_array_foreach(refs, i, ref)
	{
		if (!str_eq(k8s_json_str(ref, "kind", NULL), "Pod"))
			continue;
		const char *name = k8s_json_str(ref, "name", NULL);
		const char *uid = k8s_json_str(ref, "uid", NULL);
		_cleanup_free_ char *path = name ? ns_path(ns, "pods", name) : NULL;
		_cleanup_(json_decrefp) json_t *pod = NULL;
		_cleanup_pp_error_ struct pp_error *err = NULL;
		if (!path)
			return false;
		int r = k8s_get(k->client, path, &pod, &err);
		if (r == -ENOENT)
			return true;
		/* a pod of the same name that is not the owner is a new pod */
		return r >= 0 && uid && !str_eq(k8s_json_str(pod, "metadata", "uid", NULL), uid);
	}
	return false;
}

static void cleanup_peerpods(struct start_work *sw)
{
	struct adaptor_k8s *k = sw->k;
	struct adaptor *a = k->adaptor;
	if (!label_value_ok(k->node))
		return;
	_cleanup_free_ char *sel = str_printf(NODE_LABEL "=%s", k->node);
	_cleanup_free_ char *esc = sel ? k8s_url_escape(sel) : NULL;
	_cleanup_free_ char *path =
	    esc ? str_printf(PEERPOD_API "/peerpods?labelSelector=%s", esc) : NULL;
	_cleanup_(json_decrefp) json_t *list = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	if (!path)
		return;
	int r = k8s_get(k->client, path, &list, &err);
	if (r < 0) {
		log_warning("listing this node's PeerPods: %s", pp_error_message(err, r));
		return;
	}
	size_t i;
	json_t *pp;
	json_array_foreach(json_object_get(list, "items"), i, pp)
	{
		const char *ns = k8s_json_str(pp, "metadata", "namespace", NULL);
		const char *name = k8s_json_str(pp, "metadata", "name", NULL);
		const char *instance = k8s_json_str(pp, "spec", "instanceID", NULL);
		bool deleting = k8s_json_str(pp, "metadata", "deletionTimestamp", NULL) != NULL;
		if (!ns || !name || !has_finalizer(pp) || (instance && owned(sw->owned, instance)))
			continue;
		if (!deleting && !pod_gone(k, ns, pp))
			continue;
		log_info("PeerPod %s/%s: %s; deleting instance %s", ns, name,
			 deleting ? "being deleted" : "its pod is gone", instance ?: "(none)");
		if (!str_empty(instance) && a->provider_ops->delete_instance) {
			_cleanup_pp_error_ struct pp_error *derr = NULL;
			r = a->provider_ops->delete_instance(a->provider, instance, &derr);
			if (r < 0) {
				log_warning("PeerPod %s/%s: deleting instance %s: %s", ns, name,
					    instance, pp_error_message(derr, r));
				continue;
			}
		}
		_cleanup_pp_error_ struct pp_error *rerr = NULL;
		r = release(k->client, ns, name, &rerr);
		if (r < 0) {
			log_warning("PeerPod %s/%s: releasing the finalizer: %s", ns, name,
				    pp_error_message(rerr, r));
			continue;
		}
		if (!deleting) {
			/* its owner is gone, so nothing else would remove it soon */
			_cleanup_free_ char *pp_path = peerpod_path(ns, name);
			_cleanup_pp_error_ struct pp_error *xerr = NULL;
			if (pp_path)
				(void)k8s_delete(k->client, pp_path, NULL, &xerr);
		}
		log_info("PeerPod %s/%s released", ns, name);
	}
}

static int start_run(void *data)
{
	struct start_work *sw = data;
	if (sw->limit >= 0)
		(void)advertise(sw->k, sw->limit);
	cleanup_peerpods(sw);
	return 0;
}

static void schedule_startup_check(struct adaptor_k8s *k, int64_t when);
static void retry_releases(struct adaptor_k8s *k);

static void start_done(struct loop *l, int r, void *data)
{
	struct start_work *sw = data;
	struct adaptor_k8s *k = sw->k;
	strv_free(sw->owned);
	free(sw);
	k->start_done = true;
	if (!k->adaptor->draining)
		schedule_startup_check(k, now_ns());
	retry_releases(k);
}

int adaptor_k8s_start(struct adaptor *a)
{
	struct adaptor_k8s *k = a->k8s;
	if (!k)
		return 0;
	struct start_work *sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->k = k;
	sw->limit = a->settings->peerpods_limit_per_node;
	sw->owned = calloc(a->n_sandboxes + 1, sizeof(char *));
	size_t n = 0;
	for (struct sandbox *sb = a->sandboxes; sw->owned && sb; sb = sb->next)
		if (sb->instance_id && !(sw->owned[n++] = strdup(sb->instance_id))) {
			strv_free(sw->owned);
			sw->owned = NULL;
		}
	if (!sw->owned) {
		free(sw);
		return -ENOMEM;
	}
	int r = loop_submit_work(a->loop, start_run, start_done, sw);
	if (r < 0) {
		strv_free(sw->owned);
		free(sw);
	}
	return r;
}

/* /startup (WIRE.md 8.5): every pod on this node with our runtime class is Ready, with a
 * transition after our start. */
struct pods_check {
	struct adaptor_k8s *k;
	bool ready;
	char reason[METRICS_PROBE_REASON_MAX];
};

static bool pod_ready_since(const json_t *pod, int64_t since_s)
{
	const json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c)
	{
		if (!str_eq(k8s_json_str(c, "type", NULL), "Ready"))
			continue;
		int64_t t;
		return str_eq(k8s_json_str(c, "status", NULL), "True") &&
		       k8s_parse_time(k8s_json_str(c, "lastTransitionTime", NULL), &t) >= 0 &&
		       t >= since_s;
	}
	return false;
}

static int pods_check_run(void *data)
{
	struct pods_check *pc = data;
	struct adaptor_k8s *k = pc->k;
	_cleanup_free_ char *sel = str_printf("spec.nodeName=%s", k->node);
	_cleanup_free_ char *esc = sel ? k8s_url_escape(sel) : NULL;
	_cleanup_free_ char *path = esc ? str_printf("/api/v1/pods?fieldSelector=%s", esc) : NULL;
	_cleanup_(json_decrefp) json_t *list = NULL;
	_cleanup_pp_error_ struct pp_error *err = NULL;
	if (!path)
		return -ENOMEM;
	int r = k8s_get(k->client, path, &list, &err);
	if (r < 0) {
		(void)snprintf(pc->reason, sizeof(pc->reason), "listing pods: %s",
			       pp_error_message(err, r));
		return 0;
	}
	size_t i, waiting = 0;
	json_t *pod;
	const char *first = NULL;
	json_array_foreach(json_object_get(list, "items"), i, pod)
	{
		const char *phase = k8s_json_str(pod, "status", "phase", NULL);
		if (!str_eq(k8s_json_str(pod, "spec", "runtimeClassName", NULL), k->runtimeclass) ||
		    !str_eq(k8s_json_str(pod, "spec", "nodeName", NULL), k->node) ||
		    str_eq(phase, "Succeeded") || str_eq(phase, "Failed") ||
		    k8s_json_str(pod, "metadata", "deletionTimestamp", NULL))
			continue;
		if (pod_ready_since(pod, k->start_realtime_s))
			continue;
		if (!waiting++)
			first = k8s_json_str(pod, "metadata", "name", NULL);
	}
	pc->ready = waiting == 0;
	if (waiting)
		(void)snprintf(pc->reason, sizeof(pc->reason),
			       "%zu %s pod(s) on this node not ready yet (%s)", waiting,
			       k->runtimeclass, first ?: "?");
	return 0;
}

static void pods_check_done(struct loop *l, int r, void *data)
{
	struct pods_check *pc = data;
	struct adaptor_k8s *k = pc->k;
	k->pods_ready = pc->ready;
	str_copy(k->pods_reason, sizeof(k->pods_reason), pc->reason);
	free(pc);
	if (!k->pods_ready && !k->adaptor->draining)
		schedule_startup_check(k, now_ns() + STARTUP_CHECK_INTERVAL_NS);
}

static void startup_tick(struct loop_source *s, void *userdata)
{
	struct adaptor_k8s *k = userdata;
	struct pods_check *pc = calloc(1, sizeof(*pc));
	if (pc)
		pc->k = k;
	if (!pc || loop_submit_work(k->adaptor->loop, pods_check_run, pods_check_done, pc) < 0) {
		free(pc);
		schedule_startup_check(k, now_ns() + STARTUP_CHECK_INTERVAL_NS);
	}
}

static void schedule_startup_check(struct adaptor_k8s *k, int64_t when)
{
	if (k->startup_timer)
		(void)loop_source_set_timer(k->startup_timer, when);
	else
		(void)loop_add_timer(k->adaptor->loop, when, startup_tick, k, &k->startup_timer);
}

bool adaptor_k8s_startup_ready(const struct adaptor *a, char *reason, size_t size)
{
	const struct adaptor_k8s *k = a->k8s;
	if (!k)
		return true;
	if (!k->start_done) {
		str_copy(reason, size, "reconciling with the Kubernetes API");
		return false;
	}
	if (!k->pods_ready) {
		str_copy(reason, size, k->pods_reason[0] ? k->pods_reason : "checking pods");
		return false;
	}
	return true;
}

/* ---- releases that failed: persisted and retried ---- */

struct release_work {
	struct adaptor_k8s *k;
	struct pending *list; /* copies of the pending entries */
};

static int release_run(void *data)
{
	struct release_work *rw = data;
	for (struct pending *p = rw->list; p; p = p->next) {
		_cleanup_pp_error_ struct pp_error *err = NULL;
		int r = release(rw->k->client, p->ns, p->name, &err);
		if (r < 0)
			log_warning("PeerPod %s/%s: releasing the finalizer: %s (retrying later)",
				    p->ns, p->name, pp_error_message(err, r));
		else {
			log_info("PeerPod %s/%s released", p->ns, p->name);
			p->released = true;
		}
	}
	return 0;
}

static void release_tick(struct loop_source *s, void *userdata)
{
	retry_releases(userdata);
}

static void release_done(struct loop *l, int r, void *data)
{
	struct release_work *rw = data;
	struct adaptor_k8s *k = rw->k;
	while (rw->list) {
		struct pending *p = rw->list;
		rw->list = p->next;
		if (p->released)
			pending_remove(k, p->ns, p->name);
		pending_free(p);
	}
	free(rw);
	k->release_running = false;
	if (k->pending && !k->adaptor->draining) {
		int64_t when = now_ns() + k->adaptor->settings->k8s_retry_interval_ns;
		if (k->retry_timer)
			(void)loop_source_set_timer(k->retry_timer, when);
		else
			(void)loop_add_timer(k->adaptor->loop, when, release_tick, k,
					     &k->retry_timer);
	}
}

static void retry_releases(struct adaptor_k8s *k)
{
	if (!k->pending || k->release_running || !k->start_done)
		return;
	struct release_work *rw = calloc(1, sizeof(*rw));
	if (!rw)
		return;
	rw->k = k;
	for (struct pending *p = k->pending; p; p = p->next) {
		struct pending *c = calloc(1, sizeof(*c));
		if (!c || !(c->ns = strdup(p->ns)) || !(c->name = strdup(p->name))) {
			pending_free(c);
			break;
		}
		c->next = rw->list;
		rw->list = c;
	}
	k->release_running = true;
	if (loop_submit_work(k->adaptor->loop, release_run, release_done, rw) < 0) {
		k->release_running = false;
		while (rw->list) {
			struct pending *p = rw->list;
			rw->list = p->next;
			pending_free(p);
		}
		free(rw);
	}
}

void adaptor_k8s_release_later(struct adaptor *a, const char *ns, const char *name)
{
	struct adaptor_k8s *k = a->k8s;
	if (!k)
		return;
	int r = pending_add(k, ns, name, true);
	if (r < 0)
		log_warning_errno(r, "cannot record PeerPod %s/%s for a later release", ns, name);
	retry_releases(k);
}
