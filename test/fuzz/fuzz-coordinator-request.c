/* Fuzz target for the coordinator's request handling (coordinator/service.c): unpack, validation
 * and the core of every UserAPI and MeshAPI method against a real history on a temporary file
 * store (an active one, and a stale one opened on the same store for Recover) and a snapshot.
 * Input: byte 0 picks the method (low 3 bits) and the client (next bits), the rest is the
 * request payload. Every answer must be a valid response message or a ttRPC error with a
 * message. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <time.h>

#include "coordinator/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOML_COORD                                                                               \
	"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"policy.rego\" = '''\npackage " \
	"coordinator\n'''\n"
#define TOML_WEB "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''\n"

static const char refs_json[] =
    "{\"snp\":[{\"ProductName\":\"Milan\",\"TrustedMeasurement\":"
    "\"bece7399a4da054a63a2e3fa1a47ff98c88e391d4379126fc4e75c677f25b6cd6bfd8ef609a8638049633ac7e0"
    "0e4ac1\",\"MinimumTCB\":{\"BootloaderVersion\":0,\"TEEVersion\":0,\"SNPVersion\":0,"
    "\"MicrocodeVersion\":0}}]}";

enum { N_CLIENTS = 6 };

static struct {
	char dir[64];
	struct store *store;
	struct history *active, *stale;
	struct coord_snapshot *snap;
	EVP_PKEY *owner, *share, *pod;
	struct coord_client clients[N_CLIENTS];
} F;

static void cleanup(void)
{
	for (size_t i = 0; i < N_CLIENTS; i++)
		coord_client_done(&F.clients[i]);
	coord_snapshot_unref(F.snap);
	history_free(F.active);
	history_free(F.stale);
	store_free(F.store);
	EVP_PKEY_free(F.owner);
	EVP_PKEY_free(F.share);
	EVP_PKEY_free(F.pod);
	rm_rf(F.dir);
}

static void client_with_key(struct coord_client *c, EVP_PKEY *key)
{
	if (EVP_PKEY_up_ref(key) != 1)
		abort();
	c->key = key;
	int n = i2d_PUBKEY(key, &c->spki);
	if (n <= 0)
		abort();
	c->spki_len = (size_t)n;
	if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA) {
		n = i2d_PublicKey(key, &c->pkcs1);
		if (n <= 0)
			abort();
		c->pkcs1_len = (size_t)n;
	}
}

static void attested(struct coord_client *c, const uint8_t digest[32])
{
	client_with_key(c, F.pod);
	c->attested = true;
	memcpy(c->digest, digest, 32);
	hex_encode_into(digest, 32, c->digest_hex);
}

static void init(void)
{
	snprintf(F.dir, sizeof(F.dir), "/tmp/pp-fuzz-coord-XXXXXX");
	F.owner = EVP_EC_gen("P-256");
	F.pod = EVP_EC_gen("P-256");
	F.share = EVP_RSA_gen(2048);
	if (!mkdtemp(F.dir) || !F.owner || !F.pod || !F.share ||
	    store_open_dir(F.dir, &F.store) < 0 || history_open(F.store, &F.active, NULL) < 0)
		abort();
	atexit(cleanup);

	char *sans[] = {"web", "10.0.0.7", NULL};
	struct manifest_gen_policy pols[] = {
	    {.initdata = TOML_COORD, .role = "coordinator"},
	    {.initdata = TOML_WEB, .sans = sans, .workload_secret_id = "web"},
	};
	json_t *refs = json_loads(refs_json, 0, NULL);
	struct manifest_gen g = {
	    .policies = pols,
	    .n_policies = 2,
	    .reference_values = refs,
	    .workload_owners = &F.owner,
	    .n_workload_owners = 1,
	    .seedshare_owners = &F.share,
	    .n_seedshare_owners = 1,
	};
	char *json = NULL, **initdata = NULL;
	if (!refs || manifest_generate(&g, &json, &initdata, NULL) < 0)
		abort();
	json_decref(refs);
	struct history_set_request req = {
	    .manifest = (const uint8_t *)json,
	    .manifest_len = strlen(json),
	    .initdata = initdata,
	    .n_initdata = strv_length(initdata),
	    .now_sec = (int64_t)time(NULL),
	};
	if (history_set_manifest(F.active, &req, NULL, NULL) < 0 ||
	    history_open(F.store, &F.stale, NULL) < 0 ||
	    coord_snapshot_new(F.active, NULL, &F.snap, NULL) < 0)
		abort();
	free(json);
	strv_free(initdata);

	uint8_t coord[32], web[32], other[32];
	SHA256((const uint8_t *)TOML_COORD, strlen(TOML_COORD), coord);
	SHA256((const uint8_t *)TOML_WEB, strlen(TOML_WEB), web);
	memset(other, 0x5a, sizeof(other));
	/* 0: nobody */
	client_with_key(&F.clients[1], F.owner);
	client_with_key(&F.clients[2], F.share);
	attested(&F.clients[3], coord);
	attested(&F.clients[4], web);
	attested(&F.clients[5], other);
}

static void check(const struct coord_reply *r, const ProtobufCMessageDescriptor *desc)
{
	if (r->code == TTRPC_OK) {
		ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, r->len, r->payload);
		if (!m)
			__builtin_trap();
		protobuf_c_message_free_unpacked(m, NULL);
	} else if (r->code < 0 || r->code > TTRPC_UNAVAILABLE || !r->message)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	if (size < 1)
		return 0;
	unsigned method = data[0] & 7;
	const struct coord_client *c = &F.clients[(data[0] >> 3) % N_CLIENTS];
	const uint8_t *payload = data + 1;
	size_t len = size - 1;
	int64_t now = (int64_t)time(NULL);
	struct coord_reply r = {0};

	switch (method) {
	case 0:
		coord_handle_set_manifest(F.active, c, payload, len, now, &r);
		if (!r.result)
			__builtin_trap();
		check(&r, &coordinator__set_manifest_response__descriptor);
		if (r.code == TTRPC_OK) {
			/* A fuzzed update was accepted: serve the new state from now on. */
			coord_snapshot_unref(F.snap);
			F.snap = NULL;
			if (coord_snapshot_new(F.active, NULL, &F.snap, NULL) < 0)
				abort();
		}
		break;
	case 1:
		coord_handle_get_manifests(F.active, F.store, payload, len, &r);
		check(&r, &coordinator__get_manifests_response__descriptor);
		break;
	case 2:
		coord_handle_recover(F.stale, c, payload, len, now, &r);
		check(&r, &coordinator__recover_response__descriptor);
		break;
	case 3:
		coord_handle_new_mesh_cert(F.snap, c, payload, len, now, &r);
		check(&r, &coordinator__new_mesh_cert_response__descriptor);
		/* Only a workload of the manifest gets a certificate. */
		if (r.code == TTRPC_OK &&
		    (!c->attested || !manifest_policy_find(F.snap->manifest, c->digest)))
			__builtin_trap();
		break;
	case 4:
		coord_handle_peer_recover(F.snap, c, payload, len, &r);
		check(&r, &coordinator__peer_recover_response__descriptor);
		/* Only a coordinator gets the secrets. */
		if (r.code == TTRPC_OK &&
		    (!c->attested || !manifest_digest_is_coordinator(F.snap->manifest, c->digest)))
			__builtin_trap();
		break;
	default:
		break;
	}
	coord_reply_done(&r);
	return 0;
}
