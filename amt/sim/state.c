/*
 * The --state file: one text file for the whole fleet, rewritten
 * atomically (amtca_file_write: temp file, fsync, rename) by the control
 * thread after every change and once more at exit.  Format, one record a
 * line, fields separated by one space:
 *
 *   amtsim-state 1
 *   clock-offset S                      simulated time = host time + S
 *   device INDEX FQDN
 *   clock OFFSET_S                      AMT clock = simulated time + OFFSET_S
 *   next CERT_NEXT KEY_NEXT             handle counters
 *   key HANDLE BASE64(PKCS#1 RSAPrivateKey DER)
 *   cert HANDLE TRUSTED BASE64(DER)
 *   ctx BOUND_CERT COMMITTED_CERT       -1 = none
 *   tls I P_EN P_MUTUAL P_ACCEPT C_EN C_MUTUAL C_ACCEPT   (P pending, C committed)
 *   end
 *
 * The file holds private keys: mode 0600.  An amtsim that predates
 * clock-offset skips that line (it comes before any device).
 */
#include "amt/sim/sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/limits.h"
#include "common/util.h"

static int
add_device(struct wsman_buf *b, struct sim_device *d)
{
	unsigned char *der = NULL;
	size_t len = 0, i;
	char *b64 = NULL;
	int r, k;

	if ((r = wsman_buf_addf(b, "device %u %s\nclock %lld\nnext %d %d\n",
	    d->index, d->fqdn, d->clock_offset_s, d->cert_next,
	    d->key_next)) != 0)
		return r;
	for (i = 0; i < d->nkeys; i++) {
		if ((r = sim_key_private_der(&d->keys[i], &der, &len)) != 0)
			return r;
		r = amtca_b64_encode(der, len, &b64);
		OPENSSL_cleanse(der, len);
		free(der);
		if (r != 0)
			return r;
		r = wsman_buf_addf(b, "key %d %s\n", d->keys[i].handle, b64);
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
		if (r != 0)
			return r;
	}
	for (i = 0; i < d->ncerts; i++) {
		if ((r = amtca_b64_encode(d->certs[i].der, d->certs[i].der_len,
		    &b64)) != 0)
			return r;
		r = wsman_buf_addf(b, "cert %d %d %s\n", d->certs[i].handle,
		    d->certs[i].trusted_root, b64);
		free(b64);
		if (r != 0)
			return r;
	}
	if ((r = wsman_buf_addf(b, "ctx %d %d\n", d->ctx_cert,
	    d->committed_ctx_cert)) != 0)
		return r;
	for (k = 0; k < SIM_TLS_N; k++)
		if ((r = wsman_buf_addf(b, "tls %d %d %d %d %d %d %d\n", k,
		    d->pending[k].enabled, d->pending[k].mutual,
		    d->pending[k].accept_non_secure, d->committed[k].enabled,
		    d->committed[k].mutual,
		    d->committed[k].accept_non_secure)) != 0)
			return r;
	return wsman_buf_addf(b, "end\n");
}

int
sim_state_save(struct sim_fleet *f)
{
	struct wsman_buf b;
	size_t i;
	int r, ret = AMTCA_E_INTERNAL;

	if (f->state_path == NULL)
		return 0;
	wsman_buf_init(&b, SIM_STATE_MAX);
	if ((r = wsman_buf_addf(&b, "amtsim-state 1\nclock-offset %lld\n",
	    (long long)atomic_load(&f->clock_offset_s))) != 0) {
		ret = r;
		goto out;
	}
	for (i = 0; i < f->n; i++) {
		pthread_mutex_lock(&f->dev[i]->lock);
		r = add_device(&b, f->dev[i]);
		pthread_mutex_unlock(&f->dev[i]->lock);
		if (r != 0) {
			ret = r;
			goto out;
		}
	}
	if ((r = amtca_file_write(f->state_path, b.data, b.len, 0600, 0)) != 0) {
		ret = amtca_fail(r, "cannot write state file %s", f->state_path);
		goto out;
	}
	ret = 0;
out:
	if (b.data != NULL)
		OPENSSL_cleanse(b.data, b.len);
	wsman_buf_free(&b);
	return ret;
}

static int
bad(const char *path, unsigned line)
{
	return amtca_fail(AMTCA_E_CONFIG, "state file %s: bad line %u", path,
	    line);
}

static int
b64_field(const char *s, size_t max, unsigned char **out, size_t *len)
{
	return amtca_b64_decode(s, strlen(s), max, out, len);
}

