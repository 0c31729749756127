/* coordinator/crl.c: AMD CRLs for SEV-SNP evidence that carries none (configfs-tsm and
 * /dev/sev-guest hand the guest certificates, not CRLs): from memory, else the cache directory,
 * else the KDS (ATTESTATION.md 2), kept until their nextUpdate. Origin confers no trust: lib/attest
 * checks every CRL against the pinned ARK. Called from handshakes on worker threads. */
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/stat.h>

#include "coordinator/daemon.h"
#include "http/http.h"

DEFINE_CLEANUP(X509_CRL, X509_CRL_free)

#define N_PRODUCTS 3
#define REFETCH_BACKOFF_NS (30 * NSEC_PER_SEC)

struct crl_entry {
	uint8_t *der; /* NULL: none yet */
	size_t len;
	int64_t next_update_sec;
	int64_t retry_after_ns; /* CLOCK_MONOTONIC: no KDS request before (after a failure) */
};

struct coord_crl_cache {
	pthread_mutex_t lock;
	char *kds_url;   /* NULL: offline */
	char *cache_dir; /* NULL: none */
	int64_t timeout_ns;
	struct crl_entry entries[N_PRODUCTS][2]; /* [product - 1][vlek] */
};

/* Each thread's copy of the last CRL handed out (borrowed until its next call), freed when the
 * thread exits. */
static pthread_key_t copy_key;
static pthread_once_t copy_once = PTHREAD_ONCE_INIT;
static bool copy_key_ok;

static void copy_key_init(void)
{
	copy_key_ok = pthread_key_create(&copy_key, free) == 0;
}

int coord_crl_cache_new(const char *kds_url, const char *cache_dir, int64_t timeout_ns,
			struct coord_crl_cache **ret)
{
	struct coord_crl_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->timeout_ns = timeout_ns > 0 ? timeout_ns : COORD_CRL_TIMEOUT_NS;
	if ((!str_empty(kds_url) && !(c->kds_url = str_dup(kds_url))) ||
	    (!str_empty(cache_dir) && !(c->cache_dir = str_dup(cache_dir)))) {
		coord_crl_cache_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

struct coord_crl_cache *coord_crl_cache_free(struct coord_crl_cache *c)
{
	if (!c)
		return NULL;
	for (size_t p = 0; p < N_PRODUCTS; p++)
		for (size_t k = 0; k < 2; k++)
			free(c->entries[p][k].der);
	free(c->kds_url);
	free(c->cache_dir);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

/* nextUpdate of a DER CRL in seconds since the epoch; -EBADMSG when it does not parse or has
 * none. */
int coord_crl_next_update(const uint8_t *der, size_t len, int64_t *ret_sec)
{
	const unsigned char *p = der;
	_cleanup_(X509_CRL_freep) X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
	const ASN1_TIME *next = crl ? X509_CRL_get0_nextUpdate(crl) : NULL;
	struct tm tm;
	if (!crl || p != der + len || !next || ASN1_TIME_to_tm(next, &tm) != 1)
		return -EBADMSG;
	*ret_sec = (int64_t)timegm(&tm);
	return 0;
}

static char *cache_path(const struct coord_crl_cache *c, const char *product, bool vlek)
{
	return str_printf("%s/amd/%s/%s", c->cache_dir, product, vlek ? "vlek_crl.der" : "crl.der");
}

/* Take a CRL into the entry when it is current. */
static int adopt(struct crl_entry *e, uint8_t *der, size_t len, int64_t now_sec)
{
	int64_t next;
	if (coord_crl_next_update(der, len, &next) < 0 || next <= now_sec) {
		free(der);
		return -ESTALE;
	}
	free(e->der);
	e->der = der;
	e->len = len;
	e->next_update_sec = next;
	return 0;
}

static int from_cache_dir(struct coord_crl_cache *c, struct crl_entry *e, const char *product,
			  bool vlek, int64_t now_sec)
{
	if (!c->cache_dir)
		return -ENOENT;
	_cleanup_free_ char *path = cache_path(c, product, vlek);
	char *data = NULL;
	size_t len = 0;
	int r = path ? read_file_bounded(path, COORD_CRL_MAX_BYTES, &data, &len) : -ENOMEM;
	if (r < 0)
		return r;
	return adopt(e, (uint8_t *)data, len, now_sec);
}

static void save_to_cache_dir(struct coord_crl_cache *c, const char *product, bool vlek,
			      const uint8_t *der, size_t len)
{
	if (!c->cache_dir)
		return;
	_cleanup_free_ char *dir = str_printf("%s/amd/%s", c->cache_dir, product);
	_cleanup_free_ char *path = cache_path(c, product, vlek);
	if (dir && path && mkdir_p(dir, 0700) >= 0)
		(void)write_file_atomic(path, der, len, 0600);
}

static int from_kds(struct coord_crl_cache *c, struct crl_entry *e, const char *product, bool vlek,
		    int64_t now_sec)
{
	if (!c->kds_url)
		return -ENOENT;
	if (e->retry_after_ns && now_ns() < e->retry_after_ns)
		return -EAGAIN;
	_cleanup_free_ char *url =
	    str_printf("%s/%s/v1/%s/crl", c->kds_url, vlek ? "vlek" : "vcek", product);
	if (!url)
		return -ENOMEM;
	struct http_request req = {
	    .url = url,
	    .timeout_ns = c->timeout_ns,
	    .connect_timeout_ns = c->timeout_ns,
	    .max_body_bytes = COORD_CRL_MAX_BYTES,
	    .max_retries = 2,
	};
	_cleanup_(http_response_donep) struct http_response resp = {};
	int r = http_request(&req, &resp, NULL);
	if (r >= 0) {
		uint8_t *der = malloc(resp.body_len ? resp.body_len : 1);
		if (!der)
			return -ENOMEM;
		memcpy(der, resp.body, resp.body_len);
		r = adopt(e, der, resp.body_len, now_sec);
	}
	if (r < 0) {
		/* The KDS rate-limits: a failure is not retried by every handshake. */
		e->retry_after_ns = now_ns() + REFETCH_BACKOFF_NS;
		return r;
	}
	e->retry_after_ns = 0;
	save_to_cache_dir(c, product, vlek, e->der, e->len);
	return 0;
}

int coord_crl_get(void *userdata, enum attest_snp_product product, bool vlek, const uint8_t **ret,
		  size_t *ret_len)
{
	struct coord_crl_cache *c = userdata;
	const char *name = attest_snp_product_name(product);
	if (!c || !name || product < 1 || product > N_PRODUCTS)
		return -EINVAL;
	int64_t now_sec = now_realtime_ns() / NSEC_PER_SEC;
	pthread_mutex_lock(&c->lock);
	struct crl_entry *e = &c->entries[product - 1][vlek];
	int r = 0;
	if (!e->der || e->next_update_sec <= now_sec) {
		r = from_cache_dir(c, e, name, vlek, now_sec);
		if (r < 0)
			r = from_kds(c, e, name, vlek, now_sec);
	}
	uint8_t *copy = NULL;
	size_t len = 0;
	if (r >= 0) {
		copy = malloc(e->len);
		len = e->len;
		if (copy)
			memcpy(copy, e->der, len);
		else
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		return r;
	pthread_once(&copy_once, copy_key_init);
	if (!copy_key_ok) {
		free(copy);
		return -ENOMEM;
	}
	free(pthread_getspecific(copy_key));
	if (pthread_setspecific(copy_key, copy) != 0) {
		free(copy);
		return -ENOMEM;
	}
	*ret = copy;
	*ret_len = len;
	return 0;
}
