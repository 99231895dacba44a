/*
 * The roofline's memory-bandwidth probe, part of radlite_edge._native (registered in
 * convert/native/module.c):
 *
 *  - bandwidth(kind, n_threads, n_bytes, reps): a STREAM-like memory-bandwidth probe
 *    (read, copy, triad) giving GB/s per repetition: the roofline that decode speed
 *    is held against (radlite_edge.bench.bandwidth).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 256

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

PyObject *radlite_bandwidth(PyObject *self, PyObject *args, PyObject *kwargs) {
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
