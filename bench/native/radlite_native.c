/*
 * radlite_edge._native: the C kernels of RadLite Edge.
 *
 *  - quantize(qtype, src, dst, n_threads=1): ggml block quantizers Q8_0, Q4_0, Q4_1,
 *    Q5_0, Q5_1. Their bytes equal the gguf library's numpy reference
 *    (gguf.quants.quantize) on the same float32 input; that is what the converter and
 *    the tests rely on, so every float operation below mirrors the reference's order
 *    and rounding (float32 throughout, no fused multiply-add: built with
 *    -ffp-contract=off).
 *  - bandwidth(kind, n_threads, n_bytes, reps): a STREAM-like memory-bandwidth probe
 *    (read, copy, triad) giving GB/s per repetition: the roofline that decode speed
 *    is held against.
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
#include <time.h>

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

static PyObject *py_quantize(PyObject *self, PyObject *args, PyObject *kwargs) {
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

static PyObject *py_fp32_to_fp16(PyObject *self, PyObject *args) {
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

/* ------------------------------------------------------------ bandwidth */

enum bw_kind { BW_READ, BW_COPY, BW_TRIAD };

typedef struct {
    enum bw_kind kind;
    double *a, *b, *c;
    size_t lo, hi;
    uint64_t sink;
} bw_job;

static void *bw_init(void *arg) { /* first touch by the thread that will use the pages */
    bw_job *j = (bw_job *)arg;
    for (size_t i = j->lo; i < j->hi; i++) {
        j->a[i] = 1.0;
        j->b[i] = 2.0;
        j->c[i] = 0.5;
    }
    return NULL;
}

static void *bw_run(void *arg) {
    bw_job *j = (bw_job *)arg;
    switch (j->kind) {
    case BW_READ: {
        const uint64_t *p = (const uint64_t *)j->b;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i = j->lo;
        for (; i + 4 <= j->hi; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        for (; i < j->hi; i++) s0 += p[i];
        j->sink = s0 + s1 + s2 + s3;
        break;
    }
    case BW_COPY:
        memcpy(j->a + j->lo, j->b + j->lo, (j->hi - j->lo) * sizeof(double));
        break;
    case BW_TRIAD: {
        const double s = 3.0;
        double *restrict a = j->a;
        const double *restrict b = j->b, *restrict c = j->c;
        for (size_t i = j->lo; i < j->hi; i++) a[i] = b[i] + s * c[i];
        break;
    }
    }
    return NULL;
}

static int run_threads(bw_job *jobs, int n, void *(*fn)(void *)) {
    pthread_t tids[MAX_THREADS];
    int ok = 1;
    for (int t = 1; t < n; t++) {
        if (pthread_create(&tids[t], NULL, fn, &jobs[t]) != 0) {
            ok = 0;
            n = t;
            break;
        }
    }
    fn(&jobs[0]);
    for (int t = 1; t < n; t++) pthread_join(tids[t], NULL);
    return ok;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static PyObject *py_bandwidth(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"kind", "n_threads", "n_bytes", "reps", NULL};
    const char *kind_name;
    int n_threads = 1, reps = 5;
    Py_ssize_t n_bytes = 256 << 20;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|$ini", kwlist, &kind_name, &n_threads, &n_bytes, &reps)) {
        return NULL;
    }
    enum bw_kind kind;
    double streams;
    if (strcmp(kind_name, "read") == 0) {
        kind = BW_READ;
        streams = 1.0;
    } else if (strcmp(kind_name, "copy") == 0) {
        kind = BW_COPY;
        streams = 2.0;
    } else if (strcmp(kind_name, "triad") == 0) {
        kind = BW_TRIAD;
        streams = 3.0;
    } else {
        PyErr_Format(PyExc_ValueError, "unknown probe %s (read, copy, triad)", kind_name);
        return NULL;
    }
    if (n_threads < 1 || n_threads > MAX_THREADS || reps < 1 || n_bytes < (Py_ssize_t)(1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "need 1..256 threads, reps >= 1 and at least 1 MiB per array");
        return NULL;
    }
    const size_t n = (size_t)n_bytes / sizeof(double);
    double *a = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    double *b = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    double *c = aligned_alloc(64, ((n * sizeof(double) + 63) / 64) * 64);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New(reps);
    if (!out) {
        free(a);
        free(b);
        free(c);
        return NULL;
    }
    bw_job jobs[MAX_THREADS];
    /* cache-line aligned slices so no two threads share a line */
    const size_t per = ((n / (size_t)n_threads) / 8) * 8;
    for (int t = 0; t < n_threads; t++) {
        jobs[t].kind = kind;
        jobs[t].a = a;
        jobs[t].b = b;
        jobs[t].c = c;
        jobs[t].lo = (size_t)t * per;
        jobs[t].hi = t == n_threads - 1 ? n : (size_t)(t + 1) * per;
        jobs[t].sink = 0;
    }
    double *gbs = malloc(sizeof(double) * (size_t)reps);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    ok = run_threads(jobs, n_threads, bw_init);
    run_threads(jobs, n_threads, bw_run); /* warm-up */
    for (int r = 0; r < reps && ok; r++) {
        const double t0 = now_s();
        ok = run_threads(jobs, n_threads, bw_run);
        const double dt = now_s() - t0;
        gbs[r] = streams * (double)(n * sizeof(double)) / dt / 1e9;
    }
    Py_END_ALLOW_THREADS
    volatile uint64_t sink = 0;
    for (int t = 0; t < n_threads; t++) sink += jobs[t].sink;
    (void)sink;
    free(a);
    free(b);
    free(c);
    if (!ok) {
        free(gbs);
        Py_DECREF(out);
        PyErr_SetString(PyExc_RuntimeError, "could not start the probe's threads");
        return NULL;
    }
    for (int r = 0; r < reps; r++) PyList_SET_ITEM(out, r, PyFloat_FromDouble(gbs[r]));
    free(gbs);
    return out;
}

static PyMethodDef methods[] = {
    {"quantize", (PyCFunction)(void (*)(void))py_quantize, METH_VARARGS | METH_KEYWORDS,
     "quantize(qtype, src, dst, *, n_threads=1): quantize float32 blocks of 32 from src into dst "
     "(q8_0, q4_0, q4_1, q5_0, q5_1), byte-identical to gguf.quants.quantize."},
    {"fp32_to_fp16", py_fp32_to_fp16, METH_VARARGS,
     "fp32_to_fp16(src, dst): IEEE round-to-nearest-even conversion, as numpy's astype(float16)."},
    {"bandwidth", (PyCFunction)(void (*)(void))py_bandwidth, METH_VARARGS | METH_KEYWORDS,
     "bandwidth(kind, *, n_threads=1, n_bytes=256 MiB, reps=5) -> list of GB/s per repetition; "
     "kind is read, copy (2 streams) or triad (3 streams), bytes counted as STREAM does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "RadLite Edge C kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
