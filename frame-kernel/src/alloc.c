/*
 * alloc.c — allocation hooks: jemalloc (mallocx and friends) by default when the build has
 * PBOX_JEMALLOC, the C library otherwise; a test hook that fails the Nth allocation.
 *
 * The active hook table is read through an atomic pointer (acquire, paired with the release
 * store in pbox_alloc_set_hooks), so a program that installs hooks at start-up and then
 * starts threads is race-free. The failure injector is a counter checked before every
 * allocation; when no fault is armed that is one relaxed load of a zero.
 */
#include <pbox/alloc.h>
#include <pbox/types.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if PBOX_JEMALLOC
#include <jemalloc/jemalloc.h>

static void *def_malloc(size_t size, void *ctx)
{
	(void)ctx;
	return mallocx(size ? size : 1, 0);
}
static void *def_aligned(size_t align, size_t size, void *ctx)
{
	(void)ctx;
	return mallocx(size ? size : 1, MALLOCX_ALIGN(align));
}
static void *def_realloc(void *p, size_t size, void *ctx)
{
	(void)ctx;
	if (!p)
		return mallocx(size ? size : 1, 0);
	return rallocx(p, size ? size : 1, 0);
}
static void def_free(void *p, void *ctx)
{
	(void)ctx;
	if (p)
		dallocx(p, 0);
}
#define BACKEND "jemalloc"
#else
static void *def_malloc(size_t size, void *ctx)
{
	(void)ctx;
	return malloc(size ? size : 1);
}
static void *def_aligned(size_t align, size_t size, void *ctx)
{
	(void)ctx;
	void *p = NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	return posix_memalign(&p, align, size ? size : 1) == 0 ? p : NULL;
}
static void *def_realloc(void *p, size_t size, void *ctx)
{
	(void)ctx;
	return realloc(p, size ? size : 1);
}
static void def_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}
#define BACKEND "libc"
#endif

static const pbox_alloc_hooks default_hooks = {
	.malloc_fn = def_malloc,
	.aligned_fn = def_aligned,
	.realloc_fn = def_realloc,
	.free_fn = def_free,
	.ctx = NULL,
};

static pbox_alloc_hooks user_hooks;
static _Atomic(const pbox_alloc_hooks *) active = &default_hooks;

/* Failure injection: remaining counts down to 1 (the call that fails); sticky keeps failing. */
static _Atomic int64_t fail_remaining; /* 0 = disarmed */
static _Atomic int fail_sticky;
static _Atomic uint64_t fail_count;

void pbox_alloc_set_hooks(const pbox_alloc_hooks *hooks)
{
	if (!hooks) {
		atomic_store_explicit(&active, &default_hooks, memory_order_release);
		return;
	}
	user_hooks = *hooks;
	atomic_store_explicit(&active, &user_hooks, memory_order_release);
}

static inline const pbox_alloc_hooks *hooks_now(void)
{
	return atomic_load_explicit(&active, memory_order_acquire);
}

/* true: this allocation must fail. */
static bool inject(void)
{
	int64_t r = atomic_load_explicit(&fail_remaining, memory_order_relaxed);
	if (PBOX_LIKELY(r == 0))
		return false;
	if (atomic_load_explicit(&fail_sticky, memory_order_relaxed) && r == 1) {
		atomic_fetch_add_explicit(&fail_count, 1, memory_order_relaxed);
		return true;
	}
	r = atomic_fetch_sub_explicit(&fail_remaining, 1, memory_order_relaxed);
	if (r == 1) {
		if (atomic_load_explicit(&fail_sticky, memory_order_relaxed))
			atomic_store_explicit(&fail_remaining, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&fail_count, 1, memory_order_relaxed);
		return true;
	}
	if (r <= 0) /* raced with a disarm */
		atomic_store_explicit(&fail_remaining, 0, memory_order_relaxed);
	return false;
}

void pbox_alloc_fail_nth(uint64_t nth, bool sticky)
{
	atomic_store(&fail_sticky, sticky ? 1 : 0);
	atomic_store(&fail_count, 0);
	atomic_store(&fail_remaining, (int64_t)nth);
}

uint64_t pbox_alloc_failures(void)
{
	return atomic_load(&fail_count);
}

void *pbox_malloc(size_t size)
{
	if (inject())
		return NULL;
	const pbox_alloc_hooks *h = hooks_now();
	return h->malloc_fn(size, h->ctx);
}

void *pbox_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return NULL;
	void *p = pbox_malloc(total);
	if (p)
		memset(p, 0, total);
	return p;
}

void *pbox_realloc(void *p, size_t size)
{
	if (inject())
		return NULL;
	const pbox_alloc_hooks *h = hooks_now();
	return h->realloc_fn(p, size, h->ctx);
}

void *pbox_aligned_alloc(size_t align, size_t size)
{
	if (align == 0 || (align & (align - 1)))
		return NULL;
	if (inject())
		return NULL;
	const pbox_alloc_hooks *h = hooks_now();
	return h->aligned_fn(align < sizeof(void *) ? sizeof(void *) : align, size, h->ctx);
}

void pbox_free(void *p)
{
	if (!p)
		return;
	const pbox_alloc_hooks *h = hooks_now();
	h->free_fn(p, h->ctx);
}

char *pbox_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = pbox_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

const char *pbox_alloc_backend(void)
{
	return BACKEND;
}
