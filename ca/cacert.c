/*
 * The two CA certificates: a self-signed root and the issuing intermediate.
 * Built as OpenSSL X509 objects (rarely done, so clarity beats speed here),
 * then signed through the signer like everything else.
 */
#include "ca/ca.h"
#include "ca/ca_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static int
make_name(const char *cn, const char *org, X509_NAME **out)
{
	X509_NAME *n = NULL;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (cn == NULL || cn[0] == '\0') {
		ret = amtca_fail(AMTCA_E_USAGE, "CA common name is empty");
		goto out;
	}
	if ((n = X509_NAME_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (org != NULL && org[0] != '\0' &&
	    !X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8,
	    (const unsigned char *)org, -1, -1, 0)) {
		ret = amtca_fail_ssl(AMTCA_E_USAGE, "organization \"%.64s\" "
		    "rejected (at most 64 characters)", org);
		goto out;
	}
	if (!X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0)) {
		ret = amtca_fail_ssl(AMTCA_E_USAGE, "common name \"%.64s\" "
		    "rejected (at most 64 characters)", cn);
		goto out;
	}
	*out = n;
	n = NULL;
	ret = 0;
out:
	X509_NAME_free(n);
	return ret;
}

/* Version, serial, names, validity and key of a CA certificate. */
static int
ca_skeleton(X509 *x, const X509_NAME *subject, const X509_NAME *issuer,
    time_t nb, time_t na, EVP_PKEY *pub)
{
	ASN1_INTEGER *serial = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = ca_serial_random(&serial)) != 0) {
		ret = r;
		goto out;
	}
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_serialNumber(x, serial) ||
	    !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, issuer) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    !X509_set_pubkey(x, pub)) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot build the CA certificate");
		goto out;
	}
	ret = 0;
out:
	ASN1_INTEGER_free(serial);
	return ret;
}

/* basicConstraints, keyUsage and SKI, shared by root and intermediate. */
static int
ca_extensions(X509 *x, int pathlen0)
{
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ret = AMTCA_E_INTERNAL;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL ||
	    (ku = ASN1_BIT_STRING_new()) == NULL ||
	    (ski = ASN1_OCTET_STRING_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	bc->ca = 0xff;
	if (pathlen0 && ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_INTEGER_set(bc->pathlen, 0))) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (!ASN1_BIT_STRING_set_bit(ku, 5, 1) ||	/* keyCertSign */
	    !ASN1_BIT_STRING_set_bit(ku, 6, 1) ||	/* cRLSign */
	    !X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)mdlen)) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot build CA extensions");
		goto out;
	}
	if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0,
	    X509V3_ADD_DEFAULT) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot add CA extensions");
		goto out;
	}
	ret = 0;
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	ASN1_OCTET_STRING_free(ski);
	return ret;
}

/*
 * An intermediate key of AMT 22's strength (RSA-3072 and up, P-384) is
 * certified with SHA-384 whatever the root's key: firmware that refuses
 * SHA-256-signed chain certificates then takes it (ca rotate --key-type).
 */
static int
key_strong(EVP_PKEY *k)
{
	return (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bits(k) >= 3072) ||
	    (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC && EVP_PKEY_get_bits(k) >= 384);
}

/*
 * Set the signature AlgorithmIdentifier in both places, take the TBS DER,
 * have the signer sign it and parse the assembled certificate back.
 */
