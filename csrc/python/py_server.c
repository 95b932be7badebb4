/*
 * catzilla._core.Server: a router and, while serving, a cz_server.
 *
 * The loop thread holds the GIL only inside a hook: to call a handler and
 * turn its result into response bytes. A coroutine result is handed to the
 * asyncio runner (a Python callable) with a _Pending object; the runner
 * calls _Pending.done(result) / .fail(exc), and the loop thread answers at
 * its next step (the runner's loop steps a driven server: start()/step(),
 * one thread for both loops) or when it is woken (run(), or an answer
 * from another thread).
 *
 * Sync handlers run on the loop thread while they are quick. One seen
 * blocking (its thread asleep inside the call on two watch ticks in a row,
 * e.g. in time.sleep, a socket read or a lock) moves to the thread pool
 * (py_pool.h) for good, as does one its route marks threadpool=True; its
 * answer then comes back as a _Pending does.
 *
 * Accounting (set_accounting(), before bind): each answered request is
 * counted in C (cz_metrics: per route, method, status class, latency) and
 * its access log line formatted in C (cz_accesslog) into one buffer, which
 * is handed to the Python sink as one batch when it holds ACCESS_FLUSH
 * bytes (checked when the loop gives the GIL back), or at the next timer
 * sweep (every CZ_SERVER_SWEEP_MS): no Python call per request, and few
 * per second (each costs tens of microseconds in logging). With
 * route_memory, what the loop thread allocates through the memory layer
 * while it works for a connection is tallied (cz_server_config_t
 * .memory_per_request) and added to the request's route when answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "cz_accesslog.h"
#include "cz_files.h"
#include "cz_metrics.h"
#include "cz_spool.h"
#include "cz_ws.h"
#include "py_allocator.h"
#include "py_direct.h"
#include "py_json.h"
#include "py_pool.h"
#include "py_request.h"
#include "py_server.h"

/* Endpoint modes, decided once at registration by the Python layer, which
 * reads them from the module (_core.MODE_*):
 * [MODE_NO_ARGS, handler()], [MODE_REQUEST, binder(raw)] (and, third, a
 * MODE_WS endpoint for upgrade requests), [MODE_DIRECT, handler(*args),
 * CallPlan, binder(raw)], [MODE_STATIC, StaticFiles] (answered in C, no
 * Python call), [MODE_WS, runner(raw)] (the handshake checked first). */
enum { MODE_NO_ARGS = 0, MODE_REQUEST = 1, MODE_DIRECT = 2, MODE_STATIC = 3, MODE_WS = 4 };
/* Where a route's sync handler runs, per router route (add_route's policy). */
enum {
    POLICY_AUTO = 0, /* on the loop until seen blocking */
    POLICY_POOL = 1, /* on the thread pool */
    POLICY_LOOP = 2, /* on the loop (async handlers, or threadpool=False) */
    POLICY_SEEN = 3  /* seen blocking: the pool from the next call on, said once */
};
#define WATCH_TICK_MS     2   /* how often the watcher looks at the loop thread */
#define WATCH_QUIET_TICKS 500 /* ticks without a sync call before it looks less often */

/* How a route's request body reaches its handler (add_route's body_mode). */
enum {
    BODY_WHOLE = 0,  /* read whole before the handler runs */
    BODY_STREAM = 1, /* handed to the async handler as it arrives (request.stream()) */
    BODY_SPOOL = 2   /* a multipart form: files spooled to disk as they arrive, then the handler */
};
extern PyTypeObject CzStatic_Type;

typedef struct {
    PyObject_HEAD
    CzAllocatorObject *alloc;
    cz_router_t *router;
    PyObject *endpoints;      /* one endpoint list per router route: keeps them alive */
    PyObject *registered;     /* {(method, encoded pattern): route index} */
    cz_server_t *server;      /* while bound */
    PyThreadState *tstate;    /* the loop thread's, while it runs without the GIL */
    PyObject *json_encode;    /* str(obj) -> JSON text */
    PyObject *response_type;  /* catzilla.Response */
    PyObject *render_hook;    /* (value) -> Response, or raises TypeError */
    PyObject *error_hook;     /* (raw_request, exc) -> Response */
    PyObject *not_found_hook; /* (raw_request) -> value, or None */
    PyObject *submit;         /* (awaitable, pending) -> None */
    PyObject *cancel_all;     /* () -> None */
    PyObject *cancel;         /* (pending) -> None: cancel that one (or None) */
    PyObject *spawn;          /* (coroutine) -> None: run it, unawaited (or None) */
    PyObject *streaming_type; /* catzilla.StreamingResponse (or None) */
    PyObject *file_type;      /* catzilla.FileResponse (or None) */
    PyObject *logger_error;   /* (message, exc) -> None: a failure no client can be told of */
    PyObject *blocking_hook;  /* (route index) -> None: a route moved to the pool (or None) */
    PyObject *pump;           /* (async iterator, _Stream) -> None: run its pump task (or None) */
    PyObject *resolve;        /* (future) -> None: wake a parked pump, from the loop thread (or None) */
    PyObject *resolve_all;    /* (list of futures) -> None: wake them all with one hop (or None) */
    PyObject *ready;          /* WebSocket futures woken during this loop turn: handed to
                                 resolve_all at once when the loop thread lets the GIL go */
    PyObject *submit_all;     /* (list of (coroutine, _Pending)) -> None: start them with one hop (or None) */
    PyObject *to_submit;      /* coroutines dispatched during this loop turn: handed to submit_all at
                                 once when the loop thread lets the GIL go */
    int in_hooks;             /* the loop thread holds the GIL for its hooks */
    cz_http_buf_t scratch;    /* JSON bodies are written here, then copied into the output */
    int running;
    int driven;           /* started with start(): the caller's loop steps it */
    int kick_due;         /* driven: kick() was called since the last step */
    PyObject *kick;       /* driven: () -> None: step at the loop's next turn (or None) */
    int ws_deflate;       /* offer permessage-deflate to WebSocket clients that ask */
    uint64_t ws_max_size; /* a WebSocket message's bound (1009 beyond) */
    uint64_t ws_ping_ms;  /* keep-alive: a ping after this long (0: none) */
    uint64_t ws_pong_ms;  /* ... and the connection closes (1011) without its pong within this long */
    /* Sync handlers: each route's POLICY_*, and the call the loop thread is
     * in (watch_seq odd while in a call of route watch_route), which the
     * watcher thread looks at while the server runs. */
    _Atomic uint8_t *policy;
    uint64_t *max_body;                 /* per router route: its own body limit, 0: the app's */
    uint8_t *body_mode;                 /* per router route: BODY_* */
    cz_multipart_limits_t *form_limits; /* per router route: its form's files, fields, field size (0: defaults) */
    size_t npolicy;                     /* entries of each */
    atomic_uint_fast64_t watch_seq;
    atomic_uint watch_route;
    atomic_int watching;
    long loop_tid;
    uv_thread_t loop_thread; /* the thread in run(), or that start()ed a driven server */
    uv_thread_t watcher;
    /* accounting (set_accounting) */
    int metrics_on;
    int route_memory_on; /* each request's memory, per route (in `metrics`) */
    cz_metrics_t metrics;
    int access_on;
    cz_accesslog_t access;
    cz_http_buf_t access_buf; /* lines of this loop iteration */
    Py_ssize_t access_lines;  /* how many */
    PyObject *access_sink;    /* (str, lines) -> None: a batch of lines, '\n'-terminated */
} CzServerObject;

static void submit_flush(CzServerObject *self);
static int server_post(CzServerObject *self, cz_conn_t *c, void *item, int more);

/* A response body coming from an iterator; held in cz_conn_t.user.
 *
 * Sync: the loop thread takes one piece per loop iteration while the client
 * keeps up. Async: one pump task on the asyncio loop (runner.py) iterates
 * it and push()es pieces, posted to the loop thread without a hand-off per
 * piece back; it parks while the connection is blocked or STREAM_AHEAD bytes
 * are on their way, and its finish() ends the stream and lets the
 * connection go (a hold taken for the pump's whole life). */
typedef struct {
    PyObject_HEAD
    PyObject *iter;
    int is_async;
    /* async (every field under the GIL): */
    CzServerObject *server;
    cz_conn_t *conn;
    PyObject *waiter;     /* the future the pump awaits until it may go on, or NULL */
    Py_ssize_t ahead;     /* bytes pushed, not yet written */
    int blocked;          /* the connection's output is over its bound */
    int gone;             /* the connection let go of the stream: push() refuses */
    int finished;         /* finish() was called */
    PyObject *background; /* the response's background task, run once the connection is done with it, or NULL */
} CzStreamObject;

#define STREAM_AHEAD (256 * 1024) /* bytes a pump may have on their way to the loop thread */

typedef struct {
    PyObject_HEAD
    CzServerObject *server;
    cz_conn_t *conn;
    PyObject *raw;          /* RawRequest or NULL */
    PyObject *result, *exc; /* exactly one is set once completed */
    CzStreamObject *stream; /* a stream's step rather than a handler's result */
    int posted;
    /* A sync handler's call on the thread pool (with `raw`, made before): */
    cz_py_job_t job;
    PyObject *ep;  /* the route's endpoint list */
    int cancelled; /* the client left before the call started */
    int last;      /* a stream's finish() rather than one of its pieces */
    int body_next; /* a request body's piece was taken: read on */
    int ws_op;     /* a WebSocket's operation (WS_*), its target in `stream` */
    /* A multipart body being spooled before the handler runs (BODY_SPOOL),
     * with the route match to call it with once the body is complete. */
    cz_spool_t *spool;
    cz_match_t *match;
} CzPendingObject;

/* A request body arriving while its async handler runs (a route whose
 * handler reads the body only through its Request): the loop thread puts
 * each piece here (hook_body); take() hands it to the handler and asks the
 * loop thread to read on. One piece waits at most: meanwhile the client is
 * not read, so a handler that reads slowly slows the client down. Every
 * field is under the GIL. */
typedef struct {
    PyObject_HEAD
    CzServerObject *server;
    cz_conn_t *conn;  /* NULL once the request is answered or its client gone */
    PyObject *piece;  /* a piece not taken yet, or NULL */
    PyObject *waiter; /* the future a reader awaits, or NULL */
    int ended;        /* the whole body arrived */
    int status;       /* the body cannot complete: 413, 400, 408 (answered so), 499 (the client left) */
} CzBodyObject;

extern PyTypeObject CzBody_Type;

extern PyTypeObject CzPending_Type;
extern PyTypeObject CzStream_Type;

/* A _Pending for an answer to `c` that comes later. */
static CzPendingObject *pending_new(CzServerObject *self, cz_conn_t *c) {
    CzPendingObject *p = PyObject_New(CzPendingObject, &CzPending_Type);
    if (!p) return NULL;
    p->server = (CzServerObject *)Py_NewRef(self);
    p->conn = c;
    p->raw = p->result = p->exc = p->ep = NULL;
    p->stream = NULL;
    p->posted = p->cancelled = p->last = p->body_next = p->ws_op = 0;
    p->spool = NULL;
    p->match = NULL;
    memset(&p->job, 0, sizeof(p->job));
    return p;
}
static int stream_start(CzServerObject *self, cz_conn_t *c, const cz_http_response_t *head, PyObject *iterable,
                        PyObject *background);
static int file_respond(CzServerObject *self, cz_conn_t *c, const cz_http_response_t *head, PyObject *path);
static void log_failure(CzServerObject *self, const char *what);

static const cz_http_str_t CT_JSON = {"application/json", 16};
static const cz_http_str_t CT_BYTES = {"application/octet-stream", 24};

/* ---- turning Python values into responses (GIL held) -------------------------------- */

static int respond_plain(cz_conn_t *c, int status, cz_http_str_t ct, const char *body, size_t len) {
    cz_http_response_t r = {0};
    r.status = status;
    r.content_type = ct;
    r.body = (cz_http_str_t){body, len};
    return cz_conn_respond(c, &r);
}

/* Answer `b`'s JSON with `status`; the scratch buffer then shrinks back to what is kept between answers. */
static void respond_scratch(cz_conn_t *c, int status, cz_http_buf_t *b) {
    respond_plain(c, status, CT_JSON, b->data, b->len);
    cz_http_buf_reset(b, CZ_JSON_SCRATCH_KEEP); /* one scratch per server */
}

/* A response's `background` (Starlette's BackgroundTask: calling it makes
 * the coroutine), run on the asyncio loop, unawaited; None: nothing. */
static void spawn_background(CzServerObject *self, PyObject *background) {
    if (!background || background == Py_None) return;
    PyObject *co = self->spawn != Py_None ? PyObject_CallNoArgs(background) : NULL;
    PyObject *r = co ? PyObject_CallOneArg(self->spawn, co) : NULL;
    if (!r && PyErr_Occurred()) log_failure(self, "a response's background task could not be started");
    Py_XDECREF(r);
    Py_XDECREF(co);
}

/* Write a catzilla.Response: status_code, raw_headers [(str, str)], and
 * body (bytes), or for a StreamingResponse body_iterator; then its
 * background (once written, or for a stream once it is over). */
static int respond_response(CzServerObject *self, cz_conn_t *c, PyObject *resp) {
    PyObject *status = PyObject_GetAttrString(resp, "status_code");
    PyObject *headers = status ? PyObject_GetAttrString(resp, "raw_headers") : NULL;
    PyObject *body = headers ? PyObject_GetAttrString(resp, "body") : NULL;
    PyObject *background = body ? PyObject_GetAttrString(resp, "background") : NULL;
    PyObject *iterable = NULL, *path = NULL;
    int rc = -1;
    if (!background) goto done;
    long code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred()) goto done;
    if (!PyBytes_Check(body) && self->streaming_type != Py_None &&
        PyObject_TypeCheck(resp, (PyTypeObject *)self->streaming_type)) {
        iterable = PyObject_GetAttrString(resp, "body_iterator");
        if (!iterable) goto done;
    } else if (!PyBytes_Check(body) && self->file_type != Py_None &&
               PyObject_TypeCheck(resp, (PyTypeObject *)self->file_type)) {
        path = PyObject_GetAttrString(resp, "_fspath");
        if (!path) goto done;
        if (!PyBytes_Check(path)) {
            PyErr_Format(PyExc_TypeError, "FileResponse._fspath must be bytes, got %R", path);
            goto done;
        }
    }
    if (!PyList_Check(headers) || !(iterable || path || PyBytes_Check(body)) || code < 100 || code > 999) {
        PyErr_Format(PyExc_TypeError,
                     "invalid Response: status_code must be 100..999, body bytes, raw_headers a list "
                     "(got status_code=%R)",
                     status);
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    cz_http_header_t stack[16], *hs = stack;
    if (n > 16) {
        hs = PyMem_Malloc((size_t)n * sizeof(*hs));
        if (!hs) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        Py_ssize_t nl, vl;
        const char *name, *value;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !(name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &nl)) ||
            !(value = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 1), &vl))) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "invalid response header %R: expected (str, str)", pair);
            if (hs != stack) PyMem_Free(hs);
            goto done;
        }
        hs[i] = (cz_http_header_t){{name, (size_t)nl}, {value, (size_t)vl}};
    }
    cz_http_response_t r = {0};
    r.status = (int)code;
    r.headers = hs;
    r.num_headers = (size_t)n;
    if (iterable) {
        rc = stream_start(self, c, &r, iterable, background);
    } else if (path) {
        rc = file_respond(self, c, &r, path); /* the file is open: a background may remove it */
        if (rc == 0) spawn_background(self, background);
    } else {
        r.body = (cz_http_str_t){PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body)};
        cz_conn_respond(c, &r); /* a header with CR/LF becomes a 500 there */
        rc = 0;
        spawn_background(self, background);
    }
    if (hs != stack) PyMem_Free(hs);
done:
    Py_XDECREF(background);
    Py_XDECREF(iterable);
    Py_XDECREF(path);
    Py_XDECREF(status);
    Py_XDECREF(headers);
    Py_XDECREF(body);
    return rc;
}

/* Answer `value` (a handler's return value). -1 with an exception set when
 * it cannot be turned into a response. */
