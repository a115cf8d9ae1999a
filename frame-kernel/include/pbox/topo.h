/*
 * pbox/topo.h — CPU topology and thread pinning (hwloc).
 *
 * Benchmarks and the buffer pool's background threads pin threads in one of two orders:
 *   compact: thread i on the i-th processing unit in hwloc's logical order, so neighbouring
 *            threads share a core (hyperthreads) and then a socket;
 *   scatter: threads spread across NUMA nodes, sockets and cores first (hwloc_distrib).
 * A machine without a usable topology gives PBOX_ENOTSUP from pbox_topo_open; tests skip.
 */
#ifndef PBOX_TOPO_H
#define PBOX_TOPO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbox_topo pbox_topo;

typedef enum pbox_pin_policy {
	PBOX_PIN_NONE = 0,
	PBOX_PIN_COMPACT,
	PBOX_PIN_SCATTER,
} pbox_pin_policy;

/* Parse "none", "compact", "scatter"; PBOX_EINVAL otherwise. */
int pbox_pin_policy_parse(const char *s, pbox_pin_policy *out);

int pbox_topo_open(pbox_topo **out);
void pbox_topo_close(pbox_topo *t);

unsigned pbox_topo_packages(const pbox_topo *t);
unsigned pbox_topo_numa_nodes(const pbox_topo *t);
unsigned pbox_topo_cores(const pbox_topo *t);
unsigned pbox_topo_pus(const pbox_topo *t); /* processing units (hardware threads) */

/* One line such as "1 package, 1 NUMA node, 2 cores, 2 PUs (x86_64)"; returns the length
 * that was needed (like snprintf). */
int pbox_topo_describe(const pbox_topo *t, char *buf, size_t len);

/* Pin the calling thread to the processing unit that thread number index gets under
 * policy (index wraps around the number of PUs). PBOX_PIN_NONE leaves it free and returns
 * 0. Returns 0 or a negative errno from the OS. On return *pu (if non-NULL) holds the OS
 * index of the PU, or -1 for PBOX_PIN_NONE. */
int pbox_topo_pin_thread(const pbox_topo *t, pbox_pin_policy policy, unsigned index, int *pu);

/* Bind the pages of [addr, addr+len) to NUMA node `node` (logical index). PBOX_EINVAL for
 * a node that does not exist; 0 and nothing done on a machine with one node. */
int pbox_topo_bind_memory(const pbox_topo *t, void *addr, size_t len, unsigned node);

#ifdef __cplusplus
}
#endif
#endif
