/*
 * catzilla._core.RawRequest: one request, copied out of the connection's
 * buffers into a single block (CZ_MEM_REQUEST), so a handler may keep it
 * as long as it likes. Python objects are made only when asked for.
 */
#ifndef CZ_PY_REQUEST_H
#define CZ_PY_REQUEST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cz_http.h"
#include "cz_router.h"
#include "cz_server.h"
#include "py_allocator.h"

extern PyTypeObject CzRawRequest_Type;

/* A new RawRequest for `req` on `c` with the params of `m` (may be NULL). */
PyObject *cz_py_request_new(CzAllocatorObject *alloc, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m);

/* Give `raw` (a RawRequest) the stream its body arrives through. */
void cz_py_request_set_stream(PyObject *raw, PyObject *stream);

/* Give `raw` its multipart body, spooled as parts (a list). */
void cz_py_request_set_form(PyObject *raw, PyObject *parts);

/* A WebSocket request's connection side: set it; get it (borrowed, or NULL). */
void cz_py_request_set_websocket(PyObject *raw, PyObject *ws);
PyObject *cz_py_request_websocket(PyObject *raw);

/* Its body stream (borrowed), or NULL. */
PyObject *cz_py_request_stream(PyObject *raw);

int cz_py_request_register(PyObject *module);

#endif
