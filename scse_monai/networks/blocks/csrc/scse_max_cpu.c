/* Max-out scSE, fused, on CPU in float32 (Roy et al., TMI 2019, eq. 7):
 *
 *     out = max(x * g_c, x * sigmoid(sum_c w_c x_c + bias))
 *
 * and its backward with torch.maximum's rule (derivatives.yaml: equal products give each side half the gradient,
 * a NaN gives both the whole). Each kernel reads x (and, in backward, the upstream gradient) from memory once per
 * work item and keeps the work item's squeeze and gates in cache, so forward moves x in and out once and backward
 * reads x and grad and writes dL/dx once: the minimum traffic of docs/performance.md.
 *
 * Two layouts, both with a batch stride and one more stride, so channel slices of a concatenation need no copy:
 *   "nchw": element (b, c, s) at b * sb + c * sc + s  (spatial dims contiguous);
 *   "nhwc": element (b, s, c) at b * sb + s * sp + c  (channels-last).
 * Outputs are dense in the same layout. A work item is one sample and a chunk of its pixels; dL/dg_c, dL/dw and
 * dL/dbias come out as one partial sum per work item, summed by the caller. Threads: OpenMP (the libgomp PyTorch
 * itself loads). Built and loaded by scse_monai/networks/blocks/cpu_kernel.py.
 */
#include <math.h>
#include <stdint.h>

static inline float sigm(float q) { return 1.0f / (1.0f + expf(-q)); }

/* torch.maximum's backward rule (derivatives.yaml): equal -> half each, NaN -> full to both */
#define MAX_RULE(a, b, g, gp, gq)                 \
    float gp = ((a) == (b)) ? 0.5f * (g) : (g);   \
    float gq = gp;                                \
    gp = ((a) < (b)) ? 0.0f : gp;                 \
    gq = ((b) < (a)) ? 0.0f : gq;

static inline float maxnan(float a, float b) { return (a > b || a != a) ? a : b; }

/* A work item `it` of B * ceil(S / chunk): sample b, pixels s0 .. s0 + n (cpu_kernel.work_items counts them) */
typedef struct { int64_t b, s0, n; } item_t;

static inline item_t work_item(int64_t it, int64_t nch, int64_t chunk, int64_t S) {
    item_t r = {it / nch, (it % nch) * chunk, 0};
    r.n = S - r.s0 < chunk ? S - r.s0 : chunk;
    return r;
}

/* nchw: the spatial gates sigmoid(sum_c w_c x_c + bias) of pixels s0 .. s0 + n of sample x0 (= x + b * xb) */
static inline void gates_nchw(const float *x0, int64_t xc, const float *w, float bias, int64_t C, int64_t s0,
                              int64_t n, float *gs) {
    for (int64_t i = 0; i < n; ++i) gs[i] = bias;
    for (int64_t c = 0; c < C; ++c) {
        const float *xp = x0 + c * xc + s0;
        float wc = w[c];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) gs[i] += wc * xp[i];
    }
    for (int64_t i = 0; i < n; ++i) gs[i] = sigm(gs[i]);
}

/* nhwc: the spatial gate of one pixel, whose C channels start at xp */
static inline float gate_nhwc(const float *xp, const float *w, float bias, int64_t C) {
    float q = bias;
#pragma omp simd reduction(+ : q)
    for (int64_t c = 0; c < C; ++c) q += w[c] * xp[c];
    return sigm(q);
}

/* ---- nchw: the squeeze and the gates of a chunk of pixels in a stack buffer, x read channel by channel ---- */
void scse_fwd_nchw(const float *x, int64_t xb, int64_t xc, const float *gc, const float *w, const float *bias_, float *out,
                   int64_t B, int64_t C, int64_t S, int64_t chunk, int nthreads) {
    int64_t nch = (S + chunk - 1) / chunk;
#pragma omp parallel num_threads(nthreads)
    {
        float gs[chunk];
#pragma omp for schedule(static)
        for (int64_t it = 0; it < B * nch; ++it) {
            item_t w_ = work_item(it, nch, chunk, S);
            int64_t b = w_.b, s0 = w_.s0, n = w_.n;
            gates_nchw(x + b * xb, xc, w, *bias_, C, s0, n, gs);
            for (int64_t c = 0; c < C; ++c) {
                const float *xp = x + b * xb + c * xc + s0;
                float *op = out + (b * C + c) * S + s0;
                float g = gc[b * C + c];
#pragma omp simd
                for (int64_t i = 0; i < n; ++i) op[i] = maxnan(xp[i] * g, xp[i] * gs[i]);
            }
        }
    }
}

