/*
 * Certificate building: root, intermediate and leaf profiles, checked by
 * parsing what was issued and by OpenSSL's own chain verification.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "soft_signer.h"

#define DAY 86400

static int
ext_crit(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	if (i < 0)
		return -1;
	assert_int_equal(X509_get_ext_by_NID(x, nid, i), -1);	/* once */
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static time_t
tt(const ASN1_TIME *t)
{
	struct tm tm;

	assert_true(ASN1_TIME_to_tm(t, &tm));
	return timegm(&tm);
}

static void
assert_near(time_t got, time_t want, time_t slack)
{
	if (got < want - slack || got > want + slack)
		fail_msg("time %lld not within %lld s of %lld", (long long)got,
		    (long long)slack, (long long)want);
}

static void
assert_sigalg(X509 *x, int nid, int null_params)
{
	const X509_ALGOR *outer, *inner = X509_get0_tbs_sigalg(x);
	const ASN1_OBJECT *obj;
	int ptype;

	X509_get0_signature(NULL, &outer, x);
	assert_int_equal(X509_ALGOR_cmp(outer, inner), 0);
	X509_ALGOR_get0(&obj, &ptype, NULL, inner);
	assert_int_equal(OBJ_obj2nid(obj), nid);
	assert_int_equal(ptype, null_params ? V_ASN1_NULL : V_ASN1_UNDEF);
}

/* The DER we wrote is exactly what OpenSSL's encoder writes (canonical). */
static void
assert_canonical(X509 *x)
{
	unsigned char *orig = NULL, *re = NULL, *copy = NULL;
	const unsigned char *p;
	int olen, rlen;
	X509 *y;

	olen = i2d_X509(x, &orig);
	assert_true(olen > 0);
	p = orig;
	y = d2i_X509(NULL, &p, olen);
	assert_non_null(y);
	rlen = i2d_re_X509_tbs(y, &re);	/* forces a fresh encoding */
	assert_true(rlen > 0);
	assert_int_equal(i2d_re_X509_tbs(x, &copy), rlen);
	assert_memory_equal(re, copy, (size_t)rlen);
	/* and the TBS sits verbatim inside the original bytes */
	assert_non_null(memmem(orig, (size_t)olen, re, (size_t)rlen));
	OPENSSL_free(orig);
	OPENSSL_free(re);
	OPENSSL_free(copy);
	X509_free(y);
}

static int
verify(struct test_pki *t, X509 *leaf, const char *host, int *err)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_VERIFY_PARAM *vp;
	int ok;

	assert_true(X509_STORE_add_cert(st, t->root_cert));
	sk_X509_push(untrusted, t->inter_cert);
	assert_true(X509_STORE_CTX_init(ctx, st, leaf, untrusted));
	vp = X509_STORE_CTX_get0_param(ctx);
	assert_true(X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER));
	if (host != NULL && (strchr(host, ':') != NULL ||
	    strspn(host, "0123456789.") == strlen(host)))
		assert_true(X509_VERIFY_PARAM_set1_ip_asc(vp, host));
	else if (host != NULL)
		assert_true(X509_VERIFY_PARAM_set1_host(vp, host, 0));
	ok = X509_verify_cert(ctx);
	*err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(untrusted);
	return ok;
}

