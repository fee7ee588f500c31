/*
 * enroll/serve/est.c: PLACEHOLDER in branch h-serve so that `amtca serve`
 * links; the est engineer's est.c replaces it at merge.
 */
#include "enroll/serve/serve.h"

void
est_handle(struct serve *s, const struct srv_req *rq, struct srv_resp *rs)
{
	(void)s;
	(void)rq;
	srv_error(rs, 404, "no such resource");
}
