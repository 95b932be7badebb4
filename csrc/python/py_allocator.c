#include "py_allocator.h"

#include "py_process_heap.h"

/* ---- Allocator -------------------------------------------------------------- */

static PyObject *Allocator_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"use_jemalloc", "backend", NULL};
    int use_jemalloc = 1;
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|pz:Allocator", kwlist, &use_jemalloc, &name)) return NULL;
    cz_backend_t wanted = use_jemalloc ? CZ_BACKEND_JEMALLOC : CZ_BACKEND_MALLOC;
    if (name) {
        int b = cz_backend_parse(name);
        if (b < 0) {
            return PyErr_Format(PyExc_ValueError, "backend must be 'malloc', 'jemalloc' or 'mimalloc', got '%s'", name);
        }
        wanted = (cz_backend_t)b;
    }
    CzAllocatorObject *self = (CzAllocatorObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    char reason[256];
    self->alloc = cz_allocator_create(wanted, reason, sizeof(reason));
    if (!self->alloc) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    cz_http_buf_init(&self->json_scratch, self->alloc, 0);
    if (reason[0]) {
        self->fallback_reason = PyUnicode_FromString(reason);
        if (!self->fallback_reason) {
            Py_DECREF(self);
            return NULL;
        }
    } else {
        self->fallback_reason = Py_NewRef(Py_None);
    }
    return (PyObject *)self;
}