static X509 *
build(struct test_pki *t, const char *key, const char *fqdn,
    const char *const *ips, size_t nips, int days, int *rc)
{
	struct ca_request req = { 0 };
	EVP_PKEY *k = soft_key(key, 0);
	X509 *x = NULL;

	req.fqdn = fqdn;
	req.csr = soft_ca_csr(k);
	req.ips = ips;
	req.nips = nips;
	req.days = days;
	/* A key that intake refuses never reaches issuance. */
	*rc = req.csr == NULL ? AMTCA_E_CSR : ca_leaf_build(t->ca, &req, &x);
	if (*rc != 0 && req.csr != NULL)
		assert_null(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	return *rc == 0 ? x : NULL;
}

static X509 *
build_ok(struct test_pki *t, const char *key, const char *fqdn,
    const char *const *ips, size_t nips)
{
	int rc;
	X509 *x = build(t, key, fqdn, ips, nips, 0, &rc);

	if (rc != 0)
		fail_msg("build %s: %s", fqdn, amtca_errmsg(rc));
	return x;
}

static void
test_root_profile(void **state)
{
	struct test_pki t;
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	unsigned char md[32];
	unsigned int mdlen;
	const ASN1_OCTET_STRING *ski;
	char cn[128];
	time_t now = time(NULL), after;

	(void)state;
	test_pki_init(&t, "rsa2048", "p256", 0, 0, NULL);
	after = time(NULL);	/* key generation may be slow (valgrind) */
	assert_int_equal(X509_get_version(t.root_cert), X509_VERSION_3);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(t.root_cert),
	    X509_get_issuer_name(t.root_cert)), 0);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(t.root_cert),
	    NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "Acme AMT Root");
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(t.root_cert),
	    NID_organizationName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "Acme");
	assert_int_equal(X509_verify(t.root_cert, t.root->s.pub), 1);
	assert_sigalg(t.root_cert, NID_sha256WithRSAEncryption, 1);

	assert_int_equal(ext_crit(t.root_cert, NID_basic_constraints), 1);
	bc = X509_get_ext_d2i(t.root_cert, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_null(bc->pathlen);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(ext_crit(t.root_cert, NID_key_usage), 1);
	ku = X509_get_ext_d2i(t.root_cert, NID_key_usage, NULL, NULL);
	assert_true(ASN1_BIT_STRING_get_bit(ku, 5) && ASN1_BIT_STRING_get_bit(ku, 6));
	assert_false(ASN1_BIT_STRING_get_bit(ku, 0));
	ASN1_BIT_STRING_free(ku);
	assert_int_equal(X509_get_key_usage(t.root_cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(ext_crit(t.root_cert, NID_subject_key_identifier), 0);
	ski = X509_get0_subject_key_id(t.root_cert);
	assert_true(X509_pubkey_digest(t.root_cert, EVP_sha1(), md, &mdlen));
	assert_int_equal(ASN1_STRING_length(ski), mdlen);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, mdlen);
	assert_int_equal(X509_get_ext_count(t.root_cert), 3);
	/* Made between `now` and `after`: 20 years from its making. */
	assert_true(tt(X509_get0_notAfter(t.root_cert)) >= now + 20 * 365 * DAY - 1);
	assert_true(tt(X509_get0_notAfter(t.root_cert)) <= after + 20 * 365 * DAY + 1);
	assert_int_equal(X509_check_ca(t.root_cert), 1);
	assert_canonical(t.root_cert);
	test_pki_free(&t);
}

/* An iPAddress subtree holding exactly the network `cidr` (address || mask). */
static void
assert_ip_subtree(const GENERAL_SUBTREE *st, const char *cidr)
{
	unsigned char want[32];
	struct ca_ip_range r;
	unsigned bits, i;

	assert_non_null(st);
	assert_int_equal(ca_ip_range_parse(cidr, &r), 0);
	memset(want, 0, sizeof(want));
	memcpy(want, r.addr, r.len);
	for (i = 0, bits = r.prefix; i < r.len; i++, bits = bits > 8 ? bits - 8 : 0)
		want[r.len + i] = (unsigned char)(0xff00u >> (bits > 8 ? 8 : bits));
	assert_int_equal(st->base->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(st->base->d.iPAddress), 2 * r.len);
	assert_memory_equal(ASN1_STRING_get0_data(st->base->d.iPAddress), want,
	    2 * r.len);
	assert_null(st->minimum);
	assert_null(st->maximum);
}

static void
test_intermediate_profile(void **state)
{
	struct test_pki t;
	BASIC_CONSTRAINTS *bc;
	NAME_CONSTRAINTS *nc;
	AUTHORITY_KEYID *aki;
	GENERAL_SUBTREE *st;
	const ASN1_OCTET_STRING *rski;
	int i;

	(void)state;
	test_pki_init(&t, "p384", "rsa2048", 0, 0, NULL);
	assert_int_equal(X509_verify(t.inter_cert, t.root->s.pub), 1);
	/* P-384 root: ecdsa-with-SHA384 with absent parameters. */
	assert_sigalg(t.inter_cert, NID_ecdsa_with_SHA384, 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(t.inter_cert),
	    X509_get_subject_name(t.root_cert)), 0);
	assert_int_equal(ext_crit(t.inter_cert, NID_basic_constraints), 1);
	bc = X509_get_ext_d2i(t.inter_cert, NID_basic_constraints, NULL, NULL);
	assert_true(bc->ca);
	assert_non_null(bc->pathlen);
	assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(ext_crit(t.inter_cert, NID_key_usage), 1);
	assert_int_equal(X509_get_key_usage(t.inter_cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(ext_crit(t.inter_cert, NID_subject_key_identifier), 0);
	assert_int_equal(ext_crit(t.inter_cert, NID_authority_key_identifier), 0);
	aki = X509_get_ext_d2i(t.inter_cert, NID_authority_key_identifier, NULL, NULL);
	rski = X509_get0_subject_key_id(t.root_cert);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, rski), 0);
	AUTHORITY_KEYID_free(aki);
	/*
	 * Name constraints: critical, permitted = exactly the policy's domains
	 * and IP ranges; both families have a range, so nothing is excluded.
	 */
	assert_int_equal(ext_crit(t.inter_cert, NID_name_constraints), 1);
	nc = X509_get_ext_d2i(t.inter_cert, NID_name_constraints, NULL, NULL);
	assert_non_null(nc);
	assert_null(nc->excludedSubtrees);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees),
	    (int)(test_ndomains + test_nip_ranges));
	for (i = 0; i < (int)test_ndomains; i++) {
		st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);
		assert_int_equal(st->base->type, GEN_DNS);
		assert_string_equal((const char *)ASN1_STRING_get0_data(
		    st->base->d.dNSName), test_domains[i]);
	}
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i++),
	    "192.0.2.0/24");
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i),
	    "2001:db8::/32");
	NAME_CONSTRAINTS_free(nc);
	assert_int_equal(X509_get_ext_count(t.inter_cert), 5);
	assert_true(X509_cmp_time(X509_get0_notAfter(t.inter_cert), NULL) > 0);
	assert_canonical(t.inter_cert);
	test_pki_free(&t);
}

static void
test_intermediate_never_outlives_root(void **state)
{
	struct test_pki t;

	(void)state;
	test_pki_init(&t, "p256", "p256", 30, 3650, NULL);
	assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(t.inter_cert),
	    X509_get0_notAfter(t.root_cert)), 0);
	test_pki_free(&t);
}