static int respond_value(CzServerObject *self, cz_conn_t *c, PyObject *value) {
    /* A str is a JSON string, as in FastAPI (PlainTextResponse sends text). */
    if (PyDict_CheckExact(value) || PyList_CheckExact(value) || value == Py_None || PyUnicode_CheckExact(value)) {
        cz_http_buf_t *b = &self->scratch;
        cz_json_result_t jr = cz_json_write(value, b);
        if (jr == CZ_JSON_ERROR) return -1;
        if (jr == CZ_JSON_OK) {
            respond_scratch(c, 200, b);
            return 0;
        }
        PyObject *text = PyObject_CallOneArg(self->json_encode, value);
        if (!text) return -1;
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
        if (utf8) respond_plain(c, 200, CT_JSON, utf8, (size_t)len);
        Py_DECREF(text);
        return utf8 ? 0 : -1;
    }
    if (PyBytes_Check(value)) {
        respond_plain(c, 200, CT_BYTES, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
        return 0;
    }
    if (PyObject_TypeCheck(value, (PyTypeObject *)self->response_type)) return respond_response(self, c, value);
    if (PyGen_CheckExact(value) || PyAsyncGen_CheckExact(value)) {
        cz_http_response_t r = {0}; /* a generator returned as it is: streamed, 200 */
        r.status = 200;
        return stream_start(self, c, &r, value, NULL);
    }
    PyObject *resp = PyObject_CallOneArg(self->render_hook, value);
    if (!resp) return -1;
    int rc = PyObject_TypeCheck(resp, (PyTypeObject *)self->response_type) ? respond_response(self, c, resp) : -1;
    if (rc < 0 && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "render hook did not return a Response");
    Py_DECREF(resp);
    return rc;
}

/* The raised exception as one object, traceback attached (3.10+). */
static PyObject *take_exception(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value ? value : Py_NewRef(Py_None);
}

/* `exc` becomes a response through the error hook. */
static void respond_exception(CzServerObject *self, cz_conn_t *c, PyObject *raw, PyObject *exc) {
    PyObject *own = NULL;
    if (!raw) {
        const cz_http_request_t *req = cz_conn_request(c);
        own = req ? cz_py_request_new(self->alloc, c, req, NULL) : NULL;
        if (!own) PyErr_Clear();
        raw = own ? own : Py_None;
    }
    PyObject *resp = PyObject_CallFunctionObjArgs(self->error_hook, raw, exc, NULL);
    if (!resp || respond_response(self, c, resp) < 0) {
        PyErr_WriteUnraisable(self->error_hook);
        cz_conn_respond_error(c, 500, NULL);
    }
    Py_XDECREF(resp);
    Py_XDECREF(own);
}

static void respond_raised(CzServerObject *self, cz_conn_t *c, PyObject *raw) {
    PyObject *exc = take_exception();
    respond_exception(self, c, raw, exc);
    Py_DECREF(exc);
}

/* ---- streamed bodies ---------------------------------------------------------------------- */

/* A failure the client cannot be told of (a stream cut after its head was
 * sent, a file that cannot be read): the current exception goes to the log. */
static void log_failure(CzServerObject *self, const char *what) {
    if (self->logger_error == Py_None) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    PyObject *exc = take_exception();
    PyObject *r = PyObject_CallFunction(self->logger_error, "sO", what, exc);
    if (!r) PyErr_WriteUnraisable(self->logger_error);
    Py_XDECREF(r);
    Py_DECREF(exc);
}

/* An async iterator no pump ran: aclose() it on the asyncio loop. */
static void stream_aclose(CzServerObject *self, CzStreamObject *st) {
    if (self->spawn == Py_None || !PyObject_HasAttrString(st->iter, "aclose")) return;
    PyObject *co = PyObject_CallMethod(st->iter, "aclose", NULL);
    PyObject *r = co ? PyObject_CallOneArg(self->spawn, co) : NULL;
    if (!r) PyErr_WriteUnraisable(self->spawn);
    Py_XDECREF(r);
    Py_XDECREF(co);
}

/* Let go of a stream's iterator: close() a generator now (its `finally`
 * runs); an async one's pump is cancelled (its source gets CancelledError in
 * its await, or aclose() at its yield). */
static void stream_release(CzServerObject *self, CzStreamObject *st) {
    if (st->is_async) {
        st->gone = 1;
        Py_CLEAR(st->waiter);
        if (self->cancel != Py_None) {
            submit_flush(self); /* its task is started before the cancel (one queue, in order) */
            PyObject *r = PyObject_CallOneArg(self->cancel, (PyObject *)st);
            if (!r) PyErr_WriteUnraisable(self->cancel);
            Py_XDECREF(r);
        }
    } else if (PyObject_HasAttrString(st->iter, "close")) {
        PyObject *r = PyObject_CallMethod(st->iter, "close", NULL);
        if (!r) log_failure(self, "closing a streamed response's iterator failed");
        Py_XDECREF(r);
    }
}

/* The stream's background task, once: its response is over. */
static void stream_background(CzServerObject *self, CzStreamObject *st) {
    PyObject *background = st->background;
    st->background = NULL;
    spawn_background(self, background);
    Py_XDECREF(background);
}

/* The connection is done with its stream (ended, failed, or gone). */
static void stream_detach(CzServerObject *self, cz_conn_t *c, int close_iter) {
    CzStreamObject *st = c->user;
    if (!st) return;
    c->user = NULL;
    if (close_iter) stream_release(self, st);
    st->gone = 1;
    stream_background(self, st);
    Py_DECREF(st);
}

/* One piece of the body: bytes, str (UTF-8) or a buffer. 0, or -1 with an exception. */
static int stream_write(cz_conn_t *c, PyObject *chunk) {
    Py_buffer view;
    int rc;
    if (PyUnicode_Check(chunk)) {
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(chunk, &n);
        if (!utf8) return -1;
        rc = cz_conn_stream_write(c, utf8, (size_t)n);
    } else if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) == 0) {
        rc = cz_conn_stream_write(c, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    } else {
        PyErr_Format(PyExc_TypeError, "a streamed response yielded %.100s; it must yield bytes or str",
                     Py_TYPE(chunk)->tp_name);
        return -1;
    }
    if (rc == CZ_HTTP_ENOMEM) PyErr_NoMemory();
    else if (rc != CZ_HTTP_OK) PyErr_Format(PyExc_ValueError, "a streamed response's piece was refused (%d)", rc);
    return rc == CZ_HTTP_OK ? 0 : -1;
}

/* The stream failed mid-body: the connection closes after what is queued,
 * so the client sees a cut body, never a whole-looking wrong one. */
static void stream_abort(CzServerObject *self, cz_conn_t *c, const char *what) {
    log_failure(self, what);
    cz_conn_close(c);
    stream_detach(self, c, 1);
}

static void stream_end(CzServerObject *self, cz_conn_t *c) {
    cz_conn_stream_end(c); /* a body short of its Content-Length closes the connection there */
    stream_detach(self, c, 0);
}

/* Sync: the next piece, while the client keeps up. */
static void stream_step(CzServerObject *self, cz_conn_t *c) {
    CzStreamObject *st = c->user;
    if (!st || st->is_async || cz_conn_state(c) != CZ_CONN_STREAM || !cz_conn_writable(c)) return;
    PyObject *chunk = PyIter_Next(st->iter);
    if (chunk) {
        if (stream_write(c, chunk) < 0) stream_abort(self, c, "a streamed response failed");
        /* Produce again at the next loop iteration while the client keeps
         * up; otherwise cz_conn calls hooks.drained when it has taken the
         * output. */
        else if (cz_conn_writable(c)) cz_server_wake(c);
        Py_DECREF(chunk);
    } else if (PyErr_Occurred()) {
        stream_abort(self, c, "a streamed response's iterator raised");
    } else {
        stream_end(self, c);
    }
}

/* Async: let a parked pump go on when the connection can take more. */
static void stream_unpark(CzServerObject *self, CzStreamObject *st) {
    if (!st->waiter || st->blocked || st->ahead >= STREAM_AHEAD || self->resolve == Py_None) return;
    /* Taken out first: the call may let the pump run (it releases the GIL)
     * and park on a new future, which must not be dropped here. */
    PyObject *waiter = st->waiter;
    st->waiter = NULL;
    PyObject *r = PyObject_CallOneArg(self->resolve, waiter);
    if (!r) PyErr_WriteUnraisable(self->resolve);
    Py_XDECREF(r);
    Py_DECREF(waiter);
}

static Py_ssize_t piece_len(PyObject *chunk) {
    if (PyBytes_Check(chunk)) return PyBytes_GET_SIZE(chunk);
    if (PyUnicode_Check(chunk)) return PyUnicode_GET_LENGTH(chunk);
    return 0;
}

/* Async: a piece (or the end) `p` the pump posted for `c`. */
static void stream_piece_done(CzServerObject *self, cz_conn_t *c, CzPendingObject *p) {
    CzStreamObject *st = p->stream;
    int attached = cz_conn_is_open(c) && cz_conn_state(c) == CZ_CONN_STREAM && c->user == (void *)st;
    if (p->last) {
        if (!attached) return;
        if (p->exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(p->exc), p->exc);
            stream_abort(self, c, "a streamed response's async iterator raised");
        } else {
            stream_end(self, c);
        }
        return;
    }
    st->ahead -= piece_len(p->result);
    if (!attached) return;
    if (stream_write(c, p->result) < 0) {
        stream_abort(self, c, "a streamed response failed");
        return;
    }
    if (!cz_conn_writable(c)) st->blocked = 1; /* hooks.drained unblocks it */
    stream_unpark(self, st);
}

/* Begin a streamed answer to `c` with `head`'s status and headers, its body
 * taken from `iterable` (sync or async). 0, or -1 with an exception. */
static int stream_start(CzServerObject *self, cz_conn_t *c, const cz_http_response_t *head, PyObject *iterable,
                        PyObject *background) {
    int is_async = PyObject_HasAttrString(iterable, "__anext__") || PyObject_HasAttrString(iterable, "__aiter__");
    PyObject *iter =
        is_async ? (PyObject_HasAttrString(iterable, "__anext__") ? Py_NewRef(iterable)
                                                                  : PyObject_CallMethod(iterable, "__aiter__", NULL))
                 : PyObject_GetIter(iterable);
    if (!iter) return -1;
    /* A Content-Length among the headers makes the body fixed-length. */
    int64_t length = -1;
    for (size_t i = 0; i < head->num_headers; i++) {
        const cz_http_header_t *h = &head->headers[i];
        if (!cz_http_ieq(h->name, "content-length", 14)) continue;
        length = 0;
        for (size_t k = 0; k < h->value.len && length >= 0; k++) {
            char d = h->value.base[k];
            length = d >= '0' && d <= '9' && length < INT64_MAX / 10 ? length * 10 + (d - '0') : -1;
        }
        if (length < 0 || h->value.len == 0) {
            Py_DECREF(iter);
            PyErr_Format(PyExc_ValueError, "invalid content-length %.40s for a streamed response",
                         h->value.len ? h->value.base : "''");
            return -1;
        }
    }
    CzStreamObject *st = PyObject_New(CzStreamObject, &CzStream_Type);
    if (!st) {
        Py_DECREF(iter);
        return -1;
    }
    st->iter = iter;
    st->is_async = is_async;
    st->server = (CzServerObject *)Py_NewRef(self);
    st->conn = c;
    st->waiter = NULL;
    st->ahead = 0;
    st->blocked = st->gone = st->finished = 0;
    st->background = background && background != Py_None ? Py_NewRef(background) : NULL;
    int rc = cz_conn_stream_begin(c, head, length);
    if (rc != 1) {
        /* HEAD, 1xx/204/304, or no head could be written: the body is not wanted */
        if (is_async) stream_aclose(self, st);
        else stream_release(self, st);
        stream_background(self, st);
        Py_DECREF(st);
        return 0;
    }
    c->user = st;
    if (!is_async) {
        stream_step(self, c);
        return 0;
    }
    cz_server_hold(c); /* until the pump's finish() has been posted */
    PyObject *r = self->pump != Py_None ? PyObject_CallFunctionObjArgs(self->pump, iter, (PyObject *)st, NULL) : NULL;
    if (!r) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "no asyncio runner for an async stream");
        stream_abort(self, c, "a streamed response could not be scheduled");
        server_post(self, c, NULL, 0); /* answer the hold: no pump will */
        return 0;
    }
    Py_DECREF(r);
    return 0;
}

static void Stream_dealloc(CzStreamObject *self) {
    Py_XDECREF(self->background);
    Py_XDECREF(self->waiter);
    Py_XDECREF(self->server);
    Py_XDECREF(self->iter);
    PyObject_Free(self);
}

/* ---- the pump's side (an asyncio task, GIL held) ---- */

/* Post `p` (a reference it keeps) for the stream's connection: a piece, or
 * (last) the end that answers the pump's hold. 0, or -1: not posted. */
static int stream_post(CzStreamObject *st, CzPendingObject *p, int last) {
    if (!st->server->server) return -1; /* the server is gone */
    int rc = server_post(st->server, st->conn, p, !last);
    if (rc == -1) PyErr_NoMemory();
    return rc;
}

