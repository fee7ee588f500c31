/* Chain export (PEM, DER directory, P7B) and the CRL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "ca/store.h"
#include "common/util.h"
#include "soft_signer.h"

static X509 *
load(const char *path)
{
	X509 *x = NULL;
	int r = ca_cert_load(path, &x);

	if (r != 0)
		fail_msg("%s", amtca_errmsg(r));
	return x;
}

static void
test_format_parse(void **state)
{
	enum ca_chain_format f;

	(void)state;
	assert_int_equal(ca_chain_format_parse("pem", &f), 0);
	assert_int_equal(f, CA_CHAIN_PEM);
	assert_int_equal(ca_chain_format_parse("DER", &f), 0);
	assert_int_equal(f, CA_CHAIN_DER);
	assert_int_equal(ca_chain_format_parse("p7b", &f), 0);
	assert_int_equal(f, CA_CHAIN_P7B);
	assert_int_equal(ca_chain_format_parse("pfx", &f), AMTCA_E_USAGE);
	assert_int_equal(ca_chain_format_parse(NULL, &f), AMTCA_E_USAGE);
}

static void
test_pem_bottom_to_top(void **state)
{
	struct test_pki t;
	X509 *chain[2], *a, *b, *c;
	char *dir, path[512];
	FILE *fp;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	chain[0] = t.inter_cert;
	chain[1] = t.root_cert;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/chain.pem", dir);
	assert_int_equal(ca_chain_export(chain, 2, CA_CHAIN_PEM, path), 0);
	fp = fopen(path, "r");
	assert_non_null(fp);
	a = PEM_read_X509(fp, NULL, NULL, NULL);
	b = PEM_read_X509(fp, NULL, NULL, NULL);
	c = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(c);				/* exactly two */
	assert_int_equal(X509_cmp(a, t.inter_cert), 0);	/* intermediate first */
	assert_int_equal(X509_cmp(b, t.root_cert), 0);		/* root last */
	X509_free(a);
	X509_free(b);
	/* ca_cert_load takes the first of a bundle. */
	a = load(path);
	assert_int_equal(X509_cmp(a, t.inter_cert), 0);
	X509_free(a);
	assert_int_equal(ca_chain_export(chain, 0, CA_CHAIN_PEM, path), AMTCA_E_USAGE);
	test_rmrf(dir);
	free(dir);
	test_pki_free(&t);
}

static void
test_der_directory(void **state)
{
	struct test_pki t;
	X509 *chain[2], *a;
	char *dir, out[512], path[700];
	struct stat sb;
	DIR *d;
	struct dirent *e;
	int files = 0;

	(void)state;
	test_pki_init(&t, "p256", "p256", 0, 0, NULL);
	chain[0] = t.inter_cert;
	chain[1] = t.root_cert;
	dir = test_tmpdir();
	snprintf(out, sizeof(out), "%s/chain", dir);	/* created */
	assert_int_equal(ca_chain_export(chain, 2, CA_CHAIN_DER, out), 0);
	/* CN "Acme AMT/Issuing CA": the slash and spaces never reach the FS. */
	snprintf(path, sizeof(path), "%s/01-Acme_AMT_Issuing_CA.cer", out);
	a = load(path);
	assert_int_equal(X509_cmp(a, t.inter_cert), 0);
	X509_free(a);
	snprintf(path, sizeof(path), "%s/02-Acme_AMT_Root.cer", out);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	a = load(path);
	assert_int_equal(X509_cmp(a, t.root_cert), 0);
	X509_free(a);
	/* Nothing else there (no temp files left). */
	d = opendir(out);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		files += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 2);
	test_rmrf(dir);
	free(dir);
	test_pki_free(&t);
}