static void
test_leaf_profile_rsa(void **state)
{
	static const char *const ips[] = { "192.0.2.7", "2001:db8::1" };
	static const unsigned char ip4[] = { 192, 0, 2, 7 };
	static const unsigned char ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct test_pki t;
	X509 *x;
	GENERAL_NAMES *san;
	GENERAL_NAME *gn;
	EXTENDED_KEY_USAGE *eku;
	CRL_DIST_POINTS *cdp;
	AUTHORITY_INFO_ACCESS *aia;
	AUTHORITY_KEYID *aki;
	BASIC_CONSTRAINTS *bc;
	ACCESS_DESCRIPTION *ad;
	DIST_POINT *dp;
	const ASN1_INTEGER *serial;
	unsigned char md[32];
	unsigned int mdlen;
	char buf[256];
	time_t now = time(NULL);
	int err;

	(void)state;
	test_pki_init(&t, "rsa2048", "p256", 0, 0, NULL);
	EVP_PKEY_free(soft_key("rsa2048", 0));	/* warm the key cache before timing */
	now = time(NULL);
	x = build_ok(&t, "rsa2048", "AMT-7.Example.com", ips, 2);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_verify(x, t.inter->s.pub), 1);
	assert_sigalg(x, NID_ecdsa_with_SHA256, 0);
	serial = X509_get0_serialNumber(x);
	assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
	assert_int_equal(ASN1_STRING_length(serial), AMTCA_SERIAL_BYTES);

	/* Subject: C=DE, O=Acme, CN=<lowercased FQDN>; issuer = intermediate. */
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 3);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
	    sizeof(buf));
	assert_string_equal(buf, "amt-7.example.com");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName,
	    buf, sizeof(buf));
	assert_string_equal(buf, "Acme");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_countryName, buf,
	    sizeof(buf));
	assert_string_equal(buf, "DE");
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
	    X509_get_subject_name(t.inter_cert)), 0);

	/* Exactly these eight extensions, with these criticalities. */
	assert_int_equal(X509_get_ext_count(x), 8);
	assert_int_equal(ext_crit(x, NID_basic_constraints), 1);
	assert_int_equal(ext_crit(x, NID_key_usage), 1);
	assert_int_equal(ext_crit(x, NID_ext_key_usage), 0);
	assert_int_equal(ext_crit(x, NID_subject_alt_name), 0);
	assert_int_equal(ext_crit(x, NID_subject_key_identifier), 0);
	assert_int_equal(ext_crit(x, NID_authority_key_identifier), 0);
	assert_int_equal(ext_crit(x, NID_crl_distribution_points), 0);
	assert_int_equal(ext_crit(x, NID_info_access), 0);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_check_ca(x), 0);
	/* RSA leaf: digitalSignature + keyEncipherment, nothing else. */
	assert_int_equal(X509_get_key_usage(x),
	    KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_client_auth);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);

	san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(san), 3);
	gn = sk_GENERAL_NAME_value(san, 0);
	assert_int_equal(gn->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
	    "amt-7.example.com");
	gn = sk_GENERAL_NAME_value(san, 1);
	assert_int_equal(gn->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(gn->d.iPAddress), 4);
	assert_memory_equal(ASN1_STRING_get0_data(gn->d.iPAddress), ip4, 4);
	gn = sk_GENERAL_NAME_value(san, 2);
	assert_int_equal(ASN1_STRING_length(gn->d.iPAddress), 16);
	assert_memory_equal(ASN1_STRING_get0_data(gn->d.iPAddress), ip6, 16);
	GENERAL_NAMES_free(san);

	assert_true(X509_pubkey_digest(x, EVP_sha1(), md, &mdlen));
	assert_memory_equal(ASN1_STRING_get0_data(X509_get0_subject_key_id(x)),
	    md, mdlen);
	aki = X509_get_ext_d2i(x, NID_authority_key_identifier, NULL, NULL);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid,
	    X509_get0_subject_key_id(t.inter_cert)), 0);
	assert_null(aki->issuer);
	AUTHORITY_KEYID_free(aki);

	cdp = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	assert_int_equal(sk_DIST_POINT_num(cdp), 1);
	dp = sk_DIST_POINT_value(cdp, 0);
	assert_int_equal(dp->distpoint->type, 0);
	gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
	assert_int_equal(gn->type, GEN_URI);
	assert_string_equal((const char *)ASN1_STRING_get0_data(
	    gn->d.uniformResourceIdentifier), "http://ca.example.com/amt.crl");
	CRL_DIST_POINTS_free(cdp);
	aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	assert_int_equal(sk_ACCESS_DESCRIPTION_num(aia), 1);
	ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
	assert_int_equal(OBJ_obj2nid(ad->method), NID_ad_ca_issuers);
	assert_string_equal((const char *)ASN1_STRING_get0_data(
	    ad->location->d.uniformResourceIdentifier),
	    "http://ca.example.com/amt.cer");
	AUTHORITY_INFO_ACCESS_free(aia);

	/* notBefore = now - 1 h, notAfter = now + 397 days. */
	assert_near(tt(X509_get0_notBefore(x)), now - 3600, 5);
	assert_near(tt(X509_get0_notAfter(x)), now + 397 * DAY, 5);

	assert_int_equal(verify(&t, x, "amt-7.example.com", &err), 1);
	assert_int_equal(verify(&t, x, "192.0.2.7", &err), 1);
	assert_int_equal(verify(&t, x, "192.0.2.8", &err), 0);
	assert_int_equal(err, X509_V_ERR_IP_ADDRESS_MISMATCH);
	assert_int_equal(verify(&t, x, "other.example.com", &err), 0);
	assert_int_equal(err, X509_V_ERR_HOSTNAME_MISMATCH);
	assert_canonical(x);
	X509_free(x);
	test_pki_free(&t);
}

static void
test_leaf_ec_key_usage(void **state)
{
	struct test_pki t;
	X509 *x;
	int err;

	(void)state;
	test_pki_init(&t, "p256", "rsa2048", 0, 0, NULL);
	x = build_ok(&t, "p256", "ec.corp.local", NULL, 0);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_sigalg(x, NID_sha256WithRSAEncryption, 1);
	assert_int_equal(verify(&t, x, "ec.corp.local", &err), 1);
	X509_free(x);
	x = build_ok(&t, "p384", "ec.corp.local", NULL, 0);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	X509_free(x);
	test_pki_free(&t);
}

static void
test_p384_issuer_uses_sha384(void **state)
{
	struct test_pki t;
	X509 *x;
	int err;

	(void)state;
	test_pki_init(&t, "p384", "p384", 0, 0, NULL);
	x = build_ok(&t, "p256", "a.example.com", NULL, 0);
	assert_sigalg(x, NID_ecdsa_with_SHA384, 0);
	assert_int_equal(X509_verify(x, t.inter->s.pub), 1);
	assert_int_equal(verify(&t, x, "a.example.com", &err), 1);
	X509_free(x);
	test_pki_free(&t);
}

/* A leaf built with req.digest set, from a key of `kind`. */
static X509 *
build_digest(struct test_pki *t, const char *kind, enum ca_digest dig, int *rc)
{
	EVP_PKEY *k = soft_key(kind, 0);
	struct ca_csr *csr = soft_ca_csr(k);
	struct ca_request req;
	X509 *x = NULL;

	assert_non_null(csr);
	memset(&req, 0, sizeof(req));
	req.fqdn = "amt22.corp.local";
	req.csr = csr;
	req.digest = dig;
	*rc = ca_leaf_build(t->ca, &req, &x);
	ca_csr_free(csr);
	EVP_PKEY_free(k);
	return x;
}

/* AMT 22 wants SHA-384 leaves whatever the issuing key; asking for a
 * digest overrides the issuer's default both ways, and the default stays. */
