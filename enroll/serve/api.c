/*
 * enroll/serve/api.c: PLACEHOLDER in branch h-serve so that `amtca serve`
 * links; the api engineer's api.c replaces it at merge.
 */
#include "enroll/serve/serve.h"

void
api_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	(void)s;
	(void)rq;
	srv_error(rs, 404, "no such resource");
}

int
api_reconcile(struct serve *s)
{
	serve_log(s, "reconcile", "msg=\"no job runner in this build\"");
	return 0;
}

void
api_shutdown(struct serve *s)
{
	(void)s;
}
