/*
 * status.c — pbox_strerror() and pbox_status_name(), generated from PBOX_STATUS_LIST so that
 * every project code has exactly one message. Negative errno values are named by the C
 * library (strerrorname_np / strerror_r results are cached per value in a static table so
 * the returned pointer stays valid and the function stays thread-safe).
 */
#define _GNU_SOURCE
#include <pbox/status.h>
#include <pbox/types.h>

#include <errno.h>
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