static void
test_leaf_digest_requested(void **state)
{
	static const struct {
		const char *inter;
		enum ca_digest dig;
		int nid, null_params;
	} cases[] = {
		{ "rsa2048", CA_DIGEST_DEFAULT, NID_sha256WithRSAEncryption, 1 },
		{ "rsa2048", CA_DIGEST_SHA384, NID_sha384WithRSAEncryption, 1 },
		{ "rsa2048", CA_DIGEST_SHA256, NID_sha256WithRSAEncryption, 1 },
		{ "p256", CA_DIGEST_SHA384, NID_ecdsa_with_SHA384, 0 },
		{ "p384", CA_DIGEST_DEFAULT, NID_ecdsa_with_SHA384, 0 },
		{ "p384", CA_DIGEST_SHA256, NID_ecdsa_with_SHA256, 0 },
	};
	struct test_pki t;
	X509 *x;
	size_t i;
	int rc, err;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_pki_init(&t, "p384", cases[i].inter, 0, 0, NULL);
		x = build_digest(&t, i % 2 ? "p384" : "rsa3072", cases[i].dig, &rc);
		assert_int_equal(rc, 0);
		assert_sigalg(x, cases[i].nid, cases[i].null_params);
		assert_int_equal(X509_verify(x, t.inter->s.pub), 1);
		assert_int_equal(verify(&t, x, "amt22.corp.local", &err), 1);
		assert_canonical(x);
		X509_free(x);
		test_pki_free(&t);
	}
	test_pki_init(&t, "p384", "p384", 0, 0, NULL);
	x = build_digest(&t, "p384", (enum ca_digest)7, &rc);
	assert_int_equal(rc, AMTCA_E_USAGE);
	assert_null(x);
	test_pki_free(&t);
}

static void
test_validity_clamp_and_days(void **state)
{
	struct test_pki t;
	X509 *x;
	time_t now = time(NULL);
	int rc, err;

	(void)state;
	/* Intermediate lives 10 days: a 397-day leaf stops with it. */
	test_pki_init(&t, "p256", "p256", 0, 10, NULL);
	now = time(NULL);	/* after key generation, which may be slow */
	x = build_ok(&t, "p256", "a.example.com", NULL, 0);
	assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x),
	    X509_get0_notAfter(t.inter_cert)), 0);
	assert_int_equal(verify(&t, x, NULL, &err), 1);
	X509_free(x);
	/* Requested days count; beyond the cap is a policy error. */
	x = build(&t, "p256", "a.example.com", NULL, 0, 3, &rc);
	assert_int_equal(rc, 0);
	assert_near(tt(X509_get0_notAfter(x)), now + 3 * DAY, 5);
	X509_free(x);
	assert_null(build(&t, "p256", "a.example.com", NULL, 0, AMTCA_DAYS_MAX + 1, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	assert_null(build(&t, "p256", "a.example.com", NULL, 0, -1, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	test_pki_free(&t);
}

static void
test_skew_from_policy(void **state)
{
	struct test_pki t;
	struct ca *ca2 = NULL;
	struct ca_request req = { 0 };
	EVP_PKEY *k;
	X509 *x = NULL;
	time_t now = time(NULL);

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	now = time(NULL);	/* after key generation, which may be slow */
	t.pol.skew_s = 120;
	t.pol.days = 30;
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &t.pol, NULL, &ca2), 0);
	k = soft_key("p256", 0);
	req.fqdn = "a.example.com";
	req.csr = soft_ca_csr(k);
	assert_int_equal(ca_leaf_build(ca2, &req, &x), 0);
	assert_near(tt(X509_get0_notBefore(x)), now - 120, 5);
	assert_near(tt(X509_get0_notAfter(x)), now + 30 * DAY, 5);
	X509_free(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	ca_free(ca2);
	/* Out-of-range policy values are configuration errors. */
	t.pol.skew_s = AMTCA_SKEW_MAX_S + 1;
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &t.pol, NULL, &ca2),
	    AMTCA_E_CONFIG);
	assert_null(ca2);
	test_pki_free(&t);
}

static void
test_name_constraints_enforced(void **state)
{
	struct test_pki t;
	struct ca_policy open;
	struct ca *ca2 = NULL;
	struct ca_request req = { 0 };
	EVP_PKEY *k;
	X509 *x = NULL;
	int err;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	/* A CA object with a looser policy than its intermediate's NC. */
	ca_policy_init(&open);
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &open, NULL, &ca2), 0);
	k = soft_key("p256", 0);
	req.fqdn = "host.other.org";
	req.csr = soft_ca_csr(k);
	assert_int_equal(ca_leaf_build(ca2, &req, &x), 0);
	assert_int_equal(verify(&t, x, "host.other.org", &err), 0);
	assert_int_equal(err, X509_V_ERR_PERMITTED_VIOLATION);
	X509_free(x);
	/* The policy itself refuses the same request. */
	x = (X509 *)&x;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_POLICY);
	assert_null(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	ca_free(ca2);
	test_pki_free(&t);
}

/*
 * A second intermediate under t's root for `pol`, and a CA over it whose
 * own policy (`loose`) permits every address: what it issues shows what
 * the intermediate's constraints alone let a verifier accept.
 */
static void
constrained_pair(struct test_pki *t, const struct ca_policy *pol,
    X509 **inter, struct ca **loose_ca, struct ca_policy *loose)
{
	static const char *const all[] = { "0.0.0.0/0", "::/0" };
	EVP_PKEY *ipub = soft_pub(t->inter->key);

	assert_int_equal(ca_intermediate_create(&t->root->s, t->root_cert, ipub,
	    "Acme AMT/Issuing CA 2", "Acme", pol, 0, inter), 0);
	EVP_PKEY_free(ipub);
	ca_policy_init(loose);
	loose->ip_ranges = all;
	loose->nip_ranges = 2;
	assert_int_equal(ca_new(&t->inter->s, *inter, loose, NULL, loose_ca), 0);
}

