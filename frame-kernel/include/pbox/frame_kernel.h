/* pbox/frame_kernel.h — everything frame-kernel offers, in one include. */
#ifndef PBOX_FRAME_KERNEL_H
#define PBOX_FRAME_KERNEL_H
#include <pbox/alloc.h>
#include <pbox/crc32c.h>
#include <pbox/io.h>
#include <pbox/metrics.h>
#include <pbox/status.h>
#include <pbox/topo.h>
#include <pbox/types.h>
#endif
