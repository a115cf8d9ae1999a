/*
 * pbox/alloc.h — allocation hooks.
 *
 * Every pagebox library allocates through pbox_malloc() and friends. By default they call
 * jemalloc (when the build has PBOX_JEMALLOC) or the C library. A program may install its
 * own hooks once, before any pagebox object exists; tests use pbox_alloc_fail_nth() to make
 * the Nth allocation fail and check that every caller returns -ENOMEM cleanly.
 *
 * Large page-sized memory (the buffer pool's reservation) does not come from here: it is
 * mmap'ed directly. These hooks are for objects, buffers and metadata.
 */
#ifndef PBOX_ALLOC_H
#define PBOX_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_alloc_hooks {
	void *(*malloc_fn)(size_t size, void *ctx);
	/* align is a power of two >= sizeof(void *); memory is released with free_fn. */
	void *(*aligned_fn)(size_t align, size_t size, void *ctx);
	void *(*realloc_fn)(void *p, size_t size, void *ctx);
	void (*free_fn)(void *p, void *ctx);
	void *ctx;
} pbox_alloc_hooks;

/* Install hooks (copied), or restore the defaults with NULL. Not safe while other threads
 * allocate through pagebox: call at start-up. */
void pbox_alloc_set_hooks(const pbox_alloc_hooks *hooks);

void *pbox_malloc(size_t size);
void *pbox_calloc(size_t n, size_t size);      /* overflow-checked */
void *pbox_realloc(void *p, size_t size);
void *pbox_aligned_alloc(size_t align, size_t size);
void pbox_free(void *p);
char *pbox_strdup(const char *s);

/* "jemalloc" or "libc": what the default hooks call. */
const char *pbox_alloc_backend(void);

/* Test hook: the nth allocation (1-based, counted from this call) returns NULL; with
 * sticky, every later one too. nth = 0 disarms. Thread-safe. */
void pbox_alloc_fail_nth(uint64_t nth, bool sticky);
/* How many allocations the armed fault has failed since pbox_alloc_fail_nth was called. */
uint64_t pbox_alloc_failures(void);

#ifdef __cplusplus
}
#endif
#endif
