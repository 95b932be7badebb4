#include "py_process_heap.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The interpreter's allocators before the switch, per domain. The hooks
 * ignore their ctx argument: a thread allocating without the GIL (RAW) may
 * read the new function with the old ctx while the switch happens. */
static PyMemAllocatorEx g_old[3]; /* RAW, MEM, OBJ */
static PyObjectArenaAllocator g_old_arena;
static int g_keep_pymalloc = -1;
/* pymalloc arenas on the process heap now (arena calls hold the GIL). The
 * arena allocator also gives threads' frame stacks their chunks (16 KiB,
 * CPython 3.11+); arenas are 256 KiB (1 MiB since 3.10): counted by size. */
static Py_ssize_t g_heap_arenas;
#define PYMALLOC_ARENA_MIN (256u * 1024u)
/* Set: new blocks go to the old allocators again (frees still go by
 * address). How an app that wants malloc or the app scope leaves the
 * interpreter alone when the heap was opened at import. */
static atomic_int g_suspended;
/* The handle that opened the heap at import, before any app; never freed. */
static cz_allocator_t *g_early;

static void *heap_alloc(size_t size, int zero) {
    return atomic_load_explicit(&g_suspended, memory_order_relaxed) ? NULL : cz_process_heap_alloc(size, zero);
}

#define DEFINE_HOOKS(name, D)                                                                                          \
    static void *name##_malloc(void *ctx, size_t size) {                                                               \
        (void)ctx;                                                                                                     \
        void *p = heap_alloc(size, 0);                                                                                 \
        return p ? p : g_old[D].malloc(g_old[D].ctx, size);                                                            \
    }                                                                                                                  \
    static void *name##_calloc(void *ctx, size_t n, size_t size) {                                                     \
        (void)ctx;                                                                                                     \
        void *p = NULL;                                                                                                \
        if (size == 0 || n <= SIZE_MAX / size) p = heap_alloc(n * size, 1);                                            \
        return p ? p : g_old[D].calloc(g_old[D].ctx, n, size);                                                         \
    }                                                                                                                  \
    static void *name##_realloc(void *ctx, void *ptr, size_t size) {                                                   \
        (void)ctx;                                                                                                     \
        if (!ptr) return name##_malloc(NULL, size);                                                                    \
        if (cz_process_heap_owns(ptr)) return cz_process_heap_realloc(ptr, size);                                      \
        return g_old[D].realloc(g_old[D].ctx, ptr, size);                                                              \
    }                                                                                                                  \
    static void name##_free(void *ctx, void *ptr) {                                                                    \
        (void)ctx;                                                                                                     \
        if (!ptr) return;                                                                                              \
        if (cz_process_heap_owns(ptr)) cz_process_heap_free(ptr);                                                      \
        else g_old[D].free(g_old[D].ctx, ptr);                                                                         \
    }

DEFINE_HOOKS(raw, 0)
DEFINE_HOOKS(mem, 1)
DEFINE_HOOKS(obj, 2)

static void *arena_alloc(void *ctx, size_t size) {
    (void)ctx;
    void *p = heap_alloc(size, 0);
    if (p && size >= PYMALLOC_ARENA_MIN) g_heap_arenas++;
    return p ? p : g_old_arena.alloc(g_old_arena.ctx, size);
}

static void arena_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    if (cz_process_heap_owns(ptr)) {
        if (size >= PYMALLOC_ARENA_MIN) g_heap_arenas--;
        cz_process_heap_free(ptr);
    } else {
        g_old_arena.free(g_old_arena.ctx, ptr, size);
    }
}

int cz_py_keep_pymalloc_default(void) {
    const char *v = getenv("CATZILLA_BYPASS_PYMALLOC");
    if (!v) return 1;
    static const char *const yes[] = {"1", "true", "yes", "on"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) return 0;
    }
    return 1;
}

