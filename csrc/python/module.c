/* catzilla._core: the extension module. Types and glue only. */
#include "py_allocator.h"
#include "py_direct.h"
#include "py_request.h"
#include "py_server.h"

#ifndef CZ_BUILD_JEMALLOC_STATUS
#define CZ_BUILD_JEMALLOC_STATUS ""
#endif

PyDoc_STRVAR(build_info_doc, "build_info() -> dict\n\nHow this extension was built.");
static PyObject *build_info(PyObject *mod, PyObject *unused) {
    (void)mod;
    (void)unused;
    const char *ver = cz_jemalloc_version();
    int compiled = cz_jemalloc_compiled();
    return Py_BuildValue("{s:O,s:O,s:s,s:s,s:s,s:O,s:s,s:O,s:s}", "jemalloc_compiled", compiled ? Py_True : Py_False,
                         "use_jemalloc_option", CZ_BUILD_USE_JEMALLOC ? Py_True : Py_False, "jemalloc_version",
                         ver ? ver : "", "jemalloc_prefix", compiled ? "je_" : "", "jemalloc_tls_model",
                         compiled ? "global-dynamic (--disable-initial-exec-tls)" : "", "jemalloc_debug",
                         (compiled && cz_jemalloc_debug()) ? Py_True : Py_False, "jemalloc_build_status",
                         CZ_BUILD_JEMALLOC_STATUS, "sanitizers", CZ_BUILD_SANITIZE ? Py_True : Py_False, "build_type",
                         CZ_BUILD_TYPE);
}

static PyObject *jemalloc_compiled(PyObject *mod, PyObject *unused) {
    (void)mod;
    (void)unused;
    return PyBool_FromLong(cz_jemalloc_compiled());
}

static PyMethodDef module_methods[] = {
    {"build_info", build_info, METH_NOARGS, build_info_doc},
    {"jemalloc_compiled", jemalloc_compiled, METH_NOARGS,
     "jemalloc_compiled() -> bool: jemalloc is part of this build."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "catzilla._core", "Catzilla's C core.", -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (cz_py_allocator_register(m) < 0 || cz_py_request_register(m) < 0 || cz_py_server_register(m) < 0 ||
        cz_py_direct_register(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
