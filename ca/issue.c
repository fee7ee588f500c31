/*
 * The issuing CA: WebServer leaves from a DER template.
 *
 * ca_new() encodes once everything every leaf shares (AlgorithmIdentifier,
 * issuer Name, subject O/C, basicConstraints, EKU, AKI, CDP, AIA and both
 * keyUsage variants).  A leaf then only costs writing its serial, validity,
 * subject CN, SAN, SKI and copying the CSR's SubjectPublicKeyInfo bytes,
 * one signature and one d2i_X509 to hand back an X509.  struct ca is never
 * written after ca_new(), so ca_issue() needs no lock.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"
#include "ca/store.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/util.h"

static const unsigned char oid_cn[] = { 0x55, 0x04, 0x03 };
static const unsigned char oid_ski[] = { 0x55, 0x1d, 0x0e };
static const unsigned char oid_ku[] = { 0x55, 0x1d, 0x0f };
static const unsigned char oid_san[] = { 0x55, 0x1d, 0x11 };
static const unsigned char oid_bc[] = { 0x55, 0x1d, 0x13 };
static const unsigned char oid_cdp[] = { 0x55, 0x1d, 0x1f };
static const unsigned char oid_aki[] = { 0x55, 0x1d, 0x23 };
static const unsigned char oid_eku[] = { 0x55, 0x1d, 0x25 };
static const unsigned char oid_aia[] = {
	0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01 };
static const unsigned char oid_ca_issuers[] = {
	0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02 };
static const unsigned char oid_server_auth[] = {
	0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01 };
static const unsigned char oid_client_auth[] = {
	0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };
static const unsigned char oid_cert_policies[] = { 0x55, 0x1d, 0x20 };
/* CA_ADMIN_POLICY_OID, 2.25.<UUID ad69b4a1-bf53-4c76-b6a1-3bcc4bf435ac>. */
static const unsigned char oid_admin_policy[] = {
	0x69, 0x82, 0xda, 0xe9, 0xda, 0xa8, 0xb7, 0xf5, 0x9a, 0xb1, 0xed, 0xb6,
	0xd0, 0xce, 0xf9, 0xc4, 0xdf, 0xd0, 0xeb, 0x2c };

/* Which EKU and policy a leaf's fixed extensions carry. */
#define EXT_SERVER 0x1
#define EXT_CLIENT 0x2
#define EXT_ADMIN  0x4

/* One request, checked and decoded once; serials are drawn per attempt. */
struct leaf {
	enum ca_profile profile;
	char fqdn[AMTCA_FQDN_MAX + 1];	/* ADMIN: the admin's name */
	int cn_only;			/* ADMIN with a plain name: no SAN */
	size_t fqdn_len;
	char names[AMTCA_EST_NAMES_MAX][AMTCA_FQDN_MAX + 1];	/* EST */
	size_t nnames;
	unsigned char ip[AMTCA_IPS_MAX][16];
	size_t iplen[AMTCA_IPS_MAX];
	size_t nips;
	unsigned char *spki;		/* CSR SubjectPublicKeyInfo DER */
	size_t spki_len;
	unsigned char ski[EVP_MAX_MD_SIZE];
	unsigned int ski_len;
	int is_rsa;
	/* The signature algorithm, borrowed from the ca (req->digest). */
	const struct ca_sigalg *alg;
	const unsigned char *algid_issuer;
	size_t algid_issuer_len;
	time_t nb, na, now;
};