static void Allocator_dealloc(CzAllocatorObject *self) {
    if (self->alloc) {
        cz_http_buf_free(&self->json_scratch);
        cz_allocator_destroy(self->alloc);
    }
    Py_XDECREF(self->fallback_reason);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int set_item(PyObject *d, const char *key, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *purpose_dict(const cz_purpose_stats_t *s) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (set_item(d, "allocated", PyLong_FromSize_t(s->allocated)) < 0 ||
        set_item(d, "active", PyLong_FromSize_t(s->active)) < 0 ||
        set_item(d, "resident", PyLong_FromSize_t(s->resident)) < 0 ||
        set_item(d, "dirty", PyLong_FromSize_t(s->dirty)) < 0 ||
        set_item(d, "nmalloc", PyLong_FromUnsignedLongLong(s->nmalloc)) < 0 ||
        set_item(d, "nfree", PyLong_FromUnsignedLongLong(s->nfree)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

PyDoc_STRVAR(stats_doc, "stats() -> dict\n\nFresh statistics of this allocator, in bytes.");
static PyObject *Allocator_stats(CzAllocatorObject *self, PyObject *unused) {
    (void)unused;
    cz_memory_stats_t st;
    Py_BEGIN_ALLOW_THREADS
    cz_allocator_stats(self->alloc, &st);
    Py_END_ALLOW_THREADS
    PyObject *d = PyDict_New(), *purposes = PyDict_New();
    if (!d || !purposes) goto fail;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        if (set_item(purposes, cz_purpose_name((cz_purpose_t)p), purpose_dict(&st.purpose[p])) < 0) goto fail;
    }
    /* Process scope: the interpreter's memory is one more purpose. */
    if (st.with_process_heap && set_item(purposes, "python", purpose_dict(&st.process_heap)) < 0) goto fail;
    if (set_item(d, "allocated", PyLong_FromSize_t(st.allocated)) < 0 ||
        set_item(d, "peak_allocated", PyLong_FromSize_t(st.peak_allocated)) < 0 ||
        set_item(d, "active", PyLong_FromSize_t(st.active)) < 0 ||
        set_item(d, "resident", PyLong_FromSize_t(st.resident)) < 0 ||
        set_item(d, "dirty", PyLong_FromSize_t(st.dirty)) < 0 ||
        set_item(d, "nmalloc", PyLong_FromUnsignedLongLong(st.nmalloc)) < 0 ||
        set_item(d, "nfree", PyLong_FromUnsignedLongLong(st.nfree)) < 0 ||
        set_item(d, "fragmentation_percent", PyFloat_FromDouble(st.fragmentation_percent)) < 0 ||
        set_item(d, "process_wide", PyBool_FromLong(st.process_wide)) < 0 ||
        set_item(d, "fragmentation_process_wide", PyBool_FromLong(st.fragmentation_process_wide)) < 0 ||
        set_item(d, "process_fragmentation_percent",
                 st.process_fragmentation_percent < 0 ? Py_NewRef(Py_None)
                                                      : PyFloat_FromDouble(st.process_fragmentation_percent)) < 0 ||
        PyDict_SetItemString(d, "purposes", purposes) < 0)
        goto fail;
    Py_DECREF(purposes);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(purposes);
    return NULL;
}

PyDoc_STRVAR(set_decay_doc, "set_decay(dirty_ms, muzzy_ms)\n\nDecay times of this allocator's jemalloc arenas "
                            "(-1: never purge). No effect with malloc.");
static PyObject *Allocator_set_decay(CzAllocatorObject *self, PyObject *args) {
    long dirty, muzzy;
    if (!PyArg_ParseTuple(args, "ll:set_decay", &dirty, &muzzy)) return NULL;
    if (dirty < -1 || muzzy < -1) {
        return PyErr_Format(PyExc_ValueError, "decay times must be >= -1 milliseconds, got dirty_ms=%ld muzzy_ms=%ld",
                            dirty, muzzy);
    }
    if (cz_allocator_set_decay(self->alloc, dirty, muzzy) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "jemalloc refused the decay setting");
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(purge_doc, "purge() -> int\n\nReturn unused memory to the OS; bytes released.");
static PyObject *Allocator_purge(CzAllocatorObject *self, PyObject *unused) {
    (void)unused;
    size_t released;
    Py_BEGIN_ALLOW_THREADS
    released = cz_allocator_purge(self->alloc);
    Py_END_ALLOW_THREADS
    return PyLong_FromSize_t(released);
}

PyDoc_STRVAR(decay_tick_doc, "decay_tick()\n\nLet decay-based purging run on idle arenas.");
static PyObject *Allocator_decay_tick(CzAllocatorObject *self, PyObject *unused) {
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    cz_allocator_decay_tick(self->alloc);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(govern_process_doc,
             "govern_process(keep_pymalloc=None) -> str | None\n\n"
             "Let this allocator's process heap take the interpreter's memory (process scope). None when it "
             "now does; otherwise why not (nothing changed). Once per process; the switch is permanent.");
static PyObject *Allocator_govern_process(CzAllocatorObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"keep_pymalloc", NULL};
    PyObject *keep = Py_None; /* None: CATZILLA_BYPASS_PYMALLOC decides (py_process_heap.h) */
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:govern_process", kwlist, &keep)) return NULL;
    int keep_pymalloc = keep == Py_None ? -1 : PyObject_IsTrue(keep);
    if (keep != Py_None && keep_pymalloc < 0) return NULL;
    char reason[256];
    if (cz_py_govern_process(self->alloc, keep_pymalloc, reason, sizeof(reason)) != 0) {
        return PyUnicode_FromString(reason);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(adopt_doc, "adopt_process_heap() -> bool\n\n"
                        "Take over the process heap opened at import (same backend), and resume it if suspended.");
static PyObject *Allocator_adopt_process_heap(CzAllocatorObject *self, PyObject *unused) {
    (void)unused;
    return PyBool_FromLong(cz_py_adopt_process_heap(self->alloc) == 0);
}

static PyObject *Allocator_get_owns_process_heap(CzAllocatorObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(cz_allocator_owns_process_heap(self->alloc));
}

static PyObject *Allocator_get_backend(CzAllocatorObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(cz_backend_name(cz_allocator_backend(self->alloc)));
}

static PyObject *Allocator_get_fallback_reason(CzAllocatorObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->fallback_reason);
}

/* ---- Block: test-only, N blocks of one size in one purpose ----------------- */

typedef struct {
    PyObject_HEAD
    CzAllocatorObject *owner;
    cz_purpose_t purpose;
    Py_ssize_t count;
    void **ptrs;
} CzBlockObject;

static void Block_release(CzBlockObject *self) {
    if (!self->ptrs) return;
    for (Py_ssize_t i = 0; i < self->count; i++) cz_free(self->owner->alloc, self->purpose, self->ptrs[i]);
    PyMem_Free(self->ptrs);
    self->ptrs = NULL;
    self->count = 0;
}

static void Block_dealloc(CzBlockObject *self) {
    Block_release(self);
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Block_free(CzBlockObject *self, PyObject *unused) {
    (void)unused;
    Block_release(self);
    Py_RETURN_NONE;
}

static PyObject *Block_free_every(CzBlockObject *self, PyObject *arg) {
    Py_ssize_t step = PyLong_AsSsize_t(arg);
    if (step == -1 && PyErr_Occurred()) return NULL;
    if (step < 1) return PyErr_Format(PyExc_ValueError, "step must be >= 1, got %zd", step);
    for (Py_ssize_t i = 0; self->ptrs && i < self->count; i += step) {
        cz_free(self->owner->alloc, self->purpose, self->ptrs[i]);
        self->ptrs[i] = NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Block_methods[] = {
    {"free", (PyCFunction)Block_free, METH_NOARGS, "Free every block now."},
    {"free_every", (PyCFunction)Block_free_every, METH_O,
     "free_every(step): free blocks 0, step, 2*step, ... (makes holes)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CzBlock_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core._Block",
    .tp_basicsize = sizeof(CzBlockObject),
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Test-only: blocks taken from an Allocator, freed on free() or collection.",
    .tp_methods = Block_methods,
};

int cz_py_purpose(PyObject *name, cz_purpose_t *out) {
    if (PyUnicode_Check(name)) {
        const char *s = PyUnicode_AsUTF8(name);
        if (!s) return -1;
        for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
            if (strcmp(s, cz_purpose_name((cz_purpose_t)p)) == 0) {
                *out = (cz_purpose_t)p;
                return 0;
            }
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "purpose must be one of 'request', 'response', 'cache', 'static', 'task', "
                 "'general'; got %R",
                 name);
    return -1;
}

PyDoc_STRVAR(test_alloc_doc, "_test_alloc(purpose, size, count=1) -> _Block\n\n"
                             "Test-only: allocate `count` blocks of `size` bytes through this allocator.");
static PyObject *Allocator_test_alloc(CzAllocatorObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"purpose", "size", "count", NULL};
    PyObject *pname;
    Py_ssize_t size, count = 1;
    cz_purpose_t purpose;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "On|n:_test_alloc", kwlist, &pname, &size, &count)) return NULL;
    if (cz_py_purpose(pname, &purpose) < 0) return NULL;
    if (size < 1 || count < 1) {
        return PyErr_Format(PyExc_ValueError, "size and count must be >= 1, got size=%zd count=%zd", size, count);
    }
    CzBlockObject *b = PyObject_New(CzBlockObject, &CzBlock_Type);
    if (!b) return NULL;
    b->owner = (CzAllocatorObject *)Py_NewRef(self);
    b->purpose = purpose;
    b->count = 0;
    b->ptrs = PyMem_Calloc((size_t)count, sizeof(void *));
    if (!b->ptrs) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        void *p = cz_malloc(self->alloc, purpose, (size_t)size);
        if (!p) {
            Py_DECREF(b);
            return PyErr_NoMemory();
        }
        /* Touch every page so the block is resident, as real use would be. */
        memset(p, 0xA5, (size_t)size);
        b->ptrs[i] = p;
        b->count = i + 1;
    }
    return (PyObject *)b;
}

static PyMethodDef Allocator_methods[] = {
    {"stats", (PyCFunction)Allocator_stats, METH_NOARGS, stats_doc},
    {"set_decay", (PyCFunction)Allocator_set_decay, METH_VARARGS, set_decay_doc},
    {"purge", (PyCFunction)Allocator_purge, METH_NOARGS, purge_doc},
    {"decay_tick", (PyCFunction)Allocator_decay_tick, METH_NOARGS, decay_tick_doc},
    {"_test_alloc", (PyCFunction)(void (*)(void))Allocator_test_alloc, METH_VARARGS | METH_KEYWORDS, test_alloc_doc},
    {"govern_process", (PyCFunction)(void (*)(void))Allocator_govern_process, METH_VARARGS | METH_KEYWORDS,
     govern_process_doc},
    {"adopt_process_heap", (PyCFunction)Allocator_adopt_process_heap, METH_NOARGS, adopt_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Allocator_getset[] = {
    {"backend", (getter)Allocator_get_backend, NULL, "'jemalloc', 'mimalloc' or 'malloc': the backend in use.", NULL},
    {"fallback_reason", (getter)Allocator_get_fallback_reason, NULL,
     "Why the requested backend is not used (malloc instead), or None.", NULL},
    {"owns_process_heap", (getter)Allocator_get_owns_process_heap, NULL,
     "True when this allocator governs the interpreter's memory (process scope).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject CzAllocator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core.Allocator",
    .tp_basicsize = sizeof(CzAllocatorObject),
    .tp_dealloc = (destructor)Allocator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Allocator(use_jemalloc=True, backend=None)\n\nOne allocator handle: `backend` ('malloc', "
              "'jemalloc', 'mimalloc') if given, else jemalloc or malloc; falls back to malloc.",
    .tp_methods = Allocator_methods,
    .tp_getset = Allocator_getset,
    .tp_new = Allocator_new,
};

int cz_py_allocator_register(PyObject *module) {
    if (PyType_Ready(&CzAllocator_Type) < 0 || PyType_Ready(&CzBlock_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Allocator", (PyObject *)&CzAllocator_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "_Block", (PyObject *)&CzBlock_Type) < 0) return -1;
    return 0;
}
