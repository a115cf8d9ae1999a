/*
 * bench_util_int.h — private to pbox_benchutil: helpers its source files share. Not used by
 * the programs (their interface is bench_util.h).
 */
#ifndef PBOX_BENCH_UTIL_INT_H
#define PBOX_BENCH_UTIL_INT_H

#include <stdlib.h>

/* The default parent of scratch directories: $TMPDIR if set and not empty, else /tmp. */
static inline const char *pbox__bench_default_tmp(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

#endif /* PBOX_BENCH_UTIL_INT_H */
