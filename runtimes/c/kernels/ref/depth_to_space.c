/* depth_to_space.c: DepthToSpace (modes DCR, CRD) and SpaceToDepth for any dtype, NCHW.
 *
 * Both are a reshape to 6-D, a transpose and a reshape back (as the numpy reference), so the
 * output is one strided walk of the input (dse__mv_copy_strided) over the 6-D output view:
 *   DCR: x as (n, b, b, c, h, w) -> (n, c, h, b, w, b)    perm (0, 3, 4, 1, 5, 2)
 *   CRD: x as (n, c, b, b, h, w) -> (n, c, h, b, w, b)    perm (0, 1, 4, 2, 5, 3)
 *   SpaceToDepth: x as (n, c, h, b, w, b) -> (n, b, b, c, h, w)   perm (0, 3, 5, 1, 2, 4)
 * where b is `blocksize`, c the output (DepthToSpace) / input (SpaceToDepth) channels and h,
 * w the small spatial dims. */
#include "internal.h"

/* 6-D view dims of the input, perm and output dims; 0 when the node's shapes fit. */
static int depth_to_space_plan(const dse_model *m, const dse_node *n, size_t *view, const int **perm, size_t *odims) {
    static const int DCR[6] = {0, 3, 4, 1, 5, 2}, CRD[6] = {0, 1, 4, 2, 5, 3}, S2D[6] = {0, 3, 5, 1, 2, 4};
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t b = dse__attr_int(n, DSE_A_blocksize, 0);
    if (x->rank != 4 || y->rank != 4 || b < 1 || b > 65535 || x->numel != y->numel) return 1;
    size_t bs = (size_t)b, N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], want[4];
    if (n->op == DSE_OP_DEPTHTOSPACE) {
        const char *mode = dse__attr_str(n, DSE_A_mode, "DCR");
        if (C % (bs * bs)) return 1;
        size_t c = C / (bs * bs);
        if (!strcmp(mode, "DCR")) {
            size_t v[6] = {N, bs, bs, c, H, W};
            memcpy(view, v, sizeof v);
            *perm = DCR;
        } else if (!strcmp(mode, "CRD")) {
            size_t v[6] = {N, c, bs, bs, H, W};
            memcpy(view, v, sizeof v);
            *perm = CRD;
        } else {
            return 1;
        }
        want[0] = N, want[1] = c, want[2] = H * bs, want[3] = W * bs;
    } else {
        if (H % bs || W % bs) return 1;
        size_t v[6] = {N, C, H / bs, bs, W / bs, bs};
        memcpy(view, v, sizeof v);
        *perm = S2D;
        want[0] = N, want[1] = C * bs * bs, want[2] = H / bs, want[3] = W / bs;
    }
    for (int d = 0; d < 6; d++) odims[d] = view[(*perm)[d]];
    return memcmp(y->dims, want, sizeof want) != 0;
}

int dse__check_depth_to_space(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t view[6], od[6];
    const int *perm;
    if (n->n_in != 1 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, DEPTH_TO_SPACE_NEEDS_ONE_DATA_INPUT);
        return 1;
    }
    if (depth_to_space_plan(m, n, view, &perm, od)) {
        DSE_WHYF(why, DEPTH_TO_SPACE_NEEDS_RANK_4_NCHW, n->op == DSE_OP_DEPTHTOSPACE ? "channels" : "spatial dims", 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

void dse_any_depth_to_space__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    size_t view[6], od[6];
    int64_t vs[6], stride[6], s = 1;
    const int *perm;
    depth_to_space_plan(m, n, view, &perm, od);
    for (int d = 5; d >= 0; d--) { vs[d] = s; s *= (int64_t)view[d]; }
    for (int d = 0; d < 6; d++) stride[d] = vs[perm[d]];
    dse__mv_copy_strided(dse__data(m, arena, n->out[0]), dse__data(m, arena, n->in[0]),
                         dse__mv_esize(m->tensors[n->in[0]].dtype), 6, od, stride);
}

void dse_any_space_to_depth__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_depth_to_space__ref(m, n, arena, cx);
}