static PyObject *Stream_push(CzStreamObject *self, PyObject *chunk) {
    if (self->gone || self->finished) Py_RETURN_FALSE;
    CzPendingObject *p = pending_new(self->server, self->conn);
    if (!p) return NULL;
    p->stream = (CzStreamObject *)Py_NewRef(self);
    p->result = Py_NewRef(chunk);
    p->posted = 1;
    Py_ssize_t n = piece_len(chunk);
    if (stream_post(self, p, 0) != 0) {
        Py_DECREF(p);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    self->ahead += n;
    Py_RETURN_TRUE;
}

static PyObject *Stream_writable(CzStreamObject *self, PyObject *unused) {
    (void)unused;
    /* gone: go on, to learn it from push() */
    return PyBool_FromLong(self->gone || (!self->blocked && self->ahead < STREAM_AHEAD));
}

/* park(future) -> True when the pump must await it (the loop thread resolves
 * it once the connection can take more), False when it may go on now. */
static PyObject *Stream_park(CzStreamObject *self, PyObject *fut) {
    if (self->gone || (!self->blocked && self->ahead < STREAM_AHEAD)) Py_RETURN_FALSE;
    Py_XSETREF(self->waiter, Py_NewRef(fut));
    Py_RETURN_TRUE;
}

/* finish(exc or None): the pump ended; the loop thread ends the body (or
 * cuts it, logging exc) and lets the connection go. Once. */
static PyObject *Stream_finish(CzStreamObject *self, PyObject *exc) {
    if (self->finished) Py_RETURN_NONE;
    self->finished = 1;
    CzPendingObject *p = pending_new(self->server, self->conn);
    if (!p) return NULL;
    p->stream = (CzStreamObject *)Py_NewRef(self);
    p->exc = exc != Py_None ? Py_NewRef(exc) : NULL;
    p->last = p->posted = 1;
    if (stream_post(self, p, 1) != 0) {
        Py_DECREF(p);
        if (PyErr_Occurred()) return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Stream_methods[] = {
    {"push", (PyCFunction)Stream_push, METH_O, "push(piece) -> False once the connection let go of the stream."},
    {"writable", (PyCFunction)Stream_writable, METH_NOARGS, "True while the pump may go on."},
    {"park", (PyCFunction)Stream_park, METH_O, "park(future) -> True: await it before pushing more."},
    {"finish", (PyCFunction)Stream_finish, METH_O, "finish(exc or None): the source ended (or raised exc)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CzStream_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core._Stream",
    .tp_basicsize = sizeof(CzStreamObject),
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A response body being streamed from an iterator.",
    .tp_methods = Stream_methods,
};

/* ---- request bodies read as they arrive ------------------------------------------------- */

static CzBodyObject *body_of(PyObject *raw) {
    PyObject *b = raw ? cz_py_request_stream(raw) : NULL;
    return b ? (CzBodyObject *)b : NULL;
}

/* Wake the reader awaiting the body (loop thread). */
static void body_wake(CzBodyObject *b) {
    PyObject *waiter = b->waiter;
    if (!waiter) return;
    b->waiter = NULL;
    if (b->server->resolve != Py_None) {
        PyObject *r = PyObject_CallOneArg(b->server->resolve, waiter);
        if (!r) PyErr_WriteUnraisable(b->server->resolve);
        Py_XDECREF(r);
    }
    Py_DECREF(waiter);
}

/* The request no longer reads from its connection; a body not complete
 * will not be (`status` says why). */
static void body_detach(CzBodyObject *b, int status) {
    if (!b) return;
    b->conn = NULL;
    if (!b->ended && !b->status) b->status = status;
    body_wake(b);
}

static void spool_body(CzServerObject *self, cz_conn_t *c, CzPendingObject *p, const char *data, size_t len,
                       int status);

static void hook_body(void *ctx, cz_conn_t *c, const char *data, size_t len, int status) {
    CzPendingObject *p = c->user;
    if (p && Py_IS_TYPE((PyObject *)p, &CzPending_Type) && p->spool) {
        spool_body(ctx, c, p, data, len, status);
        return;
    }
    CzBodyObject *b = p && Py_IS_TYPE((PyObject *)p, &CzPending_Type) ? body_of(p->raw) : NULL;
    if (!b || !b->conn) { /* nobody reads it: let it pass */
        if (data) cz_conn_body_next(c);
        return;
    }
    if (status) {
        body_detach(b, status);
    } else if (!data) {
        b->ended = 1;
    } else if (!(b->piece = PyBytes_FromStringAndSize(data, (Py_ssize_t)len))) {
        PyErr_Clear();
        body_detach(b, 500);
        cz_conn_respond_error(c, 500, NULL);
        return;
    }
    body_wake(b);
}

static void Body_dealloc(CzBodyObject *self) {
    Py_XDECREF(self->piece);
    Py_XDECREF(self->waiter);
    Py_XDECREF(self->server);
    PyObject_Free(self);
}

/* take() -> the next piece (bytes); b"" once the body is complete; None
 * when none has arrived yet (park() then); an int status when the body
 * cannot complete. Taking a piece lets the connection read on. */
static PyObject *Body_take(CzBodyObject *self, PyObject *unused) {
    (void)unused;
    if (self->piece) {
        PyObject *piece = self->piece;
        self->piece = NULL;
        cz_server_t *srv = self->server->server;
        CzPendingObject *p = self->conn && srv ? pending_new(self->server, self->conn) : NULL;
        if (p) {
            p->body_next = p->posted = 1;
            if (server_post(self->server, self->conn, p, 1) != 0) Py_DECREF(p);
        }
        if (PyErr_Occurred()) PyErr_Clear(); /* out of memory: the body timeout ends it */
        return piece;
    }
    if (self->status) return PyLong_FromLong(self->status);
    if (self->ended) return PyBytes_FromStringAndSize("", 0);
    if (!self->conn) return PyLong_FromLong(499);
    Py_RETURN_NONE;
}

/* park(future) -> True when the reader must await it (the loop thread
 * resolves it when a piece arrives), False when take() has something. */
static PyObject *Body_park(CzBodyObject *self, PyObject *fut) {
    if (self->piece || self->ended || self->status || !self->conn) Py_RETURN_FALSE;
    Py_XSETREF(self->waiter, Py_NewRef(fut));
    Py_RETURN_TRUE;
}

static PyMethodDef Body_methods[] = {
    {"take", (PyCFunction)Body_take, METH_NOARGS,
     "take() -> bytes (b'' at the end), None (nothing yet: park()), or int status (cut)."},
    {"park", (PyCFunction)Body_park, METH_O, "park(future) -> True: await it, then take()."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CzBody_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core._BodyStream",
    .tp_basicsize = sizeof(CzBodyObject),
    .tp_dealloc = (destructor)Body_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A request body arriving while its handler runs.",
    .tp_methods = Body_methods,
};

/* ---- WebSockets ---------------------------------------------------------------------------- */

/* The connection side of one WebSocket request (a route in MODE_WS). The
 * handler's coroutine (an asyncio task) calls accept/send/close, which are
 * posted to the loop thread in order (ws_op); messages read by the loop
 * thread (hook_upgraded) wait in `queue` for take(). Reading stops while
 * WS_QUEUE_BYTES or WS_QUEUE_MSGS are not taken; send() parks while
 * WS_AHEAD bytes are on their way or the connection's output is over its
 * bound. Every field is under the GIL. */
typedef struct {
    PyObject_HEAD
    CzServerObject *server;
    cz_conn_t *conn; /* NULL once the handler's answer is posted */
    cz_ws_t ws;      /* after accept */
    uint8_t accepted, compress, close_sent, paused;
    uint8_t ping_due;       /* a keep-alive ping is out, its pong not back */
    uint8_t ended;          /* no more messages: the peer closed, vanished, or broke the protocol */
    int close_code;         /* of `ended` */
    PyObject *close_reason; /* str */
    PyObject *queue;        /* messages not taken: str (text) or bytes */
    Py_ssize_t queued;      /* their bytes */
    PyObject *waiter;       /* a receiver's future */
    Py_ssize_t ahead;       /* bytes sent, not yet written to the connection */
    int blocked;            /* the connection's output is over its bound */
    PyObject *send_waiter;  /* a sender's future */
} CzWsObject;

extern PyTypeObject CzWs_Type;

#define WS_QUEUE_BYTES (1024 * 1024)
#define WS_QUEUE_MSGS  256
#define WS_AHEAD       (256 * 1024)
enum { WS_ACCEPT = 1, WS_SEND, WS_CLOSE, WS_RESUME, WS_BROADCAST };

static CzWsObject *ws_of(PyObject *raw) {
    PyObject *w = raw ? cz_py_request_websocket(raw) : NULL;
    return w ? (CzWsObject *)w : NULL;
}

/* Wakes a parked receiver or sender. On the loop thread the future joins
 * the turn's batch (server->ready), which hook_unlock hands to the asyncio
 * thread in one call_soon_threadsafe: a turn that read messages for many
 * connections wakes their handlers with one hop, not one each (the asyncio
 * thread could not run them before the GIL is let go anyway). */
static void ws_resolve(CzWsObject *w, PyObject **slot) {
    PyObject *fut = *slot;
    CzServerObject *srv = w->server;
    if (!fut) return;
    *slot = NULL;
    if (srv->in_hooks && srv->resolve_all != Py_None) {
        if (!srv->ready) srv->ready = PyList_New(0);
        if (srv->ready && PyList_Append(srv->ready, fut) == 0) {
            Py_DECREF(fut);
            return;
        }
        PyErr_Clear(); /* no memory for the batch: wake this one alone */
    }
    if (w->server->resolve != Py_None) {
        PyObject *r = PyObject_CallOneArg(w->server->resolve, fut);
        if (!r) PyErr_WriteUnraisable(w->server->resolve);
        Py_XDECREF(r);
    }
    Py_DECREF(fut);
}

/* No more messages will come: `code` and `reason` say why. */
static void ws_end(CzWsObject *w, int code, const char *reason, size_t len) {
    if (w->ended) return;
    w->ended = 1;
    w->close_code = code;
    Py_XSETREF(w->close_reason, PyUnicode_DecodeUTF8(reason ? reason : "", (Py_ssize_t)len, "replace"));
    if (!w->close_reason) PyErr_Clear();
    ws_resolve(w, &w->waiter);
    w->blocked = 0; /* a sender learns it at its next send */
    ws_resolve(w, &w->send_waiter);
}

static int ws_flush(CzWsObject *w, cz_conn_t *c) {
    cz_http_buf_t *out = cz_conn_out_buffer(c);
    return out ? cz_ws_flush_control(&w->ws, out) : CZ_WS_EINVAL;
}

/* The handshake of a request to a WebSocket route: 0 when it may be
 * accepted; otherwise it was answered 400 or 426, naming why. */
static int ws_check(CzServerObject *self, cz_conn_t *c, const cz_http_request_t *req) {
    cz_ws_policy_t policy = {0};
    cz_ws_handshake_t hs;
    policy.deflate = (uint8_t)self->ws_deflate;
    if (cz_ws_handshake_check(req, &policy, &hs) == 101) return 0;
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"detail\":\"%s\"}", hs.reason);
    cz_http_header_t h[2] = {{{"Sec-WebSocket-Version", 21}, {"13", 2}}, {{"Upgrade", 7}, {"websocket", 9}}};
    cz_http_response_t r = {0};
    r.status = hs.status;
    r.content_type = CT_JSON;
    r.body = (cz_http_str_t){body, n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0};
    if (hs.status == 426) {
        r.headers = h;
        r.num_headers = 2;
    }
    cz_conn_respond(c, &r);
    return -1;
}

/* accept(subprotocol, headers) on the loop thread: the 101, then frames. */
static void ws_accept(CzServerObject *self, cz_conn_t *c, CzWsObject *w, PyObject *args) {
    const cz_http_request_t *req = cz_conn_request(c);
    PyObject *sub = PyTuple_GET_ITEM(args, 0), *extra = PyTuple_GET_ITEM(args, 1);
    cz_ws_policy_t policy = {0};
    cz_ws_handshake_t hs;
    cz_http_str_t chosen = {NULL, 0};
    Py_ssize_t slen = 0;
    if (sub != Py_None && (chosen.base = PyUnicode_AsUTF8AndSize(sub, &slen))) chosen.len = (size_t)slen;
    policy.deflate = (uint8_t)self->ws_deflate;
    if (!req || cz_ws_handshake_check(req, &policy, &hs) != 101) {
        PyErr_Clear();
        cz_conn_respond_error(c, 400, NULL);
        return;
    }
    Py_ssize_t n = PyList_GET_SIZE(extra);
    cz_http_header_t stack[8], *h = n + 4 <= 8 ? stack : PyMem_Malloc((size_t)(n + 4) * sizeof(*h));
    if (!h) {
        cz_conn_respond_error(c, 500, NULL);
        return;
    }
    size_t k = 0;
    h[k++] = (cz_http_header_t){{"Upgrade", 7}, {"websocket", 9}};
    h[k++] = (cz_http_header_t){{"Sec-WebSocket-Accept", 20}, {hs.accept, strlen(hs.accept)}};
    if (chosen.len) h[k++] = (cz_http_header_t){{"Sec-WebSocket-Protocol", 22}, chosen};
    if (hs.extension[0])
        h[k++] = (cz_http_header_t){{"Sec-WebSocket-Extensions", 24}, {hs.extension, strlen(hs.extension)}};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(extra, i);
        Py_ssize_t nl, vl;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &nl);
        const char *value = name ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 1), &vl) : NULL;
        if (value) h[k++] = (cz_http_header_t){{name, (size_t)nl}, {value, (size_t)vl}};
        else PyErr_Clear();
    }
    cz_http_response_t r = {0};
    r.status = 101;
    r.headers = h;
    r.num_headers = k;
    int rc = cz_conn_upgrade(c, &r);
    if (h != stack) PyMem_Free(h);
    if (rc != CZ_HTTP_OK) {
        ws_end(w, 1006, "", 0);
        return;
    }
    cz_ws_limits_t limits;
    cz_ws_limits_default(&limits);
    limits.max_frame = limits.max_message = self->ws_max_size;
    cz_ws_init(&w->ws, self->alloc->alloc, &limits, &hs.deflate);
    w->accepted = 1;
    w->compress = hs.deflate.enabled;
    cz_conn_set_timer(c, self->ws_ping_ms);
}

/* Keep-alive and stop for an upgraded connection (loop thread). */
static void hook_upgraded_event(void *ctx, cz_conn_t *c, cz_conn_upgraded_event_t event) {
    CzServerObject *self = ctx;
    CzPendingObject *p = c->user;
    CzWsObject *w = p && Py_IS_TYPE((PyObject *)p, &CzPending_Type) ? ws_of(p->raw) : NULL;
    cz_http_buf_t *out = cz_conn_out_buffer(c);
    if (!w || !w->accepted || !out) {
        cz_conn_close(c);
        return;
    }
    if (event == CZ_CONN_UPGRADED_STOP || w->ping_due) {
        /* The server stops (1001, Going Away), or the peer did not answer a ping in time (1011). */
        int code = event == CZ_CONN_UPGRADED_STOP ? 1001 : 1011;
        const char *why = event == CZ_CONN_UPGRADED_STOP ? "server shutting down" : "keepalive ping timeout";
        if (!w->close_sent) {
            w->close_sent = 1;
            if (cz_ws_close(&w->ws, (unsigned)code, why, strlen(why)) == CZ_WS_OK) ws_flush(w, c);
        }
        ws_end(w, code, why, strlen(why));
        if (event != CZ_CONN_UPGRADED_STOP) cz_conn_close(c); /* a stop waits for the peer's close */
        return;
    }
    if (w->close_sent || cz_ws_write(&w->ws, out, CZ_WS_OP_PING, "", 0, 0) != CZ_WS_OK) return;
    w->ping_due = 1;
    cz_conn_set_timer(c, self->ws_pong_ms);
}

/* A message to send: its UTF-8 or bytes, and its length in str characters
 * or bytes (what send() counted in `ahead`). */
typedef struct {
    const char *data;
    Py_ssize_t len, chars;
    unsigned op;
} ws_message_t;

/* 0 (no exception) when `msg` is a str that cannot be UTF-8 (a lone surrogate). */
static int ws_message(PyObject *msg, ws_message_t *m) {
    if (PyUnicode_Check(msg)) {
        m->op = CZ_WS_OP_TEXT;
        m->chars = PyUnicode_GET_LENGTH(msg);
        m->data = PyUnicode_AsUTF8AndSize(msg, &m->len);
        if (!m->data) PyErr_Clear();
        return m->data != NULL;
    }
    m->op = CZ_WS_OP_BINARY;
    m->data = PyBytes_AS_STRING(msg);
    m->chars = m->len = PyBytes_GET_SIZE(msg);
    return 1;
}

/* Frame `m` into the output of `w`'s connection `c` (loop thread): 1 when
 * written, 0 when the connection takes no message now (not upgraded, not
 * accepted, closing); out of memory closes it with 1011. */
static int ws_write_message(CzWsObject *w, cz_conn_t *c, const ws_message_t *m) {
    cz_http_buf_t *out =
        cz_conn_state(c) == CZ_CONN_UPGRADED && w->accepted && !w->close_sent ? cz_conn_out_buffer(c) : NULL;
    if (!out) return 0;
    if (cz_ws_write(&w->ws, out, m->op, m->data, (size_t)m->len, w->compress) != CZ_WS_OK) {
        ws_end(w, 1011, "", 0); /* out of memory: say so and close */
        cz_ws_close(&w->ws, 1011, NULL, 0);
        ws_flush(w, c);
        cz_conn_close(c);
        return 1;
    }
    if (!cz_conn_writable(c)) w->blocked = 1;
    return 1;
}

/* One posted operation of a WebSocket (loop thread). */
static void ws_op(CzServerObject *self, cz_conn_t *c, CzPendingObject *p) {
    CzWsObject *w = (CzWsObject *)p->stream; /* the op's target (see ws_post) */
    cz_conn_state_t st = cz_conn_state(c);
    switch (p->ws_op) {
    case WS_ACCEPT:
        if (st == CZ_CONN_BUSY && !w->accepted) ws_accept(self, c, w, p->result);
        break;
    case WS_SEND: {
        ws_message_t m;
        int ok = ws_message(p->result, &m);
        w->ahead -= m.chars;
        if (ok) ws_write_message(w, c, &m);
        if (!w->blocked && w->ahead < WS_AHEAD) ws_resolve(w, &w->send_waiter);
        break;
    }
    case WS_BROADCAST: { /* (targets, message): framed into each target's output; written this turn */
        ws_message_t m;
        PyObject *targets = PyTuple_GET_ITEM(p->result, 0);
        if (!ws_message(PyTuple_GET_ITEM(p->result, 1), &m)) break;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(targets); i++) {
            CzWsObject *t = (CzWsObject *)PyList_GET_ITEM(targets, i);
            cz_conn_t *tc = t->conn;
            if (!tc || t->ended || !ws_write_message(t, tc, &m)) continue;
            if (tc != c) cz_server_wake(tc); /* `c` is written after this hook; the others at the loop's idle phase */
        }
        break;
    }
    case WS_CLOSE: {
        int code = (int)PyLong_AsLong(PyTuple_GET_ITEM(p->result, 0));
        Py_ssize_t rlen = 0;
        const char *reason = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(p->result, 1), &rlen);
        if (!reason) {
            PyErr_Clear();
            reason = "";
            rlen = 0;
        }
        if (st == CZ_CONN_BUSY && !w->accepted) { /* refused before the handshake: 403, as Starlette */
            cz_conn_respond_error(c, 403, NULL);
        } else if (st == CZ_CONN_UPGRADED && !w->close_sent) {
            w->close_sent = 1;
            if (cz_ws_close(&w->ws, (unsigned)code, reason, rlen > 123 ? 123 : (size_t)rlen) == CZ_WS_OK)
                ws_flush(w, c);
            if (w->ended) cz_conn_close(c); /* the peer's close came first: we are done */
        }
        ws_end(w, code, reason, (size_t)rlen);
        break;
    }
    case WS_RESUME:
        if (w->paused && st == CZ_CONN_UPGRADED && !w->ended) {
            w->paused = 0;
            cz_conn_pause_input(c, 0);
        }
        break;
    default: break;
    }
}

/* Bytes from an upgraded connection (NULL: the peer finished sending). */
static void hook_upgraded(void *ctx, cz_conn_t *c, const char *data, size_t len) {
    CzPendingObject *p = c->user;
    CzWsObject *w = p && Py_IS_TYPE((PyObject *)p, &CzPending_Type) ? ws_of(p->raw) : NULL;
    (void)ctx;
    if (!w || !w->accepted) {
        cz_conn_close(c);
        return;
    }
    if (!data) {
        ws_end(w, 1006, "", 0); /* vanished without a close frame */
        return;
    }
    /* The transport's read buffer: the payload is unmasked in place (cz_conn.h). */
    char *d = (char *)data;
    size_t left = len;
    while (left && !w->ended) {
        size_t used = 0;
        cz_ws_event_t ev = cz_ws_feed(&w->ws, d, left, &used);
        d += used;
        left -= used;
        if (ev == CZ_WS_NEED_MORE) break;
        cz_http_str_t pl = cz_ws_payload(&w->ws);
        PyObject *msg = NULL;
        switch (ev) {
        case CZ_WS_TEXT: msg = PyUnicode_DecodeUTF8(pl.base, (Py_ssize_t)pl.len, NULL); break;
        case CZ_WS_BINARY: msg = PyBytes_FromStringAndSize(pl.base, (Py_ssize_t)pl.len); break;
        case CZ_WS_PONG:
            if (w->ping_due) { /* alive: the next ping after the interval */
                w->ping_due = 0;
                cz_conn_set_timer(c, w->server->ws_ping_ms);
            }
            continue;
        case CZ_WS_PING: ws_flush(w, c); continue;
        default: /* CLOSE or ERROR: answer (echo or our close), then close TCP */
            ws_flush(w, c);
            ws_end(w, (int)cz_ws_close_code(&w->ws), ev == CZ_WS_CLOSE ? pl.base : "", ev == CZ_WS_CLOSE ? pl.len : 0);
            cz_conn_close(c);
            return;
        }
        if (!msg || PyList_Append(w->queue, msg) < 0) {
            PyErr_Clear();
            cz_ws_close(&w->ws, 1011, NULL, 0);
            ws_flush(w, c);
            ws_end(w, 1011, "", 0);
            cz_conn_close(c);
            Py_XDECREF(msg);
            return;
        }
        w->queued += PyUnicode_Check(msg) ? PyUnicode_GET_LENGTH(msg) : PyBytes_GET_SIZE(msg);
        Py_DECREF(msg);
    }
    if (PyList_GET_SIZE(w->queue)) ws_resolve(w, &w->waiter);
    if (!w->paused && (w->queued > WS_QUEUE_BYTES || PyList_GET_SIZE(w->queue) > WS_QUEUE_MSGS)) {
        w->paused = 1; /* the handler is behind: stop reading until it takes them */
        cz_conn_pause_input(c, 1);
    }
}

