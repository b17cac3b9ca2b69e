/* fuzz_loader.h: the fuzz target's one-input check, shared by the libFuzzer entry point and
 * the corpus replay (replay_main.c). */
#ifndef DSEDGE_FUZZ_LOADER_H
#define DSEDGE_FUZZ_LOADER_H
#include <stddef.h>
#include <stdint.h>

#include "dsedge.h"

/* Rewrite the table CRC (and the weight CRC when flagged) of a .dse buffer in place. */
void dse_fuzz_fix_crc(uint8_t *buf, size_t size);

/* Fix the CRCs of a copy of `data`, load it (verifying weights) and, if it loads, run one
 * inference (guard inputs get their guard bytes, others bytes of the file). Returns the load
 * status; *run_status is the session status (DSE_ERR_STATE when not run). */
dse_status dse_fuzz_one(const uint8_t *data, size_t size, dse_status *run_status, dse_error *err);

/* The fuzz target's bound on a loaded model's work (fuzz_loader.c): the sum over its nodes of the
 * elements each node reads times the elements it writes. Models above 1e9 are not run. */
double dse_fuzz_work_bound(const dse_model *m);
#endif
