/*
 * topo.c — CPU topology and pinning through hwloc.
 *
 * The topology is loaded once per pbox_topo and only read afterwards; hwloc documents
 * concurrent read-only use of a loaded topology as safe, so one pbox_topo may be shared by
 * every thread that pins itself. The scatter order is computed once at open with
 * hwloc_distrib over all processing units.
 */
#define _GNU_SOURCE
#include <pbox/alloc.h>
#include <pbox/status.h>
#include <pbox/topo.h>

#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <string.h>

struct pbox_topo {
	hwloc_topology_t topo;
	unsigned npu;
	hwloc_bitmap_t *scatter; /* npu single-PU sets in scatter order */
};

int pbox_pin_policy_parse(const char *s, pbox_pin_policy *out)
{
	if (!s)
		return PBOX_EINVAL;
	if (!strcmp(s, "none"))
		*out = PBOX_PIN_NONE;
	else if (!strcmp(s, "compact"))
		*out = PBOX_PIN_COMPACT;
	else if (!strcmp(s, "scatter"))
		*out = PBOX_PIN_SCATTER;
	else
		return PBOX_EINVAL;
	return 0;
}

void pbox_topo_close(pbox_topo *t)
{
	if (!t)
		return;
	if (t->scatter) {
		for (unsigned i = 0; i < t->npu; i++)
			hwloc_bitmap_free(t->scatter[i]);
		pbox_free(t->scatter);
	}
	hwloc_topology_destroy(t->topo);
	pbox_free(t);
}

int pbox_topo_open(pbox_topo **out)
{
	pbox_topo *t = pbox_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (hwloc_topology_init(&t->topo) < 0) {
		pbox_free(t);
		return -ENOMEM;
	}
	if (hwloc_topology_load(t->topo) < 0) {
		hwloc_topology_destroy(t->topo);
		pbox_free(t);
		return PBOX_ENOTSUP;
	}
	int n = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_PU);
	if (n <= 0) {
		pbox_topo_close(t);
		return PBOX_ENOTSUP;
	}
	t->npu = (unsigned)n;
	t->scatter = pbox_calloc(t->npu, sizeof(hwloc_bitmap_t));
	if (!t->scatter) {
		pbox_topo_close(t);
		return -ENOMEM;
	}
	hwloc_obj_t root = hwloc_get_root_obj(t->topo);
	if (hwloc_distrib(t->topo, &root, 1, t->scatter, t->npu, INT_MAX, 0) < 0) {
		pbox_topo_close(t);
		return PBOX_ENOTSUP;
	}
	for (unsigned i = 0; i < t->npu; i++) {
		if (!t->scatter[i]) {
			pbox_topo_close(t);
			return -ENOMEM;
		}
		hwloc_bitmap_singlify(t->scatter[i]);
	}
	*out = t;
	return 0;
}

static unsigned count(const pbox_topo *t, hwloc_obj_type_t type)
{
	int n = hwloc_get_nbobjs_by_type(t->topo, type);
	return n > 0 ? (unsigned)n : 1;
}

unsigned pbox_topo_packages(const pbox_topo *t)
{
	return count(t, HWLOC_OBJ_PACKAGE);
}

unsigned pbox_topo_numa_nodes(const pbox_topo *t)
{
	return count(t, HWLOC_OBJ_NUMANODE);
}

unsigned pbox_topo_cores(const pbox_topo *t)
{
	return count(t, HWLOC_OBJ_CORE);
}

unsigned pbox_topo_pus(const pbox_topo *t)
{
	return t->npu;
}

int pbox_topo_describe(const pbox_topo *t, char *buf, size_t len)
{
	const char *arch = hwloc_obj_get_info_by_name(hwloc_get_root_obj(t->topo), "Architecture");
	unsigned p = pbox_topo_packages(t), nn = pbox_topo_numa_nodes(t), c = pbox_topo_cores(t);
	return snprintf(buf, len, "%u package%s, %u NUMA node%s, %u core%s, %u PU%s (%s)", p,
			p == 1 ? "" : "s", nn, nn == 1 ? "" : "s", c, c == 1 ? "" : "s", t->npu,
			t->npu == 1 ? "" : "s", arch ? arch : "unknown architecture");
}

int pbox_topo_pin_thread(const pbox_topo *t, pbox_pin_policy policy, unsigned index, int *pu)
{
	if (policy == PBOX_PIN_NONE) {
		if (pu)
			*pu = -1;
		return 0;
	}
	hwloc_const_bitmap_t set;
	hwloc_obj_t obj = NULL;
	if (policy == PBOX_PIN_COMPACT) {
		obj = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_PU, index % t->npu);
		if (!obj)
			return PBOX_ENOTSUP;
		set = obj->cpuset;
	} else if (policy == PBOX_PIN_SCATTER) {
		set = t->scatter[index % t->npu];
	} else {
		return PBOX_EINVAL;
	}
	if (hwloc_set_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) < 0)
		return errno ? -errno : PBOX_ENOTSUP;
	if (pu)
		*pu = hwloc_bitmap_first(set);
	return 0;
}

int pbox_topo_bind_memory(const pbox_topo *t, void *addr, size_t len, unsigned node)
{
	unsigned nn = (unsigned)hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_NUMANODE);
	if (node >= (nn ? nn : 1))
		return PBOX_EINVAL;
	if (nn <= 1)
		return 0;
	hwloc_obj_t obj = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, node);
	if (!obj)
		return PBOX_EINVAL;
	if (hwloc_set_area_membind(t->topo, addr, len, obj->nodeset, HWLOC_MEMBIND_BIND,
				   HWLOC_MEMBIND_BYNODESET) < 0)
		return errno ? -errno : PBOX_ENOTSUP;
	return 0;
}