/* The handler's answer to a WebSocket request came back (loop thread). */
static void ws_done(CzServerObject *self, cz_conn_t *c, CzPendingObject *p, CzWsObject *w) {
    (void)self;
    if (cz_conn_state(c) != CZ_CONN_UPGRADED) return;
    if (!w->close_sent) { /* returned without closing: 1000, or 1011 when it raised */
        w->close_sent = 1;
        if (cz_ws_close(&w->ws, p->exc ? 1011 : 1000, NULL, 0) == CZ_WS_OK) ws_flush(w, c);
    }
    ws_end(w, 1000, "", 0);
    cz_conn_close(c);
}

/* ---- _WebSocket: the handler's side (an asyncio task, GIL held) ---- */

static int ws_post(CzWsObject *w, int op, PyObject *arg) {
    cz_server_t *srv = w->server->server;
    if (!w->conn || !srv) return 0; /* answered or gone: nothing to do */
    CzPendingObject *p = pending_new(w->server, w->conn);
    if (!p) return -1;
    p->ws_op = op;
    p->stream = (CzStreamObject *)Py_NewRef(w); /* the op's target */
    p->result = Py_NewRef(arg);
    p->posted = 1;
    int rc = server_post(w->server, w->conn, p, 1);
    if (rc != 0) Py_DECREF(p);
    if (rc == -1) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *Ws_accept(CzWsObject *self, PyObject *args) {
    PyObject *sub, *headers;
    if (!PyArg_ParseTuple(args, "OO!:accept", &sub, &PyList_Type, &headers)) return NULL;
    if (sub != Py_None && !PyUnicode_Check(sub)) return PyErr_Format(PyExc_TypeError, "subprotocol must be a str");
    PyObject *t = PyTuple_Pack(2, sub, headers);
    if (!t) return NULL;
    int rc = ws_post(self, WS_ACCEPT, t);
    Py_DECREF(t);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* send(str or bytes) -> 1 sent, 2 sent but over the bound (await park_send()
 * before sending more), 0 the connection is gone. Saying so here spares the
 * sender a future per message when nothing is to be waited for. */
static PyObject *Ws_send(CzWsObject *self, PyObject *data) {
    if (!PyUnicode_Check(data) && !PyBytes_Check(data))
        return PyErr_Format(PyExc_TypeError, "a WebSocket message is str or bytes, got %.80s", Py_TYPE(data)->tp_name);
    if (self->ended || !self->conn) return PyLong_FromLong(0);
    Py_ssize_t len = PyUnicode_Check(data) ? PyUnicode_GET_LENGTH(data) : PyBytes_GET_SIZE(data);
    if (ws_post(self, WS_SEND, data) < 0) return NULL;
    self->ahead += len;
    return PyLong_FromLong(self->blocked || self->ahead >= WS_AHEAD ? 2 : 1);
}

/* _core.ws_broadcast(targets, message) -> how many it was posted to: one
 * post for all of them (on the loop thread, the message is framed into each
 * connection's output, and each is written once in that turn), not one per
 * connection. Targets: _WebSocket objects of one server; those gone are
 * skipped. The sender is not parked: a target over its output bound has
 * `blocked` set, as by send(), and the server's bounds apply. */
static PyObject *ws_broadcast(PyObject *mod, PyObject *args) {
    PyObject *targets, *msg;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O:ws_broadcast", &PyList_Type, &targets, &msg)) return NULL;
    if (!PyUnicode_Check(msg) && !PyBytes_Check(msg))
        return PyErr_Format(PyExc_TypeError, "a WebSocket message is str or bytes, got %.80s", Py_TYPE(msg)->tp_name);
    PyObject *live = PyList_New(0);
    if (!live) return NULL;
    CzWsObject *first = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(targets); i++) {
        PyObject *o = PyList_GET_ITEM(targets, i);
        if (!Py_IS_TYPE(o, &CzWs_Type)) {
            Py_DECREF(live);
            return PyErr_Format(PyExc_TypeError, "ws_broadcast targets are _WebSocket, got %.80s", Py_TYPE(o)->tp_name);
        }
        CzWsObject *t = (CzWsObject *)o;
        if (t->ended || !t->conn || !t->server->server) continue;
        if (first && t->server != first->server) {
            Py_DECREF(live);
            return PyErr_Format(PyExc_ValueError, "ws_broadcast targets must belong to one server");
        }
        if (!first) first = t;
        if (PyList_Append(live, o) < 0) {
            Py_DECREF(live);
            return NULL;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(live);
    int rc = 0;
    if (first) {
        PyObject *t = PyTuple_Pack(2, live, msg);
        rc = t ? ws_post(first, WS_BROADCAST, t) : -1;
        Py_XDECREF(t);
    }
    Py_DECREF(live);
    return rc < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* park_send(future) -> True when the sender must await it before sending more. */
static PyObject *Ws_park_send(CzWsObject *self, PyObject *fut) {
    if (self->ended || !self->conn || (!self->blocked && self->ahead < WS_AHEAD)) Py_RETURN_FALSE;
    Py_XSETREF(self->send_waiter, Py_NewRef(fut));
    Py_RETURN_TRUE;
}

static PyObject *Ws_close(CzWsObject *self, PyObject *args) {
    int code;
    PyObject *reason;
    if (!PyArg_ParseTuple(args, "iU:close", &code, &reason)) return NULL;
    if (code != 0 && !cz_ws_close_code_valid((unsigned)code))
        return PyErr_Format(PyExc_ValueError, "invalid WebSocket close code %d (RFC 6455 7.4)", code);
    PyObject *t = Py_BuildValue("(iO)", code ? code : 1000, reason);
    if (!t) return NULL;
    int rc = ws_post(self, WS_CLOSE, t);
    Py_DECREF(t);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* take() -> str or bytes (a message), None (none yet: park()), or the close
 * code (int) once the connection ended and every message was taken. */
static PyObject *Ws_take(CzWsObject *self, PyObject *unused) {
    (void)unused;
    if (PyList_GET_SIZE(self->queue)) {
        PyObject *msg = Py_NewRef(PyList_GET_ITEM(self->queue, 0));
        if (PySequence_DelItem(self->queue, 0) < 0) {
            Py_DECREF(msg);
            return NULL;
        }
        self->queued -= PyUnicode_Check(msg) ? PyUnicode_GET_LENGTH(msg) : PyBytes_GET_SIZE(msg);
        if (self->paused && self->queued <= WS_QUEUE_BYTES / 2 && PyList_GET_SIZE(self->queue) <= WS_QUEUE_MSGS / 2 &&
            ws_post(self, WS_RESUME, Py_None) < 0) {
            Py_DECREF(msg);
            return NULL;
        }
        return msg;
    }
    if (self->ended) return PyLong_FromLong(self->close_code);
    if (!self->conn) return PyLong_FromLong(1006);
    Py_RETURN_NONE;
}

static PyObject *Ws_park(CzWsObject *self, PyObject *fut) {
    if (PyList_GET_SIZE(self->queue) || self->ended || !self->conn) Py_RETURN_FALSE;
    Py_XSETREF(self->waiter, Py_NewRef(fut));
    Py_RETURN_TRUE;
}

static PyObject *Ws_get_close_reason(CzWsObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->close_reason ? self->close_reason : Py_None);
}

static PyObject *Ws_get_ended(CzWsObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->ended || !self->conn);
}

static void Ws_dealloc(CzWsObject *self) {
    if (self->accepted) cz_ws_destroy(&self->ws);
    Py_XDECREF(self->queue);
    Py_XDECREF(self->waiter);
    Py_XDECREF(self->send_waiter);
    Py_XDECREF(self->close_reason);
    Py_XDECREF(self->server);
    PyObject_Free(self);
}

static PyMethodDef Ws_methods[] = {
    {"accept", (PyCFunction)Ws_accept, METH_VARARGS, "accept(subprotocol or None, [(name, value)]): answer 101."},
    {"send", (PyCFunction)Ws_send, METH_O, "send(str or bytes) -> 1 sent, 2 sent (await park_send), 0 gone."},
    {"park_send", (PyCFunction)Ws_park_send, METH_O, "park_send(future) -> True: await it before sending more."},
    {"close", (PyCFunction)Ws_close, METH_VARARGS, "close(code, reason): the close handshake (403 before accept)."},
    {"take", (PyCFunction)Ws_take, METH_NOARGS, "take() -> message, None (park()), or the close code."},
    {"park", (PyCFunction)Ws_park, METH_O, "park(future) -> True: await it, then take()."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Ws_getset[] = {
    {"close_reason", (getter)Ws_get_close_reason, NULL, "Why the connection ended (str), or None.", NULL},
    {"ended", (getter)Ws_get_ended, NULL, "True once no more messages will come.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject CzWs_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core._WebSocket",
    .tp_basicsize = sizeof(CzWsObject),
    .tp_dealloc = (destructor)Ws_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The connection side of a WebSocket.",
    .tp_methods = Ws_methods,
    .tp_getset = Ws_getset,
};

static CzWsObject *ws_new(CzServerObject *self, cz_conn_t *c) {
    CzWsObject *w = PyObject_New(CzWsObject, &CzWs_Type);
    if (!w) return NULL;
    w->server = (CzServerObject *)Py_NewRef(self);
    w->conn = c;
    w->accepted = w->compress = w->close_sent = w->paused = w->ended = w->ping_due = 0;
    w->close_code = 0;
    w->close_reason = w->waiter = w->send_waiter = NULL;
    w->queued = w->ahead = 0;
    w->blocked = 0;
    w->queue = PyList_New(0);
    if (!w->queue) Py_CLEAR(w);
    return w;
}

/* ---- files -------------------------------------------------------------------------------- */

/* Answer with the file at `path` (bytes): opened and checked here, then
 * answered by cz_files (validators, conditions, ranges) and sent with
 * sendfile by the server, never read into Python. 0 (answered). */
static int file_respond(CzServerObject *self, cz_conn_t *c, const cz_http_response_t *head, PyObject *path) {
    int fd = open(PyBytes_AS_STRING(path), O_RDONLY | O_CLOEXEC);
    struct stat st;
    int stated = fd >= 0 && fstat(fd, &st) == 0;
    if (!stated || !S_ISREG(st.st_mode)) {
        int missing = fd < 0 && (errno == ENOENT || errno == ENOTDIR);
        if (stated) errno = EISDIR; /* a directory or another kind of file */
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        if (fd >= 0) close(fd);
        log_failure(self, missing ? "FileResponse: the file does not exist" : "FileResponse: the file cannot be sent");
        cz_conn_respond_error(c, missing ? 404 : 500, NULL);
        return 0;
    }
    cz_files_respond(c, head, fd, &st);
    return 0;
}

/* ---- static directories: _core.StaticFiles ----------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    CzAllocatorObject *alloc;
    cz_static_t *st;
} CzStaticObject;

static PyObject *Static_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"allocator",     "directory",      "flags",           "types",
                             "cache_entries", "cache_max_file", "cache_max_bytes", NULL};
    PyObject *alloc, *types;
    const char *dir;
    unsigned int flags;
    Py_ssize_t entries = 0, max_file = 0, max_bytes = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!yIO|nnn:StaticFiles", kwlist, &CzAllocator_Type, &alloc, &dir, &flags,
                                     &types, &entries, &max_file, &max_bytes))
        return NULL;
    if (entries < 0 || max_file < 0 || max_bytes < 0) {
        PyErr_SetString(PyExc_ValueError, "cache sizes must be >= 0");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(types, "types must be a sequence of (extension, media type)");
    if (!seq) return NULL;
    CzStaticObject *self = (CzStaticObject *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(seq);
        return NULL;
    }
    self->alloc = (CzAllocatorObject *)Py_NewRef(alloc);
    char err[PATH_MAX + 64];
    self->st = cz_static_create(self->alloc->alloc, dir, flags, err, sizeof(err));
    if (!self->st) {
        PyErr_Format(PyExc_RuntimeError, "%s", err);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *ext, *mt;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ss:types", &ext, &mt)) goto fail;
        if (cz_static_add_type(self->st, ext, mt) != 0) {
            PyErr_Format(PyExc_ValueError, "invalid media type %R for extension %R",
                         PyTuple_GET_ITEM(PySequence_Fast_GET_ITEM(seq, i), 1),
                         PyTuple_GET_ITEM(PySequence_Fast_GET_ITEM(seq, i), 0));
            goto fail;
        }
    }
    Py_DECREF(seq);
    if (cz_static_set_cache(self->st, (size_t)entries, (size_t)max_file, (size_t)max_bytes) != 0) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
fail:
    Py_DECREF(seq);
    Py_DECREF(self);
    return NULL;
}

static void Static_dealloc(CzStaticObject *self) {
    cz_static_destroy(self->st);
    Py_XDECREF(self->alloc);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject CzStatic_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core.StaticFiles",
    .tp_basicsize = sizeof(CzStaticObject),
    .tp_dealloc = (destructor)Static_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "StaticFiles(allocator, directory: bytes, flags: int, types): a directory the C core serves.",
    .tp_new = Static_new,
};

/* ---- hooks (loop thread, GIL not held on entry) ------------------------------------------- */

/* A direct call's result (stolen): the plan's JSON answer, or finish, or as any value. */
static cz_conn_dispatch_t direct_answer(CzServerObject *self, cz_conn_t *c, PyObject *plan, PyObject *result) {
    int status;
    if (cz_py_direct_render(plan, result, &self->scratch, &status) > 0) {
        respond_scratch(c, status, &self->scratch);
    } else {
        PyObject *finish = cz_py_direct_finish(plan);
        if (!PyErr_Occurred() && finish) Py_SETREF(result, PyObject_CallOneArg(finish, result));
        if (PyErr_Occurred() || !result || respond_value(self, c, result) < 0) respond_raised(self, c, NULL);
    }
    Py_XDECREF(result);
    return CZ_CONN_DONE;
}

/* The RawRequest of `req`, with the stream its body arrives through (a
 * streamed body) or its spooled form `parts` (may be NULL). */
static PyObject *raw_of(CzServerObject *self, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m,
                        PyObject *parts) {
    PyObject *raw = cz_py_request_new(self->alloc, c, req, m);
    if (raw && parts) cz_py_request_set_form(raw, parts);
    if (raw && cz_conn_body_streaming(c) && !parts) {
        CzBodyObject *b = PyObject_New(CzBodyObject, &CzBody_Type);
        if (!b) {
            Py_DECREF(raw);
            return NULL;
        }
        b->server = (CzServerObject *)Py_NewRef(self);
        b->conn = c;
        b->piece = b->waiter = NULL;
        b->ended = b->status = 0;
        cz_py_request_set_stream(raw, (PyObject *)b);
        Py_DECREF(b);
    }
    return raw;
}

/* Call the endpoint `ep` for `req`: its result, or NULL with an exception.
 * *raw: the RawRequest made for the call, if any; *plan: the CallPlan that
 * renders the answer (a direct call it did not decline), else NULL. */
static PyObject *endpoint_call(CzServerObject *self, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m,
                               PyObject *ep, PyObject *parts, PyObject **raw, PyObject **plan) {
    long mode = PyLong_AsLong(PyList_GET_ITEM(ep, 0));
    PyObject *fn = PyList_GET_ITEM(ep, 1);
    *raw = *plan = NULL;
    if (mode == MODE_NO_ARGS) return PyObject_CallNoArgs(fn);
    if (mode == MODE_DIRECT && !parts) {
        int declined;
        PyObject *result = cz_py_direct_call(PyList_GET_ITEM(ep, 2), fn, req, m, &declined);
        if (!declined) {
            *plan = PyList_GET_ITEM(ep, 2);
            return result;
        }
    }
    if (mode == MODE_DIRECT) fn = PyList_GET_ITEM(ep, 3);
    *raw = raw_of(self, c, req, m, parts);
    if (*raw && mode == MODE_WS) {
        CzWsObject *w = ws_new(self, c);
        if (!w) return NULL;
        cz_py_request_set_websocket(*raw, (PyObject *)w);
        Py_DECREF(w);
    }
    return *raw ? PyObject_CallOneArg(fn, *raw) : NULL;
}

/* Hand a coroutine (stolen) answering `c` to the asyncio runner. */
static cz_conn_dispatch_t submit_coro(CzServerObject *self, cz_conn_t *c, PyObject *coro, PyObject *raw) {
    CzPendingObject *p = pending_new(self, c);
    if (p && self->in_hooks && self->submit_all != Py_None) {
        /* Joins the turn's batch (submit_flush): one hop to the asyncio
         * thread for all the coroutines a turn dispatched, not one each. */
        p->raw = Py_XNewRef(raw);
        if (!self->to_submit) self->to_submit = PyList_New(0);
        PyObject *pair = self->to_submit ? PyTuple_Pack(2, coro, (PyObject *)p) : NULL;
        if (pair && PyList_Append(self->to_submit, pair) == 0) {
            Py_DECREF(pair);
            Py_DECREF(coro);
            c->user = p;
            return CZ_CONN_PENDING;
        }
        Py_XDECREF(pair);
        PyErr_Clear(); /* no memory for the batch: this one alone */
    }
    if (p) {
        if (!p->raw) p->raw = Py_XNewRef(raw);
        PyObject *ok = PyObject_CallFunctionObjArgs(self->submit, coro, (PyObject *)p, NULL);
        Py_DECREF(coro);
        if (ok) {
            Py_DECREF(ok);
            c->user = p; /* the runner holds a reference, the connection this one */
            return CZ_CONN_PENDING;
        }
        Py_DECREF(p);
    } else {
        Py_DECREF(coro);
    }
    respond_raised(self, c, raw);
    return CZ_CONN_DONE;
}

/* Answer `c` with a handler's result (stolen): rendered by `plan`, handed
 * to the asyncio runner (a coroutine), or as any value. */
static cz_conn_dispatch_t answer_result(CzServerObject *self, cz_conn_t *c, PyObject *result, PyObject *raw,
                                        PyObject *plan) {
    if (result && PyCoro_CheckExact(result)) return submit_coro(self, c, result, raw);
    if (result && plan) return direct_answer(self, c, plan, result);
    if (!result || respond_value(self, c, result) < 0) respond_raised(self, c, raw);
    Py_XDECREF(result);
    return CZ_CONN_DONE;
}

static PyObject *pending_finish(CzPendingObject *self, PyObject *result, PyObject *exc);

/* A pool thread runs the call (GIL held), then posts the pending back. */
static void pending_run(PyObject *owner) {
    CzPendingObject *p = (CzPendingObject *)owner;
    PyObject *result = NULL, *exc = NULL;
    if (!p->cancelled && p->server->server) {
        /* Only the RawRequest made on the loop thread is read here: the
         * connection's buffers are the loop thread's (a stop's 503 resets
         * them while the call may still run). */
        long mode = PyLong_AsLong(PyList_GET_ITEM(p->ep, 0));
        PyObject *fn = PyList_GET_ITEM(p->ep, mode == MODE_DIRECT ? 3 : 1);
        result = mode == MODE_NO_ARGS ? PyObject_CallNoArgs(fn) : PyObject_CallOneArg(fn, p->raw);
        if (!result) exc = take_exception();
    }
    /* Nothing ran (the client left): post all the same, so the connection
     * is let go; hook_complete sees it is no longer BUSY. */
    PyObject *r = exc ? pending_finish(p, NULL, exc) : pending_finish(p, result ? result : Py_None, NULL);
    Py_XDECREF(r);
    Py_XDECREF(result);
    Py_XDECREF(exc);
}

/* Run the route's sync handler on the thread pool. */
static cz_conn_dispatch_t offload(CzServerObject *self, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m,
                                  PyObject *ep, PyObject *parts) {
    CzPendingObject *p = pending_new(self, c);
    if (!p) {
        respond_raised(self, c, NULL);
        return CZ_CONN_DONE;
    }
    p->ep = Py_NewRef(ep);
    if (PyLong_AsLong(PyList_GET_ITEM(ep, 0)) != MODE_NO_ARGS && !(p->raw = raw_of(self, c, req, m, parts))) {
        Py_DECREF(p);
        respond_raised(self, c, NULL);
        return CZ_CONN_DONE;
    }
    p->job.run = pending_run;
    p->job.owner = (PyObject *)p;
    if (cz_py_pool_submit(&p->job) < 0) {
        Py_DECREF(p);
        respond_raised(self, c, NULL);
        return CZ_CONN_DONE;
    }
    c->user = p; /* the pool holds a reference until it has run, the connection this one */
    return CZ_CONN_PENDING;
}

static uint64_t hook_route_max_body(void *ctx, uint32_t route) {
    CzServerObject *self = ctx;
    return route < self->npolicy ? self->max_body[route] : 0;
}

static int hook_route_streams_body(void *ctx, uint32_t route, const cz_http_request_t *req) {
    CzServerObject *self = ctx;
    uint8_t mode = route < self->npolicy ? self->body_mode[route] : BODY_WHOLE;
    if (mode != BODY_SPOOL) return mode == BODY_STREAM;
    /* only a multipart form is spooled; another body is read whole (and refused by the binder) */
    const cz_http_str_t *ct = cz_http_request_header(req, "content-type", 12);
    return ct && ct->len >= 19 && strncasecmp(ct->base, "multipart/form-data", 19) == 0;
}

static uint8_t route_policy(CzServerObject *self, uint32_t route) {
    return route < self->npolicy ? atomic_load_explicit(&self->policy[route], memory_order_relaxed) : POLICY_LOOP;
}

static cz_conn_dispatch_t spool_start(CzServerObject *self, cz_conn_t *c, const cz_match_t *m);

/* Call the route's handler for `req` (`parts`: its spooled form, or NULL). */
static cz_conn_dispatch_t dispatch(CzServerObject *self, cz_conn_t *c, const cz_http_request_t *req,
                                   const cz_match_t *m, PyObject *parts) {
    PyObject *raw = NULL, *plan = NULL, *result;
    if (!parts && m->status == CZ_MATCH_FOUND && m->route_index < self->npolicy &&
        self->body_mode[m->route_index] == BODY_SPOOL && cz_conn_body_streaming(c))
        return spool_start(self, c, m);
    if (m->status != CZ_MATCH_FOUND) {
        raw = cz_py_request_new(self->alloc, c, req, m);
        result = raw ? PyObject_CallOneArg(self->not_found_hook, raw) : NULL;
    } else {
        /* [mode, callable, ...]: a list the Python layer may rewire (middleware). */
        PyObject *ep = (PyObject *)m->handler;
        if (PyLong_AsLong(PyList_GET_ITEM(ep, 0)) == MODE_STATIC) {
            cz_http_str_t rest = {"", 0};
            if (m->nparams) rest = (cz_http_str_t){req->path.base + m->params[0].offset, m->params[0].len};
            cz_static_serve(((CzStaticObject *)PyList_GET_ITEM(ep, 1))->st, c, req, rest);
            return CZ_CONN_DONE;
        }
        /* [1, binder, [4, WebSocket binder]]: an HTTP route whose upgrade requests
         * go to a WebSocket endpoint (a mounted ASGI app answers both on one path). */
        if (PyList_GET_SIZE(ep) == 3 && PyLong_AsLong(PyList_GET_ITEM(ep, 0)) == MODE_REQUEST && cz_ws_is_upgrade(req))
            ep = PyList_GET_ITEM(ep, 2);
        if (PyLong_AsLong(PyList_GET_ITEM(ep, 0)) == MODE_WS && ws_check(self, c, req) < 0) return CZ_CONN_DONE;
        uint8_t policy = route_policy(self, m->route_index);
        if (policy == POLICY_SEEN) {
            atomic_store_explicit(&self->policy[m->route_index], POLICY_POOL, memory_order_relaxed);
            if (self->blocking_hook != Py_None) {
                PyObject *r = PyObject_CallFunction(self->blocking_hook, "I", (unsigned)m->route_index);
                if (!r) PyErr_WriteUnraisable(self->blocking_hook);
                Py_XDECREF(r);
            }
        }
        if (policy == POLICY_POOL || policy == POLICY_SEEN) return offload(self, c, req, m, ep, parts);
        if (policy == POLICY_AUTO) {
            atomic_store_explicit(&self->watch_route, m->route_index, memory_order_relaxed);
            atomic_fetch_add_explicit(&self->watch_seq, 1, memory_order_release); /* odd: in a call */
        }
        result = endpoint_call(self, c, req, m, ep, parts, &raw, &plan);
        if (policy == POLICY_AUTO) atomic_fetch_add_explicit(&self->watch_seq, 1, memory_order_release);
    }
    cz_conn_dispatch_t d = answer_result(self, c, result, raw, plan);
    Py_XDECREF(raw);
    return d;
}

/* ---- multipart forms spooled as they arrive (BODY_SPOOL) ---------------------------------- */

/* Hand the spooled request back to the loop thread (once): hook_complete
 * calls its handler, or only lets the connection go when it was answered
 * meanwhile (an error, a stop) or its client left. */
static void spool_post(CzServerObject *self, cz_conn_t *c, CzPendingObject *p) {
    if (p->posted || !self->server) return;
    p->posted = 1;
    Py_INCREF(p); /* released by hook_complete */
    if (server_post(self, c, p, 0) != 0) Py_DECREF(p);
}

/* The head of a multipart request to a route with file parameters: its body
 * is spooled (cz_spool) while it arrives, then the handler runs. */
static cz_conn_dispatch_t spool_start(CzServerObject *self, cz_conn_t *c, const cz_match_t *m) {
    const cz_http_request_t *req = cz_conn_request(c);
    const cz_http_str_t *ct = cz_http_request_header(req, "content-type", 12);
    CzPendingObject *p = pending_new(self, c);
    if (!p) {
        respond_raised(self, c, NULL);
        return CZ_CONN_DONE;
    }
    p->spool = cz_malloc(self->alloc->alloc, CZ_MEM_REQUEST, sizeof(cz_spool_t));
    p->match = p->spool ? cz_malloc(self->alloc->alloc, CZ_MEM_REQUEST, sizeof(cz_match_t)) : NULL;
    if (!p->match) {
        Py_DECREF(p);
        PyErr_NoMemory();
        respond_raised(self, c, NULL);
        return CZ_CONN_DONE;
    }
    *p->match = *m; /* its params are offsets into the request's path, kept while BUSY */
    const char *reason = NULL;
    const char *tmpdir = getenv("TMPDIR");
    int status = cz_spool_init(p->spool, self->alloc->alloc, ct ? ct->base : "", ct ? ct->len : 0,
                               m->route_index < self->npolicy ? &self->form_limits[m->route_index] : NULL, 0,
                               tmpdir && *tmpdir ? tmpdir : NULL, &reason);
    if (status) { /* cannot happen: the route spools only multipart/form-data with a boundary */
        Py_DECREF(p);
        cz_conn_respond_error(c, status, NULL);
        return CZ_CONN_DONE;
    }
    c->user = p;
    return CZ_CONN_PENDING;
}

/* A piece of a spooled body (taken at once: it goes to memory or a file). */
static void spool_body(CzServerObject *self, cz_conn_t *c, CzPendingObject *p, const char *data, size_t len,
                       int status) {
    if (!status && data) status = cz_spool_feed(p->spool, data, len);
    else if (!status) status = cz_spool_finish(p->spool);
    if (status && cz_conn_state(c) == CZ_CONN_BUSY) {
        /* as the whole-body path says it: {"detail": "multipart: ..."} (static reasons, plain ASCII) */
        const char *reason = cz_spool_reason(p->spool);
        char msg[192];
        int n = snprintf(msg, sizeof(msg), "{\"detail\":\"%s\"}", reason ? reason : "multipart: bad body");
        if (status == 500) { /* the disk or memory failed us, not the client: say it in the log */
            errno = p->spool->error ? p->spool->error : ENOMEM;
            PyErr_SetFromErrno(PyExc_OSError);
            log_failure(self, reason ? reason : "multipart: bad body");
        }
        if (!reason || n <= 0 || (size_t)n >= sizeof(msg) || respond_plain(c, status, CT_JSON, msg, (size_t)n) < 0)
            cz_conn_respond_error(c, status, NULL);
    }
    if (status || !data) spool_post(self, c, p);
    else cz_conn_body_next(c);
}

/* The spooled parts as [(name, filename or None, content_type, headers,
 * data)], data bytes, or (fd, size) for a file on disk (the fd is the
 * list's to close). */
static PyObject *spool_parts(cz_spool_t *s) {
    PyObject *parts = PyList_New(0);
    for (cz_spool_part_t *sp = (cz_spool_part_t *)cz_spool_parts(s); parts && sp; sp = sp->next) {
        PyObject *headers = PyList_New((Py_ssize_t)sp->num_headers);
        for (size_t i = 0; headers && i < sp->num_headers; i++) {
            const cz_multipart_header_t *h = &sp->headers[i];
            PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(h->name.base, (Py_ssize_t)h->name.len, NULL),
                                           PyUnicode_DecodeLatin1(h->value.base, (Py_ssize_t)h->value.len, NULL));
            if (!pair) Py_CLEAR(headers);
            else PyList_SET_ITEM(headers, (Py_ssize_t)i, pair);
        }
        PyObject *data = sp->fd >= 0 ? Py_BuildValue("(iK)", sp->fd, (unsigned long long)sp->len)
                                     : PyBytes_FromStringAndSize(sp->data, (Py_ssize_t)sp->len);
        if (data && sp->fd >= 0) cz_spool_take_fd(sp);
        PyObject *filename =
            sp->has_filename ? PyUnicode_DecodeUTF8(sp->filename.base, (Py_ssize_t)sp->filename.len, "surrogateescape")
                             : Py_NewRef(Py_None);
        PyObject *t =
            headers && data && filename
                ? Py_BuildValue(
                      "(NNNNN)", PyUnicode_DecodeUTF8(sp->name.base, (Py_ssize_t)sp->name.len, "surrogateescape"),
                      filename,
                      PyUnicode_DecodeUTF8(sp->content_type.base, (Py_ssize_t)sp->content_type.len, "surrogateescape"),
                      headers, data)
                : NULL;
        if (!t) {
            Py_XDECREF(headers);
            Py_XDECREF(data);
            Py_XDECREF(filename);
        }
        if (!t || PyList_Append(parts, t) < 0) Py_CLEAR(parts);
        Py_XDECREF(t);
    }
    return parts;
}

/* The body is spooled: call the handler with the parts (hook_complete).
 * 1 when the answer is left pending again. */
static int spool_complete(CzServerObject *self, cz_conn_t *c, CzPendingObject *p) {
    if (cz_conn_state(c) != CZ_CONN_BUSY || cz_spool_status(p->spool)) return 0;
    PyObject *parts = spool_parts(p->spool);
    if (!parts) {
        respond_raised(self, c, NULL);
        return 0;
    }
    cz_conn_dispatch_t d = dispatch(self, c, cz_conn_request(c), p->match, parts);
    Py_DECREF(parts);
    if (d != CZ_CONN_PENDING) return 0;
    cz_server_hold(c); /* the handler answers later */
    return 1;
}

/* ---- the watcher: is the loop thread asleep inside a sync handler? ------------------------- */

/* 1 when thread `tid` of this process is sleeping (S, D): waiting, not
 * computing. Linux only: elsewhere nothing is seen, routes move only when
 * marked threadpool=True. */
static int thread_sleeps(long tid) {
#ifndef __linux__
    (void)tid;
    return 0;
#else
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return rp && rp[1] == ' ' && (rp[2] == 'S' || rp[2] == 'D');
#endif
}

static void watch_loop(void *arg) {
    CzServerObject *self = arg;
    uint64_t last = 0, seen = 0;
    int asleep = 0, quiet = 0;
    while (atomic_load_explicit(&self->watching, memory_order_acquire)) {
        /* No sync call for a second: look ten times less often (a wake-up
         * every 2 ms costs a busy server's loop thread its CPU), until one comes. */
        uv_sleep(quiet >= WATCH_QUIET_TICKS ? 10 * WATCH_TICK_MS : WATCH_TICK_MS);
        uint64_t seq = atomic_load_explicit(&self->watch_seq, memory_order_acquire);
        quiet = seq == seen ? quiet + 1 : 0;
        seen = seq;
        if (!(seq & 1)) {
            asleep = 0;
            continue;
        }
        if (seq != last) asleep = 0; /* another call */
        last = seq;
        asleep = thread_sleeps(self->loop_tid) ? asleep + 1 : 0;
        uint32_t route = atomic_load_explicit(&self->watch_route, memory_order_relaxed);
        if (asleep >= 2 && route < self->npolicy) {
            uint8_t expect = POLICY_AUTO;
            atomic_compare_exchange_strong(&self->policy[route], &expect, POLICY_SEEN);
        }
    }
}

#define ACCESS_BATCH_MAX (4u * 1024u * 1024u) /* lines held for the sink at most; beyond, dropped */
#define ACCESS_FLUSH     (64u * 1024u)        /* a batch this big goes at the end of its loop iteration */

/* Hand the access log lines gathered so far to the sink (GIL held). */
static void access_flush(CzServerObject *self) {
    if (!self->access_buf.len) return;
    /* cz_accesslog writes ASCII only: the text is the bytes, copied once. */
    PyObject *batch = PyUnicode_New((Py_ssize_t)self->access_buf.len, 127);
    if (batch) memcpy(PyUnicode_DATA(batch), self->access_buf.data, self->access_buf.len);
    PyObject *lines = PyLong_FromSsize_t(self->access_lines);
    cz_http_buf_reset(&self->access_buf, 64u * 1024u);
    self->access_lines = 0;
    PyObject *r = batch && lines ? PyObject_CallFunctionObjArgs(self->access_sink, batch, lines, NULL) : NULL;
    if (!r) PyErr_WriteUnraisable(self->access_sink);
    Py_XDECREF(lines);
    Py_XDECREF(r);
    Py_XDECREF(batch);
}

static void hook_answered(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a) {
    CzServerObject *self = ctx;
    if (self->route_memory_on) cz_metrics_observe_memory(&self->metrics, a->route_index, a->mem);
    if (!self->metrics_on && !self->access_on) return; /* memory only: no clock read */
    uint64_t ns = uv_hrtime() - a->started_ns;
    if (self->metrics_on) cz_metrics_observe(&self->metrics, a->route_index, a->req->method_id, a->status, ns);
    if (self->access_on) {
        cz_accesslog_entry_t e = {
            .req = a->req,
            .client = cz_conn_peer_text(c),
            .status = a->status,
            .bytes = a->bytes_out,
            .duration_ns = ns,
            .when = time(NULL),
        };
        /* out of memory: the line is lost */
        if (cz_accesslog_append(&self->access, &self->access_buf, &e) == CZ_HTTP_OK) self->access_lines++;
    }
}

static int hook_flush_pending(void *ctx) {
    CzServerObject *self = ctx;
    return self->access_buf.len > 0;
}

static void hook_flush(void *ctx) {
    access_flush(ctx);
}

static void hook_lock(void *ctx) {
    CzServerObject *self = ctx;
    PyEval_RestoreThread(self->tstate);
    self->in_hooks = 1;
}

/* The coroutines the turn dispatched (submit_coro), to the asyncio loop at
 * once. Should that fail (its loop closed), one by one; what still fails is
 * answered 503 at the stop's deadline, as any request left pending. */
static void submit_flush(CzServerObject *self) {
    PyObject *batch = self->to_submit;
    if (!batch) return;
    self->to_submit = NULL;
    if (PyList_GET_SIZE(batch)) {
        PyObject *r = PyObject_CallOneArg(self->submit_all, batch);
        if (!r) {
            PyErr_WriteUnraisable(self->submit_all);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
                PyObject *pair = PyList_GET_ITEM(batch, i);
                PyObject *one = PyObject_CallObject(self->submit, pair);
                if (!one) PyErr_WriteUnraisable(self->submit);
                Py_XDECREF(one);
            }
        }
        Py_XDECREF(r);
    }
    Py_DECREF(batch);
}

/* The futures the turn woke (ws_resolve), to the asyncio loop at once. */
static void ready_flush(CzServerObject *self) {
    PyObject *batch = self->ready;
    if (!batch) return;
    self->ready = NULL;
    if (PyList_GET_SIZE(batch)) {
        PyObject *r = PyObject_CallOneArg(self->resolve_all, batch);
        if (!r) PyErr_WriteUnraisable(self->resolve_all);
        Py_XDECREF(r);
    }
    Py_DECREF(batch);
}

static void hook_unlock(void *ctx) {
    CzServerObject *self = ctx;
    if (self->access_on && self->access_buf.len >= ACCESS_FLUSH) access_flush(self);
    submit_flush(self);
    ready_flush(self);
    self->in_hooks = 0;
    self->tstate = PyEval_SaveThread();
}

static cz_conn_dispatch_t hook_request(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    return dispatch(ctx, c, req, m, NULL);
}

static int hook_complete(void *ctx, cz_conn_t *c, void *item) {
    CzServerObject *self = ctx;
    CzPendingObject *p = item;
    int again = 0;
    if (!p) return 0; /* a hold answered without a post (stream_step) */
    if (p->body_next || p->ws_op) {
        if (p->body_next) cz_conn_body_next(c); /* CZ_CONN_ESTATE when answered meanwhile: nothing to read */
        else ws_op(self, c, p);
        p->conn = NULL;
        Py_DECREF(p);
        return 0;
    }
    if (c->user == (void *)p) {
        c->user = NULL;
        Py_DECREF(p);
    }
    CzWsObject *w = p->stream ? NULL : ws_of(p->raw);
    if (w && cz_conn_state(c) == CZ_CONN_UPGRADED) {
        ws_done(self, c, p, w);
    } else if (p->spool) {
        again = spool_complete(self, c, p);
    } else if (p->stream) {
        stream_piece_done(self, c, p);
    } else if (cz_conn_state(c) == CZ_CONN_BUSY) { /* not gone, nor answered 503 by a stop */
        if (p->exc) {
            respond_exception(self, c, p->raw, p->exc);
        } else if (p->ep) { /* a pool call's result: rendered here, on the loop thread */
            if (answer_result(self, c, Py_NewRef(p->result), p->raw, NULL) == CZ_CONN_PENDING) {
                cz_server_hold(c); /* a coroutine (async middleware): the runner answers */
                again = 1;
            }
        } else if (respond_value(self, c, p->result) < 0) {
            respond_raised(self, c, p->raw);
        }
    }
    p->conn = NULL;
    Py_DECREF(p); /* the reference taken when it was posted */
    return again;
}

static void hook_drained(void *ctx, cz_conn_t *c) {
    CzPendingObject *p = c->user;
    CzWsObject *w = p && Py_IS_TYPE((PyObject *)p, &CzPending_Type) ? ws_of(p->raw) : NULL;
    if (w) {
        w->blocked = 0;
        if (w->ahead < WS_AHEAD) ws_resolve(w, &w->send_waiter);
        return;
    }
    CzStreamObject *st = c->user;
    if (st && Py_IS_TYPE((PyObject *)st, &CzStream_Type) && st->is_async) {
        st->blocked = 0;
        stream_unpark(ctx, st);
        return;
    }
    stream_step(ctx, c);
}

/* The client left (or the server closes): stop what works for it. */
static void hook_closed(void *ctx, cz_conn_t *c) {
    CzServerObject *self = ctx;
    if (Py_IS_TYPE((PyObject *)c->user, &CzPending_Type)) {
        CzPendingObject *p = c->user;
        c->user = NULL;
        body_detach(body_of(p->raw), 499);
        if (p->spool) spool_post(self, c, p); /* lets the connection go */
        CzWsObject *w = ws_of(p->raw);
        if (w && w->accepted) { /* the handler learns it at its next receive or send */
            ws_end(w, 1006, "", 0);
            Py_DECREF(p);
            return;
        }
        p->cancelled = 1; /* a pool call not started yet is skipped */
        if (self->cancel != Py_None) {
            submit_flush(self); /* its task is started before the cancel (one queue, in order) */
            PyObject *r = PyObject_CallOneArg(self->cancel, (PyObject *)p);
            if (!r) PyErr_WriteUnraisable(self->cancel);
            Py_XDECREF(r);
        }
        Py_DECREF(p);
        return;
    }
    stream_detach(self, c, 1);
}

static void hook_expired(void *ctx) {
    CzServerObject *self = ctx;
    PyObject *r = PyObject_CallNoArgs(self->cancel_all);
    if (!r) PyErr_WriteUnraisable(self->cancel_all);
    Py_XDECREF(r);
}

/* Post a completion for `c` (more: one that does not answer its hold). From
 * the thread that steps a driven server, with no wake-up: its loop is asked
 * for a step at its next turn (kick), once per step. GIL held. */
static int server_post(CzServerObject *self, cz_conn_t *c, void *item, int more) {
    uv_thread_t me = uv_thread_self();
    if (!self->driven || !uv_thread_equal(&me, &self->loop_thread))
        return more ? cz_server_post_more(self->server, c, item) : cz_server_post(self->server, c, item);
    int rc = cz_server_post_quiet(self->server, c, item, more);
    if (rc == 0 && !self->kick_due) {
        self->kick_due = 1;
        PyObject *r = PyObject_CallNoArgs(self->kick);
        if (!r) PyErr_WriteUnraisable(self->kick); /* then the next sweep's step runs it */
        Py_XDECREF(r);
    }
    return rc;
}

/* ---- _Pending ---------------------------------------------------------------------------------- */

static PyObject *pending_finish(CzPendingObject *self, PyObject *result, PyObject *exc) {
    if (self->posted || !self->conn) {
        PyErr_SetString(PyExc_RuntimeError, "this request was already answered");
        return NULL;
    }
    self->result = Py_XNewRef(result);
    self->exc = Py_XNewRef(exc);
    self->posted = 1;
    /* Posts from this thread run in order: no body piece is asked for
     * once the answer (which lets the connection go) is on its way. */
    CzBodyObject *b = body_of(self->raw);
    if (b) b->conn = NULL;
    CzWsObject *w = ws_of(self->raw);
    if (w) w->conn = NULL;
    if (!self->server->server) Py_RETURN_NONE; /* the server is gone: nobody to answer */
    Py_INCREF(self);                           /* released by hook_complete */
    int rc = server_post(self->server, self->conn, self, 0);
    if (rc != 0) {
        Py_DECREF(self);
        if (rc == -1) return PyErr_NoMemory();
        /* -2: the server finished after its stop's deadline: nobody to answer */
    }
    Py_RETURN_NONE;
}

static PyObject *Pending_done(CzPendingObject *self, PyObject *result) {
    return pending_finish(self, result, NULL);
}

static PyObject *Pending_fail(CzPendingObject *self, PyObject *exc) {
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "fail() takes an exception instance, got %R", exc);
        return NULL;
    }
    return pending_finish(self, NULL, exc);
}

static void Pending_dealloc(CzPendingObject *self) {
    if (self->spool) {
        cz_spool_destroy(self->spool);
        cz_free(self->server->alloc->alloc, CZ_MEM_REQUEST, self->spool);
    }
    if (self->match) cz_free(self->server->alloc->alloc, CZ_MEM_REQUEST, self->match);
    Py_XDECREF(self->ep);
    Py_XDECREF(self->stream);
    Py_XDECREF(self->server);
    Py_XDECREF(self->raw);
    Py_XDECREF(self->result);
    Py_XDECREF(self->exc);
    PyObject_Free(self);
}

static PyMethodDef Pending_methods[] = {
    {"done", (PyCFunction)Pending_done, METH_O, "Answer the request with a handler's result."},
    {"fail", (PyCFunction)Pending_fail, METH_O, "Answer the request with a handler's exception."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CzPending_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core._Pending",
    .tp_basicsize = sizeof(CzPendingObject),
    .tp_dealloc = (destructor)Pending_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A request waiting for its async handler; answer it once with done() or fail().",
    .tp_methods = Pending_methods,
};

/* ---- Server ----------------------------------------------------------------------------------------- */

static PyObject *Server_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"allocator", NULL};
    PyObject *alloc;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!:Server", kwlist, &CzAllocator_Type, &alloc)) return NULL;
    CzServerObject *self = (CzServerObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->alloc = (CzAllocatorObject *)Py_NewRef(alloc);
    cz_http_buf_init(&self->scratch, self->alloc->alloc, 0);
    self->router = cz_router_create(self->alloc->alloc);
    self->endpoints = PyList_New(0);
    self->registered = PyDict_New();
    self->blocking_hook = Py_NewRef(Py_None);
    self->pump = Py_NewRef(Py_None);
    self->resolve = Py_NewRef(Py_None);
    self->resolve_all = Py_NewRef(Py_None);
    self->submit_all = Py_NewRef(Py_None);
    self->access_sink = Py_NewRef(Py_None);
    cz_metrics_init(&self->metrics, self->alloc->alloc);
    cz_accesslog_init(&self->access, CZ_ACCESSLOG_COMMON);
    cz_http_buf_init(&self->access_buf, self->alloc->alloc, ACCESS_BATCH_MAX);
    if (!self->router || !self->endpoints || !self->registered) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Server_dealloc(CzServerObject *self) {
    if (self->server) cz_server_destroy(self->server);
    if (self->router) cz_router_destroy(self->router);
    if (self->alloc) cz_http_buf_free(&self->scratch);
    if (self->alloc) cz_free(self->alloc->alloc, CZ_MEM_GENERAL, (void *)self->policy);
    if (self->alloc) cz_free(self->alloc->alloc, CZ_MEM_GENERAL, self->max_body);
    if (self->alloc) cz_free(self->alloc->alloc, CZ_MEM_GENERAL, self->body_mode);
    if (self->alloc) cz_free(self->alloc->alloc, CZ_MEM_GENERAL, self->form_limits);
    if (self->alloc) cz_metrics_destroy(&self->metrics);
    if (self->alloc) cz_http_buf_free(&self->access_buf);
    Py_XDECREF(self->access_sink);
    Py_XDECREF(self->blocking_hook);
    Py_XDECREF(self->pump);
    Py_XDECREF(self->resolve);
    Py_XDECREF(self->resolve_all);
    Py_XDECREF(self->ready);
    Py_XDECREF(self->submit_all);
    Py_XDECREF(self->kick);
    Py_XDECREF(self->to_submit);
    Py_XDECREF(self->endpoints);
    Py_XDECREF(self->registered);
    Py_XDECREF(self->json_encode);
    Py_XDECREF(self->response_type);
    Py_XDECREF(self->render_hook);
    Py_XDECREF(self->error_hook);
    Py_XDECREF(self->not_found_hook);
    Py_XDECREF(self->submit);
    Py_XDECREF(self->cancel_all);
    Py_XDECREF(self->cancel);
    Py_XDECREF(self->spawn);
    Py_XDECREF(self->streaming_type);
    Py_XDECREF(self->file_type);
    Py_XDECREF(self->logger_error);
    Py_XDECREF(self->alloc);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An endpoint is a list [mode, callable] or [2, callable, CallPlan, binder];
 * checked here once, read per request. */
static int valid_endpoint(PyObject *ep) {
    if (!PyList_CheckExact(ep) || PyList_GET_SIZE(ep) < 2 || !PyLong_CheckExact(PyList_GET_ITEM(ep, 0)) ||
        !(PyCallable_Check(PyList_GET_ITEM(ep, 1)) || PyObject_TypeCheck(PyList_GET_ITEM(ep, 1), &CzStatic_Type))) {
        PyErr_Format(PyExc_TypeError, "endpoint must be a list [mode, callable, ...], got %R", ep);
        return 0;
    }
    long mode = PyLong_AsLong(PyList_GET_ITEM(ep, 0));
    Py_ssize_t n = PyList_GET_SIZE(ep);
    int ok = mode == MODE_DIRECT   ? n == 4 && PyObject_TypeCheck(PyList_GET_ITEM(ep, 2), &CzCallPlan_Type) &&
                                         PyCallable_Check(PyList_GET_ITEM(ep, 3))
             : mode == MODE_STATIC ? n == 2 && PyObject_TypeCheck(PyList_GET_ITEM(ep, 1), &CzStatic_Type)
                                   : (mode == MODE_NO_ARGS || mode == MODE_REQUEST || mode == MODE_WS) && n == 2;
    if (mode == MODE_REQUEST && n == 3) { /* and a WebSocket endpoint for upgrade requests */
        PyObject *ws = PyList_GET_ITEM(ep, 2);
        ok = PyList_CheckExact(ws) && PyList_GET_SIZE(ws) == 2 && PyLong_CheckExact(PyList_GET_ITEM(ws, 0)) &&
             PyLong_AsLong(PyList_GET_ITEM(ws, 0)) == MODE_WS && PyCallable_Check(PyList_GET_ITEM(ws, 1));
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError,
                     "endpoint must be [0, handler], [1, binder], [2, handler, CallPlan, binder], "
                     "[3, StaticFiles], [4, WebSocket binder] or [1, binder, [4, WebSocket binder]], got %R",
                     ep);
        return 0;
    }
    return 1;
}

/* The pattern as clients send its path: bytes >= 0x80 and spaces outside
 * {parameters} are percent-encoded (UTF-8, uppercase hex), so "/caf\xc3\xa9"
 * routes "/caf%C3%A9". The router matches raw paths. */
static PyObject *encode_pattern(PyObject *pattern) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(pattern, &n);
    if (!p) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 3);
    if (!out) return NULL;
    char *o = PyBytes_AS_STRING(out);
    static const char hex[] = "0123456789ABCDEF";
    int in_param = 0;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '{') in_param = 1;
        else if (c == '}') in_param = 0;
        if (!in_param && (c >= 0x80 || c == ' ')) {
            o[k++] = '%';
            o[k++] = hex[c >> 4];
            o[k++] = hex[c & 15];
        } else {
            o[k++] = (char)c;
        }
    }
    if (_PyBytes_Resize(&out, k) < 0) return NULL;
    return out;
}

