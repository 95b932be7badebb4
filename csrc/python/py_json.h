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

/* Append `obj` as JSON to `out`. On anything but CZ_JSON_OK, `out` is as it was. */
cz_json_result_t cz_json_write(PyObject *obj, cz_http_buf_t *out);

#endif
