/*
 * The converter's C kernels, part of radlite_edge._native (registered in module.c):
 *
 *  - quantize(qtype, src, dst, n_threads=1): ggml block quantizers Q8_0, Q4_0, Q4_1,
 *    Q5_0, Q5_1. Their bytes equal the gguf library's numpy reference
 *    (gguf.quants.quantize) on the same float32 input; that is what the converter and
 *    the tests rely on, so every float operation below mirrors the reference's order
 *    and rounding (float32 throughout, no fused multiply-add: built with
 *    -ffp-contract=off).
 *  - fp32_to_fp16(src, dst): IEEE round-to-nearest-even, as numpy's astype(float16).
 *
 * Buffers travel through the buffer protocol, so the extension needs no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 32

/* ---------------------------------------------------------------- fp16 */

/* IEEE float32 -> float16 bits, round to nearest even, subnormals and overflow to
 * infinity handled as numpy's astype(np.float16) does. NaN keeps its quiet bit. */
static uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;

    if (ax >= 0x7f800000u) { /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x0200u | ((ax >> 13) & 0x3ffu) : 0u));
    }
    if (ax >= 0x477ff000u) { /* >= 65520 rounds past the largest half */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) { /* below 2^-14: a half subnormal, in units of 2^-24 */
        if (ax < 0x33000000u) {
            return (uint16_t)sign; /* below 2^-25 (and 2^-25 itself ties to 0) */
        }
        const uint32_t e = ax >> 23;
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e; /* 14..24 */
        uint32_t k = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (k & 1u))) {
            k++;
        }
        return (uint16_t)(sign | k);
    }
    uint32_t r = ax - 0x38000000u; /* rebias the exponent from 127 to 15 */
    r = r + 0x0fffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

static void put_fp16(uint8_t *dst, float f) {
    const uint16_t h = fp32_to_fp16(f);
    dst[0] = (uint8_t)(h & 0xff);
    dst[1] = (uint8_t)(h >> 8);
}

/* ------------------------------------------------------------- quantizers */

/* Round half away from zero, as gguf's np_roundf. Adding the largest float below one
 * half (with v's sign) and truncating gives exactly that in IEEE float32 arithmetic,
 * with no branch, so the Q8_0 loop vectorizes. */
static inline float roundf_away(float v) {
    return truncf(v + copysignf(0x1.fffffep-2f, v));
}

static float safe_inv(float d) { return d == 0.0f ? 0.0f : 1.0f / d; }

/* the element of largest magnitude, first one on ties (numpy argmax) */
static float absmax_signed(const float *x) {
    float amax = -1.0f, val = 0.0f;
    for (int j = 0; j < QK; j++) {
        const float a = fabsf(x[j]);
        if (a > amax) {
            amax = a;
            val = x[j];
        }
    }
    return val;
}

static void minmax(const float *x, float *mn, float *mx) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static uint8_t trunc_clip(float v, uint8_t hi) {
    /* numpy: trunc(v).astype(uint8).clip(0, hi); v is never negative here */
    const float t = truncf(v);
    const uint8_t q = (uint8_t)(t < 0.0f ? 0 : (t > 255.0f ? 255 : (int)t));
    return q > hi ? hi : q;
}

static void q8_0_block(const float *x, uint8_t *y) { /* 34 bytes */
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.0f;
    const float id = safe_inv(d);
    put_fp16(y, d);
    int8_t q[QK];
    for (int j = 0; j < QK; j++) {
        q[j] = (int8_t)roundf_away(x[j] * id);
    }
    memcpy(y + 2, q, QK);
}

static void q4_0_block(const float *x, uint8_t *y) { /* 18 bytes */
    const float d = absmax_signed(x) / -8.0f;
    const float id = safe_inv(d);
    put_fp16(y, d);
    for (int j = 0; j < QK / 2; j++) {
        const uint8_t lo = trunc_clip(x[j] * id + 8.5f, 15);
        const uint8_t hi = trunc_clip(x[j + QK / 2] * id + 8.5f, 15);
        y[2 + j] = (uint8_t)(lo | (hi << 4));
    }
}

static void q4_1_block(const float *x, uint8_t *y) { /* 20 bytes */
    float mn, mx;
    minmax(x, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = safe_inv(d);
    put_fp16(y, d);
    put_fp16(y + 2, mn);
    for (int j = 0; j < QK / 2; j++) {
        const uint8_t lo = trunc_clip((x[j] - mn) * id + 0.5f, 15);
        const uint8_t hi = trunc_clip((x[j + QK / 2] - mn) * id + 0.5f, 15);
        y[4 + j] = (uint8_t)(lo | (hi << 4));
    }
}

/* Q5 layout: d (fp16) [m (fp16)] qh (32 bits, bit j = bit 4 of q[j]) qs (low nibbles) */
static void pack_q5(const uint8_t *q, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < QK; j++) {
        h |= (uint32_t)((q[j] >> 4) & 1u) << j;
    }
    for (int b = 0; b < 4; b++) {
        qh[b] = (uint8_t)(h >> (8 * b));
    }
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + QK / 2] << 4));
    }
}