/* Room for the policy of routes up to `n` (new ones: `policy`). */
static int grow_policy(CzServerObject *self, size_t n, uint8_t policy) {
    if (n <= self->npolicy) return 0;
    _Atomic uint8_t *p = cz_realloc(self->alloc->alloc, CZ_MEM_GENERAL, (void *)self->policy, n);
    if (p) self->policy = p;
    uint64_t *b = p ? cz_realloc(self->alloc->alloc, CZ_MEM_GENERAL, self->max_body, n * sizeof(uint64_t)) : NULL;
    if (b) self->max_body = b;
    uint8_t *st = b ? cz_realloc(self->alloc->alloc, CZ_MEM_GENERAL, self->body_mode, n) : NULL;
    if (st) self->body_mode = st;
    cz_multipart_limits_t *fl =
        st ? cz_realloc(self->alloc->alloc, CZ_MEM_GENERAL, self->form_limits, n * sizeof(*fl)) : NULL;
    if (fl) self->form_limits = fl;
    if (!p || !b || !st || !fl) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = self->npolicy; i < n; i++) {
        atomic_init(&p[i], policy);
        b[i] = 0;
        st[i] = 0;
        memset(&fl[i], 0, sizeof(fl[i]));
    }
    self->npolicy = n;
    return 0;
}

