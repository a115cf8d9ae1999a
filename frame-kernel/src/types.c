/* types.c — names of frame states and the diagnostic assertion handler. */
#include <pbox/types.h>

#include <stdio.h>
#include <stdlib.h>

const char *pbox_frame_state_name(int state)
{
	static const char *const names[PBOX_FRAME_STATE_COUNT] = {
		[PBOX_FRAME_EVICTED] = "EVICTED", [PBOX_FRAME_LOADING] = "LOADING",
		[PBOX_FRAME_HOT] = "HOT",         [PBOX_FRAME_COOL] = "COOL",
		[PBOX_FRAME_EVICTING] = "EVICTING",
	};
	if (state < 0 || state >= PBOX_FRAME_STATE_COUNT)
		return "INVALID";
	return names[state];
}

void pbox_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "pagebox: internal invariant violated: %s (%s:%d)\n", expr, file, line);
	abort();
}
