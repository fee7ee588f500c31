/*
 * Intermediate rotation (docs/rotation.md): `amtca ca rotate`,
 * `ca revoke-intermediate`, `ca prune` and `ca list`.
 *
 * The files of a home say which intermediate is current (intermediate.pem,
 * its key named by amtca.conf's intermediate_key) and which are retired
 * (intermediate-retired.pem); the records (the ca_certs table) keep every
 * intermediate the home has had, with its state, for `crl --root` and
 * `ca list`.
 */
#include "enroll/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/json.h"
#include "common/limits.h"
#include "common/util.h"
#include "hsm/admin.h"
#include "enroll/enroll.h"

/* PEM of certs[0..n) into one buffer (malloc'd). */
static int
pem_bundle(X509 *const *certs, size_t n, unsigned char **out, size_t *outlen)
{
	BIO *b = NULL;
	char *p;
	long len;
	size_t i;
	int ret = AMTCA_E_INTERNAL;

	*out = NULL;
	*outlen = 0;
	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (PEM_write_bio_X509(b, certs[i]) != 1) {
			ret = amtca_fail_ssl(AMTCA_E_CERT, "cannot encode a "
			    "certificate");
			goto out;
		}
	if ((len = BIO_get_mem_data(b, &p)) <= 0 ||
	    (*out = malloc((size_t)len)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	memcpy(*out, p, (size_t)len);
	*outlen = (size_t)len;
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

static int
write_bundle(const char *dir, const char *name, X509 *const *certs, size_t n)
{
	unsigned char *buf = NULL;
	size_t len;
	char *path = NULL;
	int r;

	if ((path = amtca_path_join(dir, name)) == NULL)
		return AMTCA_E_NOMEM;
	if ((r = pem_bundle(certs, n, &buf, &len)) == 0)
		r = amtca_file_write(path, buf, len, 0644, 0);
	free(buf);
	free(path);
	return r;
}

/* The chain a home publishes: current, retired (newest first), root. */
static int
write_chain(const char *dir, X509 *cur, X509 *const *retired, size_t nret,
    X509 *root)
{
	X509 *v[AMTCA_RETIRED_MAX + 2];
	size_t n = 0, i;

	v[n++] = cur;
	for (i = 0; i < nret && i < AMTCA_RETIRED_MAX; i++)
		v[n++] = retired[i];
	v[n++] = root;
	return write_bundle(dir, HOME_CHAIN_PEM, v, n);
}

/* intermediate-retired.pem holding retired[0..n), or no file for none. */
static int
write_retired(const char *dir, X509 *const *retired, size_t n)
{
	char *path;
	int r = 0;

	if (n > 0)
		return write_bundle(dir, HOME_RETIRED_PEM, retired, n);
	if ((path = amtca_path_join(dir, HOME_RETIRED_PEM)) == NULL)
		return AMTCA_E_NOMEM;
	if (unlink(path) != 0 && errno != ENOENT)
		r = amtca_fail(AMTCA_E_IO, "cannot remove %s: %s", path,
		    strerror(errno));
	free(path);
	return r;
}

/*
 * amtca.conf with its intermediate_key line set to `label` (every other
 * line kept byte for byte, blank ones included), replaced atomically with
 * its mode kept.
 */
static int
conf_set_inter_key(const char *dir, const char *label)
{
	unsigned char *buf = NULL;
	char *path = NULL, *outb = NULL, *p, *eol, *end, *k;
	size_t len, olen = 0, cap;
	struct stat sb;
	int r, ret = AMTCA_E_INTERNAL;

	if ((path = amtca_path_join(dir, HOME_CONF)) == NULL)
		return AMTCA_E_NOMEM;
	if ((r = amtca_file_read(path, AMTCA_CONF_MAX, &buf, &len)) != 0 ||
	    stat(path, &sb) != 0) {
		ret = r != 0 ? r : amtca_fail(AMTCA_E_IO, "%s: %s", path,
		    strerror(errno));
		goto out;
	}
	/* Every line but an old intermediate_key one, newline-ended, then
	 * the new line. */
	cap = len + 1 + sizeof("intermediate_key = \n") + HOME_INTER_LABEL_MAX;
	if ((outb = malloc(cap)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	end = (char *)buf + len;
	for (p = (char *)buf; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		for (k = p; k < eol && (*k == ' ' || *k == '\t'); k++)
			;
		if (eol - k >= 16 && strncmp(k, "intermediate_key", 16) == 0 &&
		    (k + 16 == eol || strchr(" \t=", k[16]) != NULL))
			continue;
		memcpy(outb + olen, p, (size_t)(eol - p));
		olen += (size_t)(eol - p);
		outb[olen++] = '\n';
	}
	olen += (size_t)snprintf(outb + olen, cap - olen,
	    "intermediate_key = %s\n", label);
	ret = amtca_file_write(path, outb, olen, sb.st_mode & 0777, 0);
out:
	free(outb);
	free(buf);
	free(path);
	return ret;
}

/* Test hook (tests/integration/t_rotate.sh): die at a named step. */
static void
crash_point(const char *step)
{
	const char *v = getenv("AMTCA_TEST_ROTATE_CRASH");

	if (v != NULL && strcmp(v, step) == 0) {
		fflush(NULL);
		raise(SIGKILL);
	}
}

/* The subject CN, or "" */
static void
subject_cn(X509 *x, char *buf, size_t len)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    buf, (int)len) < 0)
		buf[0] = '\0';
}

/* "<base> G<gen>": the CN without an earlier generation suffix. */
static void
next_cn(X509 *old, unsigned gen, char *out, size_t len)
{
	char cn[128];
	char *sp;

	subject_cn(old, cn, sizeof(cn));
	if ((sp = strrchr(cn, ' ')) != NULL && sp[1] == 'G' && sp[2] != '\0' &&
	    strspn(sp + 2, "0123456789") == strlen(sp + 2))
		*sp = '\0';
	if (cn[0] == '\0')
		snprintf(cn, sizeof(cn), "amtca Issuing CA");
	/* 64 is the CN's upper bound (RFC 5280 ub-common-name). */
	snprintf(out, len, "%.*s G%u", 56, cn, gen);
}

/* A record of `x` for the ca_certs table (strings borrowed or malloc'd
 * into *owned, freed by the caller). */
static int
cacert_of(X509 *x, int gen, const char *state, struct store_cacert *c,
    char keyid[CA_KEYID_HEX_MAX + 1], char cn[128], char **serial,
    unsigned char **der)
{
	int n, r;
	ASN1_TIME *epoch = NULL;
	int days = 0, secs = 0;

	memset(c, 0, sizeof(*c));
	*serial = NULL;
	*der = NULL;
	if ((r = ca_keyid_hex(x, keyid)) != 0 ||
	    (r = ca_serial_hex(X509_get0_serialNumber(x), serial)) != 0)
		return r;
	if ((n = i2d_X509(x, der)) <= 0)
		return amtca_fail_ssl(AMTCA_E_CERT, "cannot encode a CA "
		    "certificate");
	subject_cn(x, cn, 128);
	if ((epoch = ASN1_TIME_set(NULL, 0)) == NULL ||
	    ASN1_TIME_diff(&days, &secs, epoch, X509_get0_notAfter(x)) != 1) {
		ASN1_TIME_free(epoch);
		return amtca_fail_ssl(AMTCA_E_CERT, "a CA certificate's "
		    "notAfter is unreadable");
	}
	ASN1_TIME_free(epoch);
	c->keyid = keyid;
	c->role = (char *)"intermediate";
	c->generation = gen;
	c->subject = cn;
	c->serial = *serial;
	c->not_after = (time_t)days * 86400 + secs;
	c->state = (char *)state;
	c->der = *der;
	c->der_len = (size_t)n;
	return 0;
}

/* ------------------------------------------------------------- ca rotate */

static const char rotate_synopsis[] =
    "rotate [--key-type rsa2048|rsa3072|rsa4096|p256|p384] [--days N] "
    "[--csr-out FILE]";
static const char rotate_options[] =
    "  --key-type TYPE        the new intermediate key's type (default: the\n"
    "                         current one's); AMT 22 wants rsa3072 or p384\n"
    "  --days N               the new intermediate's validity (3650; never\n"
    "                         past the root)\n"
    "  --csr-out FILE         external root: make the new key and write its\n"
    "                         request; ca import-intermediate completes\n"
    "  --help                 this text\n";

#define ROTATE_RECS_MAX AMTCA_CACERT_PUT_MAX

/* The new intermediate's label: the next generation's, its key not yet in
 * any chain (one an interrupted run left is removed). */
static int
next_label(struct home *h, unsigned *gen, char label[HOME_INTER_LABEL_MAX])
{
	struct hsm_key *stray = NULL;
	int r;

	if ((*gen = h->inter_gen + 1) > HOME_INTER_GEN_MAX)
		return amtca_fail(AMTCA_E_LIMIT, "no intermediate generation "
		    "after %u", h->inter_gen);
	home_inter_label(*gen, label);
	if (hsm_key_find(h->hsm, label, &stray) == 0) {
		r = hsm_key_destroy(h->hsm, stray);
		hsm_key_free(stray);
		if (r != 0)
			return r;
		fprintf(stderr, "amtca: removed key '%s' left by an interrupted "
		    "rotation\n", label);
	}
	amtca_err_clear();
	return 0;
}

/*
 * Switch the home to `nc` (generation `gen`, key `label`): the records and
 * the ca.rotate entry in one transaction, then the files in an order every
 * step of which home_open() reads as the old CA or the new one
 * (docs/rotation.md): the conf first (its key for generation N is used only
 * once intermediate.pem is N's), the retired list (the current one in it
 * is ignored), the chain (a superset until the end), and intermediate.pem
 * last: the switch.
 */
static int
rotate_commit(struct home *h, X509 *nc, unsigned gen, const char *label,
    const char *ktname)
{
	X509 *retired[AMTCA_RETIRED_MAX];
	char keyids[ROTATE_RECS_MAX][CA_KEYID_HEX_MAX + 1];
	char cns[ROTATE_RECS_MAX][128], *serials[ROTATE_RECS_MAX];
	unsigned char *ders[ROTATE_RECS_MAX];
	struct store_cacert recs[ROTATE_RECS_MAX], *old = NULL;
	size_t nrecs = 0, nold = 0, i, j;
	char detail[CA_KEYID_HEX_MAX + 96];
	int r, ret = AMTCA_E_INTERNAL;

	memset(serials, 0, sizeof(serials));
	memset(ders, 0, sizeof(ders));
	/* Retired: the old one and the earlier ones; any other "current"
	 * an interrupted rotation left: ended. */
	if ((r = store_cacert_list(h->store, &old, &nold)) != 0 ||
	    (r = cacert_of(nc, (int)gen, "current", &recs[nrecs], keyids[nrecs],
	    cns[nrecs], &serials[nrecs], &ders[nrecs])) != 0) {
		ret = r;
		goto out;
	}
	nrecs++;
	if ((r = cacert_of(h->inter, (int)h->inter_gen, "retired", &recs[nrecs],
	    keyids[nrecs], cns[nrecs], &serials[nrecs], &ders[nrecs])) != 0) {
		ret = r;
		goto out;
	}
	nrecs++;
	for (i = 0; i < h->nretired; i++) {
		if ((r = cacert_of(h->retired[i], h->retired_gen[i] > 0 ?
		    (int)h->retired_gen[i] : 1, "retired", &recs[nrecs],
		    keyids[nrecs], cns[nrecs], &serials[nrecs],
		    &ders[nrecs])) != 0) {
			ret = r;
			goto out;
		}
		nrecs++;
	}
	for (i = 0; i < nold && nrecs < ROTATE_RECS_MAX; i++) {
		if (strcmp(old[i].state, "current") != 0)
			continue;
		for (j = 0; j < nrecs; j++)
			if (strcmp(old[i].keyid, recs[j].keyid) == 0)
				break;
		if (j < nrecs)
			continue;
		recs[nrecs] = old[i];
		recs[nrecs].state = (char *)"ended";
		nrecs++;
	}
	snprintf(detail, sizeof(detail), "old=%s generation=%u key=%s",
	    recs[1].keyid, gen, ktname);
	if ((r = store_cacert_put(h->store, recs, nrecs, "ca.rotate",
	    recs[0].keyid, detail)) != 0) {
		ret = r;
		goto out;
	}
	crash_point("records");
	retired[0] = h->inter;
	for (i = 0; i < h->nretired; i++)
		retired[i + 1] = h->retired[i];
	if ((r = conf_set_inter_key(h->dir, label)) != 0) {
		ret = r;
		goto out;
	}
	crash_point("conf");
	if ((r = write_retired(h->dir, retired, h->nretired + 1)) != 0) {
		ret = r;
		goto out;
	}
	crash_point("retired");
	if ((r = write_chain(h->dir, nc, retired, h->nretired + 1,
	    h->root)) != 0) {
		ret = r;
		goto out;
	}
	crash_point("chain");
	if ((r = write_bundle(h->dir, HOME_INTER_PEM, &nc, 1)) != 0) {
		ret = r;
		goto out;
	}
	/* Other nodes of a shared store take the new set from there; a
	 * failure here is not the rotation's: this node's next command
	 * publishes what its files say (home_shared_sync). */
	if ((r = home_shared_publish(h)) != 0)
		fprintf(stderr, "amtca: warning: the rotation is done here but "
		    "not yet in the shared store (%s); the next amtca command "
		    "on this node publishes it\n", amtca_errmsg(r));
	subject_cn(nc, cns[0], sizeof(cns[0]));
	printf("intermediate rotated in %s\n  new:     %s (key %s, %s, key id "
	    "%s)\n  retired: key id %s, signs its CRL until its last "
	    "certificate expires\n  chain:   %s\n", h->dir, cns[0], label,
	    ktname, recs[0].keyid, recs[1].keyid, h->chain_path);
	if (h->conf.crl_url != NULL &&
	    strstr(h->conf.crl_url, CA_CRL_URL_KEYID) == NULL)
		fprintf(stderr, "amtca: warning: crl_url has no %s: leaves of "
		    "both intermediates point at one CRL, which only one of "
		    "them signs (docs/rotation.md)\n", CA_CRL_URL_KEYID);
	ret = 0;
out:
	for (i = 0; i < ROTATE_RECS_MAX; i++) {
		free(serials[i]);
		OPENSSL_free(ders[i]);
	}
	store_cacerts_free(old, nold);
	return ret;
}

/*
 * External root: the next generation's key and its request (as init
 * --external-root), written to `out` and kept in the home as
 * HOME_NEXT_CSR until ca import-intermediate completes the rotation.
 */
static int
rotate_request(struct home *h, enum hsm_keytype kt, const char *out)
{
	struct hsm_key *nk = NULL;
	struct ca_signer ns;
	X509_REQ *req = NULL;
	BIO *b = NULL;
	char label[HOME_INTER_LABEL_MAX], cn[128], org[128], *pp, *path = NULL;
	unsigned gen;
	long plen;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = next_label(h, &gen, label)) != 0 ||
	    (r = hsm_keygen(h->hsm, kt, label, &nk)) != 0) {
		ret = r;
		goto out;
	}
	next_cn(h->inter, gen, cn, sizeof(cn));
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(h->inter),
	    NID_organizationName, org, sizeof(org)) < 0)
		org[0] = '\0';
	hsm_key_signer(nk, &ns);
	if ((r = ca_intermediate_csr(&ns, cn, org[0] != '\0' ? org : NULL,
	    &h->policy, &req)) != 0) {
		ret = r;
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_REQ(b, req) != 1 ||
	    (plen = BIO_get_mem_data(b, &pp)) <= 0 ||
	    (path = amtca_path_join(h->dir, HOME_NEXT_CSR)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if ((r = amtca_file_write(path, pp, (size_t)plen, 0644, 0)) != 0 ||
	    (r = amtca_out_write(out, pp, (size_t)plen, 0644)) != 0) {
		ret = r;
		goto out;
	}
	printf("new intermediate key %s (%s) made; request for the external "
	    "root: %s\nnext: have the root sign it with the name constraints "
	    "(docs/external-root.md), then run\n  amtca ca import-intermediate "
	    "--cert FILE --root FILE\n", label, hsm_keytype_name(kt), out);
	ret = 0;
out:
	free(path);
	BIO_free(b);
	X509_REQ_free(req);
	hsm_key_free(nk);
	return ret;
}

static int
ca_rotate(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key-type", required_argument, NULL, 'k' },
		{ "days", required_argument, NULL, 'D' },
		{ "csr-out", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key_type = NULL, *csr_out = NULL;
	long ldays = AMTCA_CA_DAYS_INTER;
	int ch, r, ret = EXIT_FAIL, external, days_given = 0;
	struct home *h = NULL;
	struct hsm *rhsm = NULL;
	struct hsm_key *rk = NULL, *nk = NULL;
	struct ca_signer rs;
	enum hsm_keytype kt;
	X509 *nc = NULL;
	char label[HOME_INTER_LABEL_MAX], cn[128], org[128];
	unsigned gen;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': key_type = optarg; break;
		case 'O': csr_out = optarg; break;
		case 'D':
			if (cli_parse_long(optarg, 1, AMTCA_CA_DAYS_ROOT,
			    &ldays) != 0)
				return cli_usage("ca", "--days takes 1..7300",
				    rotate_synopsis);
			days_given = 1;
			break;
		case 'h':
			return cli_help("ca", rotate_synopsis, rotate_options,
			    opts);
		default:
			return cli_usage("ca", "bad option", rotate_synopsis);
		}
	}
	if (optind != argc)
		return cli_usage("ca", "unexpected argument", rotate_synopsis);
	if (key_type != NULL && hsm_keytype_parse(key_type, &kt) != 0)
		return cli_usage("ca", "unknown --key-type (rsa2048, rsa3072, "
		    "rsa4096, p256, p384)", rotate_synopsis);
	if (csr_out != NULL && days_given)
		return cli_usage("ca", "--days goes to the external root with "
		    "--csr-out: it sets the validity", rotate_synopsis);
	if ((r = home_open(homedir, HOME_SIGNER, &h)) != 0)
		goto fail;
	/* An external root has no key in any token of ours. */
	external = h->conf.root_token_uri == NULL &&
	    hsm_key_find(h->hsm, KEY_LABEL_ROOT, &rk) != 0;
	amtca_err_clear();
	hsm_key_free(rk);
	rk = NULL;
	if (external != (csr_out != NULL)) {
		r = external ? amtca_fail(AMTCA_E_HSM_KEY, "ca rotate needs the "
		    "root key, and this CA's root is external: run 'amtca ca "
		    "rotate --csr-out FILE', have that root sign the request, "
		    "then 'amtca ca import-intermediate'%s",
		    h->conf.store != NULL ? " (or, on a node of a shared store "
		    "whose root key is in an offline token, name that token "
		    "in this node's amtca.conf: root_token_uri, root_pin_file)" :
		    "") :
		    amtca_fail(AMTCA_E_USAGE, "--csr-out is for a CA under an "
		    "external root; this CA signs its own intermediates");
		goto fail;
	}
	if (h->nretired >= AMTCA_RETIRED_MAX) {
		r = amtca_fail(AMTCA_E_LIMIT, "%zu intermediates are already in "
		    "their overlap (at most %d): run 'amtca ca prune' first",
		    h->nretired, AMTCA_RETIRED_MAX);
		goto fail;
	}
	if (key_type == NULL)
		kt = hsm_key_type(h->inter_key);
	if (external) {
		if ((r = rotate_request(h, kt, csr_out)) != 0)
			goto fail;
		ret = EXIT_OK;
		goto out;
	}
	if ((r = home_root_key(h, "ca rotate", &rhsm, &rk)) != 0 ||
	    (r = next_label(h, &gen, label)) != 0 ||
	    (r = hsm_keygen(h->hsm, kt, label, &nk)) != 0)
		goto fail;
	crash_point("key");
	/* Same root, same O and name constraints, its own name. */
	next_cn(h->inter, gen, cn, sizeof(cn));
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(h->inter),
	    NID_organizationName, org, sizeof(org)) < 0)
		org[0] = '\0';
	hsm_key_signer(rk, &rs);
	if ((r = ca_intermediate_create(&rs, h->root, hsm_key_public(nk), cn,
	    org[0] != '\0' ? org : NULL, &h->policy, (int)ldays, &nc)) != 0 ||
	    (r = rotate_commit(h, nc, gen, label, hsm_keytype_name(kt))) != 0)
		goto fail;
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	X509_free(nc);
	hsm_key_free(nk);
	hsm_key_free(rk);
	hsm_free(rhsm);
	home_free(h);
	return ret;
}

