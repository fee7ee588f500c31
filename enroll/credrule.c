/*
 * Where AMT credentials may go: the one rule every command that logs in to
 * a device follows (enroll, doctor, amt-info; later the fleet engine and
 * the service).
 *
 * Digest with qop=auth protects neither the request body nor the channel:
 * whoever receives a Digest response can relay it to the real device and
 * run any call of its own.  So credentials go only where a relay is ruled
 * out by the records:
 *   - a device the records say is enrolled (TLS only) never gets them over
 *     plain HTTP;
 *   - over TLS, only when the served leaf (already verified under this CA's
 *     chain and the hostname) is one the records issued to that device, or
 *     the operator's --tls-pin.  A certificate for the same name held by an
 *     EST client, issued by hand, or left on a retired device does not do;
 *   - a device whose bound certificate was revoked for keyCompromise (its
 *     TLS key may be in other hands) gets none at all.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/store.h"
#include "common/limits.h"
#include "common/util.h"
#include "enroll/enroll.h"
#include "signer/signer.h"

/* CRLReasons that mean a key may be in other hands. */
int
cred_reason_compromise(int reason)
{
	return reason == 1 || reason == 2 || reason == 10;
}

static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "caCompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

const char *
cred_reason_name(int reason)
{
	if (reason < 0 || reason > 10 || reason_names[reason] == NULL)
		return "unspecified";
	return reason_names[reason];
}

int
cred_reason_parse(const char *s)
{
	int i;

	for (i = 0; s != NULL && i <= 10; i++)
		if (reason_names[i] != NULL && strcmp(reason_names[i], s) == 0)
			return i;
	return -1;
}

void
cred_rule_clear(struct cred_rule *r)
{
	if (r == NULL)
		return;
	free(r->pins);
	free(r->bound_serial);
	free(r->bound_der);
	memset(r, 0, sizeof(*r));
	r->bound_reason = -1;
}

