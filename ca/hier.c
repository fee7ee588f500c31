/*
 * The CA hierarchy under an external root: what an intermediate certificate
 * made elsewhere must be before this CA issues under it (docs/external-root.md).
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <string.h>
#include <strings.h>

#include <stdlib.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* An iPAddress subtree (address || mask) as a range; -1 if malformed. */
static int
subtree_range(const GENERAL_NAME *gn, struct ca_ip_range *out)
{
	const unsigned char *v;
	size_t n, i;
	unsigned prefix = 0;
	int ended = 0, b;

	if (gn->type != GEN_IPADD)
		return -1;
	v = ASN1_STRING_get0_data(gn->d.iPAddress);
	n = (size_t)ASN1_STRING_length(gn->d.iPAddress);
	if (n != 8 && n != 32)
		return -1;
	memset(out, 0, sizeof(*out));
	out->len = (unsigned char)(n / 2);
	for (i = 0; i < out->len; i++) {
		for (b = 7; b >= 0; b--) {
			if ((v[out->len + i] >> b) & 1) {
				if (ended)
					return -1;	/* not a prefix mask */
				prefix++;
			} else
				ended = 1;
		}
		out->addr[i] = v[i] & v[out->len + i];
		if (out->addr[i] != v[i])
			return -1;		/* host bits set */
	}
	out->prefix = (unsigned char)prefix;
	return 0;
}

static int
range_eq(const struct ca_ip_range *a, const struct ca_ip_range *b)
{
	return a->len == b->len && a->prefix == b->prefix &&
	    memcmp(a->addr, b->addr, a->len) == 0;
}

