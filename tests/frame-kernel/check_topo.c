/* check_topo.c — CPU topology and pinning; exits 77 (skipped) without a usable topology. */
#define _GNU_SOURCE
#include <pbox/frame_kernel.h>

#include "pbox_test.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pbox_topo *topo;

START_TEST(test_topo_counts)
{
	ck_assert_uint_ge(pbox_topo_pus(topo), 1);
	ck_assert_uint_ge(pbox_topo_cores(topo), 1);
	ck_assert_uint_le(pbox_topo_cores(topo), pbox_topo_pus(topo));
	ck_assert_uint_ge(pbox_topo_numa_nodes(topo), 1);
	ck_assert_uint_ge(pbox_topo_packages(topo), 1);
	char line[256];
	int n = pbox_topo_describe(topo, line, sizeof(line));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(strstr(line, "PU"));
	fprintf(stderr, "topology: %s\n", line);
}
END_TEST

START_TEST(test_topo_pin)
{
	pbox_pin_policy pol;
	ck_assert_int_eq(pbox_pin_policy_parse("scatter", &pol), 0);
	ck_assert_int_eq(pol, PBOX_PIN_SCATTER);
	ck_assert_int_eq(pbox_pin_policy_parse("diagonal", &pol), PBOX_EINVAL);
	unsigned npu = pbox_topo_pus(topo);
	int seen_compact[64] = { 0 }, seen_scatter[64] = { 0 };
	for (unsigned i = 0; i < npu && i < 64; i++) {
		int pu = -2;
		ck_assert_int_eq(pbox_topo_pin_thread(topo, PBOX_PIN_COMPACT, i, &pu), 0);
		ck_assert_int_ge(pu, 0);
		ck_assert_int_eq(sched_getcpu(), pu); /* we now run there */
		if (pu < 64)
			seen_compact[pu]++;
		ck_assert_int_eq(pbox_topo_pin_thread(topo, PBOX_PIN_SCATTER, i, &pu), 0);
		ck_assert_int_eq(sched_getcpu(), pu);
		if (pu < 64)
			seen_scatter[pu]++;
	}
	for (int i = 0; i < 64; i++) { /* each order visits every PU once */
		ck_assert_int_le(seen_compact[i], 1);
		ck_assert_int_le(seen_scatter[i], 1);
	}
	int pu = 0;
	ck_assert_int_eq(pbox_topo_pin_thread(topo, PBOX_PIN_NONE, 0, &pu), 0);
	ck_assert_int_eq(pu, -1);
	char mem[4096];
	ck_assert_int_eq(pbox_topo_bind_memory(topo, mem, sizeof(mem), pbox_topo_numa_nodes(topo)),
			 PBOX_EINVAL);
}
END_TEST

int main(void)
{
	int r = pbox_topo_open(&topo);
	if (r != 0) {
		fprintf(stderr, "check_topo: no usable hwloc topology (%s): skipped\n",
			pbox_strerror(r));
		return 77;
	}
	Suite *s = suite_create("topology");
	TCase *tc = tcase_create("hwloc");
	tcase_add_test(tc, test_topo_counts);
	tcase_add_test(tc, test_topo_pin);
	suite_add_tcase(s, tc);
	r = pbox_test_run(s);
	pbox_topo_close(topo);
	return r;
}
