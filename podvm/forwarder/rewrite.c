/* The forwarder's two request rewrites (WIRE.md 4.1). The requests are decoded with the minimal
 * schema of proto/apf-rewrite.proto, so every field we do not declare is kept by protobuf-c as an
 * unknown field and re-emitted unchanged (WIRE.md 3.5). */
#include "forwarder.h"

#include "apf-rewrite.pb-c.h"

static void sandbox_free(Apfrewrite__CreateSandbox *m)
{
	apfrewrite__create_sandbox__free_unpacked(m, NULL);
}
DEFINE_CLEANUP(Apfrewrite__CreateSandbox, sandbox_free)

static void container_free(Apfrewrite__CreateContainer *m)
{
	apfrewrite__create_container__free_unpacked(m, NULL);
}
DEFINE_CLEANUP(Apfrewrite__CreateContainer, container_free)

static bool bytes_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	return alen == blen && memcmp(a, b, blen) == 0;
}

static int set_message(char **ret_message, const char *what)
{
	if (ret_message) {
		free(*ret_message);
		*ret_message = str_printf("cannot decode %s request: malformed protobuf", what);
	}
	return -EBADMSG;
}

/* protobuf-c accepts field number 0 or numbers above 2^29-1 when the tag is an over-long varint,
 * keeps them as unknown fields and would re-emit them in a form it no longer accepts itself.
 * Such input is not protobuf: refuse it rather than pass on something different. */
static bool unknown_fields_valid(const ProtobufCMessage *m)
{
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0 || m->unknown_fields[i].tag > 0x1fffffffu)
			return false;
	return true;
}

static int pack(const ProtobufCMessage *m, struct buf *out)
{
	size_t size = protobuf_c_message_get_packed_size(m);
	/* The result must still fit, with the envelope, into one ttRPC frame. */
	if (size > TTRPC_MAX_DATA_BYTES)
		return -EMSGSIZE;
	int r = buf_reserve(out, size, 0);
	if (r < 0)
		return r;
	size_t n = protobuf_c_message_pack(m, out->data + out->len);
	if (n != size)
		return -EIO;
	out->len += n;
	return 1;
}

static int rewrite_create_sandbox(const uint8_t *payload, size_t len, struct buf *out,
				  char **ret_message)
{
	_cleanup_(sandbox_freep) Apfrewrite__CreateSandbox *m =
	    apfrewrite__create_sandbox__unpack(NULL, len, payload);
	if (!m || !unknown_fields_valid(&m->base))
		return set_message(ret_message, "CreateSandbox");
	if (m->n_dns == 0)
		return 0;
	/* Hide the entries for packing only: free_unpacked needs the count to free them. */
	size_t n_dns = m->n_dns;
	m->n_dns = 0;
	int r = pack(&m->base, out);
	m->n_dns = n_dns;
	return r;
}

static int rewrite_create_container(const uint8_t *payload, size_t len, const char *pod_netns,
				    struct buf *out, char **ret_message)
{
	_cleanup_(container_freep) Apfrewrite__CreateContainer *m =
	    apfrewrite__create_container__unpack(NULL, len, payload);
	if (!m || !unknown_fields_valid(&m->base) ||
	    (m->oci && !unknown_fields_valid(&m->oci->base)) ||
	    (m->oci && m->oci->linux && !unknown_fields_valid(&m->oci->linux->base)))
		return set_message(ret_message, "CreateContainer");
	if (m->oci && m->oci->linux)
		for (size_t i = 0; i < m->oci->linux->n_namespaces; i++)
			if (!unknown_fields_valid(&m->oci->linux->namespaces[i]->base))
				return set_message(ret_message, "CreateContainer");

	/* Missing levels and the new entry live on the stack and are unhooked before
	 * free_unpacked, which only sees what it allocated. */
	Apfrewrite__Spec spec = APFREWRITE__SPEC__INIT;
	Apfrewrite__Linux linux_ = APFREWRITE__LINUX__INIT;
	Apfrewrite__Namespace ns = APFREWRITE__NAMESPACE__INIT;
	ns.type = (char *)"network";
	ns.path = (char *)pod_netns;

	bool added_spec = false, added_linux = false;
	if (!m->oci) {
		m->oci = &spec;
		added_spec = true;
	}
	if (!m->oci->linux) {
		m->oci->linux = &linux_;
		added_linux = true;
	}
	Apfrewrite__Linux *lx = m->oci->linux;
	Apfrewrite__Namespace **old = lx->namespaces;
	size_t n_old = lx->n_namespaces;
	_cleanup_free_ Apfrewrite__Namespace **list = calloc(n_old + 1, sizeof(*list));
	int r = -ENOMEM;
	if (list) {
		if (n_old > 0)
			memcpy(list, old, n_old * sizeof(*list));
		list[n_old] = &ns;
		lx->namespaces = list;
		lx->n_namespaces = n_old + 1;
		r = pack(&m->base, out);
		lx->namespaces = old;
		lx->n_namespaces = n_old;
	}
	if (added_linux)
		m->oci->linux = NULL;
	if (added_spec)
		m->oci = NULL;
	return r;
}

int forwarder_rewrite(const char *service, size_t slen, const char *method, size_t mlen,
		      const uint8_t *payload, size_t len, const char *pod_netns, struct buf *out,
		      char **ret_message)
{
	if (!bytes_eq(service, slen, FORWARDER_AGENT_SERVICE))
		return 0;
	if (bytes_eq(method, mlen, "CreateSandbox"))
		return rewrite_create_sandbox(payload, len, out, ret_message);
	if (bytes_eq(method, mlen, "CreateContainer"))
		return rewrite_create_container(payload, len,
						pod_netns ? pod_netns : FORWARDER_DEFAULT_POD_NETNS,
						out, ret_message);
	return 0;
}