/* The name constraints, compared with what the policy asked for. */
static int
check_nc(X509 *cert, const struct ca_policy *policy)
{
	struct ca_ip_range want[AMTCA_IP_RANGES_MAX], got;
	NAME_CONSTRAINTS *nc = NULL;
	GENERAL_SUBTREE *st;
	char rt[CA_IP_RANGE_STRLEN], dns[AMTCA_FQDN_MAX + 1];
	const char *d;
	size_t nwant = 0, i, j, nperm_ip = 0, nperm = 0, nexcl = 0;
	int crit = 0, r, found, ex4 = 0, ex6 = 0, have4 = 0, have6 = 0;
	int ret = AMTCA_E_INTERNAL;
	unsigned char seen[AMTCA_DOMAINS_MAX];

	if ((r = ca_policy_ranges(policy, want, &nwant)) != 0)
		return r;
	memset(seen, 0, sizeof(seen));
	nc = X509_get_ext_d2i(cert, NID_name_constraints, &crit, NULL);
	if (nc != NULL) {
		/* An absent SEQUENCE OF is NULL, and counts -1. */
		if (nc->permittedSubtrees != NULL)
			nperm = (size_t)sk_GENERAL_SUBTREE_num(nc->permittedSubtrees);
		if (nc->excludedSubtrees != NULL)
			nexcl = (size_t)sk_GENERAL_SUBTREE_num(nc->excludedSubtrees);
	}
	if (nc == NULL) {
		ret = amtca_fail(AMTCA_E_CERT, "the intermediate carries no name "
		    "constraints (the root must add them; see "
		    "docs/external-root.md, or import with --any-domain)");
		goto out;
	}
	for (i = 0; i < nperm; i++) {
		st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, (int)i);
		if (st->base->type == GEN_DNS) {
			int len = ASN1_STRING_length(st->base->d.dNSName);

			d = (const char *)ASN1_STRING_get0_data(st->base->d.dNSName);
			if (len > 0 && d[0] == '.') {
				d++;
				len--;
			}
			if (len <= 0 || len > AMTCA_FQDN_MAX) {
				ret = amtca_fail(AMTCA_E_CERT, "the intermediate "
				    "permits an unusable dNSName subtree");
				goto out;
			}
			memcpy(dns, d, (size_t)len);
			dns[len] = '\0';
			found = 0;
			for (j = 0; j < policy->ndomains; j++) {
				d = policy->domains[j];
				if (d[0] == '.')
					d++;
				if (strcasecmp(d, dns) == 0) {
					seen[j] = 1;
					found = 1;
				}
			}
			if (!found) {
				ret = amtca_fail(AMTCA_E_CERT, "the intermediate "
				    "permits dNSName %s, which --domain did not ask "
				    "for", dns);
				goto out;
			}
		} else if (st->base->type == GEN_IPADD) {
			if (subtree_range(st->base, &got) != 0) {
				ret = amtca_fail(AMTCA_E_CERT, "the intermediate "
				    "has a malformed iPAddress subtree");
				goto out;
			}
			for (j = 0, found = 0; j < nwant; j++)
				found |= range_eq(&want[j], &got);
			if (!found) {
				ca_ip_range_format(&got, rt, sizeof(rt));
				ret = amtca_fail(AMTCA_E_CERT, "the intermediate "
				    "permits iPAddress %s, which --ip-range did not "
				    "ask for", rt);
				goto out;
			}
			nperm_ip++;
			if (got.len == 4)
				have4 = 1;
			else
				have6 = 1;
		}
	}
	for (j = 0; j < policy->ndomains; j++)
		if (!seen[j]) {
			ret = amtca_fail(AMTCA_E_CERT, "the intermediate's name "
			    "constraints do not permit dNSName %s (--domain)",
			    policy->domains[j]);
			goto out;
		}
	if (policy->ndomains == 0) {
		ret = amtca_fail(AMTCA_E_CERT, "this CA has no --domain to "
		    "compare the name constraints with (import with --any-domain)");
		goto out;
	}
	for (j = 0; j < nwant; j++) {
		for (i = 0, found = 0; i < (size_t)sk_GENERAL_SUBTREE_num(
		    nc->permittedSubtrees); i++) {
			st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, (int)i);
			if (subtree_range(st->base, &got) == 0 &&
			    range_eq(&want[j], &got))
				found = 1;
		}
		if (!found) {
			ca_ip_range_format(&want[j], rt, sizeof(rt));
			ret = amtca_fail(AMTCA_E_CERT, "the intermediate's name "
			    "constraints do not permit iPAddress %s (--ip-range)", rt);
			goto out;
		}
	}
	/*
	 * RFC 5280 constrains a name type only when a subtree of that type is
	 * present: with no permitted iPAddress at all, both families must be
	 * excluded whole, or the CA could vouch for any address.
	 */
	for (i = 0; i < nexcl; i++) {
		st = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, (int)i);
		if (subtree_range(st->base, &got) == 0 && got.prefix == 0) {
			if (got.len == 4)
				ex4 = 1;
			else
				ex6 = 1;
		}
	}
	(void)have4;
	(void)have6;
	if (nperm_ip == 0 && (!ex4 || !ex6)) {
		ret = amtca_fail(AMTCA_E_CERT, "the intermediate's name constraints "
		    "leave IP addresses open: %s must be excluded (or permitted "
		    "as --ip-range asks)", !ex4 ? "0.0.0.0/0" : "::/0");
		goto out;
	}
	ret = 0;
out:
	NAME_CONSTRAINTS_free(nc);
	return ret;
}

