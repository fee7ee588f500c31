/*
 * Issuance policy: defaults and the FQDN rules.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <string.h>
#include <strings.h>

void
ca_policy_init(struct ca_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->days = AMTCA_DAYS_DEFAULT;
	p->skew_s = AMTCA_SKEW_DEFAULT_S;
}

static int
is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/*
 * Syntax shared by names and policy suffixes.  On failure returns a static
 * reason; on success the lowercased name is in out and *nlabels is set.
 */
static const char *
fqdn_syntax(const char *in, int allow_star, char out[AMTCA_FQDN_MAX + 1],
    int *nlabels, int *wild, int *numeric_tld)
{
	size_t len, i, start = 0, ll;
	int labels = 0, digits_only = 1;

	*wild = 0;
	if (in == NULL || in[0] == '\0')
		return "empty name";
	len = strlen(in);
	if (len > AMTCA_FQDN_MAX)
		return "longer than 253 characters";
	if (in[len - 1] == '.')
		return "trailing dot not allowed";
	for (i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c != '.' && c != '\0') {
			if (c == '*' && allow_star && labels == 0 && i == 0 &&
			    (in[1] == '.' || in[1] == '\0')) {
				*wild = 1;
				out[i] = '*';
				continue;
			}
			if (c == '*')
				return labels == 0 && i == 0 ?
				    "wildcard not allowed" :
				    "wildcard only as the whole leftmost label";
			if (!is_ldh(c))
				return "invalid character (letters, digits and "
				    "hyphens only)";
			if (c != '-' && (c < '0' || c > '9'))
				digits_only = 0;
			out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			continue;
		}
		ll = i - start;
		if (ll == 0)
			return "empty label";
		if (ll > AMTCA_LABEL_MAX)
			return "label longer than 63 characters";
		if (in[start] == '-' || in[i - 1] == '-')
			return "label starts or ends with a hyphen";
		labels++;
		if (c == '.') {
			out[i] = '.';
			digits_only = 1;
		}
		start = i + 1;
	}
	out[len] = '\0';
	*nlabels = labels;
	*numeric_tld = digits_only;
	return NULL;
}

int
ca_domain_check(const char *d)
{
	char buf[AMTCA_FQDN_MAX + 1];
	const char *why;
	int n, w, num;

	if ((why = fqdn_syntax(d, 0, buf, &n, &w, &num)) != NULL)
		return amtca_fail(AMTCA_E_CONFIG, "policy domain \"%.64s\": %s",
		    d ? d : "", why);
	return 0;
}

/* Whether `name` equals `suffix` or ends with "." + suffix. */
static int
under(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl;

	if (suffix[0] == '.')
		suffix++;
	sl = strlen(suffix);
	if (sl == 0 || sl > nl)
		return 0;
	if (strcasecmp(name + nl - sl, suffix) != 0)
		return 0;
	return nl == sl || name[nl - sl - 1] == '.';
}

int
ca_fqdn_check(const char *in, const struct ca_policy *p,
    char out[AMTCA_FQDN_MAX + 1])
{
	char buf[AMTCA_FQDN_MAX + 1];
	const char *why;
	size_t i;
	int n = 0, wild = 0, num = 0;

	out[0] = '\0';
	if ((why = fqdn_syntax(in, 1, buf, &n, &wild, &num)) != NULL)
		return amtca_fail(AMTCA_E_FQDN, "FQDN \"%.80s%s\": %s",
		    in ? in : "", in && strlen(in) > 80 ? "..." : "", why);
	if (n < 2)
		return amtca_fail(AMTCA_E_FQDN, "FQDN \"%s\": needs at least two "
		    "labels", buf);
	if (num)
		return amtca_fail(AMTCA_E_FQDN, "FQDN \"%s\": last label is "
		    "numeric (an IP address goes in --ip)", buf);
	if (wild && !p->allow_wildcard)
		return amtca_fail(AMTCA_E_POLICY, "FQDN \"%s\": wildcard not "
		    "allowed by the policy", buf);
	if (wild && n < 3)
		return amtca_fail(AMTCA_E_POLICY, "FQDN \"%s\": wildcard needs "
		    "a base of at least two labels", buf);
	if (p->ndomains > 0) {
		for (i = 0; i < p->ndomains; i++)
			if (p->domains[i] != NULL && under(buf, p->domains[i]))
				break;
		if (i == p->ndomains)
			return amtca_fail(AMTCA_E_POLICY, "FQDN \"%s\": not under "
			    "an allowed domain (%s%s)", buf, p->domains[0],
			    p->ndomains > 1 ? ", ..." : "");
	}
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}
