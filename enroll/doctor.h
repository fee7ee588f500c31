/*
 * enroll/doctor.h: the checks a technician does by hand when AMT TLS is
 * broken, as functions a front end or a job can run.  Each check has a
 * stable id ("dns", "port_tls", ...: what --json prints and --skip takes)
 * and ends OK, FAIL with a one-line fix, or SKIP.  Nothing here prints: a
 * front end gets each result as it is made (doctor_opts.on_result) and the
 * whole report at the end.
 */
#ifndef AMTCA_ENROLL_DOCTOR_H
#define AMTCA_ENROLL_DOCTOR_H

#include <stddef.h>

#include "common/err.h"
#include "enroll/home.h"

/* The checks, in the order they run. */
enum doctor_check {
	DOCTOR_DNS = 0,		/* the FQDN resolves (to --address) */
	DOCTOR_PORT_TLS,	/* 16993 accepts connections */
	DOCTOR_TLS_HANDSHAKE,	/* served leaf verifies under chain.pem, name
				   matches, not revoked in our records */
	DOCTOR_PORT_PLAIN,	/* 16992: open, or closed because TLS works */
	DOCTOR_VALIDITY_LOCAL,	/* served leaf valid by this host's clock */
	DOCTOR_CHAIN_FILE,	/* chain.pem complete, ordered, our root */
	DOCTOR_LOGIN,		/* WS-MAN login where the credential rule
				   allows it (needs a password) */
	DOCTOR_IDENTITY,	/* AMT's hostname.domain is the FQDN */
	DOCTOR_VALIDITY_AMT,	/* served leaf valid by AMT's clock */
	DOCTOR_REDIRECTION,	/* redirection port's TLS under chain.pem */
	DOCTOR_HOME,		/* the CA home opened (reported, not run) */
	DOCTOR_NCHECKS
};

enum doctor_verdict { DOCTOR_OK, DOCTOR_FAIL, DOCTOR_SKIP };

/* One run's state inside the doctor (opaque). */
struct doctor_state;

/*
 * The check table; doctor_checks[c].id == c.  `run` is the doctor's own
 * (NULL for DOCTOR_HOME); a front end uses id and name.
 */
struct doctor_check_def {
	enum doctor_check id;
	const char *key;		/* stable: "dns", "tls_handshake", ... */
	const char *name;		/* for humans: "DNS", "TLS handshake" */
	void (*run)(struct doctor_state *);
};
extern const struct doctor_check_def doctor_checks[DOCTOR_NCHECKS];

/* The check whose key is `key`, or -1 ("home" cannot be skipped: -1). */
int doctor_check_parse(const char *key);

struct doctor_result {
	enum doctor_check id;
	enum doctor_verdict verdict;
	const char *key;		/* doctor_checks[id].key */
	const char *name;		/* doctor_checks[id].name */
	char what[512];			/* what was seen */
	char fix[256];			/* FAIL: what to do; else "" */
};

#define DOCTOR_RESULTS_MAX 24

struct doctor_report {
	struct doctor_result r[DOCTOR_RESULTS_MAX];
	size_t n;
	size_t nfail;
	/* The address looked at; "" when the FQDN did not resolve and no
	 * --address was given (then the checks after DNS did not run). */
	char address[64];
};

struct doctor_opts {
	const char *host;		/* FQDN */
	const char *address;		/* NULL: what DNS gives */
	int port;			/* 0 = 16992 */
	int tls_port;			/* 0 = 16993 */
	int redir_port;			/* 0 = 16995 */
	int legacy_tls;
	const char *user;		/* with password_file, or both NULL */
	const char *password_file;	/* read when needed, wiped after the
					   checks that log in */
	const unsigned char *tls_pin;	/* operator's --tls-pin (32 bytes) */
	unsigned skip;			/* 1u << enum doctor_check: SKIP these */
	int home_error;			/* home_open()'s error when h is NULL */
	struct sgn *sgn;		/* h's signer (certificate records), or
					   NULL when h is */
	/* Called with each result as it is made (may be NULL). */
	void (*on_result)(void *ctx, const struct doctor_result *r);
	void *on_result_ctx;
};

/*
 * Run the checks on one device.  `h` (opened with at least HOME_STORE) may
 * be NULL: then the "home" check FAILs with o->home_error and the checks
 * that need the CA say so.  Returns 0 when the checks ran (rep->nfail says
 * how many failed), or a negative AMTCA_E_* code with an amtca_fail()
 * detail when they could not (the password file, the records).
 */
int doctor_run(struct home *h, const struct doctor_opts *o,
    struct doctor_report *rep) AMTCA_WUR;

#endif