/* Build with `ca`, verify for `ip` under t's root and `inter`. */
static int
ip_verifies(struct test_pki *t, struct ca *ca, X509 *inter, const char *ip,
    int *err)
{
	const char *const ips[] = { ip };
	struct ca_request req = { 0 };
	struct test_pki view = *t;
	EVP_PKEY *k = soft_key("p256", 0);
	X509 *x = NULL;
	int ok;

	req.fqdn = "amt-1.example.com";
	req.csr = soft_ca_csr(k);
	req.ips = ips;
	req.nips = 1;
	assert_int_equal(ca_leaf_build(ca, &req, &x), 0);
	view.inter_cert = inter;
	ok = verify(&view, x, ip, err);
	X509_free(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	return ok;
}

static void
test_ip_names_within_ranges(void **state)
{
	static const char *const out4[] = { "8.8.8.8" };
	static const char *const zero[] = { "0.0.0.0" };
	static const char *const any6[] = { "::" };
	static const char *const mapped[] = { "::ffff:192.0.2.7" };
	static const char *const in[] = { "192.0.2.255", "2001:db8:ffff::9" };
	struct test_pki t;
	struct ca_policy none;
	struct ca *ca2 = NULL;
	X509 *x;
	int rc;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	x = build_ok(&t, "p256", "a.example.com", in, 2);
	X509_free(x);
	assert_null(build(&t, "p256", "a.example.com", out4, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	/* One line naming the address and the ranges. */
	assert_non_null(strstr(amtca_errmsg(rc), "8.8.8.8"));
	assert_non_null(strstr(amtca_errmsg(rc), "192.0.2.0/24, 2001:db8::/32"));
	assert_null(build(&t, "p256", "a.example.com", zero, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	assert_null(build(&t, "p256", "a.example.com", any6, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	/* An IPv4-mapped IPv6 address is IPv6: not inside 192.0.2.0/24. */
	assert_null(build(&t, "p256", "a.example.com", mapped, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	/* No ranges: no IP names at all. */
	none = t.pol;
	none.ip_ranges = NULL;
	none.nip_ranges = 0;
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &none, NULL, &ca2), 0);
	{
		const char *const ips[] = { "192.0.2.7" };
		struct ca_request req = { 0 };
		EVP_PKEY *k = soft_key("p256", 0);

		req.fqdn = "a.example.com";
		req.csr = soft_ca_csr(k);
		req.ips = ips;
		req.nips = 1;
		x = (X509 *)&x;
		assert_int_equal(ca_leaf_build(ca2, &req, &x), AMTCA_E_POLICY);
		assert_null(x);
		assert_non_null(strstr(amtca_errmsg(AMTCA_E_POLICY), "no IP ranges"));
		ca_csr_free((struct ca_csr *)req.csr);
		EVP_PKEY_free(k);
	}
	ca_free(ca2);
	test_pki_free(&t);
}

static void
test_ip_name_constraints(void **state)
{
	static const char *const v4only[] = { "10.0.0.0/8" };
	struct test_pki t;
	struct ca_policy pol, loose;
	NAME_CONSTRAINTS *nc;
	struct ca *ca2 = NULL;
	X509 *inter = NULL;
	int err;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	/* Under t's own intermediate (192.0.2.0/24, 2001:db8::/32). */
	ca_policy_init(&loose);
	{
		static const char *const all[] = { "0.0.0.0/0", "::/0" };

		loose.ip_ranges = all;
		loose.nip_ranges = 2;
		assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &loose, NULL,
		    &ca2), 0);
	}
	assert_int_equal(ip_verifies(&t, ca2, t.inter_cert, "192.0.2.200", &err), 1);
	assert_int_equal(ip_verifies(&t, ca2, t.inter_cert, "2001:db8::7", &err), 1);
	assert_int_equal(ip_verifies(&t, ca2, t.inter_cert, "8.8.8.8", &err), 0);
	assert_int_equal(err, X509_V_ERR_PERMITTED_VIOLATION);
	assert_int_equal(ip_verifies(&t, ca2, t.inter_cert, "2001:db9::1", &err), 0);
	assert_int_equal(err, X509_V_ERR_PERMITTED_VIOLATION);
	ca_free(ca2);
	ca2 = NULL;

	/* IPv4 ranges only: ::/0 excluded, so no IPv6 name validates. */
	pol = t.pol;
	pol.ip_ranges = v4only;
	pol.nip_ranges = 1;
	constrained_pair(&t, &pol, &inter, &ca2, &loose);
	nc = X509_get_ext_d2i(inter, NID_name_constraints, NULL, NULL);
	assert_non_null(nc);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees),
	    (int)test_ndomains + 1);
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->permittedSubtrees,
	    (int)test_ndomains), "10.0.0.0/8");
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 1);
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 0), "::/0");
	NAME_CONSTRAINTS_free(nc);
	assert_int_equal(ip_verifies(&t, ca2, inter, "10.1.2.3", &err), 1);
	assert_int_equal(ip_verifies(&t, ca2, inter, "11.0.0.1", &err), 0);
	assert_int_equal(err, X509_V_ERR_PERMITTED_VIOLATION);
	/*
	 * OpenSSL already refuses an IPv6 name once any iPAddress subtree is
	 * permitted; the ::/0 exclusion checked above is for verifiers that
	 * read permitted subtrees per address family.
	 */
	assert_int_equal(ip_verifies(&t, ca2, inter, "2001:db8::1", &err), 0);
	assert_true(err == X509_V_ERR_PERMITTED_VIOLATION ||
	    err == X509_V_ERR_EXCLUDED_VIOLATION);
	ca_free(ca2);
	X509_free(inter);

	/* No ranges: both families excluded whole. */
	pol.ip_ranges = NULL;
	pol.nip_ranges = 0;
	constrained_pair(&t, &pol, &inter, &ca2, &loose);
	nc = X509_get_ext_d2i(inter, NID_name_constraints, NULL, NULL);
	assert_non_null(nc);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees),
	    (int)test_ndomains);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 0),
	    "0.0.0.0/0");
	assert_ip_subtree(sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 1), "::/0");
	NAME_CONSTRAINTS_free(nc);
	assert_int_equal(ip_verifies(&t, ca2, inter, "8.8.8.8", &err), 0);
	assert_int_equal(err, X509_V_ERR_EXCLUDED_VIOLATION);
	assert_int_equal(ip_verifies(&t, ca2, inter, "0.0.0.0", &err), 0);
	assert_int_equal(ip_verifies(&t, ca2, inter, "::", &err), 0);
	assert_int_equal(err, X509_V_ERR_EXCLUDED_VIOLATION);
	ca_free(ca2);
	X509_free(inter);

	/* No domains and no ranges (an --any-domain CA): still no IP names. */
	ca_policy_init(&pol);
	constrained_pair(&t, &pol, &inter, &ca2, &loose);
	nc = X509_get_ext_d2i(inter, NID_name_constraints, NULL, NULL);
	assert_non_null(nc);
	assert_null(nc->permittedSubtrees);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	NAME_CONSTRAINTS_free(nc);
	assert_int_equal(ip_verifies(&t, ca2, inter, "8.8.8.8", &err), 0);
	assert_int_equal(err, X509_V_ERR_EXCLUDED_VIOLATION);
	ca_free(ca2);
	X509_free(inter);
	test_pki_free(&t);
}

/*
 * The leaf's SubjectPublicKeyInfo is the canonical encoding of the key
 * (OpenSSL's i2d_PUBKEY), not the request's bytes, and the SKI hashes it.
 */
