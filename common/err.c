#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static const char *const err_msgs[AMTCA_EI__COUNT] = {
#define AMTCA_X_(n, s) [AMTCA_EI_##n] = s,
	AMTCA_ERROR_TABLE(AMTCA_X_)
#undef AMTCA_X_
};

static const char *const err_names[AMTCA_EI__COUNT] = {
#define AMTCA_X_(n, s) [AMTCA_EI_##n] = #n,
	AMTCA_ERROR_TABLE(AMTCA_X_)
#undef AMTCA_X_
};

static _Thread_local char detail[512];
static _Thread_local int detail_code;

static int
index_of(int code)
{
	int i = -1 - code;

	if (code >= 0 || i >= AMTCA_EI__COUNT)
		return AMTCA_EI_INTERNAL;
	return i;
}

const char *
amtca_strerror(int code)
{
	if (code == 0)
		return "success";
	return err_msgs[index_of(code)];
}

const char *
amtca_errname(int code)
{
	if (code == 0)
		return "OK";
	return err_names[index_of(code)];
}

/*
 * Formatted into a scratch buffer first: callers may pass amtca_errmsg()
 * (this very buffer) as an argument, to wrap an earlier detail.
 */
static void
vset(int code, const char *fmt, va_list ap)
{
	char tmp[sizeof(detail)];

	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	memcpy(detail, tmp, sizeof(detail));
	detail_code = code;
}

int
amtca_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(code, fmt, ap);
	va_end(ap);
	return code;
}

int
amtca_fail_ssl(int code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e, last = 0;
	size_t n;
	const char *reason;

	va_start(ap, fmt);
	vset(code, fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0 && (reason = ERR_reason_error_string(last)) != NULL) {
		n = strlen(detail);
		snprintf(detail + n, sizeof(detail) - n, " (%s)", reason);
	}
	return code;
}

const char *
amtca_errmsg(int code)
{
	if (code != 0 && code == detail_code && detail[0] != '\0')
		return detail;
	return amtca_strerror(code);
}

void
amtca_err_clear(void)
{
	detail[0] = '\0';
	detail_code = 0;
	ERR_clear_error();
}
