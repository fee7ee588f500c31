/*
 * HTTP Digest, server side, as AMT does it (reference §1.3): MD5, qop=auth,
 * no opaque, realm "Digest:<32 HEX>", 32-character base64 nonces.
 *
 * Nonces are stateless: 8 bytes issue time (monotonic ms), 4 random bytes
 * and a 12-byte HMAC-SHA256 tag under a per-device key, base64 = 32 chars.
 * A nonce older than --nonce-ttl gets 401 stale="true" (when the response
 * was otherwise right); a forged or foreign nonce gets a fresh challenge.
 *
 * Leniency that real clients need: qop and nc quoted or not, nc in hex or
 * decimal (hashed as sent), RFC 2069 form without qop.  Strictness that
 * matters: response must be 32 hex digits (response="" was the 2017 AMT
 * bypass), uri must be /wsman, realm and user must match, compared with
 * CRYPTO_memcmp.
 */
#include "amt/sim/sim.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/util.h"

#define P_MAX 256	/* one Digest parameter value */

const char sim_html_401[] =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" >\n"
    "<html><head><link rel=stylesheet href=/styles.css>\n"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n"
    "<title>Intel&reg; Active Management Technology</title></head>\n"
    "<body>\n"
    "<table class=header>\n"
    "<tr><td valign=top nowrap>\n"
    "<p class=top1>Intel<font class=r><sup>&reg;</sup></font> Active "
    "Management Technology\n"
    "</td></tr></table>\n"
    "<br>\n"
    "<h2 class=warn>Log on failed. Incorrect user name or password, or user "
    "account temporarily locked.</h2>\n"
    "<p>\n"
    "<form METHOD=\"GET\" action=\"index.htm\"><h2><input type=submit "
    "value=\"Try again\">\n"
    "</h2></form>\n"
    "<p>\n"
    "</body>\n"
    "</html>\n";

struct dparams {
	char username[P_MAX], realm[P_MAX], nonce[P_MAX], uri[P_MAX];
	char response[P_MAX], qop[P_MAX], nc[P_MAX], cnonce[P_MAX];
	char algorithm[P_MAX];
	int has_qop, has_response;
};

static char *
slot(struct dparams *p, const char *name, size_t n)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{ "username", offsetof(struct dparams, username) },
		{ "realm", offsetof(struct dparams, realm) },
		{ "nonce", offsetof(struct dparams, nonce) },
		{ "uri", offsetof(struct dparams, uri) },
		{ "response", offsetof(struct dparams, response) },
		{ "qop", offsetof(struct dparams, qop) },
		{ "nc", offsetof(struct dparams, nc) },
		{ "cnonce", offsetof(struct dparams, cnonce) },
		{ "algorithm", offsetof(struct dparams, algorithm) },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strlen(map[i].name) == n &&
		    strncasecmp(map[i].name, name, n) == 0) {
			if (strcmp(map[i].name, "qop") == 0)
				p->has_qop = 1;
			if (strcmp(map[i].name, "response") == 0)
				p->has_response = 1;
			return (char *)p + map[i].off;
		}
	}
	return NULL;
}

/* Parse `Digest k=v, k="v", ...`; -1 on anything malformed. */
static int
parse_authz(const char *h, struct dparams *p)
{
	const char *s = h, *name;
	char *dst;
	size_t n, o;

	memset(p, 0, sizeof(*p));
	while (*s == ' ' || *s == '\t')
		s++;
	if (strncasecmp(s, "Digest", 6) != 0 || (s[6] != ' ' && s[6] != '\t'))
		return -1;
	s += 6;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		name = s;
		while (*s != '\0' && *s != '=' && *s != ' ' && *s != ',')
			s++;
		n = (size_t)(s - name);
		while (*s == ' ')
			s++;
		if (*s != '=' || n == 0)
			return -1;
		s++;
		while (*s == ' ')
			s++;
		dst = slot(p, name, n);
		o = 0;
		if (*s == '"') {
			s++;
			while (*s != '"') {
				if (*s == '\\' && s[1] != '\0')
					s++;
				if (*s == '\0')
					return -1;
				if (dst != NULL) {
					if (o + 1 >= P_MAX)
						return -1;
					dst[o++] = *s;
				}
				s++;
			}
			s++;
		} else {
			while (*s != '\0' && *s != ',' && *s != ' ' && *s != '\t') {
				if (dst != NULL) {
					if (o + 1 >= P_MAX)
						return -1;
					dst[o++] = *s;
				}
				s++;
			}
		}
		if (dst != NULL)
			dst[o] = '\0';
	}
	return 0;
}

