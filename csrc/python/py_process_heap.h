/*
 * Process scope: the interpreter's memory on the process heap of
 * cz_memory.h. Installs allocator hooks (PyMem_SetAllocator) that wrap the
 * allocators the interpreter had: new blocks come from the process heap,
 * and every free or realloc goes to the allocator that made the block
 * (cz_process_heap_owns decides), so blocks made before the switch stay
 * valid. The hooks are never removed: once installed, blocks of both
 * allocators are live.
 *
 * Which domains
 *   keep_pymalloc = 1   RAW, plus pymalloc's arena allocator
 *   (Catzilla's default) (PyObject_SetArenaAllocator): small objects stay in
 *                       pymalloc's pools, whose 1 MiB (256 KiB before 3.10)
 *                       arenas come from the process heap; larger blocks
 *                       reach RAW through pymalloc's fallback.
 *   keep_pymalloc = 0   RAW, MEM and OBJ: every block of the interpreter is
 *                       one block of the process heap (pymalloc bypassed;
 *                       measured slower, see docs/memory.md).
 *
 * Call with the GIL held (or before the interpreter starts: see
 * catzilla_process_heap_preinit), once per process (cz_process_heap_open
 * refuses a second time). Not with tracemalloc tracing: it would later restore the
 * allocator it saved and drop these hooks (the Python layer checks).
 */
#ifndef CZ_PY_PROCESS_HEAP_H
#define CZ_PY_PROCESS_HEAP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cz_memory.h"

/* 0 when the interpreter's memory now comes from `a`'s process heap;
 * -1 with `reason` filled when not (nothing changed). `keep_pymalloc` -1:
 * the default, 1 unless CATZILLA_BYPASS_PYMALLOC is 1/true/yes/on. */
int cz_py_govern_process(cz_allocator_t *a, int keep_pymalloc, char *reason, size_t reason_len);

/* Hand the heap opened at import (_open_process_heap) to `a`, of the same
 * backend, and resume it: 0, or -1 when there is none or the backends differ. */
int cz_py_adopt_process_heap(cz_allocator_t *a);

/* For csrc/launcher (catzilla run on Linux), between Py_PreInitialize() and
 * the interpreter's initialization, when no Python object exists yet: open
 * the process heap of `backend` ("jemalloc" or "mimalloc") and install the
 * hooks, so that every block of the interpreter, from its first, comes from
 * it. 0, or -1 (nothing changed; the reason is kept for _open_process_heap
 * to return at import). Exported from the extension (cmake/exports.map). */
__attribute__((visibility("default"))) int catzilla_process_heap_preinit(const char *backend);

/* Module functions of this file (process_heap_stats, ...). */
int cz_py_process_heap_register(PyObject *module);

#endif