static int
url_ok(const char *u)
{
	size_t i, n = strlen(u);

	if (n == 0 || n > AMTCA_URL_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (u[i] < 0x21 || u[i] > 0x7e)
			return 0;
	return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0 ||
	    strncmp(u, "ldap://", 7) == 0;
}

static int
policy_validate(const struct ca_policy *p)
{
	size_t i;
	int r;

	if (p->ndomains > AMTCA_DOMAINS_MAX)
		return amtca_fail(AMTCA_E_CONFIG, "more than %d policy domains",
		    AMTCA_DOMAINS_MAX);
	for (i = 0; i < p->ndomains; i++)
		if ((r = ca_domain_check(p->domains[i])) != 0)
			return r;
	if (p->days < 0 || p->days > AMTCA_DAYS_MAX)
		return amtca_fail(AMTCA_E_CONFIG, "policy validity of %d days is "
		    "out of range (1-%d)", p->days, AMTCA_DAYS_MAX);
	if (p->skew_s < 0 || p->skew_s > AMTCA_SKEW_MAX_S)
		return amtca_fail(AMTCA_E_CONFIG, "notBefore skew of %d s is out "
		    "of range (0-%d)", p->skew_s, AMTCA_SKEW_MAX_S);
	if (p->crl_url != NULL && !url_ok(p->crl_url))
		return amtca_fail(AMTCA_E_CONFIG, "CRL URL is not an http(s) or "
		    "ldap URL of printable ASCII");
	if (p->aia_url != NULL && !url_ok(p->aia_url))
		return amtca_fail(AMTCA_E_CONFIG, "AIA URL is not an http(s) or "
		    "ldap URL of printable ASCII");
	if (p->country != NULL && p->country[0] != '\0' &&
	    (strlen(p->country) != 2 ||
	    !((p->country[0] | 32) >= 'a' && (p->country[0] | 32) <= 'z') ||
	    !((p->country[1] | 32) >= 'a' && (p->country[1] | 32) <= 'z')))
		return amtca_fail(AMTCA_E_CONFIG, "country \"%.8s\" is not two "
		    "letters", p->country);
	return 0;
}

/* The RDN SETs for C and O, without the enclosing SEQUENCE. */
static int
subject_prefix(struct ca *ca)
{
	X509_NAME *n = NULL;
	unsigned char *der = NULL;
	const unsigned char *body;
	size_t bodylen;
	char c[3];
	int len, ret = AMTCA_E_INTERNAL;
	const struct ca_policy *p = ca->policy;

	if ((n = X509_NAME_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (p->country != NULL && p->country[0] != '\0') {
		c[0] = (char)(p->country[0] & ~32);
		c[1] = (char)(p->country[1] & ~32);
		c[2] = '\0';
		if (!X509_NAME_add_entry_by_NID(n, NID_countryName, MBSTRING_ASC,
		    (unsigned char *)c, -1, -1, 0)) {
			ret = amtca_fail_ssl(AMTCA_E_CONFIG, "country rejected");
			goto out;
		}
	}
	if (p->org != NULL && p->org[0] != '\0' &&
	    !X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8,
	    (const unsigned char *)p->org, -1, -1, 0)) {
		ret = amtca_fail_ssl(AMTCA_E_CONFIG, "organization \"%.64s\" "
		    "rejected (at most 64 characters)", p->org);
		goto out;
	}
	if ((len = i2d_X509_NAME(n, &der)) <= 0 ||
	    der_unwrap(der, (size_t)len, &body, &bodylen) != 0) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot encode the subject");
		goto out;
	}
	if ((ca->subj_prefix = malloc(bodylen + 1)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(ca->subj_prefix, body, bodylen);
	ca->subj_prefix_len = bodylen;
	ret = 0;
out:
	OPENSSL_free(der);
	X509_NAME_free(n);
	return ret;
}

static void
put_ku(struct der *d, unsigned char bits, unsigned char unused)
{
	unsigned char v[2] = { unused, bits };
	size_t m[2];

	der_ext_open(d, oid_ku, sizeof(oid_ku), 1, m);
	der_prim(d, DER_BITSTRING, v, 2);
	der_ext_close(d, m);
}

static void
put_uri_access(struct der *d, const char *url)
{
	der_prim(d, DER_CTX(6), url, strlen(url));	/* uniformResourceIdentifier */
}

static int profile_extensions(struct ca *ca, int what, unsigned char **out,
    size_t *outlen);

/* `url` with its first "{keyid}" replaced by `keyid` (truncated to `len`). */
static void
crl_url_expand(const char *url, const char *keyid, char *out, size_t len)
{
	const char *k = strstr(url, CA_CRL_URL_KEYID);

	if (k == NULL)
		snprintf(out, len, "%s", url);
	else
		snprintf(out, len, "%.*s%s%s", (int)(k - url), url, keyid,
		    k + strlen(CA_CRL_URL_KEYID));
}

static int
fixed_extensions(struct ca *ca, X509 *issuer)
{
	const struct ca_policy *p = ca->policy;
	const ASN1_OCTET_STRING *ski;
	unsigned char md[EVP_MAX_MD_SIZE];
	const unsigned char *keyid;
	unsigned int mdlen = 0;
	size_t m[2], s1, keyidlen;
	struct der d;
	int ret = AMTCA_E_INTERNAL;

	if ((ski = X509_get0_subject_key_id(issuer)) != NULL) {
		keyid = ASN1_STRING_get0_data(ski);
		keyidlen = (size_t)ASN1_STRING_length(ski);
	} else {
		if (!X509_pubkey_digest(issuer, ca->sha1, md, &mdlen))
			return amtca_fail_ssl(AMTCA_E_CERT, "cannot hash the issuer key");
		keyid = md;
		keyidlen = mdlen;
	}
	if (keyidlen == 0 || keyidlen > 32)
		return amtca_fail(AMTCA_E_CERT, "issuer key identifier has %zu "
		    "bytes", keyidlen);

	/* AKI alone first: the CRL reuses it. */
	der_init(&d, 64);
	der_ext_open(&d, oid_aki, sizeof(oid_aki), 0, m);
	s1 = der_open(&d, DER_SEQUENCE);
	der_prim(&d, DER_CTX(0), keyid, keyidlen);
	der_close(&d, s1);
	der_ext_close(&d, m);
	if (d.err || d.len > sizeof(ca->aki)) {
		der_release(&d);
		return AMTCA_E_NOMEM;
	}
	memcpy(ca->aki, d.p, d.len);
	ca->aki_len = d.len;
	der_release(&d);

	if ((ret = profile_extensions(ca, EXT_SERVER |
	    (p->client_auth ? EXT_CLIENT : 0), &ca->exts, &ca->exts_len)) != 0 ||
	    (ret = profile_extensions(ca, EXT_SERVER | EXT_CLIENT,
	    &ca->exts_est, &ca->exts_est_len)) != 0 ||
	    (ret = profile_extensions(ca, EXT_CLIENT | EXT_ADMIN,
	    &ca->exts_admin, &ca->exts_admin_len)) != 0)
		return ret;

	/* keyUsage: digitalSignature (bit 0), + keyEncipherment (bit 2) for RSA. */
	der_init(&d, 16);
	put_ku(&d, 0xa0, 5);
	if (d.err || d.len > sizeof(ca->ku_rsa)) {
		der_release(&d);
		return AMTCA_E_NOMEM;
	}
	memcpy(ca->ku_rsa, d.p, d.len);
	ca->ku_rsa_len = d.len;
	d.len = 0;
	put_ku(&d, 0x80, 7);
	if (d.err || d.len > sizeof(ca->ku_ec)) {
		der_release(&d);
		return AMTCA_E_NOMEM;
	}
	memcpy(ca->ku_ec, d.p, d.len);
	ca->ku_ec_len = d.len;
	der_release(&d);
	return 0;
}

/*
 * One profile's fixed extensions: basicConstraints CA:FALSE, EKU (`what`:
 * EXT_SERVER, EXT_CLIENT), certificatePolicies with the admin marker
 * (EXT_ADMIN), AKI, CDP and AIA when configured.
 */
static int
profile_extensions(struct ca *ca, int what, unsigned char **out,
    size_t *outlen)
{
	const struct ca_policy *p = ca->policy;
	size_t m[2], s1, s2, s3;
	struct der d;

	der_init(&d, 256);
	/* basicConstraints CA:FALSE (the DEFAULT, so an empty SEQUENCE). */
	der_ext_open(&d, oid_bc, sizeof(oid_bc), 1, m);
	der_close(&d, der_open(&d, DER_SEQUENCE));
	der_ext_close(&d, m);

	der_ext_open(&d, oid_eku, sizeof(oid_eku), 0, m);
	s1 = der_open(&d, DER_SEQUENCE);
	if (what & EXT_SERVER)
		der_prim(&d, DER_OID, oid_server_auth, sizeof(oid_server_auth));
	if (what & EXT_CLIENT)
		der_prim(&d, DER_OID, oid_client_auth, sizeof(oid_client_auth));
	der_close(&d, s1);
	der_ext_close(&d, m);

	if (what & EXT_ADMIN) {
		/* certificatePolicies { PolicyInformation { admin OID } } */
		der_ext_open(&d, oid_cert_policies, sizeof(oid_cert_policies), 0, m);
		s1 = der_open(&d, DER_SEQUENCE);
		s2 = der_open(&d, DER_SEQUENCE);
		der_prim(&d, DER_OID, oid_admin_policy, sizeof(oid_admin_policy));
		der_close(&d, s2);
		der_close(&d, s1);
		der_ext_close(&d, m);
	}

	der_raw(&d, ca->aki, ca->aki_len);

	if (p->crl_url != NULL) {
		/* CRLDistributionPoints { DistributionPoint { [0] { [0] { URI } } } } */
		der_ext_open(&d, oid_cdp, sizeof(oid_cdp), 0, m);
		s1 = der_open(&d, DER_SEQUENCE);
		s2 = der_open(&d, DER_SEQUENCE);
		s3 = der_open(&d, DER_CTXC(0));
		{
			size_t s4 = der_open(&d, DER_CTXC(0));

			char url[AMTCA_URL_MAX + CA_KEYID_HEX_MAX + 1];

			/* "{keyid}": each intermediate's own CRL (a verifier
			 * wants the CRL its issuer signed: docs/rotation.md). */
			crl_url_expand(p->crl_url, ca->keyid, url, sizeof(url));
			put_uri_access(&d, url);
			der_close(&d, s4);
		}
		der_close(&d, s3);
		der_close(&d, s2);
		der_close(&d, s1);
		der_ext_close(&d, m);
	}
	if (p->aia_url != NULL) {
		der_ext_open(&d, oid_aia, sizeof(oid_aia), 0, m);
		s1 = der_open(&d, DER_SEQUENCE);
		s2 = der_open(&d, DER_SEQUENCE);
		der_prim(&d, DER_OID, oid_ca_issuers, sizeof(oid_ca_issuers));
		put_uri_access(&d, p->aia_url);
		der_close(&d, s2);
		der_close(&d, s1);
		der_ext_close(&d, m);
	}
	return der_take(&d, out, outlen);
}

/* The policy's ranges for messages: "10.0.0.0/8, 2001:db8::/32". */
static void
ranges_text(struct ca *ca)
{
	char one[CA_IP_RANGE_STRLEN];
	size_t i, n = 0, l, cap = sizeof(ca->ranges_text);

	ca->ranges_text[0] = '\0';
	for (i = 0; i < ca->nranges; i++) {
		ca_ip_range_format(&ca->ranges[i], one, sizeof(one));
		l = strlen(one);
		if (n + l + 2 + 4 >= cap) {
			memcpy(ca->ranges_text + n, ", ...", 6);
			return;
		}
		if (i > 0) {
			memcpy(ca->ranges_text + n, ", ", 2);
			n += 2;
		}
		memcpy(ca->ranges_text + n, one, l + 1);
		n += l;
	}
}

int
ca_client_name_check(const char *name, const struct ca_policy *p)
{
	char fq[AMTCA_FQDN_MAX + 1];
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 || n > AMTCA_CLIENT_NAME_MAX)
		return amtca_fail(AMTCA_E_USAGE, "a client name has 1 to %d "
		    "characters", AMTCA_CLIENT_NAME_MAX);
	if (strchr(name, '.') != NULL) {
		struct ca_policy any;

		if (p == NULL) {
			ca_policy_init(&any);
			p = &any;
		}
		return ca_fqdn_check(name, p, fq);
	}
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-") != n || name[0] == '-' || name[0] == '_')
		return amtca_fail(AMTCA_E_USAGE, "client name \"%.64s\" may hold "
		    "only letters, digits, '-' and '_', starting with a letter "
		    "or digit", name);
	return 0;
}

int
ca_new(const struct ca_signer *signer, X509 *issuer,
    const struct ca_policy *policy, struct store *store, struct ca **out)
{
	struct ca *ca = NULL;
	unsigned char *name = NULL;
	int r, len, i, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (signer == NULL || signer->sign == NULL || issuer == NULL ||
	    policy == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "ca_new: missing signer, issuer "
		    "or policy");
		goto out;
	}
	if ((r = policy_validate(policy)) != 0) {
		ret = r;
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(issuer), signer->pub) != 1) {
		ERR_clear_error();
		ret = amtca_fail(AMTCA_E_CONFIG, "the signing key does not match "
		    "the issuing CA certificate");
		goto out;
	}
	if (X509_check_ca(issuer) == 0) {
		ret = amtca_fail(AMTCA_E_CONFIG, "the issuing certificate is not "
		    "a CA certificate");
		goto out;
	}
	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	ca->signer = signer;
	ca->policy = policy;
	ca->store = store;
	ca->first = 1;			/* until the home says otherwise */
	ca->days = policy->days > 0 ? policy->days : AMTCA_DAYS_DEFAULT;
	ca->skew = policy->skew_s;
	if ((r = ca_policy_ranges(policy, ca->ranges, &ca->nranges)) != 0) {
		ret = r;
		goto out;
	}
	ranges_text(ca);
	if ((r = ca_sigalg_init(&ca->alg, signer->pub)) != 0) {
		ret = r;
		goto out;
	}
	if ((ca->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot fetch SHA-1");
		goto out;
	}
	ca->issuer_nb = ca_asn1_time_t(X509_get0_notBefore(issuer));
	ca->issuer_na = ca_asn1_time_t(X509_get0_notAfter(issuer));
	if (ca->issuer_nb == (time_t)-1 || ca->issuer_na == (time_t)-1) {
		ret = amtca_fail(AMTCA_E_CERT, "issuing CA validity is unreadable");
		goto out;
	}
	if ((len = i2d_X509_NAME(X509_get_subject_name(issuer), &name)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the issuer name");
		goto out;
	}
	ca->algid_issuer_len = ca->alg.algid_len + (size_t)len;
	if ((ca->algid_issuer = malloc(ca->algid_issuer_len)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(ca->algid_issuer, ca->alg.algid, ca->alg.algid_len);
	memcpy(ca->algid_issuer + ca->alg.algid_len, name, (size_t)len);
	for (i = CA_DIGEST_SHA256; i < CA_DIGEST_N; i++) {
		struct ca_sigalg *a = &ca->dig_alg[i];

		if ((r = ca_sigalg_init_md(a, signer->pub,
		    i == CA_DIGEST_SHA384)) != 0) {
			ret = r;
			goto out;
		}
		ca->dig_algid_issuer_len[i] = a->algid_len + (size_t)len;
		if ((ca->dig_algid_issuer[i] =
		    malloc(ca->dig_algid_issuer_len[i])) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		memcpy(ca->dig_algid_issuer[i], a->algid, a->algid_len);
		memcpy(ca->dig_algid_issuer[i] + a->algid_len, name, (size_t)len);
	}
	if ((r = ca_keyid_hex(issuer, ca->keyid)) != 0 ||
	    (r = subject_prefix(ca)) != 0 ||
	    (r = fixed_extensions(ca, issuer)) != 0) {
		ret = r;
		goto out;
	}
	*out = ca;
	ca = NULL;
	ret = 0;
out:
	OPENSSL_free(name);
	ca_free(ca);
	return ret;
}

void
ca_set_first(struct ca *ca, int first)
{
	ca->first = first;
}

const char *
ca_keyid(const struct ca *ca)
{
	return ca->keyid;
}

void
ca_free(struct ca *ca)
{
	int i;

	if (ca == NULL)
		return;
	ca_sigalg_release(&ca->alg);
	for (i = 0; i < CA_DIGEST_N; i++) {
		ca_sigalg_release(&ca->dig_alg[i]);
		free(ca->dig_algid_issuer[i]);
	}
	EVP_MD_free(ca->sha1);
	free(ca->algid_issuer);
	free(ca->subj_prefix);
	free(ca->exts);
	free(ca->exts_est);
	free(ca->exts_admin);
	free(ca);
}

static void
leaf_clear(struct leaf *l)
{
	free(l->spki);
	l->spki = NULL;
}

/* Everything about a request that does not change between attempts. */
static int
leaf_prepare(const struct ca *ca, const struct ca_request *req, struct leaf *l)
{
	const unsigned char *pk = NULL, *spki = NULL;
	size_t pklen = 0, spki_len = 0;
	int r, days, ret = AMTCA_E_INTERNAL;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (req == NULL || req->csr == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "issue: no CSR");
		goto out;
	}
	l->profile = req->profile;
	switch (req->profile) {
	case CA_PROFILE_WEBSERVER:
	case CA_PROFILE_SERVICE:
	case CA_PROFILE_EST:
		if ((r = ca_fqdn_check(req->fqdn, ca->policy, l->fqdn)) != 0) {
			ret = r;
			goto out;
		}
		break;
	case CA_PROFILE_ADMIN:
		/* A person or a program, not a host: no addresses. */
		if ((r = ca_client_name_check(req->fqdn, ca->policy)) != 0) {
			ret = r;
			goto out;
		}
		if (req->nips != 0) {
			ret = amtca_fail(AMTCA_E_USAGE, "an admin certificate "
			    "carries no addresses");
			goto out;
		}
		if (strchr(req->fqdn, '.') != NULL) {
			if ((r = ca_fqdn_check(req->fqdn, ca->policy,
			    l->fqdn)) != 0) {
				ret = r;
				goto out;
			}
		} else {
			snprintf(l->fqdn, sizeof(l->fqdn), "%s", req->fqdn);
			l->cn_only = 1;
		}
		break;
	default:
		ret = amtca_fail(AMTCA_E_USAGE, "unknown certificate profile %d",
		    (int)req->profile);
		goto out;
	}
	l->fqdn_len = strlen(l->fqdn);
	if ((unsigned)req->digest >= CA_DIGEST_N) {
		ret = amtca_fail(AMTCA_E_USAGE, "issue: unknown digest %d",
		    (int)req->digest);
		goto out;
	}
	if (req->digest == CA_DIGEST_DEFAULT) {
		l->alg = &ca->alg;
		l->algid_issuer = ca->algid_issuer;
		l->algid_issuer_len = ca->algid_issuer_len;
	} else {
		l->alg = &ca->dig_alg[req->digest];
		l->algid_issuer = ca->dig_algid_issuer[req->digest];
		l->algid_issuer_len = ca->dig_algid_issuer_len[req->digest];
	}
	if (req->nnames != 0 && req->profile != CA_PROFILE_EST) {
		ret = amtca_fail(AMTCA_E_USAGE, "only an EST certificate carries "
		    "several names");
		goto out;
	}
	if (req->nnames > AMTCA_EST_NAMES_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "%zu names requested, at most %d",
		    req->nnames, AMTCA_EST_NAMES_MAX);
		goto out;
	}
	for (i = 0; i < req->nnames; i++) {
		size_t k;
		int dup = 0;

		if ((r = ca_fqdn_check(req->names[i], ca->policy,
		    l->names[l->nnames])) != 0) {
			ret = r;
			goto out;
		}
		/* A name asked for twice is carried once. */
		dup = strcmp(l->names[l->nnames], l->fqdn) == 0;
		for (k = 0; k < l->nnames && !dup; k++)
			dup = strcmp(l->names[k], l->names[l->nnames]) == 0;
		if (!dup)
			l->nnames++;
	}
	if (req->nips > AMTCA_IPS_MAX) {
		ret = amtca_fail(AMTCA_E_LIMIT, "%zu IP addresses requested, at "
		    "most %d", req->nips, AMTCA_IPS_MAX);
		goto out;
	}
	for (i = 0; i < req->nips; i++) {
		const char *s = req->ips[i];

		if (s != NULL && inet_pton(AF_INET, s, l->ip[i]) == 1)
			l->iplen[i] = 4;
		else if (s != NULL && inet_pton(AF_INET6, s, l->ip[i]) == 1)
			l->iplen[i] = 16;
		else {
			ret = amtca_fail(AMTCA_E_USAGE, "IP address \"%.64s\" is "
			    "neither IPv4 nor IPv6", s ? s : "");
			goto out;
		}
	}
	l->nips = req->nips;
	/* Only after every address parsed: a typo is a usage error first. */
	for (i = 0; i < l->nips; i++) {
		size_t k;
		char txt[INET6_ADDRSTRLEN];

		for (k = 0; k < ca->nranges; k++)
			if (ca_ip_range_contains(&ca->ranges[k], l->ip[i],
			    l->iplen[i]))
				break;
		if (k < ca->nranges)
			continue;
		if (inet_ntop(l->iplen[i] == 4 ? AF_INET : AF_INET6, l->ip[i],
		    txt, sizeof(txt)) == NULL)
			snprintf(txt, sizeof(txt), "?");
		if (ca->nranges == 0)
			ret = amtca_fail(AMTCA_E_POLICY, "IP address %s refused: "
			    "this CA has no IP ranges, so it issues no IP names "
			    "(ranges are set with 'amtca init --ip-range')", txt);
		else
			ret = amtca_fail(AMTCA_E_POLICY, "IP address %s is outside "
			    "this CA's IP ranges (%s)", txt, ca->ranges_text);
		goto out;
	}
	days = req->days != 0 ? req->days : ca->days;
	if (days < 1 || days > AMTCA_DAYS_MAX) {
		ret = amtca_fail(AMTCA_E_POLICY, "validity of %d days is out of "
		    "range (1-%d)", days, AMTCA_DAYS_MAX);
		goto out;
	}
	/* Copied: a pipelined issuance outlives the caller's CSR. */
	if ((r = ca_csr_spki(req->csr, &spki, &spki_len, &pk, &pklen,
	    &l->is_rsa)) != 0) {
		ret = r;
		goto out;
	}
	if ((l->spki = malloc(spki_len)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(l->spki, spki, spki_len);
	l->spki_len = spki_len;
	/* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
	if (!EVP_Digest(pk, pklen, l->ski, &l->ski_len, ca->sha1, NULL)) {
		ret = amtca_fail_ssl(AMTCA_E_INTERNAL, "cannot hash the key");
		goto out;
	}
	l->now = time(NULL);
	if (l->now >= ca->issuer_na) {
		ret = amtca_fail(AMTCA_E_CERT, "the issuing CA certificate has "
		    "expired: renew the intermediate");
		goto out;
	}
	l->nb = l->now - ca->skew;
	if (l->nb < ca->issuer_nb)
		l->nb = ca->issuer_nb;
	l->na = l->now + (time_t)days * 86400;
	if (l->na > ca->issuer_na)
		l->na = ca->issuer_na;	/* never outlive the issuer */
	ret = 0;
out:
	if (ret != 0)
		leaf_clear(l);
	return ret;
}

static int
leaf_tbs(const struct ca *ca, const struct leaf *l,
    const unsigned char serial[AMTCA_SERIAL_BYTES], unsigned char **out,
    size_t *outlen)
{
	static const unsigned char v3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };
	size_t top, s1, s2, s3, m[2], i;
	int cn = l->fqdn_len <= CN_MAX;
	struct der d;

	const unsigned char *exts = ca->exts;
	size_t exts_len = ca->exts_len;
	int client = l->profile == CA_PROFILE_ADMIN;

	if (l->profile == CA_PROFILE_EST) {
		exts = ca->exts_est;
		exts_len = ca->exts_est_len;
	} else if (l->profile == CA_PROFILE_ADMIN) {
		exts = ca->exts_admin;
		exts_len = ca->exts_admin_len;
	}
	der_init(&d, 512 + l->algid_issuer_len + ca->subj_prefix_len +
	    2 * l->fqdn_len + l->spki_len + exts_len +
	    l->nnames * (AMTCA_FQDN_MAX + 4));
	top = der_open(&d, DER_SEQUENCE);
	der_raw(&d, v3, sizeof(v3));
	der_prim(&d, DER_INTEGER, serial, AMTCA_SERIAL_BYTES);
	der_raw(&d, l->algid_issuer, l->algid_issuer_len);
	s1 = der_open(&d, DER_SEQUENCE);
	der_time(&d, l->nb);
	der_time(&d, l->na);
	der_close(&d, s1);
	s1 = der_open(&d, DER_SEQUENCE);		/* subject */
	der_raw(&d, ca->subj_prefix, ca->subj_prefix_len);
	if (cn) {
		s2 = der_open(&d, DER_SET);
		s3 = der_open(&d, DER_SEQUENCE);
		der_prim(&d, DER_OID, oid_cn, sizeof(oid_cn));
		der_prim(&d, DER_UTF8STRING, l->fqdn, l->fqdn_len);
		der_close(&d, s3);
		der_close(&d, s2);
	}
	der_close(&d, s1);
	der_raw(&d, l->spki, l->spki_len);
	s1 = der_open(&d, DER_CTXC(3));
	s2 = der_open(&d, DER_SEQUENCE);
	der_raw(&d, exts, exts_len);
	/* A TLS client signs; only an RSA server key may also decrypt. */
	if (l->is_rsa && !client)
		der_raw(&d, ca->ku_rsa, ca->ku_rsa_len);
	else
		der_raw(&d, ca->ku_ec, ca->ku_ec_len);
	if (!l->cn_only) {
		/* SAN is critical when the subject is empty (RFC 5280 4.2.1.6). */
		der_ext_open(&d, oid_san, sizeof(oid_san),
		    !cn && ca->subj_prefix_len == 0, m);
		s3 = der_open(&d, DER_SEQUENCE);
		der_prim(&d, DER_CTX(2), l->fqdn, l->fqdn_len);	/* dNSName */
		for (i = 0; i < l->nnames; i++)
			der_prim(&d, DER_CTX(2), l->names[i], strlen(l->names[i]));
		for (i = 0; i < l->nips; i++)
			der_prim(&d, DER_CTX(7), l->ip[i], l->iplen[i]); /* iPAddress */
		der_close(&d, s3);
		der_ext_close(&d, m);
	}
	der_ext_open(&d, oid_ski, sizeof(oid_ski), 0, m);
	der_prim(&d, DER_OCTETSTRING, l->ski, l->ski_len);
	der_ext_close(&d, m);
	der_close(&d, s2);
	der_close(&d, s1);
	der_close(&d, top);
	return der_take(&d, out, outlen);
}

/*
 * Draw a serial, build and sign one leaf; parse it into *out when out is
 * not NULL.  The parse is what dominates a leaf under OpenSSL 3.0 (the
 * provider decoder lookup for the public key in d2i_X509), hence the DER
 * entry points.
 */
static int
leaf_sign(const struct ca *ca, const struct leaf *l,
    unsigned char serial[AMTCA_SERIAL_BYTES], unsigned char **der,
    size_t *derlen, X509 **out)
{
	unsigned char *tbs = NULL;
	const unsigned char *p;
	size_t tbslen = 0;
	int r, ret = AMTCA_E_INTERNAL;

	if (out != NULL)
		*out = NULL;
	*der = NULL;
	*derlen = 0;
	if ((r = ca_serial_draw(serial)) != 0 ||
	    (r = leaf_tbs(ca, l, serial, &tbs, &tbslen)) != 0 ||
	    (r = ca_sign_der(ca->signer, l->alg, tbs, tbslen, der,
	    derlen)) != 0) {
		ret = r;
		goto out;
	}
	if (out != NULL) {
		p = *der;
		if ((*out = d2i_X509(NULL, &p, (long)*derlen)) == NULL ||
		    p != *der + *derlen) {
			X509_free(*out);
			*out = NULL;
			ret = amtca_fail_ssl(AMTCA_E_CERT, "issued certificate "
			    "does not parse");
			goto out;
		}
	}
	ret = 0;
out:
	free(tbs);
	if (ret != 0) {
		free(*der);
		*der = NULL;
		*derlen = 0;
	}
	return ret;
}

static int
build(struct ca *ca, const struct ca_request *req, X509 **x,
    unsigned char **der, size_t *derlen)
{
	unsigned char serial[AMTCA_SERIAL_BYTES];
	struct leaf l;
	int r;

	if (ca == NULL)
		return amtca_fail(AMTCA_E_USAGE, "no CA");
	if ((r = leaf_prepare(ca, req, &l)) != 0)
		return r;
	r = leaf_sign(ca, &l, serial, der, derlen, x);
	leaf_clear(&l);
	return r;
}

int
ca_leaf_build(struct ca *ca, const struct ca_request *req, X509 **out)
{
	unsigned char *der = NULL;
	size_t derlen = 0;
	int r;

	*out = NULL;
	r = build(ca, req, out, &der, &derlen);
	free(der);
	return r;
}

int
ca_leaf_build_der(struct ca *ca, const struct ca_request *req,
    unsigned char **der, size_t *derlen)
{
	*der = NULL;
	*derlen = 0;
	return build(ca, req, NULL, der, derlen);
}

/* ca_issue() and ca_issue_der(): x may be NULL. */
static int
issue(struct ca *ca, const struct ca_request *req, X509 **xout,
    unsigned char **derout, size_t *derlenout, char **serialout)
{
	unsigned char serial[AMTCA_SERIAL_BYTES], *der = NULL;
	size_t derlen = 0;
	struct store_cert rec;
	struct leaf l;
	char *hex = NULL;
	X509 *x = NULL;
	int r, tries, have_leaf = 0, done = 0, ret = AMTCA_E_INTERNAL;

	if (ca == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no CA");
		goto out;
	}
	if (ca->store == NULL) {
		ret = amtca_fail(AMTCA_E_STORE, "no issuance database: refusing "
		    "to issue a certificate that would not be recorded");
		goto out;
	}
	if ((r = leaf_prepare(ca, req, &l)) != 0) {
		ret = r;
		goto out;
	}
	have_leaf = 1;
	for (tries = 0; tries < AMTCA_SERIAL_TRIES && !done; tries++) {
		if ((r = leaf_sign(ca, &l, serial, &der, &derlen,
		    xout != NULL ? &x : NULL)) != 0 ||
		    (r = amtca_hex_encode(serial, sizeof(serial), &hex)) != 0) {
			ret = r;
			goto out;
		}
		memset(&rec, 0, sizeof(rec));
		rec.serial = hex;
		rec.fqdn = l.fqdn;
		rec.not_before = l.nb;
		rec.not_after = l.na;
		rec.issued_at = l.now;
		rec.status = (char *)"valid";
		rec.requester = (char *)req->requester;
		rec.device = (char *)req->device;
		rec.actor = req->actor;
		rec.der = der;
		rec.der_len = derlen;
		rec.issuer = (char *)ca->keyid;
		/* Only a durably recorded certificate leaves this function. */
		r = store_cert_add(ca->store, &rec);
		if (r == 0) {
			done = 1;
			break;
		}
		X509_free(x);
		x = NULL;
		free(der);
		der = NULL;
		free(hex);
		hex = NULL;
		if (r != AMTCA_E_EXISTS) {
			ret = r;
			goto out;
		}
	}
	if (!done) {
		ret = amtca_fail(AMTCA_E_STORE, "%d serial collisions in a row: "
		    "is the CSPRNG broken?", AMTCA_SERIAL_TRIES);
		goto out;
	}
	if (xout != NULL) {
		*xout = x;
		x = NULL;
	}
	if (derout != NULL) {
		*derout = der;
		*derlenout = derlen;
		der = NULL;
	}
	if (serialout != NULL) {
		*serialout = hex;
		hex = NULL;
	}
	ret = 0;
out:
	if (have_leaf)
		leaf_clear(&l);
	X509_free(x);
	free(der);
	free(hex);
	return ret;
}

int
ca_issue(struct ca *ca, const struct ca_request *req, X509 **out)
{
	*out = NULL;
	return issue(ca, req, out, NULL, NULL, NULL);
}

int
ca_issue_der(struct ca *ca, const struct ca_request *req, unsigned char **der,
    size_t *derlen, char **serial)
{
	*der = NULL;
	*derlen = 0;
	if (serial != NULL)
		*serial = NULL;
	return issue(ca, req, NULL, der, derlen, serial);
}

/*
 * Pipelined issuance.  The job owns everything the record points to until
 * the store's callback; a serial collision (astronomically rare with 127
 * random bits, but handled) re-signs with a fresh serial from that
 * callback.
 */
struct job {
	struct ca *ca;
	struct leaf l;
	struct store_cert rec;
	unsigned char *der;
	size_t derlen;
	char *hex;
	char *requester;
	char *device;
	char *actor;
	int tries;
	ca_issue_cb cb;
	void *arg;
};

static void
job_free(struct job *j)
{
	leaf_clear(&j->l);
	free(j->der);
	free(j->hex);
	free(j->requester);
	free(j->device);
	free(j->actor);
	free(j);
}

static void job_done(void *arg, int result, const char *msg);

/* Sign with a fresh serial and queue the record; 0 or an error (job kept). */
static int
job_sign_submit(struct job *j)
{
	unsigned char serial[AMTCA_SERIAL_BYTES];
	int r;

	free(j->der);
	free(j->hex);
	j->der = NULL;
	j->hex = NULL;
	if ((r = leaf_sign(j->ca, &j->l, serial, &j->der, &j->derlen, NULL)) != 0 ||
	    (r = amtca_hex_encode(serial, sizeof(serial), &j->hex)) != 0)
		return r;
	memset(&j->rec, 0, sizeof(j->rec));
	j->rec.serial = j->hex;
	j->rec.fqdn = j->l.fqdn;
	j->rec.not_before = j->l.nb;
	j->rec.not_after = j->l.na;
	j->rec.issued_at = j->l.now;
	j->rec.status = (char *)"valid";
	j->rec.requester = j->requester;
	j->rec.device = j->device;
	j->rec.actor = j->actor;
	j->rec.der = j->der;
	j->rec.der_len = j->derlen;
	j->rec.issuer = j->ca->keyid;
	j->tries++;
	return store_cert_add_async(j->ca->store, &j->rec, job_done, j);
}

static void
job_done(void *arg, int result, const char *msg)
{
	struct job *j = arg;
	unsigned char *der;

	if (result == AMTCA_E_EXISTS && j->tries < AMTCA_SERIAL_TRIES) {
		if ((result = job_sign_submit(j)) == 0)
			return;
		msg = amtca_errmsg(result);
	}
	if (result != 0) {
		j->cb(j->arg, result, msg != NULL && *msg != '\0' ? msg :
		    amtca_strerror(result), NULL, 0, NULL);
		job_free(j);
		return;
	}
	/* Durable: only now does the certificate leave the CA. */
	der = j->der;
	j->der = NULL;
	j->cb(j->arg, 0, NULL, der, j->derlen, j->hex);
	job_free(j);
}

int
ca_issue_submit(struct ca *ca, const struct ca_request *req, ca_issue_cb cb,
    void *arg)
{
	struct job *j = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (ca == NULL || cb == NULL)
		return amtca_fail(AMTCA_E_USAGE, "ca_issue_submit: no CA or callback");
	if (ca->store == NULL)
		return amtca_fail(AMTCA_E_STORE, "no issuance database: refusing "
		    "to issue a certificate that would not be recorded");
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return AMTCA_E_NOMEM;
	j->ca = ca;
	j->cb = cb;
	j->arg = arg;
	if ((r = leaf_prepare(ca, req, &j->l)) != 0) {
		free(j);
		return r;
	}
	if ((req->requester != NULL && (j->requester = strdup(req->requester)) == NULL) ||
	    (req->device != NULL && (j->device = strdup(req->device)) == NULL) ||
	    (req->actor != NULL && (j->actor = strdup(req->actor)) == NULL)) {
		ret = AMTCA_E_NOMEM;
		goto fail;
	}
	if ((r = job_sign_submit(j)) != 0) {
		ret = r;
		goto fail;
	}
	return 0;
fail:
	job_free(j);
	return ret;
}