/* add_route(methods, pattern, endpoint, policy=0, max_body=0, body_mode=0, form=(0, 0, 0)): every
 * method or none. `form`: a spooled form's max files, fields and field size (0: the parser's defaults). */
static PyObject *Server_add_route(CzServerObject *self, PyObject *args) {
    PyObject *methods_arg, *pattern, *ep;
    int policy = POLICY_AUTO, body_mode = 0;
    unsigned long long max_body = 0;
    Py_ssize_t form[3] = {0, 0, 0};
    if (!PyArg_ParseTuple(args, "OUO|iKi(nnn):add_route", &methods_arg, &pattern, &ep, &policy, &max_body, &body_mode,
                          &form[0], &form[1], &form[2]))
        return NULL;
    if (form[0] < 0 || form[1] < 0 || form[2] < 0) {
        PyErr_Format(PyExc_ValueError, "form limits must be >= 0, got (%zd, %zd, %zd)", form[0], form[1], form[2]);
        return NULL;
    }
    if (body_mode < BODY_WHOLE || body_mode > BODY_SPOOL) {
        PyErr_Format(PyExc_ValueError, "body_mode must be 0 (whole), 1 (stream) or 2 (spool), got %d", body_mode);
        return NULL;
    }
    if (!valid_endpoint(ep)) return NULL;
    if (policy != POLICY_AUTO && policy != POLICY_POOL && policy != POLICY_LOOP) {
        PyErr_Format(PyExc_ValueError, "policy must be 0 (auto), 1 (thread pool) or 2 (loop), got %d", policy);
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "routes cannot be added while the server runs");
        return NULL;
    }
    PyObject *methods = PyUnicode_Check(methods_arg) ? PyTuple_Pack(1, methods_arg) : PySequence_Tuple(methods_arg);
    PyObject *encoded = methods ? encode_pattern(pattern) : NULL;
    PyObject *keys = encoded ? PyList_New(0) : NULL, *indexes = keys ? PyList_New(0) : NULL;
    if (!indexes) goto fail;
    /* Check everything that can fail for one method but not another before
     * touching the router: the router cannot take a route back. */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        PyObject *m = PyTuple_GET_ITEM(methods, i);
        Py_ssize_t mlen;
        const char *ms = PyUnicode_Check(m) ? PyUnicode_AsUTF8AndSize(m, &mlen) : NULL;
        if (!ms || !cz_http_is_token((cz_http_str_t){ms, (size_t)mlen}) || mlen > (Py_ssize_t)CZ_ROUTER_METHOD_MAX) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "invalid method %R for route %R: methods are HTTP tokens", m, pattern);
            goto fail;
        }
        PyObject *key = PyTuple_Pack(2, m, encoded);
        PyObject *existing = key ? PyDict_GetItemWithError(self->registered, key) : NULL;
        int seen = existing ? 1 : PyErr_Occurred() ? -1 : PySequence_Contains(keys, key);
        if (seen != 0) {
            if (existing)
                PyErr_Format(PyExc_ValueError, "duplicate route for %U \"%U\": already registered as route #%S", m,
                             pattern, existing);
            else if (seen > 0)
                PyErr_Format(PyExc_ValueError, "duplicate route for %U \"%U\": the method is given twice", m, pattern);
            Py_XDECREF(key);
            goto fail;
        }
        int rc = PyList_Append(keys, key);
        Py_DECREF(key);
        if (rc < 0) goto fail;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(methods); i++) {
        Py_ssize_t mlen;
        const char *ms = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(methods, i), &mlen);
        char err[512];
        uint32_t index;
        int rc = cz_router_add(self->router, ms, (size_t)mlen, PyBytes_AS_STRING(encoded),
                               (size_t)PyBytes_GET_SIZE(encoded), ep, &index, err, sizeof(err));
        if (rc != CZ_ROUTER_OK) {
            /* Syntax and conflicts are the pattern's and fail on the first
             * method; only memory can run out later. */
            PyErr_Format(rc == CZ_ROUTER_ENOMEM ? PyExc_MemoryError : PyExc_ValueError, "%s", err);
            goto fail;
        }
        if (grow_policy(self, (size_t)index + 1u, POLICY_LOOP) < 0) goto fail;
        atomic_store(&self->policy[index], (uint8_t)policy);
        self->max_body[index] = max_body;
        self->body_mode[index] = (uint8_t)body_mode;
        self->form_limits[index].max_files = (size_t)form[0];
        self->form_limits[index].max_fields = (size_t)form[1];
        self->form_limits[index].max_field_size = (size_t)form[2];
        PyObject *ix = PyLong_FromUnsignedLong(index);
        if (!ix || PyList_Append(indexes, ix) < 0 || PyList_Append(self->endpoints, ep) < 0 ||
            PyDict_SetItem(self->registered, PyList_GET_ITEM(keys, i), ix) < 0) {
            Py_XDECREF(ix);
            goto fail;
        }
        Py_DECREF(ix);
    }
    Py_DECREF(methods);
    Py_DECREF(encoded);
    Py_DECREF(keys);
    if (PyUnicode_Check(methods_arg)) {
        PyObject *one = Py_NewRef(PyList_GET_ITEM(indexes, 0));
        Py_DECREF(indexes);
        return one;
    }
    return indexes;
