/*
 * The admin API's request bodies (enroll/serve/api.h): every check a body
 * passes before the service looks anything up or stores anything.  The
 * body is already capped in size by serve.c; here its nesting is bounded
 * before jansson sees it, and every object is held to a fixed set of
 * fields with fixed types.
 */
#include "enroll/serve/api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/limits.h"
#include "enroll/enroll.h"

int
api_ctype_is_json(const char *ctype)
{
	size_t n = strlen("application/json");

	if (ctype == NULL)
		return 0;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	if (strncasecmp(ctype, "application/json", n) != 0)
		return 0;
	ctype += n;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	return *ctype == '\0' || *ctype == ';';
}

int
api_json_depth(const unsigned char *buf, size_t len, int max)
{
	size_t i;
	int depth = 0, deepest = 0, in_str = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = buf[i];

		if (in_str) {
			if (ch == '\\')
				i++;		/* the escaped byte is data */
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"')
			in_str = 1;
		else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return -1;
			if (depth > deepest)
				deepest = depth;
		} else if ((ch == ']' || ch == '}') && depth > 0)
			depth--;
	}
	return deepest;
}

int
api_cred_name_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > AMTCA_API_CRED_NAME_MAX)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

/* Parse with the depth bound; an object at the top. */
static int
load_object(const unsigned char *body, size_t len, json_t **out)
{
	json_error_t je;
	json_t *root;

	*out = NULL;
	if (body == NULL || len == 0)
		return amtca_fail(AMTCA_E_USAGE, "empty body: a JSON object is "
		    "expected");
	if (api_json_depth(body, len, AMTCA_API_JSON_DEPTH) < 0)
		return amtca_fail(AMTCA_E_USAGE, "JSON nested deeper than %d",
		    AMTCA_API_JSON_DEPTH);
	/* No duplicate keys: which one wins would be the parser's choice. */
	if ((root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
	    &je)) == NULL)
		return amtca_fail(AMTCA_E_USAGE, "bad JSON at line %d column %d: "
		    "%.80s", je.line, je.column, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return amtca_fail(AMTCA_E_USAGE, "a JSON object is expected");
	}
	*out = root;
	return 0;
}

/* Every key of `o` is one of `known` (NULL-terminated). */
static int
only_fields(json_t *o, const char *const *known, const char *where)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(o, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL)
			return amtca_fail(AMTCA_E_USAGE, "%s: unknown field \"%.64s\"",
			    where, key);
	}
	return 0;
}

/* An optional string member: *out borrowed, NULL when absent. */
static int
get_str(json_t *o, const char *key, int required, const char *where,
    const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL) {
		if (required)
			return amtca_fail(AMTCA_E_USAGE, "%s: \"%s\" is required",
			    where, key);
		return 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) !=
	    json_string_length(v))
		return amtca_fail(AMTCA_E_USAGE, "%s: \"%s\" must be a string "
		    "without NUL", where, key);
	*out = json_string_value(v);
	return 0;
}

static int
get_int(json_t *o, const char *key, long long lo, long long hi,
    const char *where, long long *out, int *present)
{
	json_t *v = json_object_get(o, key);

	*present = 0;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return amtca_fail(AMTCA_E_USAGE, "%s: \"%s\" must be an integer "
		    "from %lld to %lld", where, key, lo, hi);
	*out = json_integer_value(v);
	*present = 1;
	return 0;
}

/* An optional boolean member: *out 0 when absent. */
static int
get_bool(json_t *o, const char *key, const char *where, int *out)
{
	json_t *v = json_object_get(o, key);

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return amtca_fail(AMTCA_E_USAGE, "%s: \"%s\" must be true or "
		    "false", where, key);
	*out = json_is_true(v);
	return 0;
}

static const char *const job_fields[] = { "devices", "concurrency",
    "reissue_older_than_intermediate", NULL };
static const char *const device_fields[] = { "fqdn", "address", "credential",
    "port", "tls_port", "tls_pin_sha256", NULL };

static int
parse_device(json_t *o, size_t idx, const struct ca_policy *policy,
    struct fleet_host *h)
{
	struct ca_policy none;
	char where[48], fqdn[AMTCA_FQDN_MAX + 1];
	const char *name = NULL, *addr = NULL, *cred = NULL, *pin = NULL;
	long long port = 0;
	int r, present;

