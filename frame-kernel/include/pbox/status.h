/*
 * pbox/status.h — status codes.
 *
 * Every pagebox function that can fail returns int: 0 on success, a negative errno value
 * unchanged from the operating system (-EIO, -ENOSPC, -ENOMEM, ...), or one of the project
 * codes below, which live in their own range [-30999, -30900] far away from errno values.
 * Out-parameters are written only on success. pbox_strerror() names all of them.
 *
 * The list is written once, as PBOX_STATUS_LIST; the enum and pbox_strerror() are generated
 * from it, so a code can never lack a message.
 */
#ifndef PBOX_STATUS_H
#define PBOX_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/*            name           value   message */
#define PBOX_STATUS_LIST(X)                                                                   \
	X(PBOX_ENOTFOUND,   -30900, "not found")                                               \
	X(PBOX_EEXIST,      -30901, "already exists")                                          \
	X(PBOX_ECORRUPT,    -30902, "corruption detected (bad checksum, page id or format)")   \
	X(PBOX_ENOSPC,      -30903, "out of space: a configured size limit was reached")       \
	X(PBOX_EFULL,       -30904, "buffer pool exhausted: no frame can be evicted")          \
	X(PBOX_EPOISONED,   -30905, "refusing work after a failed write or sync; reopen")      \
	X(PBOX_EINVAL,      -30906, "invalid argument")                                        \
	X(PBOX_ELOCKED,     -30907, "store is locked by another process")                      \
	X(PBOX_ETOOSMALL,   -30908, "buffer too small for the result")                         \
	X(PBOX_EVERSION,    -30909, "unsupported on-disk format version")                      \
	X(PBOX_ECLOSED,     -30910, "object is closed or dropped")                             \
	X(PBOX_ENOTSUP,     -30911, "operation not supported here")                            \
	X(PBOX_ERESTART,    -30912, "optimistic validation failed; restart the operation")     \
	X(PBOX_EBUSY,       -30913, "resource busy")                                           \
	X(PBOX_ELIMIT,      -30914, "a documented size limit was exceeded")                  \
	X(PBOX_ECONFLICT,   -30915, "write-write conflict with another transaction; retry")   \
	X(PBOX_ESNAPSHOT,   -30916, "snapshot too old: versions it needs were discarded")    \
	X(PBOX_EPARTIAL,    -30917, "an unfinished backup, not a store: take the backup again") \
	X(PBOX_ELAGGED,     -30918, "fell too far behind the log: resynchronise from a backup")

enum pbox_status {
	PBOX_OK = 0,
#define PBOX_STATUS_ENUM_(name, value, msg) name = (value),
	PBOX_STATUS_LIST(PBOX_STATUS_ENUM_)
#undef PBOX_STATUS_ENUM_
};

#define PBOX_STATUS_MIN (-30999)
#define PBOX_STATUS_MAX (-30900)

/* A static, never-NULL message for any status: project codes, negative errno values, 0. */
const char *pbox_strerror(int status);

/* The symbolic name of a status ("PBOX_ECORRUPT", "EIO", "OK"), for logs and tests. */
const char *pbox_status_name(int status);

/* ---- where a corruption was detected ----------------------------------------------------
 * Every place that returns PBOX_ECORRUPT for something it read (a checksum, a page id, a
 * length, a format field) does so through PBOX_CORRUPT / PBOX_CORRUPT_PID, which records the
 * place (file:line) and the page id when known, then evaluates to PBOX_ECORRUPT. The record
 * is kept per thread (the calling thread's last detection: read it right after the call that
 * failed) and once per process (the last detection of any thread). With the environment
 * variable PBOX_DEBUG_CORRUPT set, each detection is also written to stderr as one line.
 * Code that reads racily (optimistic readers, whose verdict only counts after validation)
 * returns plain PBOX_ECORRUPT and lets the validated caller record it. */
typedef struct pbox_corruption {
	const char *file; /* NULL: none recorded */
	int line;
	unsigned long long pid; /* PBOX_PID_NONE (all ones) when unknown */
	unsigned long long seq; /* process-wide detection counter at this detection (1, 2, ...) */
} pbox_corruption;

int pbox__corrupt_at(const char *file, int line, unsigned long long pid);
#define PBOX_CORRUPT() pbox__corrupt_at(__FILE__, __LINE__, ~0ull)
#define PBOX_CORRUPT_PID(pid) pbox__corrupt_at(__FILE__, __LINE__, (unsigned long long)(pid))

/* The calling thread's last detection (false if none). */
_Bool pbox_corruption_last(pbox_corruption *out);
/* The process's last detection, on any thread (false if none). */
_Bool pbox_corruption_last_any(pbox_corruption *out);
/* "file:line" or "file:line, page N" of a detection, into buf (always terminated). */
void pbox_corruption_format(const pbox_corruption *c, char *buf, unsigned long cap);

#ifdef __cplusplus
}
#endif
#endif /* PBOX_STATUS_H */
