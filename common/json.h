/*
 * A minimal JSON writer for the --json outputs: one document per command on
 * stdout.  Keys are NULL inside arrays.  Nesting is bounded.  A document is
 * built in memory and written out whole by json_finish(), so a command that
 * fails half-way never leaves a partial document on stdout (see cli_fail()).
 * One document is built at a time: json_init() discards an unfinished one.
 */
#ifndef AMTCA_COMMON_JSON_H
#define AMTCA_COMMON_JSON_H

#include <stdio.h>

#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;			/* where members go (memory when buffered) */
	FILE *out;			/* where json_finish() writes the document */
	int depth;
	int count[JSON_DEPTH_MAX];
};

void json_init(struct json *j, FILE *f);
/* s as a JSON string, quotes included (RFC 8259 escapes; well-formed UTF-8
 * passes through, any other byte above 0x7f is written as \ufffd, so the
 * result is always valid JSON; NULL as ""), for writers that build JSON
 * outside struct json. */
void json_put_string(FILE *f, const char *s);
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
/* NULL value writes null. */
void json_str(struct json *j, const char *key, const char *val);
void json_int(struct json *j, const char *key, long long val);
void json_bool(struct json *j, const char *key, int val);
/* A duration in seconds, 3 decimals (0 for a negative or absurd value). */
void json_seconds(struct json *j, const char *key, double val);
/* RFC 3339 UTC time. */
void json_time(struct json *j, const char *key, long long epoch);
/* Ends the document with a newline and writes it out. */
void json_finish(struct json *j);

/* How many documents json_finish() has written to stdout. */
int json_stdout_documents(void);
/* Forget the document begun with json_init() and not finished, if any. */
void json_discard_unfinished(void);

#endif