int
cmd_ca_rotate_import(const char *homedir, X509 *cert, X509 *root, int any)
{
	struct home *h = NULL;
	struct hsm_key *nk = NULL;
	char label[HOME_INTER_LABEL_MAX], *path = NULL;
	unsigned gen;
	int r, ret = AMTCA_E_INTERNAL;

	if ((r = home_open(homedir, HOME_SIGNER, &h)) != 0) {
		ret = r;
		goto out;
	}
	if (X509_cmp(root, h->root) != 0) {
		ret = amtca_fail(AMTCA_E_CERT, "--root is not this CA's root "
		    "(%s): a rotation stays under the same root", HOME_ROOT_PEM);
		goto out;
	}
	gen = h->inter_gen + 1;
	home_inter_label(gen, label);
	if ((r = hsm_key_find(h->hsm, label, &nk)) != 0) {
		ret = amtca_fail(AMTCA_E_HSM_KEY, "the token has no key '%s' for "
		    "the requested intermediate: run 'amtca ca rotate --csr-out "
		    "FILE' again", label);
		goto out;
	}
	if ((r = ca_intermediate_check(cert, h->root, hsm_key_public(nk),
	    &h->policy, any || h->conf.any_domain)) != 0) {
		ret = r;
		goto out;
	}
	if (any && !h->conf.any_domain)
		fprintf(stderr, "amtca: warning: --any-domain: the intermediate's "
		    "name constraints were not checked against --domain and "
		    "--ip-range\n");
	if ((r = rotate_commit(h, cert, gen, label,
	    hsm_keytype_name(hsm_key_type(nk)))) != 0) {
		ret = r;
		goto out;
	}
	/* Last: the request is answered. */
	if ((path = amtca_path_join(h->dir, HOME_NEXT_CSR)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		ret = amtca_fail(AMTCA_E_IO, "cannot remove %s: %s", path,
		    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(path);
	hsm_key_free(nk);
	home_free(h);
	return ret;
}

/* ------------------------------------------------ ca revoke-intermediate */

static const char revoke_synopsis[] =
    "revoke-intermediate KEYID [--reason REASON]";
static const char revoke_options[] =
    "  KEYID                  the intermediate's key id (ca list)\n"
    "  --reason REASON        CRLReason name (unspecified)\n"
    "  --help                 this text\n";

static int
ca_revoke_intermediate(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cacert *v = NULL;
	size_t n = 0, i;
	char cur[CA_KEYID_HEX_MAX + 1], keyid[CA_KEYID_HEX_MAX + 1];
	int ch, r, reason = 0, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if ((reason = cred_reason_parse(optarg)) < 0)
				return cli_usage("ca", "unknown --reason",
				    revoke_synopsis);
			break;
		case 'h':
			return cli_help("ca", revoke_synopsis, revoke_options,
			    opts);
		default:
			return cli_usage("ca", "bad option", revoke_synopsis);
		}
	}
	if (optind + 1 != argc || strlen(argv[optind]) > CA_KEYID_HEX_MAX ||
	    argv[optind][0] == '\0' || strspn(argv[optind],
	    "0123456789abcdefABCDEF") != strlen(argv[optind]))
		return cli_usage("ca", "revoke-intermediate takes one KEYID (hex, "
		    "as ca list shows it)", revoke_synopsis);
	for (i = 0; argv[optind][i] != '\0'; i++)
		keyid[i] = (char)(argv[optind][i] >= 'A' && argv[optind][i] <= 'F' ?
		    argv[optind][i] + 32 : argv[optind][i]);
	keyid[i] = '\0';
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = ca_keyid_hex(h->inter, cur)) != 0)
		goto fail;
	/* No foot-gun: the issuing intermediate is replaced first. */
	if (strcmp(keyid, cur) == 0) {
		r = amtca_fail(AMTCA_E_USAGE, "%s is the current (issuing) "
		    "intermediate: run 'amtca ca rotate' first, then revoke it",
		    keyid);
		goto fail;
	}
	if ((r = store_cacert_revoke(h->store, keyid, reason,
	    time(NULL))) != 0 || (r = store_cacert_list(h->store, &v, &n)) != 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].keyid, keyid) == 0)
			printf("intermediate %s (%s, serial %s) revoked: %s; "
			    "publish the root's CRL (amtca crl --root)\n", keyid,
			    v[i].subject, v[i].serial,
			    cred_reason_name(v[i].revoke_reason));
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	store_cacerts_free(v, n);
	home_free(h);
	return ret;
}

