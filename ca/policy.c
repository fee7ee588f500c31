/*
 * Issuance policy: defaults, the FQDN rules and IP ranges.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <arpa/inet.h>
#include <stdio.h>
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

/*
 * IP ranges.  The same network text is parsed at init (to write amtca.conf
 * and the intermediate's name constraints) and at every open (to check
 * each --ip), so the parser is strict rather than forgiving.
 */
int
ca_ip_range_parse(const char *s, struct ca_ip_range *out)
{
	char addr[CA_IP_RANGE_STRLEN], want[CA_IP_RANGE_STRLEN];
	const char *slash, *q;
	struct ca_ip_range r;
	unsigned prefix = 0;
	size_t alen, i;
	int host_bits = 0;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	if (s == NULL || (slash = strchr(s, '/')) == NULL)
		return amtca_fail(AMTCA_E_USAGE, "IP range \"%.64s\": expected "
		    "ADDRESS/PREFIX, e.g. 10.0.0.0/8", s ? s : "");
	alen = (size_t)(slash - s);
	if (alen == 0 || alen >= sizeof(addr))
		return amtca_fail(AMTCA_E_USAGE, "IP range \"%.64s\": bad address",
		    s);
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, r.addr) == 1)
		r.len = 4;
	else if (inet_pton(AF_INET6, addr, r.addr) == 1)
		r.len = 16;
	else
		return amtca_fail(AMTCA_E_USAGE, "IP range \"%.64s\": \"%s\" is "
		    "neither IPv4 nor IPv6", s, addr);
	q = slash + 1;
	/* Decimal, no sign, no leading zero, at most three digits. */
	if (q[0] == '\0' || strlen(q) > 3 || (q[0] == '0' && q[1] != '\0'))
		goto bad_prefix;
	for (i = 0; q[i] != '\0'; i++) {
		if (q[i] < '0' || q[i] > '9')
			goto bad_prefix;
		prefix = prefix * 10 + (unsigned)(q[i] - '0');
	}
	if (prefix > 8u * r.len)
		goto bad_prefix;
	r.prefix = (unsigned char)prefix;
	for (i = 0; i < r.len; i++) {
		unsigned keep = prefix >= 8 * (i + 1) ? 8 :
		    prefix <= 8 * i ? 0 : prefix - 8 * i;
		unsigned char mask = (unsigned char)(0xff00u >> keep);

		if ((r.addr[i] & ~mask) != 0)
			host_bits = 1;
		r.addr[i] &= mask;
	}
	if (host_bits) {
		ca_ip_range_format(&r, want, sizeof(want));
		return amtca_fail(AMTCA_E_USAGE, "IP range \"%.64s\" has host bits "
		    "set: write the network, %s (or ADDRESS/%u for one address)",
		    s, want, 8u * r.len);
	}
	*out = r;
	return 0;
bad_prefix:
	return amtca_fail(AMTCA_E_USAGE, "IP range \"%.64s\": prefix must be "
	    "0-%u", s, 8u * r.len);
}

void
ca_ip_range_format(const struct ca_ip_range *r, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(r->len == 4 ? AF_INET : AF_INET6, r->addr, a,
	    sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, (unsigned)r->prefix);
}

int
ca_ip_range_contains(const struct ca_ip_range *r, const unsigned char *ip,
    size_t len)
{
	unsigned bits = r->prefix;
	size_t i;

	if (len != r->len)
		return 0;
	for (i = 0; bits > 0; i++, bits = bits >= 8 ? bits - 8 : 0) {
		unsigned char mask = (unsigned char)(0xff00u >> (bits >= 8 ? 8 : bits));

		if ((ip[i] & mask) != r->addr[i])
			return 0;
	}
	return 1;
}

int
ca_policy_ranges(const struct ca_policy *p, struct ca_ip_range *out, size_t *n)
{
	char why[256];
	size_t i;
	int r;

	*n = 0;
	if (p->nip_ranges > AMTCA_IP_RANGES_MAX)
		return amtca_fail(AMTCA_E_CONFIG, "more than %d IP ranges",
		    AMTCA_IP_RANGES_MAX);
	for (i = 0; i < p->nip_ranges; i++)
		if ((r = ca_ip_range_parse(p->ip_ranges[i], &out[i])) != 0) {
			/* The detail lives in the buffer amtca_fail() writes. */
			snprintf(why, sizeof(why), "%s", amtca_errmsg(r));
			return amtca_fail(AMTCA_E_CONFIG, "policy %s", why);
		}
	*n = p->nip_ranges;
	return 0;
}