fail:
    Py_XDECREF(methods);
    Py_XDECREF(encoded);
    Py_XDECREF(keys);
    Py_XDECREF(indexes);
    return NULL;
}

static PyObject *Server_set_hooks(CzServerObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"json_encode", "response_type", "render",  "error",          "not_found",  "submit",
                             "cancel_all",  "cancel",        "spawn",   "streaming_type", "file_type",  "log_error",
                             "blocking",    "pump",          "resolve", "resolve_all",    "submit_all", NULL};
    enum { NHOOKS = 17 };
    PyObject *h[NHOOKS] = {NULL};
    h[7] = h[8] = h[9] = h[10] = h[11] = h[12] = h[13] = h[14] = h[15] = h[16] = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!OOOOO|OOOOOOOOOO:set_hooks", kwlist, &h[0], &PyType_Type, &h[1],
                                     &h[2], &h[3], &h[4], &h[5], &h[6], &h[7], &h[8], &h[9], &h[10], &h[11], &h[12],
                                     &h[13], &h[14], &h[15], &h[16]))
        return NULL;
    for (int i = 9; i <= 10; i++) {
        if (h[i] != Py_None && !PyType_Check(h[i])) {
            PyErr_Format(PyExc_TypeError, "%s must be a type, got %R", kwlist[i], h[i]);
            return NULL;
        }
    }
    PyObject **slots[NHOOKS] = {&self->json_encode,    &self->response_type,  &self->render_hook, &self->error_hook,
                                &self->not_found_hook, &self->submit,         &self->cancel_all,  &self->cancel,
                                &self->spawn,          &self->streaming_type, &self->file_type,   &self->logger_error,
                                &self->blocking_hook,  &self->pump,           &self->resolve,     &self->resolve_all,
                                &self->submit_all};
    for (int i = 0; i < NHOOKS; i++) Py_XSETREF(*slots[i], Py_NewRef(h[i]));
    Py_RETURN_NONE;
}

static double kw_double(PyObject *cfg, const char *key, double dflt, int *bad) {
    PyObject *v = cfg ? PyDict_GetItemString(cfg, key) : NULL;
    if (!v) return dflt;
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) *bad = 1;
    return d;
}

/* bind() and bind_fd(): listen on host:port (fd < 0), or on the socket fd. */
static PyObject *server_bind(CzServerObject *self, const char *host, int port, int fd, PyObject *cfg) {
    if (!self->json_encode) {
        PyErr_SetString(PyExc_RuntimeError, "set_hooks() must be called before bind()");
        return NULL;
    }
    if (self->server) {
        PyErr_SetString(PyExc_RuntimeError, "this server is already bound");
        return NULL;
    }
    /* Endpoints may have been rewired since they were added: check them once
     * here, so the request path can trust them. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->endpoints); i++)
        if (!valid_endpoint(PyList_GET_ITEM(self->endpoints, i))) return NULL;
    cz_server_config_t c;
    cz_server_config_default(&c);
    int bad = 0;
    c.max_connections = (size_t)kw_double(cfg, "max_connections", (double)c.max_connections, &bad);
    c.max_connections_per_client =
        (size_t)kw_double(cfg, "max_connections_per_client", (double)c.max_connections_per_client, &bad);
    c.header_timeout = kw_double(cfg, "header_timeout", c.header_timeout, &bad);
    c.body_timeout = kw_double(cfg, "body_timeout", c.body_timeout, &bad);
    c.keepalive_timeout = kw_double(cfg, "keepalive_timeout", c.keepalive_timeout, &bad);
    c.write_timeout = kw_double(cfg, "write_timeout", c.write_timeout, &bad);
    c.shutdown_timeout = kw_double(cfg, "shutdown_timeout", c.shutdown_timeout, &bad);
    c.max_write_buffer = (size_t)kw_double(cfg, "max_write_buffer", (double)c.max_write_buffer, &bad);
    c.max_write_buffer_total = (size_t)kw_double(cfg, "max_write_buffer_total", (double)c.max_write_buffer_total, &bad);
    c.backlog = (int)kw_double(cfg, "backlog", c.backlog, &bad);
    c.reuse_port = (int)kw_double(cfg, "reuse_port", 0, &bad);
    c.handle_signals = (int)kw_double(cfg, "handle_signals", 0, &bad);
    c.http.max_url = (size_t)kw_double(cfg, "max_url_length", (double)c.http.max_url, &bad);
    c.http.max_header_bytes = (size_t)kw_double(cfg, "max_header_size", (double)c.http.max_header_bytes, &bad);
    c.http.max_headers = (size_t)kw_double(cfg, "max_headers", (double)c.http.max_headers, &bad);
    c.http.max_body = (size_t)kw_double(cfg, "max_body_size", (double)c.http.max_body, &bad);
    self->ws_deflate = kw_double(cfg, "ws_per_message_deflate", 1.0, &bad) != 0.0;
    self->ws_max_size = (uint64_t)kw_double(cfg, "ws_max_size", (double)CZ_WS_DEFAULT_MAX_MESSAGE, &bad);
    self->ws_ping_ms = (uint64_t)(kw_double(cfg, "ws_ping_interval", 20.0, &bad) * 1000.0);
    self->ws_pong_ms = (uint64_t)(kw_double(cfg, "ws_ping_timeout", 20.0, &bad) * 1000.0);
    /* Routes' own limits: the parser bounds bodies by the largest, each
     * request by its route's (cz_conn). */
    c.max_body = c.http.max_body;
    int own_limits = 0, streams = 0;
    for (size_t i = 0; i < self->npolicy; i++) {
        own_limits |= self->max_body[i] != 0;
        streams |= self->body_mode[i] != BODY_WHOLE;
        if (self->max_body[i] > c.http.max_body) c.http.max_body = (size_t)self->max_body[i];
    }
    if (bad) return NULL;
    cz_server_hooks_t hooks = {
        .ctx = self,
        .lock = hook_lock,
        .unlock = hook_unlock,
        .request = hook_request,
        .not_found = self->not_found_hook != Py_None,
        .complete = hook_complete,
        .expired = hook_expired,
        .drained = hook_drained,
        .closed = hook_closed,
        .route_max_body = own_limits ? hook_route_max_body : NULL, /* no lookup when no route has one */
        .route_streams_body = streams ? hook_route_streams_body : NULL,
        .upgraded = hook_upgraded,
        .upgraded_event = hook_upgraded_event,
        .body = streams ? hook_body : NULL,
        .answered = self->metrics_on || self->access_on || self->route_memory_on ? hook_answered : NULL,
        .flush_pending = self->access_on ? hook_flush_pending : NULL,
        .flush = self->access_on ? hook_flush : NULL,
    };
    if ((self->metrics_on || self->route_memory_on) && cz_metrics_reserve(&self->metrics, self->npolicy) < 0)
        return PyErr_NoMemory();
    c.memory_per_request = self->route_memory_on;
    self->server = cz_server_create(self->alloc->alloc, self->router, &c, &hooks);
    if (!self->server) return PyErr_NoMemory();
    char err[512];
    int rc = fd >= 0 || !host ? cz_server_listen_fd(self->server, fd, err, sizeof(err))
                              : cz_server_listen(self->server, host, port, err, sizeof(err));
    if (rc != 0) {
        cz_server_destroy(self->server);
        self->server = NULL;
        errno = -rc;
        return PyErr_Format(PyExc_OSError, "%s", err);
    }
    return PyLong_FromLong(cz_server_port(self->server));
}

static PyObject *Server_bind(CzServerObject *self, PyObject *args) {
    const char *host;
    int port;
    PyObject *cfg;
    if (!PyArg_ParseTuple(args, "siO!:bind", &host, &port, &PyDict_Type, &cfg)) return NULL;
    return server_bind(self, host, port, -1, cfg);
}

static PyObject *Server_bind_fd(CzServerObject *self, PyObject *args) {
    int fd;
    PyObject *cfg;
    if (!PyArg_ParseTuple(args, "iO!:bind_fd", &fd, &PyDict_Type, &cfg)) return NULL;
    return server_bind(self, NULL, 0, fd, cfg);
}

static PyObject *unix_socket(PyObject *mod, PyObject *args) {
    (void)mod;
    PyObject *path;
    int backlog;
    if (!PyArg_ParseTuple(args, "O&i:unix_socket", PyUnicode_FSConverter, &path, &backlog)) return NULL;
    char err[512];
    int fd = cz_server_unix_socket(PyBytes_AS_STRING(path), backlog, err, sizeof(err));
    Py_DECREF(path);
    if (fd < 0) {
        errno = -fd;
        return PyErr_Format(PyExc_OSError, "%s", err);
    }
    return PyLong_FromLong(fd);
}

static PyObject *tcp_socket(PyObject *mod, PyObject *args) {
    (void)mod;
    const char *host;
    int port, backlog;
    if (!PyArg_ParseTuple(args, "sii:tcp_socket", &host, &port, &backlog)) return NULL;
    char err[512];
    int fd = cz_server_tcp_socket(host, port, backlog, err, sizeof(err));
    if (fd < 0) {
        errno = -fd;
        return PyErr_Format(PyExc_OSError, "%s", err);
    }
    return PyLong_FromLong(fd);
}

static PyMethodDef server_functions[] = {
    {"ws_broadcast", ws_broadcast, METH_VARARGS,
     "ws_broadcast(targets, message) -> int: send one str or bytes message to a list of _WebSocket\n"
     "objects of one server in one hand-over to the loop thread; returns how many it went to."},
    {"tcp_socket", tcp_socket, METH_VARARGS,
     "tcp_socket(host, port, backlog) -> fd: a listening TCP socket at host:port with SO_REUSEPORT\n"
     "(one per worker slot). The caller closes the fd."},
    {"unix_socket", unix_socket, METH_VARARGS,
     "unix_socket(path, backlog) -> fd: a listening Unix domain socket at path (a stale socket file\n"
     "is replaced, a live one refused; mode 0666, or the stale one's). The caller closes the fd and\n"
     "removes the file."},
    {NULL, NULL, 0, NULL},
};