static void
test_p7b(void **state)
{
	struct test_pki t;
	X509 *chain[2];
	char *dir, path[512];
	unsigned char *buf = NULL;
	const unsigned char *p;
	size_t len = 0;
	PKCS7 *p7;
	STACK_OF(X509) *certs;
	int i, seen_root = 0, seen_inter = 0;

	(void)state;
	test_pki_init(&t, "rsa2048", "p256", 0, 0, NULL);
	chain[0] = t.inter_cert;
	chain[1] = t.root_cert;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/chain.p7b", dir);
	assert_int_equal(ca_chain_export(chain, 2, CA_CHAIN_P7B, path), 0);
	assert_int_equal(amtca_file_read(path, 65536, &buf, &len), 0);
	p = buf;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	certs = p7->d.sign->cert;
	assert_int_equal(sk_X509_num(certs), 2);
	for (i = 0; i < 2; i++) {
		seen_inter += X509_cmp(sk_X509_value(certs, i), t.inter_cert) == 0;
		seen_root += X509_cmp(sk_X509_value(certs, i), t.root_cert) == 0;
	}
	assert_int_equal(seen_inter, 1);
	assert_int_equal(seen_root, 1);
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
	PKCS7_free(p7);
	free(buf);
	assert_int_equal(ca_chain_export(chain, 2, CA_CHAIN_P7B, NULL), AMTCA_E_USAGE);
	test_rmrf(dir);
	free(dir);
	test_pki_free(&t);
}

static X509 *
issue(struct test_pki *t, const char *fqdn)
{
	struct ca_request req = { 0 };
	EVP_PKEY *k = soft_key("p256#leaf", 0);
	X509 *x = NULL;
	int r;

	req.fqdn = fqdn;
	req.csr = soft_ca_csr(k);
	req.requester = "unit";
	r = ca_issue(t->ca, &req, &x);
	if (r != 0)
		fail_msg("issue: %s", amtca_errmsg(r));
	ca_csr_free((struct ca_csr *)req.csr);
	EVP_PKEY_free(k);
	return x;
}

static int
verify_with_crl(struct test_pki *t, X509 *leaf, X509_CRL *crl, int *err)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int ok;

	assert_true(X509_STORE_add_cert(st, t->root_cert));
	assert_true(X509_STORE_add_crl(st, crl));
	X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	sk_X509_push(untrusted, t->inter_cert);
	assert_true(X509_STORE_CTX_init(ctx, st, leaf, untrusted));
	ok = X509_verify_cert(ctx);
	*err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(untrusted);
	return ok;
}