/* --------------------------------------------------------------- ca prune */

/*
 * Whether a certificate `keyid` issued is still valid: not revoked and not
 * expired.  Records without an issuer are generation 1's (`first`).
 */
static int
still_used(struct store *st, const char *keyid, int first, time_t now,
    int *used)
{
	struct store_cert *c = NULL;
	size_t n = 0, i;
	int r;

	*used = 0;
	if ((r = store_cert_list_unrevoked_by(st, keyid, first, &c, &n)) != 0)
		return r;
	for (i = 0; i < n && !*used; i++)
		*used = c[i].not_after > now;
	store_certs_free(c, n);
	return 0;
}

static const char prune_synopsis[] = "prune [--dry-run]";
static const char prune_options[] =
    "  --dry-run              say what would leave the chain, change nothing\n"
    "  --help                 this text\n";

static int
ca_prune(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cacert *v = NULL, upd[AMTCA_RETIRED_MAX];
	X509 *keep[AMTCA_RETIRED_MAX];
	size_t nv = 0, nkeep = 0, nupd = 0, i, j;
	char keyid[CA_KEYID_HEX_MAX + 1];
	time_t now = time(NULL);
	int ch, r, dry = 0, ret = EXIT_FAIL, first, used;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': dry = 1; break;
		case 'h':
			return cli_help("ca", prune_synopsis, prune_options, opts);
		default:
			return cli_usage("ca", "bad option", prune_synopsis);
		}
	}
	if (optind != argc)
		return cli_usage("ca", "unexpected argument", prune_synopsis);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_cacert_list(h->store, &v, &nv)) != 0)
		goto fail;
	for (i = 0; i < h->nretired; i++) {
		if ((r = ca_keyid_hex(h->retired[i], keyid)) != 0)
			goto fail;
		/* Generation 1 (issuer-less records) is the oldest listed. */
		first = 0;
		for (j = 0; j < nv; j++)
			if (strcmp(v[j].keyid, keyid) == 0)
				first = v[j].generation == 1;
		if ((r = still_used(h->store, keyid, first, now, &used)) != 0)
			goto fail;
		if (used) {
			keep[nkeep++] = h->retired[i];
			continue;
		}
		printf("%s %s: no valid certificate left%s\n", dry ?
		    "would end" : "ended", keyid, dry ? "" :
		    "; out of the chain (its key stays in the token)");
		for (j = 0; j < nv; j++)
			if (strcmp(v[j].keyid, keyid) == 0 &&
			    strcmp(v[j].state, "retired") == 0) {
				upd[nupd] = v[j];
				upd[nupd].state = (char *)"ended";
				nupd++;
			}
	}
	if (dry || nkeep == h->nretired) {
		if (nkeep == h->nretired)
			printf("nothing to prune: %zu retired intermediate(s) "
			    "still in their overlap\n", h->nretired);
		ret = EXIT_OK;
		goto out;
	}
	/* Out of the retired list first, then the chain: a superset between. */
	if ((r = write_retired(h->dir, keep, nkeep)) != 0 ||
	    (r = write_chain(h->dir, h->inter, keep, nkeep, h->root)) != 0 ||
	    (nupd > 0 && (r = store_cacert_put(h->store, upd, nupd, "ca.prune",
	    "", "")) != 0))
		goto fail;
	if ((r = home_shared_publish(h)) != 0)
		fprintf(stderr, "amtca: warning: pruned here but not yet in the "
		    "shared store (%s); the next amtca command on this node "
		    "publishes it\n", amtca_errmsg(r));
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	store_cacerts_free(v, nv);
	home_free(h);
	return ret;
}

