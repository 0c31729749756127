/* providers/aws/ec2-xml: bounded parsers of the EC2 and STS Query-API XML responses and of the
 * IMDS credential document. Documents with a DTD are refused outright, so no entity is ever
 * declared, loaded or expanded; the network is never touched (XML_PARSE_NONET). */
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <time.h>

#include "aws-internal.h"

DEFINE_CLEANUP(xmlDoc, xmlFreeDoc)

static void quiet(void *ctx, const char *msg, ...)
{
	/* libraries never log: a malformed document is reported as -EBADMSG */
}

static void quiet_structured(void *ctx, xmlErrorPtr error)
{
}

static int doc_parse(const char *body, size_t len, xmlDoc **ret)
{
	if (!body || len == 0 || len > AWS_XML_MAX_BYTES)
		return -EBADMSG;
	/* a DOCTYPE is the only way to declare entities: AWS never sends one */
	if (memmem(body, len, "<!DOCTYPE", 9) || memmem(body, len, "<!ENTITY", 8))
		return -EBADMSG;
	/* libxml2's error handlers are per thread: silence this thread's before parsing */
	xmlSetGenericErrorFunc(NULL, quiet);
	xmlSetStructuredErrorFunc(NULL, quiet_structured);
	xmlDoc *doc = xmlReadMemory(body, (int)len, NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return -EBADMSG;
	if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		return -EBADMSG;
	}
	*ret = doc;
	return 0;
}

