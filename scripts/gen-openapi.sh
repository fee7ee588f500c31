#!/bin/sh
# docs/openapi.json into enroll/serve/api_openapi.c, the string that
# GET /api/v1/openapi.json serves.  Run after editing the JSON;
# tests/integration/t_api.sh checks that the two agree byte for byte.
set -eu
cd "$(dirname "$0")/.."
{
	printf '/*\n * GET /api/v1/openapi.json: docs/openapi.json, byte for byte (generated from\n'
	printf ' * it by scripts/gen-openapi.sh; tests/integration/t_api.sh compares the two).\n */\n'
	printf 'const char api_openapi_json[] =\n'
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' docs/openapi.json
	printf ';\n'
} > enroll/serve/api_openapi.c.tmp
mv enroll/serve/api_openapi.c.tmp enroll/serve/api_openapi.c
