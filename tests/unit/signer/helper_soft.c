/* The ca/ tests' in-memory signer and PKI, for the signer's core tests. */
#include "unit/ca/helper_soft_signer.c"