/* ---------------------------------------------------------------- ca list */

static const char list_synopsis[] = "list [--json]";

static int
ca_list(const char *homedir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct home *h = NULL;
	struct store_cacert *v = NULL;
	size_t nv = 0, i;
	char cur[CA_KEYID_HEX_MAX + 1], cn[128], *serial = NULL;
	struct json jj;
	int ch, r, json = 0, ret = EXIT_FAIL;

	while ((ch = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'h':
			return cli_help("ca", list_synopsis,
			    "  --json                 one JSON array\n"
			    "  --help                 this text\n", opts);
		default:
			return cli_usage("ca", "bad option", list_synopsis);
		}
	}
	if (optind != argc)
		return cli_usage("ca", "unexpected argument", list_synopsis);
	if ((r = home_open(homedir, HOME_STORE, &h)) != 0 ||
	    (r = store_cacert_list(h->store, &v, &nv)) != 0 ||
	    (r = ca_keyid_hex(h->inter, cur)) != 0 ||
	    (r = ca_serial_hex(X509_get0_serialNumber(h->inter), &serial)) != 0)
		goto fail;
	subject_cn(h->inter, cn, sizeof(cn));
	if (json) {
		json_init(&jj, stdout);
		json_arr_begin(&jj, NULL);
	}
	/* Before the first rotation the records hold none: the file says. */
	if (nv == 0) {
		if (json) {
			json_obj_begin(&jj, NULL);
			json_str(&jj, "keyid", cur);
			json_int(&jj, "generation", 1);
			json_str(&jj, "subject", cn);
			json_str(&jj, "serial", serial);
			json_str(&jj, "state", "current");
			json_obj_end(&jj);
		} else
			printf("%-8s %-3s %-40s %s  %s\n", "current", "1", cur,
			    serial, cn);
	}
	for (i = 0; i < nv; i++) {
		if (json) {
			json_obj_begin(&jj, NULL);
			json_str(&jj, "keyid", v[i].keyid);
			json_int(&jj, "generation", v[i].generation);
			json_str(&jj, "subject", v[i].subject);
			json_str(&jj, "serial", v[i].serial);
			json_str(&jj, "state", v[i].state);
			json_time(&jj, "not_after", (long long)v[i].not_after);
			if (strcmp(v[i].state, "revoked") == 0)
				json_str(&jj, "reason",
				    cred_reason_name(v[i].revoke_reason));
			json_obj_end(&jj);
		} else
			printf("%-8s %-3d %-40s %s  %s\n", v[i].state,
			    v[i].generation, v[i].keyid, v[i].serial,
			    v[i].subject);
	}
	if (json) {
		json_arr_end(&jj);
		json_finish(&jj);
	}
	ret = EXIT_OK;
	goto out;
fail:
	ret = cli_fail(r);
out:
	free(serial);
	store_cacerts_free(v, nv);
	home_free(h);
	return ret;
}

int
cmd_ca_rotation(const char *homedir, int argc, char **argv)
{
	const char *sub = argv[1];

	optind = 1;
	if (strcmp(sub, "rotate") == 0)
		return ca_rotate(homedir, argc - 1, argv + 1);
	if (strcmp(sub, "revoke-intermediate") == 0)
		return ca_revoke_intermediate(homedir, argc - 1, argv + 1);
	if (strcmp(sub, "prune") == 0)
		return ca_prune(homedir, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return ca_list(homedir, argc - 1, argv + 1);
	return -1;
}
