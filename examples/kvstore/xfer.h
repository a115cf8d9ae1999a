/*
 * xfer.h — private to the kvstore example's stress.c and check_acks.c: the keys and values
 * of `stress --transfers` (accounts, the total, transfer records) and their parsers.
 */
#ifndef KV_XFER_H
#define KV_XFER_H

#include <stddef.h>
#include <stdint.h>

#define ACCT_INITIAL 1000u  /* each account's balance when the accounts are created */
#define XFER_MAX_AMOUNT 100 /* a transfer asks for 1..100 (capped by the payer's balance) */
#define ACCT_PREFIX "acct/"
#define ACCT_TOTAL_KEY "acct/total"
#define XFER_PREFIX "xfer/"

int acct_key(char *buf, unsigned i);                       /* acct/<8 digits> */
int xfer_key(char *buf, unsigned thread, uint64_t seq);    /* xfer/<thread>/<12 digits> */
/* acct/<8 digits>: 0 and the account number, or -1 (acct/total and anything else). */
int acct_key_parse(const void *key, size_t klen, unsigned *i);
/* xfer/<thread>/<12 digits>: 0, or -1. */
int xfer_key_parse(const void *key, size_t klen, unsigned *thread, uint64_t *seq);
/* Up to n space-separated decimal numbers filling all of [p, p+len): 0, or -1. */
int parse_numbers(const void *p, size_t len, uint64_t *out, unsigned n);

#endif
