/* Fuzz target for providers/aws's response parsers: the EC2/STS error document, RunInstances and
 * DescribeInstances, DescribeInstanceTypes, DescribeImages, STS AssumeRoleWithWebIdentity and
 * the IMDS credential JSON. Every input goes through all of them; none may crash or leak. */
#include <libxml/parser.h>
#include <stdint.h>
#include <stdlib.h>

#include "aws/aws-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	xmlInitParser();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	const char *body = (const char *)data;

	struct aws_api_error e = {0};
	if (aws_api_error_parse(body, size, &e) == 0 && !e.code)
		abort();
	aws_api_error_done(&e);

	struct ec2_instance *v = NULL;
	size_t n = 0;
	char *next = NULL;
	if (ec2_instances_parse(body, size, &v, &n, &next) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!v[i].id)
				abort();
		ec2_instances_free(v, n);
		free(next);
	}

	struct instance_type_spec *t = NULL;
	next = NULL;
	if (ec2_instance_types_parse(body, size, &t, &n, &next) == 0) {
		ec2_instance_types_free(t, n);
		free(next);
	}

	struct ec2_image img = {0};
	if (ec2_image_parse(body, size, NULL, &img) == 0)
		ec2_image_done(&img);

	struct aws_credentials c = {0};
	if (sts_credentials_parse(body, size, &c) == 0 &&
	    (!c.access_key_id || !c.secret_access_key))
		abort();
	aws_credentials_done(&c);
	if (imds_credentials_parse(body, size, &c) == 0 && (!c.access_key_id || !c.expires_ns))
		abort();
	aws_credentials_done(&c);

	/* the time parser and the key-name parser on NUL-terminated copies */
	char *s = strndup(body, size);
	if (s) {
		int64_t ns;
		(void)aws_time_parse(s, &ns);
		char *name = NULL;
		if (aws_imds_key_name_parse(s, s, &name) == 0)
			free(name);
		free(s);
	}
	return 0;
}