int cz_py_govern_process(cz_allocator_t *a, int keep_pymalloc, char *reason, size_t reason_len) {
    if (keep_pymalloc < 0) keep_pymalloc = cz_py_keep_pymalloc_default();
    if (cz_process_heap_open(a, reason, reason_len) != 0) return -1;
    static const PyMemAllocatorDomain domains[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    for (int d = 0; d < 3; d++) PyMem_GetAllocator(domains[d], &g_old[d]);
    PyObject_GetArenaAllocator(&g_old_arena);
    g_keep_pymalloc = keep_pymalloc;
    /* g_old is complete before a thread can call a hook that reads it */
    atomic_thread_fence(memory_order_release);
    PyMemAllocatorEx raw = {NULL, raw_malloc, raw_calloc, raw_realloc, raw_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw);
    if (keep_pymalloc) {
        PyObjectArenaAllocator arena = {NULL, arena_alloc, arena_free};
        PyObject_SetArenaAllocator(&arena);
    } else {
        PyMemAllocatorEx mem = {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free};
        PyMemAllocatorEx obj = {NULL, obj_malloc, obj_calloc, obj_realloc, obj_free};
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    }
    return 0;
}

int cz_py_adopt_process_heap(cz_allocator_t *a) {
    if (!g_early || cz_process_heap_hand_over(g_early, a) != 0) return -1;
    atomic_store(&g_suspended, 0);
    return 0;
}

/* Open the heap of backend `name` before any app: 0 (g_early set), or -1
 * with `reason`. No Python object is touched. */
static int open_early_heap(const char *name, int keep_pymalloc, char *reason, size_t reason_len) {
    int b = cz_backend_parse(name);
    if (b < 0) {
        snprintf(reason, reason_len, "backend must be 'jemalloc' or 'mimalloc', got '%s'", name);
        return -1;
    }
    cz_allocator_t *a = cz_allocator_create((cz_backend_t)b, reason, reason_len);
    if (!a) {
        snprintf(reason, reason_len, "out of memory");
        return -1;
    }
    if (reason[0] == '\0' && cz_py_govern_process(a, keep_pymalloc, reason, reason_len) == 0) {
        g_early = a;
        return 0;
    }
    cz_allocator_destroy(a);
    return -1;
}

/* Set by catzilla_process_heap_preinit: the backend it opened, or why it failed. */
static char g_preinit_backend[16];
static char g_preinit_reason[256];

int catzilla_process_heap_preinit(const char *backend) {
    snprintf(g_preinit_backend, sizeof(g_preinit_backend), "%s", backend);
    g_preinit_reason[0] = '\0';
    if (open_early_heap(backend, -1, g_preinit_reason, sizeof(g_preinit_reason)) == 0) return 0;
    if (!g_preinit_reason[0]) snprintf(g_preinit_reason, sizeof(g_preinit_reason), "the process heap did not open");
    return -1;
}

/* ---- module functions ------------------------------------------------------------ */

PyDoc_STRVAR(open_early_doc,
             "_open_process_heap(backend, keep_pymalloc=None) -> str | None\n\n"
             "Open the process heap before any app (at import, from CATZILLA_PROCESS_HEAP): None when the "
             "interpreter's memory now comes from `backend`, else why not. The first app that asks for the same "
             "backend at process scope takes it over; one that asks for anything else suspends it.");
static PyObject *open_early(PyObject *mod, PyObject *args, PyObject *kw) {
    (void)mod;
    static char *kwlist[] = {"backend", "keep_pymalloc", NULL};
    const char *name;
    PyObject *keep = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:_open_process_heap", kwlist, &name, &keep)) return NULL;
    int keep_pymalloc = keep == Py_None ? -1 : PyObject_IsTrue(keep);
    if (keep != Py_None && keep_pymalloc < 0) return NULL;
    if (cz_backend_parse(name) < 0)
        return PyErr_Format(PyExc_ValueError, "backend must be 'jemalloc' or 'mimalloc', got '%s'", name);
    if (g_preinit_backend[0]) { /* tried before the interpreter started (csrc/launcher) */
        if (strcmp(g_preinit_backend, name) != 0)
            return PyUnicode_FromFormat("the process heap was opened for %s before the interpreter started",
                                        g_preinit_backend);
        if (g_early) Py_RETURN_NONE;
        return PyUnicode_FromString(g_preinit_reason);
    }
    char reason[256] = "";
    if (open_early_heap(name, keep_pymalloc, reason, sizeof(reason)) == 0) Py_RETURN_NONE;
    return PyUnicode_FromString(reason);
}

PyDoc_STRVAR(suspend_doc, "_process_heap_suspend(flag)\n\n"
                          "True: new interpreter blocks come from the allocators it had before again (frees "
                          "still go to the allocator that made each block); False: from the process heap.");
static PyObject *suspend(PyObject *mod, PyObject *flag) {
    (void)mod;
    int on = PyObject_IsTrue(flag);
    if (on < 0) return NULL;
    atomic_store(&g_suspended, on);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(heap_stats_doc, "process_heap_stats() -> dict | None\n\n"
                             "Figures of the process heap (bytes), or None when the interpreter's memory is not "
                             "governed by Catzilla's allocator.");
static PyObject *process_heap_stats(PyObject *mod, PyObject *unused) {
    (void)mod;
    (void)unused;
    int backend = cz_process_heap_backend();
    if (backend < 0) Py_RETURN_NONE;
    cz_purpose_stats_t s;
    Py_BEGIN_ALLOW_THREADS
    cz_process_heap_stats(&s);
    Py_END_ALLOW_THREADS
    /* unclaimed: opened at import and not (yet) taken by an app */
    int unclaimed = g_early && cz_allocator_owns_process_heap(g_early);
    return Py_BuildValue(
        "{s:s,s:O,s:O,s:O,s:n,s:n,s:n,s:n,s:n,s:K,s:K}", "backend", cz_backend_name((cz_backend_t)backend), "suspended",
        atomic_load(&g_suspended) ? Py_True : Py_False, "unclaimed", unclaimed ? Py_True : Py_False, "pymalloc",
        g_keep_pymalloc ? Py_True : Py_False, "pymalloc_arenas", g_heap_arenas, "allocated", (Py_ssize_t)s.allocated,
        "active", (Py_ssize_t)s.active, "resident", (Py_ssize_t)s.resident, "dirty", (Py_ssize_t)s.dirty, "nmalloc",
        (unsigned long long)s.nmalloc, "nfree", (unsigned long long)s.nfree);
}

PyDoc_STRVAR(heap_owns_doc, "_process_heap_owns(obj) -> bool\n\n"
                            "Test-only: whether the process heap made the memory of `obj`.");
static PyObject *process_heap_owns(PyObject *mod, PyObject *obj) {
    (void)mod;
    return PyBool_FromLong(cz_process_heap_owns(obj));
}

static PyMethodDef functions[] = {
    {"process_heap_stats", process_heap_stats, METH_NOARGS, heap_stats_doc},
    {"_process_heap_owns", process_heap_owns, METH_O, heap_owns_doc},
    {"_open_process_heap", (PyCFunction)(void (*)(void))open_early, METH_VARARGS | METH_KEYWORDS, open_early_doc},
    {"_process_heap_suspend", suspend, METH_O, suspend_doc},
    {NULL, NULL, 0, NULL},
};

int cz_py_process_heap_register(PyObject *module) {
    return PyModule_AddFunctions(module, functions);
}