static void
test_leaf_spki_canonical(void **state)
{
	static const struct { const char *kind, *form; } cases[] = {
		{ "rsa2048", "rsa-noparams" }, { "p256", "compressed" },
		{ "p256", "hybrid" }, { "p384", "compressed" }, { "p384", "hybrid" },
	};
	struct test_pki t;
	struct ca_request req = { 0 };
	struct ca_csr *csr;
	unsigned char *der, *want, *got, *leaf, md[20];
	const unsigned char *bits;
	const ASN1_OCTET_STRING *ski;
	size_t i, len, wlen;
	int glen, llen, bitslen;
	EVP_PKEY *k;
	X509 *x;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k = soft_key(cases[i].kind, 0);
		len = soft_csr_der_spki(k, cases[i].form, &der);
		csr = NULL;
		assert_int_equal(ca_csr_parse(der, len, &csr), 0);
		req.fqdn = "amt-9.example.com";
		req.csr = csr;
		x = NULL;
		assert_int_equal(ca_leaf_build(t.ca, &req, &x), 0);
		wlen = soft_spki_canonical(k, &want);
		got = NULL;
		glen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &got);
		if (glen != (int)wlen || memcmp(got, want, wlen) != 0)
			fail_msg("%s %s: leaf SPKI is not canonical", cases[i].kind,
			    cases[i].form);
		/* Verbatim in the signed bytes, not only after re-encoding. */
		leaf = NULL;
		llen = i2d_X509(x, &leaf);
		assert_non_null(memmem(leaf, (size_t)llen, want, wlen));
		assert_null(memmem(der, len, want, wlen));	/* the CSR differed */
		assert_true(X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL,
		    X509_get_X509_PUBKEY(x)));
		assert_true(EVP_Digest(bits, (size_t)bitslen, md, NULL, EVP_sha1(),
		    NULL));
		ski = X509_get0_subject_key_id(x);
		assert_non_null(ski);
		assert_int_equal(ASN1_STRING_length(ski), 20);
		assert_memory_equal(ASN1_STRING_get0_data(ski), md, 20);
		assert_int_equal(X509_verify(x, t.inter->s.pub), 1);
		assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
		OPENSSL_free(leaf);
		OPENSSL_free(got);
		OPENSSL_free(want);
		X509_free(x);
		ca_csr_free(csr);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
	test_pki_free(&t);
}

static void
test_bad_ips_and_names(void **state)
{
	static const char *const junk[] = { "192.0.2.300" };
	static const char *const junk2[] = { "10.0.0.1", "not-an-ip" };
	static const char *const scoped[] = { "fe80::1%eth0" };
	static const char *const many[AMTCA_IPS_MAX + 1] = {
		"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5",
		"10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9" };
	struct test_pki t;
	int rc;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	assert_null(build(&t, "p256", "a.example.com", junk, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_USAGE);
	assert_null(build(&t, "p256", "a.example.com", junk2, 2, 0, &rc));
	assert_int_equal(rc, AMTCA_E_USAGE);
	assert_non_null(strstr(amtca_errmsg(rc), "not-an-ip"));
	assert_null(build(&t, "p256", "a.example.com", scoped, 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_USAGE);
	assert_null(build(&t, "p256", "a.example.com", many, AMTCA_IPS_MAX + 1, 0, &rc));
	assert_int_equal(rc, AMTCA_E_LIMIT);
	assert_null(build(&t, "p256", "a..example.com", NULL, 0, 0, &rc));
	assert_int_equal(rc, AMTCA_E_FQDN);
	assert_null(build(&t, "p256", "*.example.com", NULL, 0, 0, &rc));
	assert_int_equal(rc, AMTCA_E_POLICY);
	/* A CSR key that intake refuses is refused. */
	assert_null(build(&t, "rsa1024", "a.example.com", NULL, 0, 0, &rc));
	assert_int_equal(rc, AMTCA_E_CSR);
	test_pki_free(&t);
}

static void
test_long_fqdn_goes_to_san_only(void **state)
{
	struct test_pki t;
	struct ca *ca2 = NULL;
	struct ca_policy bare;
	struct ca_request req = { 0 };
	char name[128];
	EVP_PKEY *k;
	X509 *x = NULL;
	int err;

	(void)state;
	/* 70 characters: longer than ub-common-name (64). */
	memset(name, 'a', 58);
	strcpy(name + 58, ".example.com");
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	x = build_ok(&t, "p256", name, NULL, 0);
	assert_int_equal(X509_NAME_get_index_by_NID(X509_get_subject_name(x),
	    NID_commonName, -1), -1);
	assert_int_equal(ext_crit(x, NID_subject_alt_name), 0);	/* O, C remain */
	assert_int_equal(verify(&t, x, name, &err), 1);
	X509_free(x);
	/* No O/C either: empty subject, so the SAN must be critical. */
	ca_policy_init(&bare);
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &bare, NULL, &ca2), 0);
	k = soft_key("p256", 0);
	req.fqdn = name;
	req.csr = soft_ca_csr(k);
	x = NULL;
	assert_int_equal(ca_leaf_build(ca2, &req, &x), 0);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	assert_int_equal(ext_crit(x, NID_subject_alt_name), 1);
	assert_int_equal(verify(&t, x, name, &err), 1);
	X509_free(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	ca_free(ca2);
	test_pki_free(&t);
}

static void
test_ca_new_checks(void **state)
{
	struct test_pki t;
	struct ca *ca2 = (struct ca *)&ca2;
	static const char *const bad_dom[] = { "exa mple.com" };

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	/* Signer key does not match the issuer certificate. */
	assert_int_equal(ca_new(&t.root->s, t.inter_cert, &t.pol, NULL, &ca2),
	    AMTCA_E_CONFIG);
	assert_null(ca2);
	t.pol.domains = bad_dom;
	t.pol.ndomains = 1;
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &t.pol, NULL, &ca2),
	    AMTCA_E_CONFIG);
	t.pol.domains = test_domains;
	t.pol.ndomains = test_ndomains;
	t.pol.crl_url = "http://bad url/";
	assert_int_equal(ca_new(&t.inter->s, t.inter_cert, &t.pol, NULL, &ca2),
	    AMTCA_E_CONFIG);
	test_pki_free(&t);
}

