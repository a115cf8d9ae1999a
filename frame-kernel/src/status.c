/*
 * status.c — pbox_strerror() and pbox_status_name(), generated from PBOX_STATUS_LIST so that
 * every project code has exactly one message. Negative errno values are named by the C
 * library (strerrorname_np / strerror_r results are cached per value in a static table so
 * the returned pointer stays valid and the function stays thread-safe).
 *
 * Corruption records: a thread-local copy (no locking) and a process-wide copy under
 * last_mu; file strings are __FILE__ literals, so storing the pointer is safe.
 */
#define _GNU_SOURCE
#include <pbox/status.h>
#include <pbox/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pbox_strerror(int status)
{
	switch (status) {
	case 0:
		return "success";
#define PBOX_STATUS_MSG_(name, value, msg)                                                     \
	case name:                                                                             \
		return msg;
		PBOX_STATUS_LIST(PBOX_STATUS_MSG_)
#undef PBOX_STATUS_MSG_
	default:
		break;
	}
	if (status < 0 && status > -4096) {
		/* glibc's strerror for errno values returns pointers into a static table for
		 * known values; strerrordesc_np is the thread-safe form. */
		const char *d = strerrordesc_np(-status);
		if (d)
			return d;
	}
	return "unknown status";
}

const char *pbox_status_name(int status)
{
	switch (status) {
	case 0:
		return "OK";
#define PBOX_STATUS_NAME_(name, value, msg)                                                    \
	case name:                                                                             \
		return #name;
		PBOX_STATUS_LIST(PBOX_STATUS_NAME_)
#undef PBOX_STATUS_NAME_
	default:
		break;
	}
	if (status < 0 && status > -4096) {
		const char *n = strerrorname_np(-status);
		if (n)
			return n;
	}
	return "UNKNOWN";
}

/* ---- corruption records -------------------------------------------------------------------- */

static _Thread_local pbox_corruption my_last;
static pbox_corruption any_last;
static pthread_mutex_t last_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long long detections;

int pbox__corrupt_at(const char *file, int line, unsigned long long pid)
{
	const char *base = strrchr(file, '/');
	pbox_corruption c = { base ? base + 1 : file, line, pid,
			      atomic_fetch_add_explicit(&detections, 1, memory_order_relaxed) + 1 };
	my_last = c;
	pthread_mutex_lock(&last_mu);
	any_last = c;
	pthread_mutex_unlock(&last_mu);
	static _Atomic int debug = -1; /* both threads would compute the same value */
	if (debug < 0)
		debug = getenv("PBOX_DEBUG_CORRUPT") != NULL;
	if (debug) {
		char b[256];
		pbox_corruption_format(&c, b, sizeof(b));
		fprintf(stderr, "pagebox: corruption detected at %s\n", b);
	}
	return PBOX_ECORRUPT;
}

_Bool pbox_corruption_last(pbox_corruption *out)
{
	if (out)
		*out = my_last;
	return my_last.file != NULL;
}

_Bool pbox_corruption_last_any(pbox_corruption *out)
{
	pthread_mutex_lock(&last_mu);
	pbox_corruption c = any_last;
	pthread_mutex_unlock(&last_mu);
	if (out)
		*out = c;
	return c.file != NULL;
}

void pbox_corruption_format(const pbox_corruption *c, char *buf, unsigned long cap)
{
	if (!buf || !cap)
		return;
	if (!c || !c->file)
		snprintf(buf, cap, "(none recorded)");
	else if (c->pid == ~0ull)
		snprintf(buf, cap, "%s:%d", c->file, c->line);
	else
		snprintf(buf, cap, "%s:%d, page %llu", c->file, c->line, c->pid);
}
