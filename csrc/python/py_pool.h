/*
 * py_pool — the process's threads for sync handlers that block (a database
 * driver, file I/O, time.sleep): such a handler runs there, so the HTTP loop
 * goes on serving everyone else meanwhile.
 *
 * Jobs are Python objects with a C function to run them; the queue links
 * them through their own `next` field (no allocation). Threads are Python
 * threads (daemon, started by the Python layer's hook on demand, up to a
 * maximum) that call _core._pool_work() and never return from it; while a
 * thread waits for a job it does not hold the GIL.
 *
 * Threads: submit and the setters take the GIL-holding caller's thread; a
 * job runs on a pool thread with the GIL held. Order: first in, first out.
 * After fork(), the child calls cz_py_pool_after_fork(): its threads are gone.
 */
#ifndef CZ_PY_POOL_H
#define CZ_PY_POOL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct cz_py_job cz_py_job_t;
struct cz_py_job {
    cz_py_job_t *next;            /* the queue's, while queued */
    void (*run)(PyObject *owner); /* runs on a pool thread, GIL held */
    PyObject *owner;              /* the object that embeds this job */
};

/* Queue `job` (a reference to job->owner is taken until it has run).
 * 0, or -1 with an exception (no thread could be started). GIL held. */
int cz_py_pool_submit(cz_py_job_t *job);

/* _core._pool_configure(start_thread, max_threads), _core._pool_work(),
 * _core._pool_after_fork(). */
extern PyMethodDef cz_py_pool_methods[];

#endif
