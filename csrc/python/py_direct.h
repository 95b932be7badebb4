/*
 * catzilla._core.CallPlan: a handler's declared request values, taken
 * straight from the parsed request in C (no RawRequest, no binder).
 *
 * A plan is built once per route by the Python layer from the handler's
 * signature: for each positional argument, where it comes from (path
 * parameter, query key, header, JSON body), how it is converted (str,
 * int, float, or a Python callable) and its constraints (numeric bounds,
 * string length). The C side only ever takes the unambiguous, valid case:
 * a value that is missing and required, percent-encoded, not in its
 * simplest spelling, or that breaks a constraint makes the call decline,
 * and the route's compiled Python binder handles the request instead
 * (with the same results, and FastAPI's 422 errors). So the plan never
 * decides anything the binder would decide differently.
 *
 * A plan may also carry the route's fast answer: a return value of exactly
 * `render_type` is answered by `render(value, **render_kwargs)` (JSON
 * bytes) with the route's status; anything else goes through `finish`.
 * With a `render_shape` (src/catzilla/shapes.py) the C core writes the
 * value's fields itself, and calls `render` only for values the shape's
 * writer leaves to the library.
 *
 * With `strict_content_type` a body sent without Content-Type is not taken
 * as JSON: the call declines and the binder answers 422 (FastAPI's
 * default); otherwise such a body is JSON.
 */
#ifndef CZ_PY_DIRECT_H
#define CZ_PY_DIRECT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cz_http.h"
#include "cz_router.h"

#define CZ_DIRECT_MAX_ARGS 16

extern PyTypeObject CzCallPlan_Type;

/* Call `fn` with the arguments `plan` takes from `req` (and the path
 * parameters of `m`). Returns the new result, or NULL: with an exception
 * set when `fn` raised, without one (and *declined = 1) when the request
 * needs the Python binder. GIL held. */
PyObject *cz_py_direct_call(PyObject *plan, PyObject *fn, const cz_http_request_t *req, const cz_match_t *m,
                            int *declined);

/* The plan's answer for `value`, appended to `out` as JSON with *status
 * set: 1 when `value` is of the plan's render type, 0 (nothing written)
 * when it is not, -1 with an exception when rendering failed. */
int cz_py_direct_render(PyObject *plan, PyObject *value, cz_http_buf_t *out, int *status);

/* The plan's finishing step for other values, or NULL (borrowed). */
PyObject *cz_py_direct_finish(PyObject *plan);

int cz_py_direct_register(PyObject *module);

#endif
