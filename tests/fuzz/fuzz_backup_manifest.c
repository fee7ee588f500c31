/*
 * libFuzzer target for the backup manifest (enroll/backup.h), which
 * restore reads from a backup directory.  Properties: whatever parses has
 * entries sorted strictly by path (so no duplicates), 64 lowercase hex
 * digits per hash, and paths that stay inside the directory (relative, no
 * "." or ".." component, printable ASCII); re-serialised in that order and
 * parsed again, it gives the same entries.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enroll/backup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_path(const char *p)
{
	const char *seg = p, *c;

	if (*p == '\0' || *p == '/')
		abort();
	for (c = p;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t n = (size_t)(c - seg);

			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				abort();
			if (*c == '\0')
				return;
			seg = c + 1;
		} else if (*c < 0x20 || *c > 0x7e || *c == '\\')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct backup_manifest *m = NULL, *m2 = NULL;
	char *text = NULL;
	size_t i, len = 0;
	FILE *f;

	if (backup_manifest_parse((const char *)data, size, "fuzz", &m) != 0) {
		if (m != NULL)
			abort();
		return 0;
	}
	for (i = 0; i < m->n; i++) {
		if (strlen(m->e[i].sha256) != 64 ||
		    strspn(m->e[i].sha256, "0123456789abcdef") != 64)
			abort();
		check_path(m->e[i].path);
		if (i > 0 && strcmp(m->e[i - 1].path, m->e[i].path) >= 0)
			abort();
	}
	if ((f = open_memstream(&text, &len)) == NULL)
		abort();
	for (i = 0; i < m->n; i++)
		fprintf(f, "%s  %s\n", m->e[i].sha256, m->e[i].path);
	fclose(f);
	if (backup_manifest_parse(text, len, "again", &m2) != 0 || m2->n != m->n)
		abort();
	for (i = 0; i < m->n; i++)
		if (strcmp(m->e[i].path, m2->e[i].path) != 0 ||
		    strcmp(m->e[i].sha256, m2->e[i].sha256) != 0)
			abort();
	backup_manifest_free(m2);
	backup_manifest_free(m);
	free(text);
	return 0;
}