static void
hex_lower(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
md5_hex(const char *s, char out[33])
{
	unsigned char h[16];
	unsigned int l = 0;

	if (EVP_Digest(s, strlen(s), h, &l, EVP_md5(), NULL) != 1)
		return -1;
	hex_lower(h, 16, out);
	return 0;
}

static int
nonce_tag(const struct sim_device *d, const unsigned char *in12,
    unsigned char out[12])
{
	unsigned char mac[32];
	unsigned int l = 0;

	if (HMAC(EVP_sha256(), d->nonce_key, sizeof(d->nonce_key), in12, 12,
	    mac, &l) == NULL || l < 12)
		return -1;
	memcpy(out, mac, 12);
	return 0;
}

int
sim_auth_challenge(struct sim_device *d, int stale, char *out, size_t outlen)
{
	unsigned char raw[24];
	char *b64 = NULL;
	long long now = amtca_now_ms();
	int i, r;

	for (i = 0; i < 8; i++)
		raw[i] = (unsigned char)((unsigned long long)now >> (56 - 8 * i));
	if ((r = amtca_random(raw + 8, 4)) != 0)
		return r;
	if (nonce_tag(d, raw, raw + 12) != 0)
		return AMTCA_E_INTERNAL;
	if ((r = amtca_b64_encode(raw, sizeof(raw), &b64)) != 0)
		return r;
	r = snprintf(out, outlen, "Digest realm=\"%s\", nonce=\"%s\",stale=\"%s\","
	    "qop=\"auth\"", d->realm, b64, stale ? "true" : "false");
	free(b64);
	return r < 0 || (size_t)r >= outlen ? AMTCA_E_INTERNAL : 0;
}

/* 1 valid and fresh, 2 valid but expired, 0 not ours. */
static int
nonce_check(const struct sim_device *d, const char *nonce)
{
	unsigned char *raw = NULL, tag[12];
	size_t len = 0;
	long long t = 0, now;
	int i, ret = 0;

	if (strlen(nonce) != 32 ||
	    amtca_b64_decode(nonce, 32, 24, &raw, &len) != 0 || len != 24)
		goto out;
	if (nonce_tag(d, raw, tag) != 0 || CRYPTO_memcmp(tag, raw + 12, 12) != 0)
		goto out;
	for (i = 0; i < 8; i++)
		t = (long long)(((unsigned long long)t << 8) | raw[i]);
	now = amtca_now_ms();
	ret = now - t > (long long)d->cfg->nonce_ttl_s * 1000 || t > now ? 2 : 1;
out:
	free(raw);
	return ret;
}

static int
all_hex(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static void
note_failure(struct sim_device *d)
{
	d->auth_failures++;
	if (d->cfg->lockout > 0 && d->auth_failures >= d->cfg->lockout)
		d->locked_until_ms = amtca_now_ms() +
		    (long long)d->cfg->lockout_s * 1000;
}

enum sim_auth
sim_auth_check(struct sim_device *d, const char *method, const char *url,
    const char *authz)
{
	struct dparams p;
	char ha1[33], ha2[33], want[33], got[33], a2[300];
	char *a3 = NULL;
	enum sim_auth ret = SIM_AUTH_CHALLENGE;
	size_t i;
	int fresh;

	pthread_mutex_lock(&d->lock);
	if (d->locked_until_ms != 0) {
		if (amtca_now_ms() < d->locked_until_ms) {
			ret = SIM_AUTH_LOCKED;
			goto out;
		}
		d->locked_until_ms = 0;
		d->auth_failures = 0;
	}
	if (authz == NULL)
		goto out;
	/* From here on every rejection counts towards the lockout. */
	if (parse_authz(authz, &p) != 0 || !p.has_response ||
	    strcmp(p.username, d->cfg->user) != 0 ||
	    strcmp(p.realm, d->realm) != 0 ||
	    strcmp(p.uri, "/wsman") != 0 || url == NULL ||
	    strcmp(url, "/wsman") != 0 ||
	    !all_hex(p.response, 32, 32) ||
	    (p.algorithm[0] != '\0' && strcasecmp(p.algorithm, "MD5") != 0) ||
	    (p.has_qop && (strcmp(p.qop, "auth") != 0 ||
	    !all_hex(p.nc, 1, 8) || p.cnonce[0] == '\0'))) {
		note_failure(d);
		goto out;
	}
	if ((fresh = nonce_check(d, p.nonce)) == 0)
		goto out;	/* not our nonce: just challenge again */
	hex_lower(d->ha1, 16, ha1);
	snprintf(a2, sizeof(a2), "%s:/wsman", method);
	if (md5_hex(a2, ha2) != 0)
		goto out;
	if (p.has_qop) {
		if (asprintf(&a3, "%s:%s:%s:%s:%s:%s", ha1, p.nonce, p.nc,
		    p.cnonce, p.qop, ha2) < 0)
			a3 = NULL;
	} else if (asprintf(&a3, "%s:%s:%s", ha1, p.nonce, ha2) < 0)
		a3 = NULL;
	if (a3 == NULL || md5_hex(a3, want) != 0)
		goto out;
	for (i = 0; i < 32; i++)
		got[i] = (char)tolower((unsigned char)p.response[i]);
	got[32] = '\0';
	if (CRYPTO_memcmp(got, want, 32) != 0) {
		note_failure(d);
		if (d->locked_until_ms != 0)
			ret = SIM_AUTH_LOCKED;
		goto out;
	}
	if (fresh == 2) {
		ret = SIM_AUTH_STALE;
		goto out;
	}
	d->auth_failures = 0;
	ret = SIM_AUTH_OK;
out:
	OPENSSL_cleanse(ha1, sizeof(ha1));
	if (a3 != NULL) {
		OPENSSL_cleanse(a3, strlen(a3));
		free(a3);
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}
