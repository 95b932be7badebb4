/*
 * catzilla._core.Allocator: a Python handle on one cz_allocator_t.
 * Other extension types that allocate (the server) keep a reference to the
 * Allocator object, so the handle outlives every block taken from it.
 */
#ifndef CZ_PY_ALLOCATOR_H
#define CZ_PY_ALLOCATOR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cz_http.h"
#include "cz_memory.h"

typedef struct {
    PyObject_HEAD
    cz_allocator_t *alloc;
    PyObject *fallback_reason;  /* str or None */
    cz_http_buf_t json_scratch; /* json_write's, kept between calls (py_json.h) */
} CzAllocatorObject;

extern PyTypeObject CzAllocator_Type;
extern PyTypeObject CzBlock_Type;

/* Parse a purpose name ("request", ...) into `out`; 0 on success, -1 with
 * ValueError set otherwise. */
int cz_py_purpose(PyObject *name, cz_purpose_t *out);

/* Add the types of this file to the module. */
int cz_py_allocator_register(PyObject *module);

#endif