static int
sign_x509(const struct ca_signer *s, X509 *x, int sha384, X509 **out)
{
	struct ca_sigalg a;
	const X509_ALGOR *outer = NULL;
	const ASN1_BIT_STRING *sig = NULL;
	unsigned char *tbs = NULL, *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	int tbslen, r, ret = AMTCA_E_INTERNAL, have_alg = 0;
	X509 *res = NULL;

	*out = NULL;
	if ((r = sha384 ? ca_sigalg_init_md(&a, s->pub, 1) :
	    ca_sigalg_init(&a, s->pub)) != 0) {
		ret = r;
		goto out;
	}
	have_alg = 1;
	X509_get0_signature(&sig, &outer, x);
	/*
	 * OpenSSL 3.0 has no setter for these outside X509_sign(), which
	 * needs the private key; both point into the (heap) X509 we own.
	 */
	if (!X509_ALGOR_set0((X509_ALGOR *)X509_get0_tbs_sigalg(x),
	    OBJ_nid2obj(a.nid), a.ptype, NULL) ||
	    !X509_ALGOR_set0((X509_ALGOR *)outer, OBJ_nid2obj(a.nid), a.ptype,
	    NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((tbslen = i2d_re_X509_tbs(x, &tbs)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the certificate");
		goto out;
	}
	if ((r = ca_sign_der(s, &a, tbs, (size_t)tbslen, &der, &derlen)) != 0) {
		ret = r;
		goto out;
	}
	p = der;
	if ((res = d2i_X509(NULL, &p, (long)derlen)) == NULL) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "signed certificate does not "
		    "parse");
		goto out;
	}
	if (X509_verify(res, s->pub) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "signer produced a signature "
		    "that does not verify");
		goto out;
	}
	*out = res;
	res = NULL;
	ret = 0;
out:
	if (have_alg)
		ca_sigalg_release(&a);
	OPENSSL_free(tbs);
	free(der);
	X509_free(res);
	return ret;
}