static void
test_issue_records_or_refuses(void **state)
{
	struct test_pki t;
	struct store *st = NULL;
	struct store_cert *rec = NULL;
	struct ca_request req = { 0 };
	unsigned char *der = NULL;
	char *dir, path[512], *hex = NULL;
	EVP_PKEY *k;
	X509 *x = (X509 *)&x;
	int len;

	(void)state;
	/* Without a store nothing is issued. */
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	k = soft_key("p256", 0);
	req.fqdn = "Rec.Example.com";
	req.csr = soft_ca_csr(k);
	req.requester = "unit";
	req.device = "rec.example.com";
	assert_int_equal(ca_issue(t.ca, &req, &x), AMTCA_E_STORE);
	assert_null(x);
	test_pki_free(&t);

	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/amtca.db", dir);
	assert_int_equal(store_open(path, 1, &st), 0);
	test_pki_init(&t, "p256", "p256", 0, 0, st);
	assert_int_equal(ca_issue(t.ca, &req, &x), 0);
	assert_int_equal(ca_serial_hex(X509_get0_serialNumber(x), &hex), 0);
	assert_int_equal(store_cert_get(st, hex, &rec), 0);
	len = i2d_X509(x, &der);
	assert_int_equal(rec->der_len, (size_t)len);
	assert_memory_equal(rec->der, der, (size_t)len);
	assert_string_equal(rec->fqdn, "rec.example.com");
	assert_string_equal(rec->status, "valid");
	assert_string_equal(rec->requester, "unit");
	assert_string_equal(rec->device, "rec.example.com");
	assert_int_equal(rec->not_after, tt(X509_get0_notAfter(x)));
	assert_int_equal(rec->not_before, tt(X509_get0_notBefore(x)));
	store_cert_free(rec);
	OPENSSL_free(der);
	free(hex);
	X509_free(x);
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	test_pki_free(&t);
	store_close(st);
	test_rmrf(dir);
	free(dir);
}

static void
test_issue_der_matches_record(void **state)
{
	struct test_pki t;
	struct store *st = NULL;
	struct store_cert *rec = NULL;
	struct ca_request req = { 0 };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	char *dir, path[512], *serial = NULL, *hex = NULL;
	EVP_PKEY *k;
	X509 *x;

	(void)state;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/amtca.db", dir);
	assert_int_equal(store_open(path, 1, &st), 0);
	test_pki_init(&t, "p256", "rsa2048", 0, 0, st);
	k = soft_key("p256", 0);
	req.fqdn = "der.example.com";
	req.csr = soft_ca_csr(k);
	assert_int_equal(ca_issue_der(t.ca, &req, &der, &len, &serial), 0);
	/* The DER parses, carries the serial handed back, and is the record. */
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	assert_int_equal(X509_verify(x, t.inter->s.pub), 1);
	assert_int_equal(ca_serial_hex(X509_get0_serialNumber(x), &hex), 0);
	assert_string_equal(serial, hex);
	assert_int_equal(store_cert_get(st, serial, &rec), 0);
	assert_int_equal(rec->der_len, len);
	assert_memory_equal(rec->der, der, len);
	store_cert_free(rec);
	free(der);
	free(serial);
	free(hex);
	X509_free(x);
	/* Building without recording leaves the store untouched. */
	{
		struct store_cert *v = NULL;
		size_t n = 0;

		assert_int_equal(ca_leaf_build_der(t.ca, &req, &der, &len), 0);
		free(der);
		assert_int_equal(store_cert_list(st, &v, &n), 0);
		assert_int_equal(n, 1);
		store_certs_free(v, n);
	}
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	test_pki_free(&t);
	store_close(st);
	test_rmrf(dir);
	free(dir);
}

/* Pipelined issuance: the certificate is handed over only once recorded. */
struct submit_ctx {
	struct store *st;
	X509 *inter;
	EVP_PKEY *inter_pub;
	int calls, ok, recorded_at_callback, verified;
	char serial[64];
};

static void
submitted(void *arg, int result, const char *msg, unsigned char *der,
    size_t len, const char *serial)
{
	struct submit_ctx *c = arg;
	struct store_cert *rec = NULL;
	const unsigned char *p = der;
	X509 *x;

	(void)msg;
	c->calls++;
	if (result != 0) {
		assert_null(der);
		return;
	}
	c->ok++;
	snprintf(c->serial, sizeof(c->serial), "%s", serial);
	if (store_cert_get(c->st, serial, &rec) == 0 && rec->der_len == len &&
	    memcmp(rec->der, der, len) == 0)
		c->recorded_at_callback++;
	store_cert_free(rec);
	if ((x = d2i_X509(NULL, &p, (long)len)) != NULL &&
	    X509_verify(x, c->inter_pub) == 1)
		c->verified++;
	X509_free(x);
	free(der);
}

static void
test_issue_submit_releases_after_record(void **state)
{
	struct test_pki t;
	struct store *st = NULL;
	struct ca_request req = { 0 };
	struct submit_ctx c = { 0 };
	char *dir, path[512];
	EVP_PKEY *k;
	int i;

	(void)state;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/amtca.db", dir);
	assert_int_equal(store_open(path, 1, &st), 0);
	test_pki_init(&t, "p256", "p256", 0, 0, st);
	c.st = st;
	c.inter_pub = t.inter->s.pub;
	k = soft_key("rsa2048", 0);
	req.fqdn = "pipe.example.com";
	req.csr = soft_ca_csr(k);
	req.requester = "unit";
	for (i = 0; i < 10; i++)
		assert_int_equal(ca_issue_submit(t.ca, &req, submitted, &c), 0);
	/* Refused up front (policy): no callback. */
	req.fqdn = "pipe.other.org";
	assert_int_equal(ca_issue_submit(t.ca, &req, submitted, &c), AMTCA_E_POLICY);
	ca_csr_free((struct ca_csr *)req.csr);	/* may go right after submit */
	/* store_close() drains the pipeline: every callback has run after it. */
	store_close(st);
	test_pki_free(&t);
	assert_int_equal(c.calls, 10);
	assert_int_equal(c.ok, 10);
	assert_int_equal(c.recorded_at_callback, 10);
	assert_int_equal(c.verified, 10);
	EVP_PKEY_free(k);
	test_rmrf(dir);
	free(dir);
}

#define THREADS 4
#define PER_THREAD 25

struct worker {
	struct test_pki *t;
	struct ca_csr *csr;
	int failures;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	struct ca_request req = { 0 };
	X509 *x;
	int i;

	req.fqdn = "t.example.com";
	req.csr = w->csr;
	for (i = 0; i < PER_THREAD; i++) {
		x = NULL;
		if (ca_leaf_build(w->t->ca, &req, &x) != 0 ||
		    X509_verify(x, w->t->inter->s.pub) != 1)
			w->failures++;
		X509_free(x);
	}
	return NULL;
}