void scse_bwd_nchw(const float *x, int64_t xb, int64_t xc, const float *gc, const float *w, const float *bias_,
                   const float *grad, int64_t db, int64_t dc, float *gx, float *dgc_part, float *dw_part, float *db_part,
                   int64_t B, int64_t C, int64_t S, int64_t chunk, int nthreads) {
    int64_t nch = (S + chunk - 1) / chunk;
#pragma omp parallel num_threads(nthreads)
    {
        float gs[chunk], gpre[chunk];
#pragma omp for schedule(static)
        for (int64_t it = 0; it < B * nch; ++it) {
            item_t w_ = work_item(it, nch, chunk, S);
            int64_t b = w_.b, s0 = w_.s0, n = w_.n;
            gates_nchw(x + b * xb, xc, w, *bias_, C, s0, n, gs);
            for (int64_t i = 0; i < n; ++i) gpre[i] = 0.0f;
            for (int64_t c = 0; c < C; ++c) {  /* dL/dg_s (into gpre) and the chunk's part of dL/dg_c */
                const float *xp = x + b * xb + c * xc + s0, *gp_ = grad + b * db + c * dc + s0;
                float g = gc[b * C + c], acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int64_t i = 0; i < n; ++i) {
                    float v = xp[i], a = v * g, q = v * gs[i];
                    MAX_RULE(a, q, gp_[i], gp, gq)
                    gpre[i] += gq * v;
                    acc += gp * v;
                }
                dgc_part[it * C + c] = acc;
            }
            float accb = 0.0f;
            for (int64_t i = 0; i < n; ++i) { gpre[i] *= gs[i] * (1.0f - gs[i]); accb += gpre[i]; }
            db_part[it] = accb;
            for (int64_t c = 0; c < C; ++c) {
                const float *xp = x + b * xb + c * xc + s0, *gp_ = grad + b * db + c * dc + s0;
                float *gxp = gx + (b * C + c) * S + s0;
                float g = gc[b * C + c], wc = w[c], acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int64_t i = 0; i < n; ++i) {
                    float v = xp[i], a = v * g, q = v * gs[i];
                    MAX_RULE(a, q, gp_[i], gp, gq)
                    gxp[i] = gp * g + gq * gs[i] + gpre[i] * wc;
                    acc += gpre[i] * v;
                }
                dw_part[it * C + c] = acc;
            }
        }
    }
}

/* ---- nhwc: one pixel's channels at a time ---- */
void scse_fwd_nhwc(const float *x, int64_t xb, int64_t xp_, const float *gc, const float *w, const float *bias_, float *out,
                   int64_t B, int64_t C, int64_t S, int64_t chunk, int nthreads) {
    int64_t nch = (S + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t it = 0; it < B * nch; ++it) {
        item_t w_ = work_item(it, nch, chunk, S);
        int64_t b = w_.b, s0 = w_.s0, s1 = w_.s0 + w_.n;
        const float *g = gc + b * C;
        for (int64_t s = s0; s < s1; ++s) {
            const float *xp = x + b * xb + s * xp_;
            float *op = out + (b * S + s) * C;
            float gs = gate_nhwc(xp, w, *bias_, C);
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) op[c] = maxnan(xp[c] * g[c], xp[c] * gs);
        }
    }
}

void scse_bwd_nhwc(const float *x, int64_t xb, int64_t xp_, const float *gc, const float *w, const float *bias_,
                   const float *grad, int64_t db, int64_t dp, float *gx, float *dgc_part, float *dw_part, float *db_part,
                   int64_t B, int64_t C, int64_t S, int64_t chunk, int nthreads) {
    int64_t nch = (S + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t it = 0; it < B * nch; ++it) {
        item_t w_ = work_item(it, nch, chunk, S);
        int64_t b = w_.b, s0 = w_.s0, s1 = w_.s0 + w_.n;
        const float *g = gc + b * C;
        float *dgc = dgc_part + it * C, *dw = dw_part + it * C, accb = 0.0f;
        for (int64_t c = 0; c < C; ++c) { dgc[c] = 0.0f; dw[c] = 0.0f; }
        for (int64_t s = s0; s < s1; ++s) {
            const float *xp = x + b * xb + s * xp_, *gp_ = grad + b * db + s * dp;
            float *gxp = gx + (b * S + s) * C;
            float gs = gate_nhwc(xp, w, *bias_, C), dgs = 0.0f;
#pragma omp simd reduction(+ : dgs)
            for (int64_t c = 0; c < C; ++c) {
                float v = xp[c], a = v * g[c], qq = v * gs;
                MAX_RULE(a, qq, gp_[c], gp, gq)
                dgs += gq * v;
                dgc[c] += gp * v;
            }
            float gpre = dgs * gs * (1.0f - gs);
            accb += gpre;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
                float v = xp[c], a = v * g[c], qq = v * gs;
                MAX_RULE(a, qq, gp_[c], gp, gq)
                gxp[c] = gp * g[c] + gq * gs + gpre * w[c];
                dw[c] += gpre * v;
            }
        }
        db_part[it] = accb;
    }
}
