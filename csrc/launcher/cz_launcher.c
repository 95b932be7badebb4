/*
 * cz_launcher — the Python interpreter, started with its memory on
 * Catzilla's process heap from its first block.
 *
 * `catzilla run` (Linux) re-executes itself through this program, installed
 * beside the extension as catzilla/_python, with:
 *   argv[0]                    the interpreter's own path (sys.executable):
 *                              Python finds its prefix and virtualenv from it
 *   CATZILLA_LIBPYTHON         the CPython shared library to run
 *   CATZILLA_PROCESS_HEAP      the backend ("jemalloc" or "mimalloc")
 *   CATZILLA_CORE_MODULE       the path of the extension (catzilla/_core*.so)
 *
 * Between Py_PreInitialize() and the interpreter's initialization, the one
 * window in which CPython lets an embedder replace its allocators
 * (PyMem_SetAllocator's contract), it loads the extension and calls its
 * catzilla_process_heap_preinit(): the interpreter's start-up, its `site`
 * and every import then live on the process heap, which otherwise only
 * holds what comes after `import catzilla`. Python's own import of the
 * extension later finds the same loaded library, and _open_process_heap
 * reports what happened here. When the heap cannot be opened the
 * interpreter starts as usual (the import says why it is not in use).
 *
 * CPython is loaded at run time, not linked: the program depends on no
 * particular installation (a wheel stays manylinux), only on the headers of
 * the version it was compiled for, which is the extension's (the caller
 * checks that CPython is a shared library there). The program is then the
 * interpreter: Py_BytesMain() with the arguments given.
 */
#include <Python.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*init_config_fn)(PyPreConfig *);
typedef PyStatus (*preinit_fn)(const PyPreConfig *, Py_ssize_t, char **);
typedef int (*is_exception_fn)(PyStatus);
typedef void (*exit_status_fn)(PyStatus);
typedef int (*bytes_main_fn)(int, char **);
typedef int (*heap_preinit_fn)(const char *);

/* dlsym() into a function pointer (POSIX: a data pointer holds one). */
#define LOOKUP(lib, name, var) (*(void **)&(var) = dlsym((lib), (name)))

int main(int argc, char **argv) {
    const char *libpython = getenv("CATZILLA_LIBPYTHON");
    void *py = libpython && *libpython ? dlopen(libpython, RTLD_NOW | RTLD_GLOBAL) : NULL;
    init_config_fn init_config = NULL;
    preinit_fn preinit = NULL;
    is_exception_fn is_exception = NULL;
    exit_status_fn exit_status = NULL;
    bytes_main_fn bytes_main = NULL;
    if (!py || !LOOKUP(py, "PyPreConfig_InitPythonConfig", init_config) ||
        !LOOKUP(py, "Py_PreInitializeFromBytesArgs", preinit) || !LOOKUP(py, "PyStatus_Exception", is_exception) ||
        !LOOKUP(py, "Py_ExitStatusException", exit_status) || !LOOKUP(py, "Py_BytesMain", bytes_main)) {
        const char *why = dlerror();
        fprintf(stderr, "catzilla: cannot run CPython from %s: %s\n",
                libpython ? libpython : "(CATZILLA_LIBPYTHON unset)", why ? why : "not found");
        return 127;
    }
    PyPreConfig pre;
    init_config(&pre);
    PyStatus st = preinit(&pre, argc, argv);
    if (is_exception(st)) exit_status(st);
    const char *backend = getenv("CATZILLA_PROCESS_HEAP");
    const char *core = getenv("CATZILLA_CORE_MODULE");
    if (backend && *backend && core && *core) {
        /* RTLD_GLOBAL: the import's own dlopen() of this path gets this copy */
        void *lib = dlopen(core, RTLD_NOW | RTLD_GLOBAL);
        heap_preinit_fn heap_preinit = NULL;
        if (lib && LOOKUP(lib, "catzilla_process_heap_preinit", heap_preinit)) heap_preinit(backend);
    }
    return bytes_main(argc, argv);
}