static bool is(const xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static xmlNode *child(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (is(c, name))
			return c;
	return NULL;
}

/* The element text (NULL when the element is absent); longer than max is -EBADMSG unless
 * truncate, in which case it is cut. */
static int text_of(xmlNode *n, size_t max, bool truncate, char **ret)
{
	*ret = NULL;
	if (!n)
		return 0;
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return -ENOMEM;
	size_t l = strlen((char *)t);
	if (l > max && !truncate) {
		xmlFree(t);
		return -EBADMSG;
	}
	*ret = strndup((char *)t, MIN(l, max));
	xmlFree(t);
	return *ret ? 0 : -ENOMEM;
}

static int text(xmlNode *n, char **ret)
{
	return text_of(n, AWS_TEXT_MAX_BYTES, false, ret);
}

static int uint_of(xmlNode *n, uint64_t *ret)
{
	_cleanup_free_ char *s = NULL;
	int r = text(n, &s);
	if (r < 0)
		return r;
	if (!s) {
		*ret = 0;
		return 0;
	}
	return parse_u64(s, ret) < 0 ? -EBADMSG : 0;
}

/* ---- errors ---- */

void aws_api_error_done(struct aws_api_error *e)
{
	if (!e)
		return;
	free(e->code);
	free(e->message);
	free(e->request_id);
	*e = (struct aws_api_error){0};
}

int aws_api_error_parse(const char *body, size_t len, struct aws_api_error *ret)
{
	_cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
	int r = doc_parse(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlNode *err = NULL;
	if (is(root, "Response")) /* EC2 */
		err = child(child(root, "Errors"), "Error");
	else if (is(root, "ErrorResponse")) /* STS and other Query services */
		err = child(root, "Error");
	if (!err)
		return -EBADMSG;
	struct aws_api_error e = {0};
	r = text(child(err, "Code"), &e.code);
	if (r >= 0)
		r = text_of(child(err, "Message"), AWS_MESSAGE_MAX_BYTES, true, &e.message);
	if (r >= 0) {
		xmlNode *id = child(root, "RequestID");
		r = text(id ? id : child(root, "RequestId"), &e.request_id);
	}
	if (r >= 0 && str_empty(e.code))
		r = -EBADMSG;
	if (r < 0) {
		aws_api_error_done(&e);
		return r;
	}
	*ret = e;
	return 0;
}

bool aws_error_code_is_throttle(const char *code)
{
	static const char *const codes[] = {
	    "RequestLimitExceeded",
	    "Throttling",
	    "ThrottlingException",
	    "RequestThrottled",
	    "RequestThrottledException",
	    "TooManyRequestsException",
	    "SlowDown",
	    "InternalError",
	    "InternalFailure",
	    "ServiceUnavailable",
	    "Unavailable",
	    "IDPCommunicationError",
	};
	for (size_t i = 0; code && i < ELEMENTSOF(codes); i++)
		if (str_eq(code, codes[i]))
			return true;
	return false;
}

/* ---- instances ---- */

void ec2_instance_done(struct ec2_instance *i)
{
	if (!i)
		return;
	free(i->id);
	free(i->state);
	free(i->private_ip);
	free(i->public_ip);
	free(i->name);
	free(i->sandbox_id);
	free(i->node_name);
	*i = (struct ec2_instance){0};
}

void ec2_instances_free(struct ec2_instance *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		ec2_instance_done(&v[i]);
	free(v);
}

static int instance_parse(xmlNode *item, struct ec2_instance *ret)
{
	struct ec2_instance i = {0};
	int r = text(child(item, "instanceId"), &i.id);
	if (r >= 0)
		r = text(child(child(item, "instanceState"), "name"), &i.state);
	if (r >= 0)
		r = text(child(item, "privateIpAddress"), &i.private_ip);
	if (r >= 0)
		r = text(child(item, "ipAddress"), &i.public_ip);
	xmlNode *tags = child(item, "tagSet");
	size_t n = 0;
	for (xmlNode *t = tags ? tags->children : NULL; r >= 0 && t; t = t->next) {
		if (!is(t, "item"))
			continue;
		if (++n > AWS_MAX_ITEMS_PER_PAGE) {
			r = -EBADMSG;
			break;
		}
		_cleanup_free_ char *k = NULL, *v = NULL;
		r = text(child(t, "key"), &k);
		if (r >= 0)
			r = text(child(t, "value"), &v);
		if (r < 0 || !k)
			continue;
		char **dst = str_eq(k, "Name")            ? &i.name
			     : str_eq(k, AWS_TAG_SANDBOX) ? &i.sandbox_id
			     : str_eq(k, AWS_TAG_NODE)    ? &i.node_name
							  : NULL;
		if (dst) {
			free(*dst);
			*dst = v ? TAKE_PTR(v) : strdup("");
			if (!*dst)
				r = -ENOMEM;
		}
	}
	if (r >= 0 && str_empty(i.id))
		r = -EBADMSG;
	if (r < 0) {
		ec2_instance_done(&i);
		return r;
	}
	*ret = i;
	return 0;
}

static int instances_append(xmlNode *set, struct ec2_instance **v, size_t *n)
{
	for (xmlNode *it = set ? set->children : NULL; it; it = it->next) {
		if (!is(it, "item"))
			continue;
		if (*n >= AWS_MAX_ITEMS_PER_PAGE)
			return -EBADMSG;
		struct ec2_instance *nv = reallocarray(*v, *n + 1, sizeof(**v));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		int r = instance_parse(it, &nv[*n]);
		if (r < 0)
			return r;
		(*n)++;
	}
	return 0;
}

int ec2_instances_parse(const char *body, size_t len, struct ec2_instance **ret, size_t *ret_n,
			char **ret_next_token)
{
	_cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
	int r = doc_parse(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = xmlDocGetRootElement(doc);
	struct ec2_instance *v = NULL;
	size_t n = 0;
	_cleanup_free_ char *next = NULL;
	if (is(root, "RunInstancesResponse")) {
		r = instances_append(child(root, "instancesSet"), &v, &n);
	} else if (is(root, "DescribeInstancesResponse")) {
		xmlNode *rs = child(root, "reservationSet");
		for (xmlNode *it = rs ? rs->children : NULL; r >= 0 && it; it = it->next)
			if (is(it, "item"))
				r = instances_append(child(it, "instancesSet"), &v, &n);
		if (r >= 0)
			r = text(child(root, "nextToken"), &next);
	} else
		r = -EBADMSG;
	if (r < 0) {
		ec2_instances_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	if (ret_next_token)
		*ret_next_token = str_empty(next) ? NULL : TAKE_PTR(next);
	return 0;
}

/* ---- instance types ---- */

void ec2_instance_types_free(struct instance_type_spec *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

static int instance_type_parse(xmlNode *item, struct instance_type_spec *ret)
{
	struct instance_type_spec s = {0};
	uint64_t vcpus = 0, gpus = 0;
	int r = text(child(item, "instanceType"), &s.name);
	if (r >= 0)
		r = uint_of(child(child(item, "vCpuInfo"), "defaultVCpus"), &vcpus);
	if (r >= 0)
		r = uint_of(child(child(item, "memoryInfo"), "sizeInMiB"), &s.memory_mib);
	xmlNode *g = child(child(item, "gpuInfo"), "gpus");
	size_t n = 0;
	for (xmlNode *it = g ? g->children : NULL; r >= 0 && it; it = it->next) {
		if (!is(it, "item"))
			continue;
		uint64_t c = 0;
		if (++n > AWS_MAX_ITEMS_PER_PAGE)
			r = -EBADMSG;
		else
			r = uint_of(child(it, "count"), &c);
		if (r >= 0 && (c > UINT32_MAX || gpus + c > UINT32_MAX))
			r = -EBADMSG;
		gpus += c;
	}
	if (r >= 0 && (str_empty(s.name) || vcpus > UINT32_MAX))
		r = -EBADMSG;
	if (r < 0) {
		free(s.name);
		return r;
	}
	s.vcpus = (unsigned)vcpus;
	s.gpus = (unsigned)gpus;
	*ret = s;
	return 0;
}

int ec2_instance_types_parse(const char *body, size_t len, struct instance_type_spec **ret,
			     size_t *ret_n, char **ret_next_token)
{
	_cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
	int r = doc_parse(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!is(root, "DescribeInstanceTypesResponse"))
		return -EBADMSG;
	struct instance_type_spec *v = NULL;
	size_t n = 0;
	xmlNode *set = child(root, "instanceTypeSet");
	for (xmlNode *it = set ? set->children : NULL; r >= 0 && it; it = it->next) {
		if (!is(it, "item"))
			continue;
		struct instance_type_spec *nv = NULL;
		if (n >= AWS_MAX_ITEMS_PER_PAGE)
			r = -EBADMSG;
		else if (!(nv = reallocarray(v, n + 1, sizeof(*v))))
			r = -ENOMEM;
		else {
			v = nv;
			r = instance_type_parse(it, &v[n]);
			if (r >= 0)
				n++;
		}
	}
	_cleanup_free_ char *next = NULL;
	if (r >= 0)
		r = text(child(root, "nextToken"), &next);
	if (r < 0) {
		ec2_instance_types_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	if (ret_next_token)
		*ret_next_token = str_empty(next) ? NULL : TAKE_PTR(next);
	return 0;
}

/* ---- images ---- */

void ec2_image_done(struct ec2_image *i)
{
	if (!i)
		return;
	free(i->root_device_name);
	*i = (struct ec2_image){0};
}

int ec2_image_parse(const char *body, size_t len, const char *image_id, struct ec2_image *ret)
{
	_cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
	int r = doc_parse(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!is(root, "DescribeImagesResponse"))
		return -EBADMSG;
	xmlNode *set = child(root, "imagesSet");
	size_t n = 0;
	for (xmlNode *it = set ? set->children : NULL; it; it = it->next) {
		if (!is(it, "item"))
			continue;
		if (++n > AWS_MAX_ITEMS_PER_PAGE)
			return -EBADMSG;
		_cleanup_free_ char *id = NULL;
		r = text(child(it, "imageId"), &id);
		if (r < 0)
			return r;
		if (image_id && !str_eq(id, image_id))
			continue;
		struct ec2_image img = {0};
		r = text(child(it, "rootDeviceName"), &img.root_device_name);
		xmlNode *bdm = child(it, "blockDeviceMapping");
		size_t m = 0;
		for (xmlNode *b = bdm ? bdm->children : NULL; r >= 0 && b; b = b->next) {
			if (!is(b, "item"))
				continue;
			if (++m > AWS_MAX_ITEMS_PER_PAGE) {
				r = -EBADMSG;
				break;
			}
			_cleanup_free_ char *dev = NULL;
			r = text(child(b, "deviceName"), &dev);
			if (r >= 0 && dev && str_eq(dev, img.root_device_name))
				r = uint_of(child(child(b, "ebs"), "volumeSize"),
					    &img.root_snapshot_gib);
		}
		if (r < 0) {
			ec2_image_done(&img);
			return r;
		}
		*ret = img;
		return 0;
	}
	return -ENOENT;
}

/* ---- credentials ---- */

int aws_time_parse(const char *s, int64_t *ret_ns)
{
	if (!s)
		return -EINVAL;
	int year, mon, day, h, m, sec, consumed = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &h, &m, &sec, &consumed) !=
		6 ||
	    consumed != 19)
		return -EINVAL;
	const char *rest = s + consumed;
	if (*rest == '.') {
		rest++;
		size_t digits = strspn(rest, "0123456789");
		if (digits == 0 || digits > 9)
			return -EINVAL;
		rest += digits;
	}
	if (!str_eq(rest, "Z") && !str_eq(rest, "+00:00"))
		return -EINVAL;
	if (year < 1970 || year > 9999 || mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 ||
	    m > 59 || sec > 60 || h < 0 || m < 0 || sec < 0)
		return -EINVAL;
	struct tm tm = {.tm_year = year - 1900,
			.tm_mon = mon - 1,
			.tm_mday = day,
			.tm_hour = h,
			.tm_min = m,
			.tm_sec = sec};
	time_t t = timegm(&tm);
	if (t < 0 || (int64_t)t > INT64_MAX / NSEC_PER_SEC)
		return -EINVAL;
	*ret_ns = (int64_t)t * NSEC_PER_SEC;
	return 0;
}

void aws_credentials_done(struct aws_credentials *c)
{
	if (!c)
		return;
	free_secret(c->access_key_id);
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	*c = (struct aws_credentials){0};
}

int aws_credentials_copy(const struct aws_credentials *c, struct aws_credentials *ret)
{
	struct aws_credentials n = {
	    .access_key_id = str_dup(c->access_key_id),
	    .secret_access_key = str_dup(c->secret_access_key),
	    .session_token = str_dup(c->session_token),
	    .expires_ns = c->expires_ns,
	};
	if (!n.access_key_id || !n.secret_access_key || (c->session_token && !n.session_token)) {
		aws_credentials_done(&n);
		return -ENOMEM;
	}
	*ret = n;
	return 0;
}

static int credentials_check(struct aws_credentials *c, const char *expiration)
{
	int r = 0;
	if (str_empty(c->access_key_id) || str_empty(c->secret_access_key))
		r = -EBADMSG;
	else if (expiration && aws_time_parse(expiration, &c->expires_ns) < 0)
		r = -EBADMSG;
	if (r < 0)
		aws_credentials_done(c);
	return r;
}

int sts_credentials_parse(const char *body, size_t len, struct aws_credentials *ret)
{
	_cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
	int r = doc_parse(body, len, &doc);
	if (r < 0)
		return r;
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!is(root, "AssumeRoleWithWebIdentityResponse"))
		return -EBADMSG;
	xmlNode *cr = child(child(root, "AssumeRoleWithWebIdentityResult"), "Credentials");
	if (!cr)
		return -EBADMSG;
	struct aws_credentials c = {0};
	_cleanup_free_ char *exp = NULL;
	r = text(child(cr, "AccessKeyId"), &c.access_key_id);
	if (r >= 0)
		r = text(child(cr, "SecretAccessKey"), &c.secret_access_key);
	if (r >= 0)
		r = text(child(cr, "SessionToken"), &c.session_token);
	if (r >= 0)
		r = text(child(cr, "Expiration"), &exp);
	if (r < 0) {
		aws_credentials_done(&c);
		return r;
	}
	if (!exp) {
		aws_credentials_done(&c);
		return -EBADMSG;
	}
	r = credentials_check(&c, exp);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

static const char *json_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) && json_string_length(v) <= AWS_TEXT_MAX_BYTES
		   ? json_string_value(v)
		   : NULL;
}

int imds_credentials_parse(const char *body, size_t len, struct aws_credentials *ret)
{
	if (!body || len > AWS_IMDS_MAX_BYTES)
		return -EBADMSG;
	_cleanup_(json_decrefp) json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o))
		return -EBADMSG;
	const char *code = json_str(o, "Code");
	if (code && !str_eq(code, "Success"))
		return -EBADMSG;
	const char *exp = json_str(o, "Expiration");
	if (!exp)
		return -EBADMSG;
	struct aws_credentials c = {
	    .access_key_id = str_dup(json_str(o, "AccessKeyId")),
	    .secret_access_key = str_dup(json_str(o, "SecretAccessKey")),
	    .session_token = str_dup(json_str(o, "Token")),
	};
	int r = credentials_check(&c, exp);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}
