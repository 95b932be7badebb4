/* catzilla._core.Server and _Pending: routes, serving, async completion. */
#ifndef CZ_PY_SERVER_H
#define CZ_PY_SERVER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyTypeObject CzServer_Type;

int cz_py_server_register(PyObject *module);

#endif