static void
test_crl(void **state)
{
	struct test_pki t;
	struct store *s = NULL;
	X509 *a, *b, *c;
	X509_CRL *crl;
	X509_REVOKED *rv;
	ASN1_ENUMERATED *reason;
	ASN1_INTEGER *num;
	AUTHORITY_KEYID *aki;
	unsigned char *der = NULL, *pem = NULL;
	const unsigned char *p;
	size_t len = 0, pemlen = 0;
	char *dir, path[512], *ha = NULL, *hb = NULL;
	time_t now = time(NULL);
	struct tm tm;
	BIO *bio;
	int err, i;

	(void)state;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/amtca.db", dir);
	assert_int_equal(store_open(path, 1, &s), 0);
	test_pki_init(&t, "rsa2048", "p256", 0, 0, s);
	a = issue(&t, "a.example.com");
	b = issue(&t, "b.example.com");
	c = issue(&t, "c.example.com");
	assert_int_equal(ca_serial_hex(X509_get0_serialNumber(a), &ha), 0);
	assert_int_equal(ca_serial_hex(X509_get0_serialNumber(b), &hb), 0);
	assert_int_equal(store_cert_revoke(s, ha, 1, now - 60), 0);	/* keyCompromise */
	assert_int_equal(store_cert_revoke(s, hb, 0, now - 30), 0);	/* unspecified */

	assert_int_equal(ca_crl_create(t.ca, 7, 0, &der, &len), 0);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_subject_name(t.inter_cert)), 0);
	assert_int_equal(X509_CRL_verify(crl, t.inter->s.pub), 1);
	assert_int_equal(X509_CRL_get_signature_nid(crl), NID_ecdsa_with_SHA256);
	assert_true(ASN1_TIME_to_tm(X509_CRL_get0_lastUpdate(crl), &tm));
	assert_true(llabs((long long)timegm(&tm) - now) <= 5);
	assert_true(ASN1_TIME_to_tm(X509_CRL_get0_nextUpdate(crl), &tm));
	assert_true(llabs((long long)timegm(&tm) - (now + 7 * 86400)) <= 5);
	aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid,
	    X509_get0_subject_key_id(t.inter_cert)), 0);
	AUTHORITY_KEYID_free(aki);
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	assert_non_null(num);
	assert_true(ASN1_INTEGER_get(num) > 0);
	ASN1_INTEGER_free(num);

	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	assert_int_equal(X509_CRL_get0_by_cert(crl, &rv, a), 1);
	reason = X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, NULL, NULL);
	assert_non_null(reason);
	assert_int_equal(ASN1_ENUMERATED_get(reason), 1);
	ASN1_ENUMERATED_free(reason);
	assert_true(ASN1_TIME_to_tm(X509_REVOKED_get0_revocationDate(rv), &tm));
	assert_int_equal(timegm(&tm), now - 60);
	assert_int_equal(X509_CRL_get0_by_cert(crl, &rv, b), 1);
	i = -1;
	assert_null(X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, &i, NULL));
	assert_int_equal(i, -1);		/* unspecified: no extension at all */
	assert_int_equal(X509_CRL_get0_by_cert(crl, &rv, c), 0);

	/* OpenSSL's CRL checking agrees. */
	assert_int_equal(verify_with_crl(&t, a, crl, &err), 0);
	assert_int_equal(err, X509_V_ERR_CERT_REVOKED);
	assert_int_equal(verify_with_crl(&t, c, crl, &err), 1);
	X509_CRL_free(crl);

	/* PEM is the same CRL. */
	assert_int_equal(ca_crl_create(t.ca, 7, 1, &pem, &pemlen), 0);
	assert_non_null(strstr((char *)pem, "-----BEGIN X509 CRL-----"));
	bio = BIO_new_mem_buf(pem, (int)pemlen);
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	assert_non_null(crl);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	X509_CRL_free(crl);
	BIO_free(bio);
	free(der);
	der = (unsigned char *)&der;
	assert_int_equal(ca_crl_create(t.ca, 0, 0, &der, &len), AMTCA_E_USAGE);
	assert_null(der);

	free(pem);
	free(ha);
	free(hb);
	X509_free(a);
	X509_free(b);
	X509_free(c);
	test_pki_free(&t);
	store_close(s);
	test_rmrf(dir);
	free(dir);
}

static void
test_empty_crl(void **state)
{
	struct test_pki t;
	struct store *s = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	char *dir, path[512];
	X509_CRL *crl;

	(void)state;
	dir = test_tmpdir();
	snprintf(path, sizeof(path), "%s/amtca.db", dir);
	assert_int_equal(store_open(path, 1, &s), 0);
	test_pki_init(&t, "p384", "p384", 0, 0, s);
	assert_int_equal(ca_crl_create(t.ca, 1, 0, &der, &len), 0);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	/* revokedCertificates is absent when empty (RFC 5280 5.1.2.6). */
	assert_null(X509_CRL_get_REVOKED(crl));
	assert_int_equal(X509_CRL_get_signature_nid(crl), NID_ecdsa_with_SHA384);
	assert_int_equal(X509_CRL_verify(crl, t.inter->s.pub), 1);
	X509_CRL_free(crl);
	free(der);
	test_pki_free(&t);
	store_close(s);
	test_rmrf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_pem_bottom_to_top),
		cmocka_unit_test(test_der_directory),
		cmocka_unit_test(test_p7b),
		cmocka_unit_test(test_crl),
		cmocka_unit_test(test_empty_crl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