/* What run() and start() do before the loop turns; the GIL released. */
static void serve_begin(CzServerObject *self) {
    /* The watcher runs while some route may be moved to the pool. */
    int watch = 0;
    for (size_t i = 0; i < self->npolicy; i++) watch |= atomic_load(&self->policy[i]) == POLICY_AUTO;
#ifdef __linux__
    self->loop_tid = (long)syscall(SYS_gettid);
#endif
    self->loop_thread = uv_thread_self();
    atomic_store(&self->watching, watch);
    if (watch && uv_thread_create(&self->watcher, watch_loop, self) != 0) atomic_store(&self->watching, 0);
}

/* What run() and finish() do once the loop has ended; the GIL held. */
static void serve_end(CzServerObject *self) {
    cz_server_t *srv = self->server;
    self->tstate = PyEval_SaveThread();
    if (atomic_load(&self->watching)) {
        atomic_store(&self->watching, 0);
        uv_thread_join(&self->watcher);
    }
    PyEval_RestoreThread(self->tstate);
    self->server = NULL; /* stop() and late completions (under the GIL) see it gone */
    self->tstate = PyEval_SaveThread();
    cz_server_destroy(srv); /* may run the last completions' hooks: they take the GIL */
    PyEval_RestoreThread(self->tstate);
    self->tstate = NULL;
    self->running = 0;
    self->driven = 0;
    Py_CLEAR(self->kick);
    if (self->access_on) access_flush(self); /* the last iteration's lines */
}

static int serve_check(CzServerObject *self) {
    if (!self->server || self->running) {
        PyErr_SetString(PyExc_RuntimeError, self->running ? "already running" : "bind() first");
        return -1;
    }
    return 0;
}

static PyObject *Server_run(CzServerObject *self, PyObject *unused) {
    (void)unused;
    if (serve_check(self) < 0) return NULL;
    self->running = 1;
    self->tstate = PyEval_SaveThread();
    serve_begin(self);
    cz_server_run(self->server);
    PyEval_RestoreThread(self->tstate);
    serve_end(self);
    Py_RETURN_NONE;
}

/* Driven by the caller's event loop (cz_server.h, "driven by another event
 * loop"): start(), then step() when fileno() polls readable or the
 * timeout it returned has passed, until it returns None; then finish(). */
static PyObject *Server_start(CzServerObject *self, PyObject *kick) {
    if (!PyCallable_Check(kick)) {
        PyErr_SetString(PyExc_TypeError, "start(kick): kick must be callable");
        return NULL;
    }
    if (serve_check(self) < 0) return NULL;
    Py_XSETREF(self->kick, Py_NewRef(kick));
    self->kick_due = 0;
    self->running = 1;
    self->driven = 1;
    self->tstate = PyEval_SaveThread();
    serve_begin(self);
    cz_server_start(self->server);
    PyEval_RestoreThread(self->tstate);
    return PyLong_FromLong(cz_server_fd(self->server));
}

static PyObject *Server_step(CzServerObject *self, PyObject *unused) {
    (void)unused;
    if (!self->driven || !self->server) {
        PyErr_SetString(PyExc_RuntimeError, "start() first");
        return NULL;
    }
    self->kick_due = 0; /* this step runs what was posted quietly */
    self->tstate = PyEval_SaveThread();
    int alive = cz_server_step(self->server);
    PyEval_RestoreThread(self->tstate);
    if (!alive) Py_RETURN_NONE;
    return PyLong_FromLong(cz_server_timeout(self->server));
}

static PyObject *Server_finish(CzServerObject *self, PyObject *unused) {
    (void)unused;
    if (self->driven && self->server) serve_end(self);
    Py_RETURN_NONE;
}

static PyObject *Server_stop(CzServerObject *self, PyObject *unused) {
    (void)unused;
    if (self->server) cz_server_stop(self->server);
    Py_RETURN_NONE;
}

static PyObject *Server_counters(CzServerObject *self, PyObject *unused) {
    (void)unused;
    cz_server_counters_t k = {0};
    if (self->server) cz_server_counters(self->server, &k);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "accepted", (unsigned long long)k.accepted,
                         "rejected", (unsigned long long)k.rejected, "requests", (unsigned long long)k.requests,
                         "active_connections", (unsigned long long)k.active_connections, "abandoned",
                         (unsigned long long)k.abandoned, "evicted", (unsigned long long)k.evicted, "output_held",
                         (unsigned long long)k.output_held, "bytes_in", (unsigned long long)k.bytes_in, "bytes_out",
                         (unsigned long long)k.bytes_out);
}

/* set_accounting(metrics, access_log, sink): before bind. access_log: -1 off,
 * 0 common, 1 JSON lines; sink: (str) -> None, called with batches. */
static PyObject *Server_set_accounting(CzServerObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"metrics", "access_log", "sink", "route_memory", NULL};
    int metrics = 0, access = -1, route_memory = 0;
    PyObject *sink = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|piOp:set_accounting", kwlist, &metrics, &access, &sink, &route_memory))
        return NULL;
    if (access < -1 || access > 1) {
        PyErr_Format(PyExc_ValueError, "access_log must be -1 (off), 0 (common) or 1 (JSON lines), got %d", access);
        return NULL;
    }
    if (access >= 0 && !PyCallable_Check(sink)) {
        PyErr_SetString(PyExc_TypeError, "an access log needs a callable sink");
        return NULL;
    }
    if (self->server) {
        PyErr_SetString(PyExc_RuntimeError, "set_accounting() must be called before bind()");
        return NULL;
    }
    self->metrics_on = metrics;
    self->route_memory_on = route_memory;
    self->access_on = access >= 0;
    cz_accesslog_init(&self->access, access == 1 ? CZ_ACCESSLOG_JSON : CZ_ACCESSLOG_COMMON);
    Py_XSETREF(self->access_sink, Py_NewRef(sink));
    Py_RETURN_NONE;
}

static PyObject *u64_tuple(const uint64_t *v, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t && i < n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[i]);
        if (!x) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, x);
    }
    return t;
}

/* metrics() -> {"bounds_ns": (...), "answered": n, "routes": [(index or -1, counts, buckets, sum_ns), ...]}:
 * counts: METHODS x 5 status classes, flat (GET, HEAD, POST, PUT, DELETE,
 * PATCH, OPTIONS, other); buckets: per bound and +Inf, not cumulated. Only
 * routes with requests; -1 is "no route". */
static PyObject *Server_metrics(CzServerObject *self, PyObject *unused) {
    (void)unused;
    PyObject *routes = PyList_New(0), *bounds = u64_tuple(CZ_METRICS_BOUNDS_NS, CZ_METRICS_BUCKETS);
    if (!routes || !bounds) goto fail;
    for (size_t i = 0; self->metrics.routes && i <= self->metrics.nroutes; i++) {
        const cz_metrics_route_t *r = &self->metrics.routes[i];
        if (!r->observed) continue;
        PyObject *row = Py_BuildValue("(LNNK)", i == self->metrics.nroutes ? -1LL : (long long)i,
                                      u64_tuple(&r->count[0][0], CZ_METRICS_METHODS * CZ_METRICS_CLASSES),
                                      u64_tuple(r->bucket, CZ_METRICS_BUCKETS + 1), (unsigned long long)r->sum_ns);
        if (!row || PyList_Append(routes, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    return Py_BuildValue("{s:N,s:K,s:N,s:O}", "bounds_ns", bounds, "answered",
                         (unsigned long long)self->metrics.answered, "routes", routes, "enabled",
                         self->metrics_on ? Py_True : Py_False);
fail:
    Py_XDECREF(routes);
    Py_XDECREF(bounds);
    return NULL;
}

/* route_memory() -> {"enabled": bool, "purposes": (names), "python": bool, "routes": [(index or -1,
 * requests, peak, allocated, python), ...]}: allocated is per purpose (in the order of "purposes"),
 * summed over `requests`; peak is the most one request held at once; python the bytes the
 * interpreter asked of the process heap meanwhile, meaningful when "python" says this server's
 * allocator holds it (process scope). Only routes with requests; -1 is "no route". */
static PyObject *Server_route_memory(CzServerObject *self, PyObject *unused) {
    (void)unused;
    PyObject *routes = PyList_New(0), *names = PyTuple_New(CZ_MEM_PURPOSES);
    if (!routes || !names) goto fail;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        PyObject *n = PyUnicode_FromString(cz_purpose_name((cz_purpose_t)p));
        if (!n) goto fail;
        PyTuple_SET_ITEM(names, p, n);
    }
    for (size_t i = 0; self->route_memory_on && self->metrics.routes && i <= self->metrics.nroutes; i++) {
        const cz_metrics_route_t *r = &self->metrics.routes[i];
        if (!r->mem_requests) continue;
        PyObject *row = Py_BuildValue("(LKKNK)", i == self->metrics.nroutes ? -1LL : (long long)i,
                                      (unsigned long long)r->mem_requests, (unsigned long long)r->mem_peak,
                                      u64_tuple(r->mem_allocated, CZ_MEM_PURPOSES), (unsigned long long)r->mem_python);
        if (!row || PyList_Append(routes, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    int python = cz_allocator_owns_process_heap(self->alloc->alloc);
    return Py_BuildValue("{s:O,s:N,s:O,s:N}", "enabled", self->route_memory_on ? Py_True : Py_False, "purposes", names,
                         "python", python ? Py_True : Py_False, "routes", routes);
fail:
    Py_XDECREF(routes);
    Py_XDECREF(names);
    return NULL;
}

/* route_table() -> {index: (method, pattern as routed)}: for labels (metrics). */
static PyObject *Server_route_table(CzServerObject *self, PyObject *unused) {
    (void)unused;
    PyObject *out = PyDict_New(), *key, *ix;
    Py_ssize_t pos = 0;
    while (out && PyDict_Next(self->registered, &pos, &key, &ix)) {
        PyObject *pattern = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(PyTuple_GET_ITEM(key, 1)),
                                                   PyBytes_GET_SIZE(PyTuple_GET_ITEM(key, 1)), NULL);
        PyObject *row = pattern ? PyTuple_Pack(2, PyTuple_GET_ITEM(key, 0), pattern) : NULL;
        Py_XDECREF(pattern);
        if (!row || PyDict_SetItem(out, ix, row) < 0) Py_CLEAR(out);
        Py_XDECREF(row);
    }
    return out;
}

/* match(method, path) for the ASGI side (catzilla.asgi_app): the router's answer for a raw
 * (percent-encoded) path, without a connection: (endpoint list, {name: value}, body mode, the
 * route's own body limit or 0) when a route matches; (405, Allow header value) when the path matches other methods
 * only; (404, slash) otherwise, slash 1 when the path with a '/' added would match, 2 with its trailing '/' removed. */
static PyObject *Server_match(CzServerObject *self, PyObject *args) {
    const char *method, *path;
    Py_ssize_t mlen, plen;
    if (!PyArg_ParseTuple(args, "s#y#:match", &method, &mlen, &path, &plen)) return NULL;
    cz_match_t m;
    cz_router_match(self->router, method, (size_t)mlen, path, (size_t)plen, &m);
    if (m.status == CZ_MATCH_METHOD_NOT_ALLOWED) {
        char allow[CZ_ROUTER_ALLOW_MAX];
        cz_router_allow_header(self->router, m.allowed, allow, sizeof(allow));
        return Py_BuildValue("(is)", 405, allow);
    }
    if (m.status != CZ_MATCH_FOUND) return Py_BuildValue("(ii)", 404, (int)m.slash);
    PyObject *params = PyDict_New();
    for (uint32_t i = 0; params && i < m.nparams; i++) {
        PyObject *name = PyUnicode_DecodeLatin1(m.params[i].name, (Py_ssize_t)m.params[i].name_len, NULL);
        PyObject *value =
            name ? PyUnicode_DecodeLatin1(path + m.params[i].offset, (Py_ssize_t)m.params[i].len, NULL) : NULL;
        if (!value || PyDict_SetItem(params, name, value) < 0) Py_CLEAR(params);
        Py_XDECREF(name);
        Py_XDECREF(value);
    }
    if (!params) return NULL;
    int own = m.route_index < self->npolicy;
    return Py_BuildValue("(ONiK)", (PyObject *)m.handler, params, own ? self->body_mode[m.route_index] : BODY_WHOLE,
                         (unsigned long long)(own ? self->max_body[m.route_index] : 0));
}

static PyMethodDef Server_methods[] = {
    {"match", (PyCFunction)Server_match, METH_VARARGS,
     "match(method, raw path: bytes) -> (endpoint, params, body_mode, max_body) | (405, allow) | (404, slash)"},
    {"route_table", (PyCFunction)Server_route_table, METH_NOARGS, "{route index: (method, pattern)}"},
    {"set_accounting", (PyCFunction)(void (*)(void))Server_set_accounting, METH_VARARGS | METH_KEYWORDS,
     "set_accounting(metrics=False, access_log=-1, sink=None, route_memory=False): per-request metrics, the\n"
     "access log (-1 off, 0 common format, 1 JSON lines) and per-route memory, before bind(). sink(str, n)\n"
     "gets the n lines of a loop iteration."},
    {"metrics", (PyCFunction)Server_metrics, METH_NOARGS, "Per-route request counts and latency histograms."},
    {"route_memory", (PyCFunction)Server_route_memory, METH_NOARGS,
     "Per-route memory: bytes allocated per purpose by each route's requests, and the most one held."},
    {"add_route", (PyCFunction)Server_add_route, METH_VARARGS,
     "add_route(method or methods, pattern, endpoint, policy=0) -> index or indexes.\n"
     "policy: where a sync handler runs: 0 on the loop until seen blocking, 1 the thread pool, 2 the loop.\n"
     "All methods are added or none; ValueError on a bad, duplicate or conflicting route.\n"
     "The list is read on every request: changing it (not while serving) rewires the route."},
    {"set_hooks", (PyCFunction)(void (*)(void))Server_set_hooks, METH_VARARGS | METH_KEYWORDS,
     "set_hooks(json_encode, response_type, render, error, not_found, submit, cancel_all)"},
    {"bind", (PyCFunction)Server_bind, METH_VARARGS, "bind(host, port, config) -> bound port"},
    {"bind_fd", (PyCFunction)Server_bind_fd, METH_VARARGS,
     "bind_fd(fd, config) -> bound port (0 for a Unix socket): serve the bound stream socket fd\n"
     "(TCP or Unix; a duplicate is served, fd stays the caller's)."},
    {"run", (PyCFunction)Server_run, METH_NOARGS, "Serve until stopped (releases the GIL)."},
    {"start", (PyCFunction)Server_start, METH_O,
     "start(kick): serve driven by the caller's loop; returns the fd to poll. kick() asks for a step soon."},
    {"step", (PyCFunction)Server_step, METH_NOARGS,
     "One turn of the loop: ms until the next is due (-1: when the fd polls), None once finished."},
    {"finish", (PyCFunction)Server_finish, METH_NOARGS, "Release what start() took, once step() said None."},
    {"stop", (PyCFunction)Server_stop, METH_NOARGS, "Begin a graceful stop; any thread."},
    {"counters", (PyCFunction)Server_counters, METH_NOARGS, "Connection and request counters."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject CzServer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core.Server",
    .tp_basicsize = sizeof(CzServerObject),
    .tp_dealloc = (destructor)Server_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Server(allocator): routes and the HTTP server that serves them.",
    .tp_methods = Server_methods,
    .tp_new = Server_new,
};

int cz_py_server_register(PyObject *module) {
    if (PyType_Ready(&CzServer_Type) < 0 || PyType_Ready(&CzPending_Type) < 0 || PyType_Ready(&CzStream_Type) < 0 ||
        PyType_Ready(&CzBody_Type) < 0 || PyType_Ready(&CzWs_Type) < 0 || PyType_Ready(&CzStatic_Type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Server", (PyObject *)&CzServer_Type) < 0) return -1;
    if (PyModule_AddFunctions(module, server_functions) < 0) return -1;
    if (PyModule_AddIntConstant(module, "MODE_NO_ARGS", MODE_NO_ARGS) < 0 ||
        PyModule_AddIntConstant(module, "MODE_REQUEST", MODE_REQUEST) < 0 ||
        PyModule_AddIntConstant(module, "MODE_DIRECT", MODE_DIRECT) < 0 ||
        PyModule_AddIntConstant(module, "MODE_STATIC", MODE_STATIC) < 0 ||
        PyModule_AddIntConstant(module, "MODE_WS", MODE_WS) < 0 ||
        /* what match() tells of a path not found, and the bound on a body no route or app sets */
        PyModule_AddIntConstant(module, "SLASH_ADD", CZ_SLASH_ADD) < 0 ||
        PyModule_AddIntConstant(module, "SLASH_REMOVE", CZ_SLASH_REMOVE) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_MAX_BODY_SIZE", CZ_HTTP_DEFAULT_MAX_BODY) < 0 ||
        PyModule_AddIntConstant(module, "SPOOL_MEMORY_MAX", CZ_SPOOL_DEFAULT_MEMORY_MAX) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "StaticFiles", (PyObject *)&CzStatic_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "_Stream", (PyObject *)&CzStream_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "_BodyStream", (PyObject *)&CzBody_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "_WebSocket", (PyObject *)&CzWs_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "_Pending", (PyObject *)&CzPending_Type);
}