static void q5_0_block(const float *x, uint8_t *y) { /* 22 bytes */
    const float d = absmax_signed(x) / -16.0f;
    const float id = safe_inv(d);
    uint8_t q[QK];
    for (int j = 0; j < QK; j++) {
        q[j] = trunc_clip(x[j] * id + 16.5f, 31);
    }
    put_fp16(y, d);
    pack_q5(q, y + 2, y + 6);
}

static void q5_1_block(const float *x, uint8_t *y) { /* 24 bytes */
    float mn, mx;
    minmax(x, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = safe_inv(d);
    uint8_t q[QK];
    for (int j = 0; j < QK; j++) {
        q[j] = trunc_clip((x[j] - mn) * id + 0.5f, 31);
    }
    put_fp16(y, d);
    put_fp16(y + 2, mn);
    pack_q5(q, y + 4, y + 8);
}

typedef void (*block_fn)(const float *, uint8_t *);

typedef struct {
    const char *name;
    block_fn fn;
    size_t type_size;
} qtype_info;

static const qtype_info QTYPES[] = {
    {"q8_0", q8_0_block, 34},
    {"q4_0", q4_0_block, 18},
    {"q4_1", q4_1_block, 20},
    {"q5_0", q5_0_block, 22},
    {"q5_1", q5_1_block, 24},
};

typedef struct {
    const qtype_info *qt;
    const float *src;
    uint8_t *dst;
    size_t first_block, n_blocks;
} quant_job;

static void *quant_worker(void *arg) {
    const quant_job *job = (const quant_job *)arg;
    for (size_t b = job->first_block; b < job->first_block + job->n_blocks; b++) {
        job->qt->fn(job->src + b * QK, job->dst + b * job->qt->type_size);
    }
    return NULL;
}

#define MAX_THREADS 256

PyObject *radlite_quantize(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"qtype", "src", "dst", "n_threads", NULL};
    const char *name;
    Py_buffer src, dst;
    int n_threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sy*w*|$i", kwlist, &name, &src, &dst, &n_threads)) {
        return NULL;
    }
    PyObject *result = NULL;
    const qtype_info *qt = NULL;
    for (size_t i = 0; i < sizeof QTYPES / sizeof QTYPES[0]; i++) {
        if (strcmp(QTYPES[i].name, name) == 0) qt = &QTYPES[i];
    }
    if (qt == NULL) {
        PyErr_Format(PyExc_ValueError, "unsupported quantization type %s (q8_0, q4_0, q4_1, q5_0, q5_1)", name);
        goto done;
    }
    if (src.len % (Py_ssize_t)(QK * sizeof(float)) != 0) {
        PyErr_SetString(PyExc_ValueError, "source must hold float32 values in whole blocks of 32");
        goto done;
    }
    const size_t n_blocks = (size_t)src.len / (QK * sizeof(float));
    if ((size_t)dst.len != n_blocks * qt->type_size) {
        PyErr_Format(PyExc_ValueError, "destination holds %zd bytes, %zu needed", dst.len, n_blocks * qt->type_size);
        goto done;
    }
    if (n_threads < 1) n_threads = 1;
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    if ((size_t)n_threads > n_blocks) n_threads = n_blocks ? (int)n_blocks : 1;

    quant_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    const size_t per = n_blocks / (size_t)n_threads, extra = n_blocks % (size_t)n_threads;
    size_t at = 0;
    for (int t = 0; t < n_threads; t++) {
        jobs[t].qt = qt;
        jobs[t].src = (const float *)src.buf;
        jobs[t].dst = (uint8_t *)dst.buf;
        jobs[t].first_block = at;
        jobs[t].n_blocks = per + ((size_t)t < extra ? 1 : 0);
        at += jobs[t].n_blocks;
    }
    Py_BEGIN_ALLOW_THREADS
    int joined[MAX_THREADS] = {0};
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&tids[t], NULL, quant_worker, &jobs[t]) == 0) {
            joined[t] = 1;
        } else {
            quant_worker(&jobs[t]); /* could not start a thread: do its share here */
        }
    }
    quant_worker(&jobs[0]);
    for (int t = 1; t < n_threads; t++) {
        if (joined[t]) pthread_join(tids[t], NULL);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

PyObject *radlite_fp32_to_fp16(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer src, dst;
    if (!PyArg_ParseTuple(args, "y*w*", &src, &dst)) return NULL;
    PyObject *result = NULL;
    if (src.len % 4 != 0 || dst.len * 2 != src.len) {
        PyErr_SetString(PyExc_ValueError, "need n float32 in and room for n float16 out");
    } else {
        const float *s = (const float *)src.buf;
        uint8_t *d = (uint8_t *)dst.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < src.len / 4; i++) put_fp16(d + 2 * i, s[i]);
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}
