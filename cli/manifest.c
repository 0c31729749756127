/* peerpodctl manifest: build a coordinator manifest from Kubernetes YAML (one policy per peer
 * pod workload), show the policy digests of workloads, and check a manifest against YAML. */
#include <getopt.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cli.h"
#include "manifest/manifest.h"
#include "tls/tls.h"
#include "userdata/userdata.h"

/* Owner key files are small PEM documents. */
#define KEY_FILE_MAX_BYTES (64 * 1024)
#define STDIN_NAME "<stdin>"

DEFINE_CLEANUP(OSSL_DECODER_CTX, OSSL_DECODER_CTX_free)

enum {
	OPT_OUTPUT = 'o',
	OPT_MANIFEST = 'm',
	OPT_INITDATA_OUT = 256,
	OPT_REFERENCE_VALUES,
	OPT_SNP_MEASUREMENT,
	OPT_SNP_PRODUCT,
	OPT_SNP_MIN_TCB,
	OPT_WORKLOAD_OWNER_KEY,
	OPT_SEEDSHARE_OWNER_KEY,
	OPT_RUNTIME_CLASS,
	OPT_HELP,
};

static const struct option options[] = {
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"manifest", required_argument, NULL, OPT_MANIFEST},
    {"initdata-out", required_argument, NULL, OPT_INITDATA_OUT},
    {"reference-values", required_argument, NULL, OPT_REFERENCE_VALUES},
    {"snp-measurement", required_argument, NULL, OPT_SNP_MEASUREMENT},
    {"snp-product", required_argument, NULL, OPT_SNP_PRODUCT},
    {"snp-min-tcb", required_argument, NULL, OPT_SNP_MIN_TCB},
    {"workload-owner-key", required_argument, NULL, OPT_WORKLOAD_OWNER_KEY},
    {"owner-key", required_argument, NULL, OPT_WORKLOAD_OWNER_KEY},
    {"seedshare-owner-key", required_argument, NULL, OPT_SEEDSHARE_OWNER_KEY},
    {"seedshare-key", required_argument, NULL, OPT_SEEDSHARE_OWNER_KEY},
    {"runtime-class", required_argument, NULL, OPT_RUNTIME_CLASS},
    {"help", no_argument, NULL, OPT_HELP},
    {},
};

struct opts {
	const char *output, *manifest, *initdata_out, *reference_values, *snp_measurement,
	    *snp_product, *snp_min_tcb, *runtime_class;
	const char **workload_keys, **seedshare_keys;
	size_t n_workload_keys, n_seedshare_keys;
	char *const *files;
	size_t n_files;
};

static void manifest_usage(FILE *f)
{
	fputs(
	    "usage: peerpodctl manifest generate [-o FILE] [--initdata-out FILE]\n"
	    "         (--reference-values RV.json | --snp-measurement HEX96\n"
	    "          [--snp-product Milan|Genoa|Turin] [--snp-min-tcb BL,TEE,SNP,UCODE[,FMC]])\n"
	    "         [--workload-owner-key PEM]... [--seedshare-owner-key PEM]...\n"
	    "         [--runtime-class NAME] FILE.yaml...\n"
	    "       peerpodctl manifest digest [--runtime-class NAME] FILE.yaml...\n"
	    "       peerpodctl manifest check -m MANIFEST.json [--runtime-class NAME] "
	    "[FILE.yaml...]\n"
	    "Each Pod, or pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job "
	    "or\n"
	    "CronJob, with runtimeClassName NAME (default " CLI_DEFAULT_RUNTIME_CLASS
	    ") or a cc_init_data annotation\n"
	    "gets a policy; without the annotation its pod VM runs the default initdata.\n"
	    "The annotation " CLI_ROLE_ANNOTATION ": coordinator marks the coordinator.\n"
	    "FILE \"-\" is standard input; -o \"-\" is standard output (the default).\n"
	    "exit status: 0 success, 1 failure, 2 usage error\n",
	    f);
}

static int failed(FILE *err, int r, const char *msg)
{
	fprintf(err, "error: %s\n", msg ? msg : strerror(-r));
	return CLI_EXIT_FAILED;
}