int
ca_root_create(const struct ca_signer *root, const char *cn, const char *org,
    int days, X509 **out)
{
	X509_NAME *name = NULL;
	X509 *x = NULL;
	time_t now = time(NULL);
	int r, is_rsa = 0, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (root == NULL || root->sign == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no root signer");
		goto out;
	}
	if (days == 0)
		days = AMTCA_CA_DAYS_ROOT;
	if (days < 0 || days > 100 * 366) {
		ret = amtca_fail(AMTCA_E_USAGE, "root validity of %d days is out "
		    "of range", days);
		goto out;
	}
	if ((r = ca_key_check(root->pub, AMTCA_E_CONFIG, "root key", &is_rsa)) != 0 ||
	    (r = make_name(cn, org, &name)) != 0) {
		ret = r;
		goto out;
	}
	if ((x = X509_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = ca_skeleton(x, name, name, now - AMTCA_SKEW_DEFAULT_S,
	    now + (time_t)days * 86400, root->pub)) != 0 ||
	    (r = ca_extensions(x, 0)) != 0 ||
	    (r = sign_x509(root, x, 0, out)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	return ret;
}

static int
add_aki(X509 *x, X509 *issuer)
{
	AUTHORITY_KEYID *aki = NULL;
	const ASN1_OCTET_STRING *ski;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ret = AMTCA_E_INTERNAL;

	if ((aki = AUTHORITY_KEYID_new()) == NULL ||
	    (aki->keyid = ASN1_OCTET_STRING_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((ski = X509_get0_subject_key_id(issuer)) != NULL) {
		if (!ASN1_OCTET_STRING_set(aki->keyid, ASN1_STRING_get0_data(ski),
		    ASN1_STRING_length(ski)))
			goto ssl;
	} else if (!X509_pubkey_digest(issuer, EVP_sha1(), md, &mdlen) ||
	    !ASN1_OCTET_STRING_set(aki->keyid, md, (int)mdlen))
		goto ssl;
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0,
	    X509V3_ADD_DEFAULT) != 1)
		goto ssl;
	ret = 0;
	goto out;
ssl:
	ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot add the authority key id");
out:
	AUTHORITY_KEYID_free(aki);
	return ret;
}

/* One iPAddress subtree: address || mask (8 or 32 octets, RFC 5280 4.2.1.10). */
static int
push_ip_subtree(STACK_OF(GENERAL_SUBTREE) *sk, const struct ca_ip_range *r)
{
	GENERAL_SUBTREE *st = NULL;
	ASN1_OCTET_STRING *os = NULL;
	unsigned char v[32];
	unsigned bits = r->prefix;
	size_t i;
	int ret = AMTCA_E_NOMEM;

	memset(v, 0, sizeof(v));
	memcpy(v, r->addr, r->len);
	for (i = 0; i < r->len; i++, bits = bits >= 8 ? bits - 8 : 0)
		v[r->len + i] = (unsigned char)(0xff00u >> (bits >= 8 ? 8 : bits));
	if ((st = GENERAL_SUBTREE_new()) == NULL ||
	    (os = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(os, v, 2 * (int)r->len))
		goto out;
	GENERAL_NAME_set0_value(st->base, GEN_IPADD, os);
	os = NULL;
	if (!sk_GENERAL_SUBTREE_push(sk, st))
		goto out;
	st = NULL;
	ret = 0;
out:
	ASN1_OCTET_STRING_free(os);
	GENERAL_SUBTREE_free(st);
	return ret;
}

/*
 * Permitted dNSName subtrees, exactly the policy's suffixes; permitted
 * iPAddress subtrees, exactly its ranges; and each address family without
 * a range excluded whole.  Without the exclusions a verifier would accept
 * any IP name: RFC 5280 constrains a name type only when a subtree of
 * that type is present.
 */
static int
add_name_constraints(X509 *x, const struct ca_policy *p,
    const struct ca_ip_range *ranges, size_t nranges)
{
	static const struct ca_ip_range all4 = { { 0 }, 4, 0 }, all6 = { { 0 }, 16, 0 };
	NAME_CONSTRAINTS *nc = NULL;
	GENERAL_SUBTREE *st = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	char buf[AMTCA_FQDN_MAX + 1];
	const char *d;
	size_t i, j;
	int r, have4 = 0, have6 = 0, ret = AMTCA_E_INTERNAL;

	if ((nc = NAME_CONSTRAINTS_new()) == NULL ||
	    (nc->permittedSubtrees = sk_GENERAL_SUBTREE_new_null()) == NULL ||
	    (nc->excludedSubtrees = sk_GENERAL_SUBTREE_new_null()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < p->ndomains; i++) {
		d = p->domains[i];
		if (d[0] == '.')
			d++;
		for (j = 0; d[j] != '\0' && j < AMTCA_FQDN_MAX; j++)
			buf[j] = (char)(d[j] >= 'A' && d[j] <= 'Z' ? d[j] + 32 : d[j]);
		buf[j] = '\0';
		if ((st = GENERAL_SUBTREE_new()) == NULL ||
		    (ia5 = ASN1_IA5STRING_new()) == NULL ||
		    !ASN1_STRING_set(ia5, buf, -1)) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		GENERAL_NAME_set0_value(st->base, GEN_DNS, ia5);
		ia5 = NULL;
		if (!sk_GENERAL_SUBTREE_push(nc->permittedSubtrees, st)) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		st = NULL;
	}
	for (i = 0; i < nranges; i++) {
		if (ranges[i].len == 4)
			have4 = 1;
		else
			have6 = 1;
		if ((r = push_ip_subtree(nc->permittedSubtrees, &ranges[i])) != 0) {
			ret = r;
			goto out;
		}
	}
	if ((!have4 && (r = push_ip_subtree(nc->excludedSubtrees, &all4)) != 0) ||
	    (!have6 && (r = push_ip_subtree(nc->excludedSubtrees, &all6)) != 0)) {
		ret = r;
		goto out;
	}
	/* An empty SEQUENCE OF is not allowed (RFC 5280 4.2.1.10). */
	if (sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) == 0) {
		sk_GENERAL_SUBTREE_free(nc->permittedSubtrees);
		nc->permittedSubtrees = NULL;
	}
	if (sk_GENERAL_SUBTREE_num(nc->excludedSubtrees) == 0) {
		sk_GENERAL_SUBTREE_free(nc->excludedSubtrees);
		nc->excludedSubtrees = NULL;
	}
	if (X509_add1_ext_i2d(x, NID_name_constraints, nc, 1,
	    X509V3_ADD_DEFAULT) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot add name constraints");
		goto out;
	}
	ret = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_SUBTREE_free(st);
	NAME_CONSTRAINTS_free(nc);
	return ret;
}

int
ca_intermediate_create(const struct ca_signer *root, X509 *root_cert,
    EVP_PKEY *inter_pub, const char *cn, const char *org,
    const struct ca_policy *policy, int days, X509 **out)
{
	X509_NAME *name = NULL;
	X509 *x = NULL;
	time_t now = time(NULL), nb, na, rnb, rna;
	struct ca_ip_range ranges[AMTCA_IP_RANGES_MAX];
	struct ca_policy defpol;
	size_t i, nranges = 0;
	int r, is_rsa = 0, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (root == NULL || root->sign == NULL || root_cert == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no root signer or certificate");
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(root_cert), root->pub) != 1) {
		ret = amtca_fail(AMTCA_E_CONFIG, "root key does not match the root "
		    "certificate");
		goto out;
	}
	if (X509_check_ca(root_cert) == 0) {
		ret = amtca_fail(AMTCA_E_CONFIG, "root certificate is not a CA");
		goto out;
	}
	if ((r = ca_key_check(inter_pub, AMTCA_E_CONFIG, "intermediate key",
	    &is_rsa)) != 0) {
		ret = r;
		goto out;
	}
	/* No policy is the default one: no IP names at all. */
	if (policy == NULL) {
		ca_policy_init(&defpol);
		policy = &defpol;
	}
	if (policy->ndomains > AMTCA_DOMAINS_MAX) {
		ret = amtca_fail(AMTCA_E_CONFIG, "more than %d policy domains",
		    AMTCA_DOMAINS_MAX);
		goto out;
	}
	for (i = 0; i < policy->ndomains; i++)
		if ((r = ca_domain_check(policy->domains[i])) != 0) {
			ret = r;
			goto out;
		}
	if ((r = ca_policy_ranges(policy, ranges, &nranges)) != 0) {
		ret = r;
		goto out;
	}
	if (days == 0)
		days = AMTCA_CA_DAYS_INTER;
	if (days < 0 || days > 100 * 366) {
		ret = amtca_fail(AMTCA_E_USAGE, "intermediate validity of %d days "
		    "is out of range", days);
		goto out;
	}
	rnb = ca_asn1_time_t(X509_get0_notBefore(root_cert));
	rna = ca_asn1_time_t(X509_get0_notAfter(root_cert));
	if (rnb == (time_t)-1 || rna == (time_t)-1 || rna <= now) {
		ret = amtca_fail(AMTCA_E_CERT, "root certificate has expired or "
		    "has an unreadable validity");
		goto out;
	}
	nb = now - AMTCA_SKEW_DEFAULT_S;
	if (nb < rnb)
		nb = rnb;
	na = now + (time_t)days * 86400;
	if (na > rna)
		na = rna;		/* never valid past the root */
	if ((r = make_name(cn, org, &name)) != 0) {
		ret = r;
		goto out;
	}
	if ((x = X509_new()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = ca_skeleton(x, name, X509_get_subject_name(root_cert), nb, na,
	    inter_pub)) != 0 ||
	    (r = ca_extensions(x, 1)) != 0 ||
	    (r = add_aki(x, root_cert)) != 0 ||
	    (r = add_name_constraints(x, policy, ranges, nranges)) != 0 ||
	    (r = sign_x509(root, x, key_strong(inter_pub), out)) != 0) {
		ret = r;
		goto out;
	}
	ret = 0;
out:
	X509_NAME_free(name);
	X509_free(x);
	return ret;
}

/*
 * The intermediate's request for an external root: subject CN (+O), the
 * HSM key, and an extensionRequest carrying exactly the extensions
 * ca_intermediate_create() would put in (CA:TRUE pathlen 0, keyCertSign +
 * cRLSign, name constraints), so that a root honouring requested
 * extensions (openssl -copy_extensions) makes the same CA.  They are built
 * on a scratch certificate by the same code and copied over, SKI aside.
 */
int
ca_intermediate_csr(const struct ca_signer *key, const char *cn,
    const char *org, const struct ca_policy *policy, X509_REQ **out)
{
	struct ca_ip_range ranges[AMTCA_IP_RANGES_MAX];
	STACK_OF(X509_EXTENSION) *exts = NULL;
	const STACK_OF(X509_EXTENSION) *all;
	X509_EXTENSION *e;
	X509_NAME *name = NULL;
	X509 *scratch = NULL;
	X509_REQ *req = NULL, *res = NULL;
	const X509_ALGOR *alg = NULL;
	const ASN1_BIT_STRING *sig = NULL;
	struct ca_sigalg a;
	unsigned char *tbs = NULL, *der = NULL;
	const unsigned char *p;
	size_t nranges = 0, derlen = 0, i;
	int tbslen, r, is_rsa = 0, have_alg = 0, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if (key == NULL || key->sign == NULL || policy == NULL) {
		ret = amtca_fail(AMTCA_E_USAGE, "no intermediate signer or policy");
		goto out;
	}
	for (i = 0; i < policy->ndomains; i++)
		if ((r = ca_domain_check(policy->domains[i])) != 0) {
			ret = r;
			goto out;
		}
	if ((r = ca_key_check(key->pub, AMTCA_E_CONFIG, "intermediate key",
	    &is_rsa)) != 0 || (r = ca_policy_ranges(policy, ranges,
	    &nranges)) != 0 || (r = make_name(cn, org, &name)) != 0) {
		ret = r;
		goto out;
	}
	if ((scratch = X509_new()) == NULL || (req = X509_REQ_new()) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (!X509_set_pubkey(scratch, key->pub)) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot build the request");
		goto out;
	}
	if ((r = ca_extensions(scratch, 1)) != 0 ||
	    (r = add_name_constraints(scratch, policy, ranges, nranges)) != 0) {
		ret = r;
		goto out;
	}
	all = X509_get0_extensions(scratch);
	for (i = 0; i < (size_t)sk_X509_EXTENSION_num(all); i++) {
		e = sk_X509_EXTENSION_value(all, (int)i);
		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) ==
		    NID_subject_key_identifier)
			continue;
		if (!sk_X509_EXTENSION_push(exts, e)) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
	}
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, key->pub) ||
	    !X509_REQ_add_extensions(req, exts)) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot build the request");
		goto out;
	}
	if ((r = ca_sigalg_init(&a, key->pub)) != 0) {
		ret = r;
		goto out;
	}
	have_alg = 1;
	X509_REQ_get0_signature(req, &sig, &alg);
	if (!X509_ALGOR_set0((X509_ALGOR *)alg, OBJ_nid2obj(a.nid), a.ptype,
	    NULL)) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((tbslen = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode the request");
		goto out;
	}
	if ((r = ca_sign_der(key, &a, tbs, (size_t)tbslen, &der, &derlen)) != 0) {
		ret = r;
		goto out;
	}
	p = der;
	if ((res = d2i_X509_REQ(NULL, &p, (long)derlen)) == NULL ||
	    X509_REQ_verify(res, key->pub) != 1) {
		ret = amtca_fail_ssl(AMTCA_E_CERT, "the signed request does not "
		    "verify");
		goto out;
	}
	*out = res;
	res = NULL;
	ret = 0;
out:
	if (have_alg)
		ca_sigalg_release(&a);
	OPENSSL_free(tbs);
	free(der);
	sk_X509_EXTENSION_free(exts);	/* borrowed from scratch */
	X509_free(scratch);
	X509_REQ_free(req);
	X509_REQ_free(res);
	X509_NAME_free(name);
	return ret;
}
