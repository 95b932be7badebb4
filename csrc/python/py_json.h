/*
 * A JSON writer for the values handlers return most: exact dict, list,
 * tuple, str, int, float, bool and None, written as FastAPI writes them
 * (compact separators, UTF-8, NaN and infinities refused).
 */
#ifndef CZ_PY_JSON_H
#define CZ_PY_JSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cz_http.h"

typedef enum {
    CZ_JSON_OK = 0,
    CZ_JSON_UNSUPPORTED = 1, /* a type or key this writer leaves to Python's json; `out` is unchanged */
    CZ_JSON_ERROR = -1       /* a Python exception is set (e.g. ValueError for NaN) */
} cz_json_result_t;

/* What a JSON scratch buffer (the server's, an Allocator's for json_write)
 * keeps between answers: keeping a big answer's room costs little, and
 * giving it back would make every big answer allocate (and with malloc, map
 * and fault in) it again. */
#define CZ_JSON_SCRATCH_KEEP (1024 * 1024)

/* Append `obj` as JSON to `out`. On anything but CZ_JSON_OK, `out` is as it was. */
cz_json_result_t cz_json_write(PyObject *obj, cz_http_buf_t *out);

/* Shapes (src/catzilla/calling/shapes.py): a tuple of (field name, kind) str pairs,
 * a kind being (n|l)*[sifb]. cz_json_shape_check validates one (0, or -1
 * with an exception naming the bad entry); call it once, before writing. */
int cz_json_shape_check(PyObject *shape);

/* Append the fields of `dict` named by `shape` as a JSON object, in shape
 * order. CZ_JSON_UNSUPPORTED (no exception) when a field is missing or a
 * value is not exactly of its kind, or is one the library writes its own
 * way (a float below 1e-4 or not finite, a str with a lone surrogate).
 * On anything but CZ_JSON_OK, `out` is as it was. */
cz_json_result_t cz_json_write_shape(PyObject *dict, PyObject *shape, cz_http_buf_t *out);

/* catzilla._core.json_write(allocator, obj): cz_json_write from Python (tests,
 * benchmarks), into the allocator's scratch buffer as the server writes into
 * its own, then copied into the bytes returned. */
extern PyMethodDef cz_py_json_write_methods[];

#endif