static int
add_pin(struct cred_rule *r, const unsigned char *der, size_t len)
{
	unsigned char (*n)[32];
	unsigned int mdlen = 0;

	if ((n = realloc(r->pins, (r->npins + 1) * sizeof(*n))) == NULL)
		return AMTCA_E_NOMEM;
	r->pins = n;
	if (EVP_Digest(der, len, r->pins[r->npins], &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != 32)
		return amtca_fail_ssl(AMTCA_E_INTERNAL, "SHA-256 failed");
	r->npins++;
	return 0;
}

int
cred_rule_load(struct store *s, struct sgn *sgn, const char *fqdn,
    const unsigned char *op_pin, int device_reset, struct cred_rule *out)
{
	struct store_device *dev = NULL;
	struct store_cert *c = NULL;
	char name[AMTCA_FQDN_MAX + 2];
	size_t n = 0, i;
	int r, ret = AMTCA_E_INTERNAL;

	memset(out, 0, sizeof(*out));
	out->bound_reason = -1;
	/* Records are keyed by the normalised name: lower case, no root dot. */
	if (fqdn == NULL || strlen(fqdn) >= sizeof(name)) {
		ret = amtca_fail(AMTCA_E_FQDN, "no usable device name");
		goto out;
	}
	for (i = 0; fqdn[i] != '\0'; i++)
		name[i] = (char)tolower((unsigned char)fqdn[i]);
	name[i] = '\0';
	if (i > 0 && name[i - 1] == '.')
		name[i - 1] = '\0';
	fqdn = name;
	if (op_pin != NULL) {
		if ((out->pins = malloc(sizeof(*out->pins))) == NULL) {
			ret = AMTCA_E_NOMEM;
			goto out;
		}
		memcpy(out->pins[0], op_pin, 32);
		out->npins = 1;
		out->op_pin = 1;
	}
	if (s == NULL) {
		out->no_records = 1;
		ret = 0;
		goto out;
	}
	if ((r = store_device_get(s, fqdn, &dev)) != 0 && r != AMTCA_E_NOT_FOUND) {
		ret = r;
		goto out;
	}
	amtca_err_clear();
	if (dev != NULL && dev->state != NULL && !device_reset) {
		out->tls_only = strcmp(dev->state, "enrolled") == 0 ||
		    strcmp(dev->state, "compromised") == 0;
		out->compromised = strcmp(dev->state, "compromised") == 0;
		out->retired = strcmp(dev->state, "retired") == 0;
	}
	if (dev != NULL && dev->cert_serial != NULL &&
	    (out->bound_serial = strdup(dev->cert_serial)) == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	/* The certificate records are the signer's. */
	if (sgn != NULL) {
		struct sgn_cert_query q;

		memset(&q, 0, sizeof(q));
		q.device = fqdn;
		q.with_der = 1;
		if ((r = sgn_cert_list(sgn, &q, &c, &n)) != 0) {
			ret = r;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		int bound = out->bound_serial != NULL &&
		    strcasecmp(c[i].serial, out->bound_serial) == 0;
		int revoked = c[i].status != NULL &&
		    strcmp(c[i].status, "revoked") == 0;

		if (bound && revoked) {
			out->bound_revoked = 1;
			out->bound_reason = c[i].revoke_reason;
			if (cred_reason_compromise(c[i].revoke_reason) &&
			    !device_reset)
				out->compromised = 1;
		}
		/*
		 * Valid ones, and the bound one while its revocation does not
		 * say its key is known to others (enroll replaces a superseded
		 * leaf over TLS pinned to it).  Never an old superseded leaf
		 * that is no longer bound: a retired device may serve it.
		 */
		if ((!revoked || (bound && !cred_reason_compromise(
		    c[i].revoke_reason))) &&
		    (r = add_pin(out, c[i].der, c[i].der_len)) != 0) {
			ret = r;
			goto out;
		}
		/*
		 * The bound one's exact bytes: a device offline past its
		 * notAfter is renewed over TLS that forgives only that.
		 */
		if (bound && (!revoked || !cred_reason_compromise(
		    c[i].revoke_reason)) && c[i].der != NULL &&
		    c[i].der_len > 0 && out->bound_der == NULL) {
			if ((out->bound_der = malloc(c[i].der_len)) == NULL) {
				ret = AMTCA_E_NOMEM;
				goto out;
			}
			memcpy(out->bound_der, c[i].der, c[i].der_len);
			out->bound_der_len = c[i].der_len;
		}
	}
	if (out->compromised) {
		/* Not even the operator's pin: the key may be elsewhere. */
		free(out->pins);
		out->pins = NULL;
		out->npins = 0;
		out->op_pin = 0;
		free(out->bound_der);
		out->bound_der = NULL;
		out->bound_der_len = 0;
	}
	ret = 0;
out:
	store_certs_free(c, n);
	store_device_free(dev);
	if (ret != 0)
		cred_rule_clear(out);
	return ret;
}

int
cred_note_revocation(struct store *s, const struct store_cert *c)
{
	struct store_device *d = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	if (c == NULL || c->device == NULL || c->status == NULL ||
	    strcmp(c->status, "revoked") != 0 ||
	    !cred_reason_compromise(c->revoke_reason)) {
		ret = 0;
		goto out;
	}
	if ((r = store_device_get(s, c->device, &d)) != 0) {
		amtca_err_clear();
		ret = r == AMTCA_E_NOT_FOUND ? 0 : r;
		goto out;
	}
	if (d->cert_serial == NULL || strcasecmp(d->cert_serial, c->serial) != 0 ||
	    (d->state != NULL && strcmp(d->state, "compromised") == 0)) {
		ret = 0;
		goto out;
	}
	free(d->state);
	free(d->error);
	d->state = strdup("compromised");
	d->error = NULL;
	if (d->state == NULL) {
		ret = AMTCA_E_NOMEM;
		goto out;
	}
	if (asprintf(&d->error, "bound certificate %s revoked for %s",
	    c->serial, cred_reason_name(c->revoke_reason)) == -1)
		d->error = NULL;
	d->updated_at = time(NULL);
	ret = store_device_put(s, d);
out:
	store_device_free(d);
	return ret;
}

int
cred_revoke(struct store *s, struct store *state, const char *serial,
    int reason, time_t now, struct store_cert **out, int *was)
{
	struct store_cert *before = NULL, *c = NULL;
	int r, ret = AMTCA_E_INTERNAL;

	*out = NULL;
	if ((r = store_cert_get(s, serial, &before)) != 0 ||
	    (r = store_cert_revoke(s, serial, reason, now)) != 0 ||
	    (r = store_cert_get(s, serial, &c)) != 0) {
		if (r == AMTCA_E_NOT_FOUND)
			amtca_fail(r, "no certificate with serial %s", serial);
		ret = r;
		goto out;
	}
	*was = strcmp(before->status, "revoked") == 0;
	if ((r = cred_note_revocation(state != NULL ? state : s, c)) != 0) {
		ret = r;
		goto out;
	}
	*out = c;
	c = NULL;
	ret = 0;
out:
	store_cert_free(before);
	store_cert_free(c);
	return ret;
}

static int
compromised_fail(const struct cred_rule *r, const char *fqdn)
{
	return amtca_fail(AMTCA_E_AMT_TLS, "%s is marked compromised: its bound "
	    "certificate%s%s was revoked for %s, so its TLS key may be in other "
	    "hands and no credentials are sent to it; reset AMT on the device "
	    "itself (MEBx or local unprovisioning), change the AMT admin "
	    "password, then run amtca enroll --device-reset", fqdn,
	    r->bound_serial ? " " : "", r->bound_serial ? r->bound_serial : "",
	    r->bound_reason >= 0 ? cred_reason_name(r->bound_reason) :
	    "keyCompromise");
}

static int
retired_fail(const char *fqdn)
{
	return amtca_fail(AMTCA_E_AMT_TLS, "%s is retired (amtca devices "
	    "retire): nothing is sent to it and no reconcile touches it; to "
	    "bring it back, run amtca enroll --device-reset", fqdn);
}

int
cred_rule_plain(const struct cred_rule *r, const char *fqdn)
{
	if (r->compromised)
		return compromised_fail(r, fqdn);
	if (r->retired)
		return retired_fail(fqdn);
	if (r->tls_only)
		return amtca_fail(AMTCA_E_AMT_TLS, "%s is enrolled (TLS only, by "
		    "this CA's records): credentials are never sent to it over "
		    "plain HTTP, where a relay can replay them; fix TLS on the "
		    "device (amtca doctor says what is wrong), or if AMT was "
		    "reset, run amtca enroll --device-reset", fqdn);
	return 0;
}

int
cred_rule_tls(const struct cred_rule *r, const char *fqdn, X509 *served,
    unsigned char pin[32])
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	size_t i;
	int len, ret = AMTCA_E_INTERNAL;

	if (r->compromised) {
		ret = compromised_fail(r, fqdn);
		goto out;
	}
	if (r->retired) {
		ret = retired_fail(fqdn);
		goto out;
	}
	if (served == NULL || (len = i2d_X509(served, &der)) <= 0 ||
	    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		ret = amtca_fail_ssl(AMTCA_E_AMT_TLS, "cannot digest the "
		    "certificate %s serves", fqdn);
		goto out;
	}
	if (r->no_records && r->npins == 0) {
		/* No CA home: the operator's --ca-file is all there is. */
		memcpy(pin, md, 32);
		ret = 0;
		goto out;
	}
	for (i = 0; i < r->npins; i++)
		if (CRYPTO_memcmp(md, r->pins[i], 32) == 0) {
			memcpy(pin, md, 32);
			ret = 0;
			goto out;
		}
	{
		char hex[65];

		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		ret = amtca_fail(AMTCA_E_AMT_TLS, "%s serves a certificate (SHA-256 "
		    "%s) that does not verify as one this CA's records issued "
		    "to the device%s: "
		    "another holder of a certificate for that name may answer "
		    "there, so no credentials are sent (fail closed); check "
		    "--address/DNS, or if you know that certificate is on the "
		    "device, pass --tls-pin %s", fqdn, hex, r->npins == 0 ?
		    " (none is recorded)" : "", hex);
	}
out:
	OPENSSL_free(der);
	return ret;
}

int
cred_pin_parse(const char *s, unsigned char pin[32])
{
	size_t i = 0, n = 0;
	int hi = -1, v;

	if (s == NULL)
		return -1;
	if (strncasecmp(s, "sha256:", 7) == 0 || strncasecmp(s, "sha256/", 7) == 0)
		s += 7;
	for (; s[i] != '\0'; i++) {
		char ch = s[i];

		if (ch == ':')
			continue;
		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v = ch - 'A' + 10;
		else
			return -1;
		if (hi < 0)
			hi = v;
		else {
			if (n >= 32)
				return -1;
			pin[n++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	return n == 32 && hi < 0 ? 0 : -1;
}
