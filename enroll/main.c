/* amtca: command dispatcher (placeholder until the CLI lands). */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "amtca: not built yet\n");
	return 2;
}