	snprintf(where, sizeof(where), "devices[%zu]", idx);
	if (!json_is_object(o))
		return amtca_fail(AMTCA_E_USAGE, "%s: an object is expected", where);
	if ((r = only_fields(o, device_fields, where)) != 0 ||
	    (r = get_str(o, "fqdn", 1, where, &name)) != 0 ||
	    (r = get_str(o, "address", 0, where, &addr)) != 0 ||
	    (r = get_str(o, "credential", 1, where, &cred)) != 0 ||
	    (r = get_str(o, "tls_pin_sha256", 0, where, &pin)) != 0)
		return r;
	memset(&none, 0, sizeof(none));
	if ((r = ca_fqdn_check(name, policy != NULL ? policy : &none, fqdn)) != 0)
		return amtca_fail(AMTCA_E_USAGE, "%s: fqdn: %s", where,
		    amtca_errmsg(r));
	if (strchr(fqdn, '*') != NULL)
		return amtca_fail(AMTCA_E_USAGE, "%s: fqdn: a device cannot have "
		    "a wildcard name", where);
	if (addr != NULL && addr[0] != '\0' && !net_is_ip(addr))
		return amtca_fail(AMTCA_E_USAGE, "%s: address must be a numeric "
		    "IPv4 or IPv6 address", where);
	if (!api_cred_name_valid(cred))
		return amtca_fail(AMTCA_E_USAGE, "%s: credential must be 1 to %d "
		    "letters, digits, '.', '_' or '-'", where,
		    AMTCA_API_CRED_NAME_MAX);
	if (pin != NULL) {
		if (cred_pin_parse(pin, h->tls_pin) != 0)
			return amtca_fail(AMTCA_E_USAGE, "%s: tls_pin_sha256 must "
			    "be 64 hex digits", where);
		h->has_pin = 1;
	}
	if ((r = get_int(o, "port", 1, 65535, where, &port, &present)) != 0)
		return r;
	h->port = present ? (int)port : 0;
	if ((r = get_int(o, "tls_port", 1, 65535, where, &port, &present)) != 0)
		return r;
	h->tls_port = present ? (int)port : 0;
	if ((h->fqdn = strdup(fqdn)) == NULL ||
	    (h->credential = strdup(cred)) == NULL ||
	    (addr != NULL && addr[0] != '\0' &&
	    (h->address = strdup(addr)) == NULL))
		return AMTCA_E_NOMEM;
	h->line = (unsigned)idx + 1;
	return 0;
}

int
api_job_parse(const unsigned char *body, size_t len,
    const struct ca_policy *policy, struct api_job_req *out)
{
	json_t *root = NULL, *devs, *d;
	long long conc = AMTCA_API_CONCURRENCY_DEFAULT;
	size_t i, k, n;
	int r, present, ret = AMTCA_E_INTERNAL;

	memset(out, 0, sizeof(*out));
	if ((r = load_object(body, len, &root)) != 0 ||
	    (r = only_fields(root, job_fields, "job")) != 0 ||
	    (r = get_int(root, "concurrency", 1, 1000000, "job", &conc,
	    &present)) != 0 ||
	    (r = get_bool(root, "reissue_older_than_intermediate", "job",
	    &out->reissue)) != 0) {
		ret = r;
		goto out;
	}
	devs = json_object_get(root, "devices");
	if (!json_is_array(devs) || (n = json_array_size(devs)) == 0 ||
	    n > AMTCA_API_JOB_DEVICES_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "job: \"devices\" must be an "
		    "array of 1 to %d devices", AMTCA_API_JOB_DEVICES_MAX);
		goto out;
	}
	if ((out->hosts = calloc(n, sizeof(*out->hosts))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	json_array_foreach(devs, i, d) {
		out->n = i + 1;
		if ((r = parse_device(d, i, policy, &out->hosts[i])) != 0) {
			ret = r;
			goto out;
		}
		/* Quadratic only up to the cap; names are short. */
		for (k = 0; k < i; k++)
			if (strcmp(out->hosts[k].fqdn, out->hosts[i].fqdn) == 0) {
				ret = amtca_fail(AMTCA_E_USAGE, "devices[%zu]: %s is "
				    "already devices[%zu]", i, out->hosts[i].fqdn, k);
				goto out;
			}
	}
	out->concurrency = conc > AMTCA_API_CONCURRENCY_MAX ?
	    AMTCA_API_CONCURRENCY_MAX : (unsigned)conc;
	ret = 0;
out:
	json_decref(root);
	if (ret != 0)
		api_job_req_clear(out);
	return ret;
}

void
api_job_req_clear(struct api_job_req *r)
{
	if (r == NULL)
		return;
	hosts_free(r->hosts, r->n);
	memset(r, 0, sizeof(*r));
}

static const char *const revoke_fields[] = { "reason", NULL };

int
api_revoke_parse(const unsigned char *body, size_t len, int *reason)
{
	json_t *root = NULL;
	const char *name = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*reason = -1;
	if ((r = load_object(body, len, &root)) != 0 ||
	    (r = only_fields(root, revoke_fields, "revoke")) != 0 ||
	    (r = get_str(root, "reason", 1, "revoke", &name)) != 0) {
		ret = r;
		goto out;
	}
	/* removeFromCRL (8) un-revokes a hold; there are no holds here. */
	if ((r = cred_reason_parse(name)) < 0 || r == 7 || r == 8) {
		ret = amtca_fail(AMTCA_E_USAGE, "revoke: unknown reason \"%.40s\" "
		    "(e.g. keyCompromise, superseded, cessationOfOperation, "
		    "affiliationChanged, unspecified)", name);
		goto out;
	}
	*reason = r;
	ret = 0;
out:
	json_decref(root);
	return ret;
}