int
ca_intermediate_check(X509 *cert, X509 *root, EVP_PKEY *key,
    const struct ca_policy *policy, int any_domain)
{
	X509_STORE *xs = NULL;
	X509_STORE_CTX *ctx = NULL;
	uint32_t fl;
	int r, ret = AMTCA_E_INTERNAL;

	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		ret = amtca_fail(AMTCA_E_CERT, "the certificate is for another "
		    "key, not this CA's intermediate key in the token");
		goto out;
	}
	fl = X509_get_extension_flags(cert);
	if ((fl & EXFLAG_BCONS) == 0 || (fl & EXFLAG_CA) == 0) {
		ret = amtca_fail(AMTCA_E_CERT, "the certificate is not a CA "
		    "(basicConstraints CA:TRUE is missing)");
		goto out;
	}
	if ((fl & EXFLAG_KUSAGE) == 0 || (X509_get_key_usage(cert) &
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
		ret = amtca_fail(AMTCA_E_CERT, "the certificate's keyUsage lacks "
		    "keyCertSign or cRLSign");
		goto out;
	}
	if (X509_check_ca(root) == 0) {
		ret = amtca_fail(AMTCA_E_CERT, "the root certificate is not a CA");
		goto out;
	}
	if ((xs = X509_STORE_new()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_add_cert(xs, root) ||
	    !X509_STORE_CTX_init(ctx, xs, cert, NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
	if (X509_verify_cert(ctx) != 1) {
		ret = amtca_fail(AMTCA_E_CERT, "the certificate does not verify to "
		    "the given root: %s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (!any_domain && (r = check_nc(cert, policy)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(xs);
	return ret;
}

/* The TBSCertList and its signature: ca_crl_sign() (ca/crlsign.c). */
int
ca_root_crl_create(const struct ca_signer *root, X509 *root_cert,
    X509 *const *revoked, size_t n, int days, int pem, unsigned char **out,
    size_t *outlen)
{
	static const unsigned char oid_aki[] = { 0x55, 0x1d, 0x23 };
	struct ca_sigalg a;
	struct ca_crl_entry *e = NULL;
	unsigned char (*ser)[32] = NULL, *name = NULL, *head = NULL, *aki = NULL;
	const ASN1_OCTET_STRING *ski;
	BIGNUM *bn = NULL;
	struct der d;
	size_t i, s1, m[2], headlen = 0, akilen = 0;
	time_t now = time(NULL);
	int namelen, sl, r, have_alg = 0, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	der_init(&d, 64);
	if (root == NULL || root->sign == NULL || root_cert == NULL ||
	    EVP_PKEY_eq(X509_get0_pubkey(root_cert), root->pub) != 1) {
		ret = amtca_fail(AMTCA_E_CONFIG, "the root key does not match the "
		    "root certificate");
		goto out;
	}
	if (days < 1 || days > AMTCA_DAYS_MAX) {
		ret = amtca_fail(AMTCA_E_USAGE, "CRL validity of %d days is out of "
		    "range (1-%d)", days, AMTCA_DAYS_MAX);
		goto out;
	}
	if ((r = ca_sigalg_init(&a, root->pub)) != 0) {
		ret = r;
		goto out;
	}
	have_alg = 1;
	if ((namelen = i2d_X509_NAME(X509_get_subject_name(root_cert),
	    &name)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the root's name");
		goto out;
	}
	headlen = a.algid_len + (size_t)namelen;
	if ((head = malloc(headlen)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(head, a.algid, a.algid_len);
	memcpy(head + a.algid_len, name, (size_t)namelen);
	if ((ski = X509_get0_subject_key_id(root_cert)) != NULL) {
		der_ext_open(&d, oid_aki, sizeof(oid_aki), 0, m);
		s1 = der_open(&d, DER_SEQUENCE);
		der_prim(&d, DER_CTX(0), ASN1_STRING_get0_data(ski),
		    (size_t)ASN1_STRING_length(ski));
		der_close(&d, s1);
		der_ext_close(&d, m);
		if ((r = der_take(&d, &aki, &akilen)) != 0) {
			ret = r;
			goto out;
		}
	}
	if (n > 0 && ((e = calloc(n, sizeof(*e))) == NULL ||
	    (ser = calloc(n, sizeof(*ser))) == NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(revoked[i]),
		    NULL)) == NULL || BN_num_bytes(bn) > (int)sizeof(ser[i]) ||
		    (sl = BN_bn2bin(bn, ser[i])) <= 0) {
			ret = amtca_fail(AMTCA_E_CERT, "an intermediate's serial "
			    "cannot be listed");
			goto out;
		}
		BN_free(bn);
		bn = NULL;
		e[i].serial = ser[i];
		e[i].serial_len = (size_t)sl;
		e[i].when = now;
	}
	ret = ca_crl_sign(root, &a, head, headlen, aki, akilen, e, n, days, pem,
	    out, outlen);
out:
	if (have_alg)
		ca_sigalg_release(&a);
	der_release(&d);
	BN_free(bn);
	OPENSSL_free(name);
	free(head);
	free(aki);
	free(e);
	free(ser);
	return ret;
}
