/* py_pool — see py_pool.h for the contract. */
#include "py_pool.h"

#include <uv.h>

static uv_mutex_t lock;
static uv_cond_t more;
static cz_py_job_t *head, *tail;
static unsigned njobs, idle, threads, max_threads = 40;
static PyObject *start_thread; /* () -> None: starts a daemon thread running _pool_work() */
static int ready;

static void pool_init(void) {
    uv_mutex_init(&lock);
    uv_cond_init(&more);
    head = tail = NULL;
    njobs = idle = threads = 0;
    ready = 1;
}

int cz_py_pool_submit(cz_py_job_t *job) {
    if (!ready || !start_thread) {
        PyErr_SetString(PyExc_RuntimeError, "the thread pool is not configured");
        return -1;
    }
    Py_INCREF(job->owner);
    job->next = NULL;
    uv_mutex_lock(&lock);
    if (tail) tail->next = job;
    else head = job;
    tail = job;
    njobs++;
    int spawn = njobs > idle && threads < max_threads;
    if (spawn) threads++;
    uv_cond_signal(&more);
    uv_mutex_unlock(&lock);
    if (!spawn) return 0;
    PyObject *r = PyObject_CallNoArgs(start_thread);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    /* No new thread: the others run the job, unless there are none. */
    uv_mutex_lock(&lock);
    threads--;
    int alone = threads == 0;
    if (alone) {
        cz_py_job_t **pp = &head, *prev = NULL;
        while (*pp && *pp != job) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = job->next;
            if (tail == job) tail = prev;
            njobs--;
        }
    }
    uv_mutex_unlock(&lock);
    if (!alone) {
        PyErr_WriteUnraisable(start_thread);
        return 0;
    }
    Py_DECREF(job->owner);
    return -1;
}

/* Never returns: the thread is the pool's for the life of the process. */
static PyObject *pool_work(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    for (;;) {
        PyThreadState *ts = PyEval_SaveThread(); /* no GIL while waiting */
        uv_mutex_lock(&lock);
        idle++;
        while (!head) uv_cond_wait(&more, &lock);
        idle--;
        cz_py_job_t *job = head;
        head = job->next;
        if (!head) tail = NULL;
        njobs--;
        uv_mutex_unlock(&lock);
        PyEval_RestoreThread(ts);
        PyObject *owner = job->owner;
        job->run(owner);
        if (PyErr_Occurred()) PyErr_WriteUnraisable(owner); /* a job reports its own failures */
        Py_DECREF(owner);
    }
    Py_UNREACHABLE();
}

static PyObject *pool_configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *start;
    int n;
    if (!PyArg_ParseTuple(args, "Oi:_pool_configure", &start, &n)) return NULL;
    if (!PyCallable_Check(start) || n < 1) {
        PyErr_Format(PyExc_ValueError, "_pool_configure(start_thread, max_threads >= 1), got %R, %d", start, n);
        return NULL;
    }
    if (!ready) pool_init();
    uv_mutex_lock(&lock);
    max_threads = (unsigned)n;
    uv_mutex_unlock(&lock);
    Py_XSETREF(start_thread, Py_NewRef(start));
    Py_RETURN_NONE;
}

static PyObject *pool_after_fork(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    /* The parent's threads are not in the child, and one may have held the
     * lock at fork(): start over. Queued jobs were the parent's. */
    if (ready) pool_init();
    Py_RETURN_NONE;
}

PyMethodDef cz_py_pool_methods[] = {
    {"_pool_configure", pool_configure, METH_VARARGS,
     "_pool_configure(start_thread, max_threads): how the pool starts a thread, and how many at most."},
    {"_pool_work", pool_work, METH_NOARGS, "Run pool jobs forever (the body of a pool thread)."},
    {"_pool_after_fork", pool_after_fork, METH_NOARGS, "Forget the parent's pool threads (in a forked child)."},
    {NULL, NULL, 0, NULL},
};