static int push(const char ***v, size_t *n, const char *s)
{
	const char **nv = reallocarray(*v, *n + 1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* ---- workloads of the YAML files ---- */

struct entry {
	const struct cli_workload *w;
	const char *file;
	const char *initdata; /* annotation or the default document */
	char *encoded;        /* normalised base64(gzip(TOML)) */
	char digest[65];
	char *label; /* namespace/kind/name */
};

struct workset {
	struct cli_workload **w; /* per file */
	size_t *n_w;
	size_t n_files;
	struct entry *e;
	size_t n_e;
};

static void workset_done(struct workset *s)
{
	for (size_t i = 0; i < s->n_files; i++)
		cli_workloads_free(s->w[i], s->n_w[i]);
	free(s->w);
	free(s->n_w);
	for (size_t i = 0; i < s->n_e; i++) {
		free(s->e[i].encoded);
		free(s->e[i].label);
	}
	free(s->e);
	*s = (struct workset){};
}

/* The digest is SHA-256 of the decompressed TOML, as the pod VM reports it (WIRE 5.4, HOST_DATA);
 * the manifest holds sha256 documents only. */
static int entry_digest(struct entry *e, char **ret_msg)
{
	_cleanup_free_ char *msg = NULL, *toml = NULL;
	_cleanup_(initdata_donep) struct initdata d = {};
	size_t len;
	int r = initdata_encode_annotation(e->initdata, strlen(e->initdata), &e->encoded, &msg);
	if (r >= 0) {
		msg = mfree(msg);
		r = initdata_decode(e->encoded, strlen(e->encoded), &toml, &len, &msg);
	}
	if (r >= 0) {
		msg = mfree(msg);
		r = initdata_parse_toml(toml, len, &d, &msg);
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s: %s: %s", e->file, e->label,
				       CLI_INITDATA_ANNOTATION, msg ? msg : strerror(-r));
	if (!str_eq(d.algorithm, "sha256"))
		return str_set_message(ret_msg, EINVAL,
				       "%s: %s: initdata algorithm is %s; manifests need sha256",
				       e->file, e->label, d.algorithm);
	uint8_t md[32];
	SHA256((const uint8_t *)toml, len, md);
	hex_encode_into(md, sizeof(md), e->digest);
	return 0;
}

static int load_yaml(const char *path, struct cli_workload **ret, size_t *ret_n, char **ret_msg)
{
	if (!str_eq(path, "-"))
		return cli_workloads_from_yaml(path, ret, ret_n, ret_msg);
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file_bounded("/dev/stdin", CLI_YAML_MAX_BYTES, &data, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", STDIN_NAME, strerror(-r));
	return cli_workloads_from_yaml_buffer(data, len, STDIN_NAME, ret, ret_n, ret_msg);
}

/* Read every file and select the workloads that get a policy. With check_roles, the role
 * annotation must be "coordinator" or absent. */
static int workset_load(struct workset *s, char *const *files, size_t n_files,
			const char *runtime_class, bool check_roles, char **ret_msg)
{
	size_t n_stdin = 0;
	for (size_t i = 0; i < n_files; i++)
		if (str_eq(files[i], "-") && ++n_stdin > 1)
			return str_set_message(ret_msg, EINVAL,
					       "\"-\" (standard input) given twice");
	s->w = calloc(n_files, sizeof(*s->w));
	s->n_w = calloc(n_files, sizeof(*s->n_w));
	if (!s->w || !s->n_w)
		return -ENOMEM;
	s->n_files = n_files;
	int r;
	for (size_t i = 0; i < n_files; i++) {
		if ((r = load_yaml(files[i], &s->w[i], &s->n_w[i], ret_msg)) < 0)
			return r;
		const char *file = str_eq(files[i], "-") ? STDIN_NAME : files[i];
		for (size_t k = 0; k < s->n_w[i]; k++) {
			const struct cli_workload *w = &s->w[i][k];
			const char *initdata = cli_workload_initdata(w, runtime_class);
			if (!initdata)
				continue;
			struct entry *e = reallocarray(s->e, s->n_e + 1, sizeof(*e));
			if (!e)
				return -ENOMEM;
			s->e = e;
			e = &s->e[s->n_e++];
			*e = (struct entry){.w = w, .file = file, .initdata = initdata};
			e->label = str_printf("%s/%s/%s", w->namespace, w->kind, w->name);
			if (!e->label)
				return -ENOMEM;
			if (check_roles && w->role && !str_eq(w->role, MANIFEST_ROLE_COORDINATOR))
				return str_set_message(
				    ret_msg, EINVAL,
				    "%s: %s: %s must be \"" MANIFEST_ROLE_COORDINATOR
				    "\" or absent, not \"%.64s\"",
				    file, e->label, CLI_ROLE_ANNOTATION, w->role);
			if ((r = entry_digest(e, ret_msg)) < 0)
				return r;
		}
	}
	return 0;
}

/* The manifest maps one digest to one entry (SANs, secret id, role), so two workloads with the
 * same initdata cannot be told apart by the coordinator. */
static int workset_check_unique(const struct workset *s, char **ret_msg)
{
	for (size_t i = 0; i < s->n_e; i++)
		for (size_t k = i + 1; k < s->n_e; k++)
			if (str_eq(s->e[i].digest, s->e[k].digest))
				return str_set_message(
				    ret_msg, EINVAL,
				    "%s (%s) and %s (%s) have the same initdata (digest %s); the "
				    "manifest maps a digest to one workload, so give each its own "
				    "initdata",
				    s->e[i].label, s->e[i].file, s->e[k].label, s->e[k].file,
				    s->e[i].digest);
	return 0;
}

/* ---- reference values and keys ---- */

static int load_reference_values(const char *path, json_t **ret, char **ret_msg)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file_bounded(path, MANIFEST_MAX_BYTES, &data, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	json_error_t jerr;
	_cleanup_(json_decrefp) json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return str_set_message(ret_msg, EINVAL, "%s: line %d: %s", path, jerr.line,
				       jerr.text);
	if (!json_is_object(j))
		return str_set_message(ret_msg, EINVAL, "%s: must be a JSON object", path);
	/* A whole manifest may serve as the source of its reference values. */
	json_t *inner = json_object_get(j, "ReferenceValues");
	*ret = json_incref(inner ? inner : j);
	return 0;
}

static int parse_min_tcb(const char *s, bool turin, json_t **ret)
{
	static const char *const names[] = {"BootloaderVersion", "TEEVersion", "SNPVersion",
					    "MicrocodeVersion", "FMCVersion"};
	_cleanup_strv_free_ char **parts = NULL;
	if (strv_split(s, ",", false, &parts) < 0)
		return -ENOMEM;
	size_t n = strv_length(parts);
	if (n != 4 && !(turin && n == 5))
		return -EINVAL;
	_cleanup_(json_decrefp) json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < 5; i++) {
		uint32_t v = 0;
		if (i < n && (parse_u32(parts[i], &v) < 0 || v > 255))
			return -EINVAL;
		if (i == 4 && !turin)
			break;
		if (json_object_set_new(o, names[i], json_integer(v)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int snp_reference_values(const struct opts *o, FILE *err, json_t **ret)
{
	const char *product = o->snp_product ? o->snp_product : "Milan";
	if (!str_eq(product, "Milan") && !str_eq(product, "Genoa") && !str_eq(product, "Turin"))
		return cli_usage_error(err, "manifest",
				       "--snp-product must be Milan, Genoa or Turin, not '%s'",
				       product);
	uint8_t meas[48];
	if (strlen(o->snp_measurement) != 96 ||
	    manifest_hex_decode(o->snp_measurement, meas, sizeof(meas)) < 0)
		return cli_usage_error(err, "manifest",
				       "--snp-measurement needs 96 hex characters");
	char hex[97];
	hex_encode_into(meas, sizeof(meas), hex);
	bool turin = str_eq(product, "Turin");
	_cleanup_(json_decrefp) json_t *tcb = NULL;
	int r = parse_min_tcb(o->snp_min_tcb ? o->snp_min_tcb : "0,0,0,0", turin, &tcb);
	if (r == -ENOMEM)
		return failed(err, r, NULL);
	if (r < 0)
		return cli_usage_error(err, "manifest",
				       "--snp-min-tcb needs BL,TEE,SNP,UCODE%s (each 0..255)",
				       turin ? "[,FMC]" : "");
	/* SMT and TSME are permissions: most hosts run with both enabled. */
	*ret = json_pack("{s:[{s:s, s:s, s:O, s:{s:b}, s:{s:b, s:b}}]}", "snp", "ProductName",
			 product, "TrustedMeasurement", hex, "MinimumTCB", tcb, "GuestPolicy",
			 "SMT", 1, "PlatformInfo", "SMTEnabled", 1, "TSMEEnabled", 1);
	return *ret ? 0 : failed(err, -ENOMEM, NULL);
}

/* An owner key from a PEM file, public or private; only the public part is kept. */
static int load_key(const char *path, bool rsa, EVP_PKEY **ret, char **ret_msg)
{
	_cleanup_secret_ char *pem = NULL;
	size_t len;
	int r = read_file_bounded(path, KEY_FILE_MAX_BYTES, &pem, &len);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	EVP_PKEY *k = NULL;
	_cleanup_(OSSL_DECODER_CTX_freep) OSSL_DECODER_CTX *dctx =
	    OSSL_DECODER_CTX_new_for_pkey(&k, "PEM", NULL, NULL, 0, NULL, NULL);
	if (!dctx)
		return -ENOMEM;
	const unsigned char *p = (const unsigned char *)pem;
	size_t left = len;
	if (!OSSL_DECODER_from_data(dctx, &p, &left) || !k) {
		ERR_clear_error();
		return str_set_message(ret_msg, EINVAL,
				       "%s: no unencrypted PEM public or private key found", path);
	}
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *full = k;
	if (rsa) {
		int bits = EVP_PKEY_get_bits(full);
		if (!EVP_PKEY_is_a(full, "RSA") || bits < MANIFEST_RSA_MIN_BITS ||
		    bits > MANIFEST_RSA_MAX_BITS)
			return str_set_message(ret_msg, EINVAL,
					       "%s: seed-share owner keys must be RSA of %d to %d "
					       "bits",
					       path, MANIFEST_RSA_MIN_BITS, MANIFEST_RSA_MAX_BITS);
	} else {
		char group[64] = "";
		if (!EVP_PKEY_is_a(full, "EC") ||
		    !EVP_PKEY_get_utf8_string_param(full, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), NULL) ||
		    (!str_eq(group, "prime256v1") && !str_eq(group, "secp384r1"))) {
			ERR_clear_error();
			return str_set_message(ret_msg, EINVAL,
					       "%s: workload owner keys must be EC P-256 or P-384",
					       path);
		}
	}
	unsigned char *der = NULL;
	int der_len = i2d_PUBKEY(full, &der);
	if (der_len <= 0) {
		ERR_clear_error();
		return str_set_message(ret_msg, EINVAL, "%s: cannot encode the public key", path);
	}
	const unsigned char *q = der;
	*ret = d2i_PUBKEY(NULL, &q, der_len);
	OPENSSL_free(der);
	if (!*ret) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
}

struct keys {
	EVP_PKEY **k;
	size_t n;
};

static void keys_done(struct keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->k[i]);
	free(k->k);
}

static int load_keys(const char **paths, size_t n, bool rsa, struct keys *ret, char **ret_msg)
{
	if (n == 0)
		return 0;
	ret->k = calloc(n, sizeof(*ret->k));
	if (!ret->k)
		return -ENOMEM;
	for (; ret->n < n; ret->n++) {
		int r = load_key(paths[ret->n], rsa, &ret->k[ret->n], ret_msg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- output ---- */

static int write_output(const char *path, const char *data, FILE *out, char **ret_msg)
{
	if (!path || str_eq(path, "-")) {
		if (fputs(data, out) < 0 || fflush(out) != 0)
			return str_set_message(ret_msg, EIO, "cannot write to standard output");
		return 0;
	}
	int r = write_file_atomic(path, data, strlen(data), 0644);
	if (r < 0)
		return str_set_message(ret_msg, r, "%s: %s", path, strerror(-r));
	return 0;
}

/* ---- commands ---- */

static int cmd_generate(const struct opts *o, FILE *out, FILE *err)
{
	if (o->n_files == 0)
		return cli_usage_error(err, "manifest", "no YAML file given");
	if (!!o->reference_values == !!o->snp_measurement)
		return cli_usage_error(err, "manifest",
				       "give either --reference-values or --snp-measurement");
	if (o->reference_values && (o->snp_product || o->snp_min_tcb))
		return cli_usage_error(err, "manifest",
				       "--snp-product and --snp-min-tcb go with --snp-measurement");

	_cleanup_free_ char *msg = NULL;
	_cleanup_(json_decrefp) json_t *refs = NULL;
	int r;
	if (o->snp_measurement) {
		if ((r = snp_reference_values(o, err, &refs)) != 0)
			return r;
	} else if ((r = load_reference_values(o->reference_values, &refs, &msg)) < 0) {
		return failed(err, r, msg);
	}

	_cleanup_(keys_done) struct keys owners = {}, shares = {};
	if ((r = load_keys(o->workload_keys, o->n_workload_keys, false, &owners, &msg)) < 0 ||
	    (r = load_keys(o->seedshare_keys, o->n_seedshare_keys, true, &shares, &msg)) < 0)
		return failed(err, r, msg);

	_cleanup_(workset_done) struct workset s = {};
	if ((r = workset_load(&s, o->files, o->n_files, o->runtime_class, true, &msg)) < 0 ||
	    (r = workset_check_unique(&s, &msg)) < 0)
		return failed(err, r, msg);
	if (s.n_e == 0) {
		fprintf(err,
			"error: no workload with runtimeClassName %s or a %s annotation in the "
			"given files\n",
			o->runtime_class ? o->runtime_class : CLI_DEFAULT_RUNTIME_CLASS,
			CLI_INITDATA_ANNOTATION);
		return CLI_EXIT_FAILED;
	}

	/* SANs: the names a Service of the workload's name answers to. */
	_cleanup_free_ struct manifest_gen_policy *pol = calloc(s.n_e, sizeof(*pol));
	_cleanup_free_ char ***sans = calloc(s.n_e, sizeof(*sans));
	_cleanup_free_ char **ids = calloc(s.n_e, sizeof(*ids));
	if (!pol || !sans || !ids)
		return failed(err, -ENOMEM, NULL);
	r = 0;
	for (size_t i = 0; i < s.n_e && r == 0; i++) {
		const struct cli_workload *w = s.e[i].w;
		sans[i] = calloc(5, sizeof(char *));
		ids[i] = str_printf("%s/%s/%s/%s", w->api_version, w->kind, w->namespace, w->name);
		if (!sans[i] || !ids[i] || !(sans[i][0] = strdup(w->name)) ||
		    !(sans[i][1] = str_printf("%s.%s", w->name, w->namespace)) ||
		    !(sans[i][2] = str_printf("%s.%s.svc", w->name, w->namespace)) ||
		    !(sans[i][3] = str_printf("%s.%s.svc.cluster.local", w->name, w->namespace)))
			r = -ENOMEM;
		pol[i] = (struct manifest_gen_policy){
		    .initdata = s.e[i].encoded,
		    .sans = sans[i],
		    .workload_secret_id = ids[i],
		    .role = w->role,
		};
	}
	_cleanup_free_ char *json = NULL;
	_cleanup_strv_free_ char **encoded = NULL;
	if (r == 0) {
		struct manifest_gen g = {
		    .policies = pol,
		    .n_policies = s.n_e,
		    .reference_values = refs,
		    .workload_owners = owners.k,
		    .n_workload_owners = owners.n,
		    .seedshare_owners = shares.k,
		    .n_seedshare_owners = shares.n,
		};
		r = manifest_generate(&g, &json, &encoded, &msg);
	}
	for (size_t i = 0; i < s.n_e; i++) {
		strv_free(sans[i]);
		free(ids[i]);
	}
	if (r < 0)
		return failed(err, r, msg);

	if (o->initdata_out) {
		struct buf b = {};
		for (size_t i = 0; encoded[i] && r >= 0; i++)
			r = buf_printf(&b, "%s\n", encoded[i]);
		if (r >= 0)
			r = buf_append(&b, "", 1, 0);
		if (r >= 0)
			r = write_output(o->initdata_out, (const char *)b.data, out, &msg);
		buf_done(&b);
		if (r < 0)
			return failed(err, r, msg);
	}
	if ((r = write_output(o->output, json, out, &msg)) < 0)
		return failed(err, r, msg);
	/* With the manifest in a file, standard output is free for what users need next. */
	if (o->output && !str_eq(o->output, "-"))
		for (size_t i = 0; i < s.n_e; i++)
			fprintf(out, "%s  %s%s\n", s.e[i].digest, s.e[i].label,
				s.e[i].w->role ? "  (coordinator)" : "");
	return CLI_EXIT_OK;
}

static int cmd_digest(const struct opts *o, FILE *out, FILE *err)
{
	if (o->n_files == 0)
		return cli_usage_error(err, "manifest", "no YAML file given");
	_cleanup_free_ char *msg = NULL;
	_cleanup_(workset_done) struct workset s = {};
	int r = workset_load(&s, o->files, o->n_files, o->runtime_class, false, &msg);
	if (r < 0)
		return failed(err, r, msg);
	for (size_t i = 0; i < s.n_e; i++)
		fprintf(out, "%s  %s\n", s.e[i].digest, s.e[i].label);
	return CLI_EXIT_OK;
}

static int cmd_check(const struct opts *o, FILE *out, FILE *err)
{
	if (!o->manifest)
		return cli_usage_error(err, "manifest", "-m MANIFEST.json is required");
	_cleanup_free_ char *msg = NULL, *data = NULL;
	size_t len;
	int r = read_file_bounded(o->manifest, MANIFEST_MAX_BYTES, &data, &len);
	if (r < 0)
		return failed(err, r, (msg = str_printf("%s: %s", o->manifest, strerror(-r))));
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	if ((r = manifest_parse(data, len, &m, &msg)) < 0) {
		fprintf(err, "error: %s: %s\n", o->manifest, msg ? msg : strerror(-r));
		return CLI_EXIT_FAILED;
	}

	_cleanup_(workset_done) struct workset s = {};
	if (o->n_files > 0) {
		if ((r = workset_load(&s, o->files, o->n_files, o->runtime_class, true, &msg)) <
			0 ||
		    (r = workset_check_unique(&s, &msg)) < 0)
			return failed(err, r, msg);
		_cleanup_free_ char **docs = calloc(s.n_e + 1, sizeof(char *));
		if (!docs)
			return failed(err, -ENOMEM, NULL);
		for (size_t i = 0; i < s.n_e; i++)
			docs[i] = s.e[i].encoded;
		struct manifest_initdata id = {};
		r = manifest_check_initdata(m, docs, s.n_e, &id, &msg);
		manifest_initdata_done(&id);
		if (r < 0) {
			fprintf(err, "error: %s: %s\n", o->manifest, msg ? msg : strerror(-r));
			return CLI_EXIT_FAILED;
		}
		for (size_t i = 0; i < s.n_e; i++) {
			const struct manifest_policy *p =
			    manifest_policy_find_hex(m, s.e[i].digest);
			if (p && p->coordinator != !!s.e[i].w->role) {
				fprintf(err,
					"error: %s: %s is %sa coordinator in the YAML but %sin "
					"the manifest\n",
					o->manifest, s.e[i].label, s.e[i].w->role ? "" : "not ",
					p->coordinator ? "" : "not ");
				return CLI_EXIT_FAILED;
			}
		}
	}

	fprintf(out, "manifest %s  %s\n", m->sha256_hex, o->manifest);
	for (size_t i = 0; i < m->n_policies; i++) {
		const struct manifest_policy *p = &m->policies[i];
		const char *who = "";
		for (size_t k = 0; k < s.n_e; k++)
			if (str_eq(s.e[k].digest, p->digest_hex))
				who = s.e[k].label;
		fprintf(out, "%s  %-11s  %s%s%s\n", p->digest_hex,
			p->coordinator ? MANIFEST_ROLE_COORDINATOR : "-",
			p->workload_secret_id ? p->workload_secret_id : "-", *who ? "  " : "", who);
	}
	if (o->n_files > 0)
		fprintf(out, "initdata of %zu workloads matches\n", s.n_e);
	return CLI_EXIT_OK;
}

int cli_manifest_run(int argc, char *const *argv, FILE *out, FILE *err)
{
	if (argc < 2) {
		manifest_usage(err);
		return CLI_EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (str_eq(verb, "--help") || str_eq(verb, "-h") || str_eq(verb, "help")) {
		manifest_usage(out);
		return CLI_EXIT_OK;
	}
	struct opts o = {};
	_cleanup_free_ const char **wk = NULL, **sk = NULL;
	bool help = false;
	optind = 0; /* reset getopt, also for repeated calls from tests */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc - 1, argv + 1, ":o:m:", options, NULL)) != -1) {
		switch (c) {
		case OPT_OUTPUT:
			o.output = optarg;
			break;
		case OPT_MANIFEST:
			o.manifest = optarg;
			break;
		case OPT_INITDATA_OUT:
			o.initdata_out = optarg;
			break;
		case OPT_REFERENCE_VALUES:
			o.reference_values = optarg;
			break;
		case OPT_SNP_MEASUREMENT:
			o.snp_measurement = optarg;
			break;
		case OPT_SNP_PRODUCT:
			o.snp_product = optarg;
			break;
		case OPT_SNP_MIN_TCB:
			o.snp_min_tcb = optarg;
			break;
		case OPT_WORKLOAD_OWNER_KEY:
			if (push(&wk, &o.n_workload_keys, optarg) < 0)
				return failed(err, -ENOMEM, NULL);
			break;
		case OPT_SEEDSHARE_OWNER_KEY:
			if (push(&sk, &o.n_seedshare_keys, optarg) < 0)
				return failed(err, -ENOMEM, NULL);
			break;
		case OPT_RUNTIME_CLASS:
			o.runtime_class = optarg;
			break;
		case OPT_HELP:
			help = true;
			break;
		case ':':
			return cli_usage_error(err, "manifest", "option '%s' needs a value",
					       argv[optind]);
		default:
			return cli_usage_error(err, "manifest", "unknown option '%s'",
					       argv[optind]);
		}
	}
	if (help) {
		manifest_usage(out);
		return CLI_EXIT_OK;
	}
	o.workload_keys = wk;
	o.seedshare_keys = sk;
	/* getopt moved the files behind the options; argv[1] (the verb) stayed in place. */
	o.files = argv + 1 + optind;
	o.n_files = (size_t)(argc - 1 - optind);
	if (o.runtime_class && str_empty(o.runtime_class))
		return cli_usage_error(err, "manifest", "--runtime-class needs a non-empty name");

	bool gen = str_eq(verb, "generate"), dig = str_eq(verb, "digest"),
	     chk = str_eq(verb, "check");
	if (!gen && !dig && !chk)
		return cli_usage_error(err, "manifest", "unknown manifest command '%s'", verb);
	if (!gen && (o.output || o.initdata_out || o.reference_values || o.snp_measurement ||
		     o.snp_product || o.snp_min_tcb || o.n_workload_keys || o.n_seedshare_keys))
		return cli_usage_error(err, "manifest",
				       "'manifest %s' takes only %s--runtime-class and files", verb,
				       chk ? "-m, " : "");
	if (!chk && o.manifest)
		return cli_usage_error(err, "manifest", "-m is only for 'manifest check'");
	if (gen)
		return cmd_generate(&o, out, err);
	if (dig)
		return cmd_digest(&o, out, err);
	return cmd_check(&o, out, err);
}
