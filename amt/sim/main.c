/* amtsim: placeholder until the simulator lands. */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "amtsim: not built yet\n");
	return 2;
}
