/*
 * Private to the amt/ client sources: the parsers of amt.h over an already parsed and
 * fault-checked envelope, so the client parses each response once.
 */
#ifndef AMTCA_AMT_INTERNAL_H
#define AMTCA_AMT_INTERNAL_H

#include "amt/amt.h"
#include "amt/wsman.h"

int amt_msg_enumerate(struct wsman_msg *m, char **context) AMTCA_WUR;
int amt_msg_pull_certs(struct wsman_msg *m, struct amt_cert **v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_keys(struct wsman_msg *m, struct amt_key **v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_tls_settings(struct wsman_msg *m, struct amt_tls_setting **v,
    size_t *n, char **context, int *eos) AMTCA_WUR;
int amt_msg_pull_tls_context(struct wsman_msg *m, char ***v, size_t *n,
    char **context, int *eos) AMTCA_WUR;
int amt_msg_general(struct wsman_msg *m, struct amt_general *out) AMTCA_WUR;
int amt_msg_tls_setting(struct wsman_msg *m, struct amt_tls_setting *out) AMTCA_WUR;
int amt_msg_output(struct wsman_msg *m, const char *cls, const char *method,
    const char *field, char **value, int *return_value) AMTCA_WUR;

#endif