int
sim_state_load(struct sim_fleet *f)
{
	unsigned char *buf = NULL, *der = NULL;
	size_t len = 0, dlen = 0;
	char *save = NULL, *line, *tok[9], *sp;
	struct sim_device *d = NULL;
	unsigned lineno = 0;
	int nt, r, ret = AMTCA_E_INTERNAL;

	if (f->state_path == NULL)
		return 0;
	if (access(f->state_path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((r = amtca_file_read(f->state_path, SIM_STATE_MAX, &buf, &len)) != 0) {
		ret = amtca_fail(r, "cannot read state file %s", f->state_path);
		goto out;
	}
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		nt = 0;
		for (tok[nt] = strtok_r(line, " ", &sp); tok[nt] != NULL &&
		    nt < 8; tok[nt] = strtok_r(NULL, " ", &sp))
			nt++;
		if (nt == 0)
			continue;
		if (lineno == 1) {
			if (nt != 2 || strcmp(tok[0], "amtsim-state") != 0 ||
			    strcmp(tok[1], "1") != 0) {
				ret = bad(f->state_path, lineno);
				goto out;
			}
			continue;
		}
		if (strcmp(tok[0], "device") == 0 && nt == 3) {
			unsigned long idx = strtoul(tok[1], NULL, 10);

			d = idx < f->n ? f->dev[idx] : NULL;
			if (d != NULL && strcmp(d->fqdn, tok[2]) != 0) {
				ret = amtca_fail(AMTCA_E_CONFIG, "state file %s: "
				    "device %lu is %s, not %s", f->state_path,
				    idx, tok[2], d->fqdn);
				goto out;
			}
			continue;
		}
		if (strcmp(tok[0], "clock-offset") == 0 && nt == 2 && d == NULL) {
			char *end = NULL;
			long long off;

			errno = 0;
			off = strtoll(tok[1], &end, 10);
			if (errno != 0 || *end != '\0' ||
			    off > SIM_CLOCK_OFFSET_MAX || off < -SIM_CLOCK_OFFSET_MAX) {
				ret = bad(f->state_path, lineno);
				goto out;
			}
			/* --clock-offset on the command line wins. */
			if (!f->clock_offset_given)
				atomic_store(&f->clock_offset_s, off);
			continue;
		}
		if (d == NULL)
			continue;	/* a device beyond --devices: ignored */
		if (strcmp(tok[0], "clock") == 0 && nt == 2)
			d->clock_offset_s = strtoll(tok[1], NULL, 10);
		else if (strcmp(tok[0], "next") == 0 && nt == 3) {
			d->cert_next = atoi(tok[1]);
			d->key_next = atoi(tok[2]);
		} else if (strcmp(tok[0], "key") == 0 && nt == 3) {
			if (b64_field(tok[2], SIM_KEY_DER_MAX, &der, &dlen) != 0 ||
			    sim_key_restore(d, atoi(tok[1]), der, dlen) != 0) {
				ret = bad(f->state_path, lineno);
				goto out;
			}
			OPENSSL_cleanse(der, dlen);
			free(der);
			der = NULL;
		} else if (strcmp(tok[0], "cert") == 0 && nt == 4) {
			if (b64_field(tok[3], AMTCA_AMT_CERT_DER_MAX, &der,
			    &dlen) != 0 || sim_cert_restore(d, atoi(tok[1]),
			    atoi(tok[2]) != 0, der, dlen) != 0) {
				ret = bad(f->state_path, lineno);
				goto out;
			}
			free(der);
			der = NULL;
		} else if (strcmp(tok[0], "ctx") == 0 && nt == 3) {
			d->ctx_cert = atoi(tok[1]);
			d->committed_ctx_cert = atoi(tok[2]);
		} else if (strcmp(tok[0], "tls") == 0 && nt == 8) {
			int k = atoi(tok[1]);

			if (k < 0 || k >= SIM_TLS_N) {
				ret = bad(f->state_path, lineno);
				goto out;
			}
			d->pending[k].enabled = atoi(tok[2]) != 0;
			d->pending[k].mutual = atoi(tok[3]) != 0;
			d->pending[k].accept_non_secure = atoi(tok[4]) != 0;
			d->committed[k].enabled = atoi(tok[5]) != 0;
			d->committed[k].mutual = atoi(tok[6]) != 0;
			d->committed[k].accept_non_secure = atoi(tok[7]) != 0;
		} else if (strcmp(tok[0], "end") == 0 && nt == 1)
			d = NULL;
		else {
			ret = bad(f->state_path, lineno);
			goto out;
		}
	}
	ret = 0;
out:
	if (der != NULL) {
		OPENSSL_cleanse(der, dlen);
		free(der);
	}
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return ret;
}
