/* mathf.h: the runtime's own float32 transcendental functions (no libm, DESIGN.md §3), the
 * same bits on every target. Implemented in mathf.c. */
#ifndef DSEDGE_MATHF_H
#define DSEDGE_MATHF_H

float dse_expf(float x);
float dse_tanhf(float x);
float dse_sigmoidf(float x);
float dse_logf(float x);
float dse_erff(float x);

#endif
