#include "common/json.h"

#include <stdlib.h>
#include <time.h>

/* The document being built: one at a time, in memory until finished. */
static FILE *mem;
static char *mem_buf;
static size_t mem_len;
static int stdout_docs;

void
json_init(struct json *j, FILE *f)
{
	json_discard_unfinished();
	j->out = f;
	/* Written as it goes only when memory is short. */
	if ((mem = open_memstream(&mem_buf, &mem_len)) != NULL)
		j->f = mem;
	else
		j->f = f;
	j->depth = 0;
	j->count[0] = 0;
}

void
json_discard_unfinished(void)
{
	if (mem != NULL)
		fclose(mem);
	free(mem_buf);
	mem = NULL;
	mem_buf = NULL;
	mem_len = 0;
}

int
json_stdout_documents(void)
{
	return stdout_docs;
}

/*
 * The length of the well-formed UTF-8 sequence (RFC 3629: no overlong
 * form, no surrogate, nothing past U+10FFFF) that starts at p, a byte of
 * 0x80 or above in a NUL-terminated string; 0 when there is none.
 */
static size_t
utf8_seq(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef) {
		n = 3;
		if (*p == 0xe0)
			lo = 0xa0;		/* overlong */
		else if (*p == 0xed)
			hi = 0x9f;		/* surrogates */
	} else if (*p >= 0xf0 && *p <= 0xf4) {
		n = 4;
		if (*p == 0xf0)
			lo = 0x90;		/* overlong */
		else if (*p == 0xf4)
			hi = 0x8f;		/* past U+10FFFF */
	} else
		return 0;
	/* The NUL ends the loop: it is never a continuation byte. */
	for (i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
		if (p[i] < lo || p[i] > hi)
			return 0;
	return n;
}

void
json_put_string(FILE *f, const char *s)
{
	const unsigned char *p;
	size_t n;

	fputc('"', f);
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		if (*p >= 0x80) {
			/* JSON text is UTF-8: a byte that is not part of a
			 * well-formed sequence (a cut one included) is
			 * U+FFFD, the replacement character. */
			if ((n = utf8_seq(p)) == 0)
				fputs("\\ufffd", f);
			else {
				fwrite(p, 1, n, f);
				p += n - 1;
			}
			continue;
		}
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void
member(struct json *j, const char *key)
{
	if (j->count[j->depth]++ > 0)
		fputc(',', j->f);
	if (key != NULL) {
		json_put_string(j->f, key);
		fputc(':', j->f);
	}
}

static void
open_(struct json *j, const char *key, int c)
{
	member(j, key);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_DEPTH_MAX)
		j->depth++;
	j->count[j->depth] = 0;
}

void
json_obj_begin(struct json *j, const char *key)
{
	open_(j, key, '{');
}

void
json_arr_begin(struct json *j, const char *key)
{
	open_(j, key, '[');
}

void
json_obj_end(struct json *j)
{
	fputc('}', j->f);
	if (j->depth > 0)
		j->depth--;
}

void
json_arr_end(struct json *j)
{
	fputc(']', j->f);
	if (j->depth > 0)
		j->depth--;
}

void
json_str(struct json *j, const char *key, const char *val)
{
	member(j, key);
	if (val == NULL)
		fputs("null", j->f);
	else
		json_put_string(j->f, val);
}

void
json_int(struct json *j, const char *key, long long val)
{
	member(j, key);
	fprintf(j->f, "%lld", val);
}

void
json_seconds(struct json *j, const char *key, double val)
{
	member(j, key);
	/* Never NaN/inf (not JSON); milliseconds are what anyone reads. */
	fprintf(j->f, "%.3f", val >= 0 && val < 1e12 ? val : 0.0);
}

void
json_bool(struct json *j, const char *key, int val)
{
	member(j, key);
	fputs(val ? "true" : "false", j->f);
}

void
json_time(struct json *j, const char *key, long long epoch)
{
	char buf[32];
	time_t t = (time_t)epoch;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_str(j, key, buf);
}

void
json_finish(struct json *j)
{
	fputc('\n', j->f);
	if (j->f == mem && mem != NULL) {
		fclose(mem);
		mem = NULL;
		if (mem_buf != NULL)
			fwrite(mem_buf, 1, mem_len, j->out);
		json_discard_unfinished();
		j->f = j->out;
	}
	fflush(j->out);
	if (j->out == stdout)
		stdout_docs++;
}
