/*
 * radlite_edge._native: the C kernels of RadLite Edge, one extension module.
 *
 *  - the converter's quantizers and fp16 conversion: convert/native/quants.c
 *    (radlite_edge.convert.quants);
 *  - the memory-bandwidth probe behind the roofline: bench/native/bandwidth.c
 *    (radlite_edge.bench.bandwidth).
 *
 * Built by the top-level CMakeLists.txt.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* convert/native/quants.c */
PyObject *radlite_quantize(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *radlite_fp32_to_fp16(PyObject *self, PyObject *args);
/* bench/native/bandwidth.c */
PyObject *radlite_bandwidth(PyObject *self, PyObject *args, PyObject *kwargs);

static PyMethodDef methods[] = {
    {"quantize", (PyCFunction)(void (*)(void))radlite_quantize, METH_VARARGS | METH_KEYWORDS,
     "quantize(qtype, src, dst, *, n_threads=1): quantize float32 blocks of 32 from src into dst "
     "(q8_0, q4_0, q4_1, q5_0, q5_1), byte-identical to gguf.quants.quantize."},
    {"fp32_to_fp16", radlite_fp32_to_fp16, METH_VARARGS,
     "fp32_to_fp16(src, dst): IEEE round-to-nearest-even conversion, as numpy's astype(float16)."},
    {"bandwidth", (PyCFunction)(void (*)(void))radlite_bandwidth, METH_VARARGS | METH_KEYWORDS,
     "bandwidth(kind, *, n_threads=1, n_bytes=256 MiB, reps=5) -> list of GB/s per repetition; "
     "kind is read, copy (2 streams) or triad (3 streams), bytes counted as STREAM does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "RadLite Edge C kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
