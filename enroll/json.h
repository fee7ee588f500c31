/*
 * A minimal streaming JSON writer for the --json outputs: one document per
 * command on stdout.  Keys are NULL inside arrays.  Nesting is bounded.
 */
#ifndef AMTCA_ENROLL_JSON_H
#define AMTCA_ENROLL_JSON_H

#include <stdio.h>

#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;
	int depth;
	int count[JSON_DEPTH_MAX];
};

void json_init(struct json *j, FILE *f);
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
/* NULL value writes null. */
void json_str(struct json *j, const char *key, const char *val);
void json_int(struct json *j, const char *key, long long val);
void json_bool(struct json *j, const char *key, int val);
/* RFC 3339 UTC time. */
void json_time(struct json *j, const char *key, long long epoch);
/* Ends the document with a newline. */
void json_finish(struct json *j);

#endif