static void
test_concurrent_building(void **state)
{
	struct test_pki t;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	EVP_PKEY *k;
	int i;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	k = soft_key("rsa2048", 0);
	for (i = 0; i < THREADS; i++) {
		w[i].t = &t;
		w[i].csr = soft_ca_csr(k);
		w[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
		ca_csr_free(w[i].csr);
	}
	EVP_PKEY_free(k);
	test_pki_free(&t);
}

/* Has the EKU exactly the bits of `want` (XKU_SSL_SERVER, XKU_SSL_CLIENT)? */
static void
assert_eku(X509 *x, uint32_t want)
{
	assert_int_equal(X509_get_extended_key_usage(x) &
	    (XKU_SSL_SERVER | XKU_SSL_CLIENT), want);
}

static int
has_admin_policy(X509 *x)
{
	CERTIFICATEPOLICIES *pol;
	ASN1_OBJECT *want = OBJ_txt2obj(CA_ADMIN_POLICY_OID, 1);
	int i, found = 0;

	assert_non_null(want);
	pol = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
	for (i = 0; pol != NULL && i < sk_POLICYINFO_num(pol); i++)
		if (OBJ_cmp(sk_POLICYINFO_value(pol, i)->policyid, want) == 0)
			found = 1;
	CERTIFICATEPOLICIES_free(pol);
	ASN1_OBJECT_free(want);
	return found;
}

static int
count_dns(X509 *x)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int i, n = 0;

	for (i = 0; g != NULL && i < sk_GENERAL_NAME_num(g); i++)
		if (sk_GENERAL_NAME_value(g, i)->type == GEN_DNS)
			n++;
	GENERAL_NAMES_free(g);
	return n;
}

/* The leaf profiles beside WebServer: EST and admin (docs/profiles.md). */
static void
test_est_admin_profiles(void **state)
{
	static const char *const extra[] = { "b.corp.local", "a.corp.local",
	    "B.corp.local" };
	static const char *const outside[] = { "x.other.org" };
	static const char *const ip[] = { "10.1.2.3" };
	struct test_pki t;
	struct ca_request req = { 0 };
	EVP_PKEY *k;
	X509 *x = NULL;
	X509_STORE *st;
	X509_STORE_CTX *ctx;
	STACK_OF(X509) *un;
	int err;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	k = soft_key("p256", 0);
	req.csr = soft_ca_csr(k);

	/* EST: serverAuth and clientAuth, whatever the policy says; every
	 * name once (the CN's too), each policy-checked. */
	req.profile = CA_PROFILE_EST;
	req.fqdn = "a.corp.local";
	req.names = extra;
	req.nnames = 3;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), 0);
	assert_eku(x, XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(count_dns(x), 2);
	assert_int_equal(X509_check_host(x, "b.corp.local", 0, 0, NULL), 1);
	assert_false(has_admin_policy(x));
	assert_int_equal(verify(&t, x, "b.corp.local", &err), 1);
	X509_free(x);
	x = NULL;
	req.names = outside;
	req.nnames = 1;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_POLICY);
	assert_null(x);
	req.nnames = AMTCA_EST_NAMES_MAX + 1;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_LIMIT);
	/* Only EST carries several names. */
	req.profile = CA_PROFILE_WEBSERVER;
	req.nnames = 1;
	req.names = extra;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_USAGE);
	req.names = NULL;
	req.nnames = 0;

	/* Admin, plain name: CN only, no SAN, clientAuth and the marker;
	 * it verifies as a TLS client under the name-constrained chain. */
	req.profile = CA_PROFILE_ADMIN;
	req.fqdn = "ops_1";
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), 0);
	assert_eku(x, XKU_SSL_CLIENT);
	assert_int_equal(ext_crit(x, NID_subject_alt_name), -1);
	assert_true(has_admin_policy(x));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	st = X509_STORE_new();
	un = sk_X509_new_null();
	assert_true(X509_STORE_add_cert(st, t.root_cert));
	sk_X509_push(un, t.inter_cert);
	assert_canonical(x);
	ctx = X509_STORE_CTX_new();
	assert_true(X509_STORE_CTX_init(ctx, st, x, un));
	assert_true(X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx),
	    X509_PURPOSE_SSL_CLIENT));
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_free(x);
	x = NULL;

	/* Admin named by an FQDN: it is in the SAN too, under the policy. */
	req.fqdn = "ops.corp.local";
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), 0);
	assert_int_equal(count_dns(x), 1);
	assert_true(has_admin_policy(x));
	ctx = X509_STORE_CTX_new();
	assert_true(X509_STORE_CTX_init(ctx, st, x, un));
	assert_true(X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx),
	    X509_PURPOSE_SSL_CLIENT));
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(un);
	X509_free(x);
	x = NULL;

	/* Admin names: an FQDN only under the policy, no addresses. */
	req.fqdn = "ops.other.org";
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_POLICY);
	req.fqdn = "-x";
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_USAGE);
	req.fqdn = "ops";
	req.ips = ip;
	req.nips = 1;
	assert_int_equal(ca_leaf_build(t.ca, &req, &x), AMTCA_E_USAGE);
	assert_null(x);
	(void)err;

	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	test_pki_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_profile),
		cmocka_unit_test(test_est_admin_profiles),
		cmocka_unit_test(test_intermediate_profile),
		cmocka_unit_test(test_intermediate_never_outlives_root),
		cmocka_unit_test(test_leaf_profile_rsa),
		cmocka_unit_test(test_leaf_ec_key_usage),
		cmocka_unit_test(test_leaf_digest_requested),
		cmocka_unit_test(test_p384_issuer_uses_sha384),
		cmocka_unit_test(test_validity_clamp_and_days),
		cmocka_unit_test(test_skew_from_policy),
		cmocka_unit_test(test_name_constraints_enforced),
		cmocka_unit_test(test_ip_names_within_ranges),
		cmocka_unit_test(test_ip_name_constraints),
		cmocka_unit_test(test_leaf_spki_canonical),
		cmocka_unit_test(test_bad_ips_and_names),
		cmocka_unit_test(test_long_fqdn_goes_to_san_only),
		cmocka_unit_test(test_ca_new_checks),
		cmocka_unit_test(test_issue_records_or_refuses),
		cmocka_unit_test(test_issue_der_matches_record),
		cmocka_unit_test(test_issue_submit_releases_after_record),
		cmocka_unit_test(test_concurrent_building),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
