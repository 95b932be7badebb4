#include "py_request.h"

#include <string.h>

typedef struct {
    size_t off, len;
} slice_t;

typedef struct {
    PyObject_HEAD
    CzAllocatorObject *alloc;
    char *blob; /* every byte below, back to back */
    slice_t method, path, query, body;
    slice_t *fields; /* name, value, name, value, ... (headers, then params) */
    size_t nheaders, nparams;
    int http_minor;
    char client_host[64];
    int client_port;       /* -1: unknown */
    PyObject *body_stream; /* the body still arriving (a _BodyStream), or NULL */
    PyObject *form_parts;  /* the body spooled as multipart parts (a list), or NULL */
    PyObject *websocket;   /* the connection side of a WebSocket request (a _WebSocket), or NULL */
    PyObject *form;        /* the form as parsed for the endpoint's parameters, or NULL */
} CzRawRequestObject;

static size_t put(char *blob, size_t *at, const char *src, size_t len, slice_t *s) {
    s->off = *at;
    s->len = len;
    if (len) memcpy(blob + *at, src, len);
    *at += len;
    return len;
}

PyObject *cz_py_request_new(CzAllocatorObject *alloc, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    size_t nparams = m && m->status == CZ_MATCH_FOUND ? m->nparams : 0;
    size_t total = req->method.len + req->path.len + req->query.len + req->body.len;
    for (size_t i = 0; i < req->num_headers; i++) total += req->headers[i].name.len + req->headers[i].value.len;
    for (size_t i = 0; i < nparams; i++) total += m->params[i].name_len + m->params[i].len;

    CzRawRequestObject *self = PyObject_New(CzRawRequestObject, &CzRawRequest_Type);
    if (!self) return NULL;
    self->alloc = (CzAllocatorObject *)Py_NewRef(alloc);
    self->body_stream = self->form_parts = self->websocket = self->form = NULL;
    self->nheaders = req->num_headers;
    self->nparams = nparams;
    self->fields = NULL;
    self->blob = cz_malloc(alloc->alloc, CZ_MEM_REQUEST, total ? total : 1);
    size_t nfields = 2 * (req->num_headers + nparams);
    if (self->blob && nfields) self->fields = cz_malloc(alloc->alloc, CZ_MEM_REQUEST, nfields * sizeof(slice_t));
    if (!self->blob || (nfields && !self->fields)) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    size_t at = 0;
    put(self->blob, &at, req->method.base, req->method.len, &self->method);
    put(self->blob, &at, req->path.base, req->path.len, &self->path);
    put(self->blob, &at, req->query.base, req->query.len, &self->query);
    put(self->blob, &at, req->body.base, req->body.len, &self->body);
    slice_t *f = self->fields;
    for (size_t i = 0; i < req->num_headers; i++) {
        put(self->blob, &at, req->headers[i].name.base, req->headers[i].name.len, f++);
        put(self->blob, &at, req->headers[i].value.base, req->headers[i].value.len, f++);
    }
    for (size_t i = 0; i < nparams; i++) {
        put(self->blob, &at, m->params[i].name, m->params[i].name_len, f++);
        put(self->blob, &at, req->path.base + m->params[i].offset, m->params[i].len, f++);
    }
    self->http_minor = req->http_minor;
    self->client_port = -1;
    self->client_host[0] = '\0';
    if (c) cz_conn_peer(c, self->client_host, sizeof(self->client_host), &self->client_port);
    return (PyObject *)self;
}

static void RawRequest_dealloc(CzRawRequestObject *self) {
    Py_XDECREF(self->body_stream);
    Py_XDECREF(self->form_parts);
    Py_XDECREF(self->websocket);
    Py_XDECREF(self->form);
    if (self->alloc) {
        cz_free(self->alloc->alloc, CZ_MEM_REQUEST, self->blob);
        cz_free(self->alloc->alloc, CZ_MEM_REQUEST, self->fields);
        Py_DECREF(self->alloc);
    }
    PyObject_Free(self);
}

/* Header bytes are latin-1 (RFC 9110: obs-text), as in ASGI servers. */
static PyObject *latin1(const CzRawRequestObject *self, slice_t s) {
    return PyUnicode_DecodeLatin1(self->blob + s.off, (Py_ssize_t)s.len, NULL);
}

static PyObject *get_method(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return latin1(self, self->method);
}

static PyObject *get_path(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return latin1(self, self->path);
}

static PyObject *get_query_string(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return PyBytes_FromStringAndSize(self->blob + self->query.off, (Py_ssize_t)self->query.len);
}

static PyObject *get_body(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return PyBytes_FromStringAndSize(self->blob + self->body.off, (Py_ssize_t)self->body.len);
}

static PyObject *get_http_version(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(self->http_minor ? "1.1" : "1.0");
}

/* [(lowercased name, value), ...] in arrival order. */
static PyObject *get_headers(CzRawRequestObject *self, void *closure) {
    (void)closure;
    PyObject *list = PyList_New((Py_ssize_t)self->nheaders);
    if (!list) return NULL;
    for (size_t i = 0; i < self->nheaders; i++) {
        slice_t n = self->fields[2 * i], v = self->fields[2 * i + 1];
        char lower[256];
        PyObject *name;
        if (n.len <= sizeof(lower)) {
            for (size_t k = 0; k < n.len; k++) {
                char ch = self->blob[n.off + k];
                lower[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
            }
            name = PyUnicode_DecodeLatin1(lower, (Py_ssize_t)n.len, NULL);
        } else {
            PyObject *raw = latin1(self, n);
            name = raw ? PyObject_CallMethod(raw, "lower", NULL) : NULL;
            Py_XDECREF(raw);
        }
        PyObject *value = latin1(self, v);
        PyObject *pair = (name && value) ? PyTuple_Pack(2, name, value) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

/* {name: raw value} of the route's path parameters (not percent-decoded). */
static PyObject *get_path_params(CzRawRequestObject *self, void *closure) {
    (void)closure;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t i = 0; i < self->nparams; i++) {
        slice_t n = self->fields[2 * (self->nheaders + i)], v = self->fields[2 * (self->nheaders + i) + 1];
        PyObject *name = PyUnicode_DecodeLatin1(self->blob + n.off, (Py_ssize_t)n.len, NULL);
        PyObject *value = PyUnicode_DecodeLatin1(self->blob + v.off, (Py_ssize_t)v.len, NULL);
        int rc = (name && value) ? PyDict_SetItem(d, name, value) : -1;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyObject *get_client(CzRawRequestObject *self, void *closure) {
    (void)closure;
    if (self->client_port < 0) Py_RETURN_NONE;
    return Py_BuildValue("(si)", self->client_host, self->client_port);
}

void cz_py_request_set_stream(PyObject *raw, PyObject *stream) {
    Py_XSETREF(((CzRawRequestObject *)raw)->body_stream, Py_NewRef(stream));
}

void cz_py_request_set_websocket(PyObject *raw, PyObject *ws) {
    Py_XSETREF(((CzRawRequestObject *)raw)->websocket, Py_NewRef(ws));
}

PyObject *cz_py_request_websocket(PyObject *raw) {
    return Py_IS_TYPE(raw, &CzRawRequest_Type) ? ((CzRawRequestObject *)raw)->websocket : NULL;
}

static PyObject *get_websocket(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->websocket ? self->websocket : Py_None);
}

void cz_py_request_set_form(PyObject *raw, PyObject *parts) {
    Py_XSETREF(((CzRawRequestObject *)raw)->form_parts, Py_NewRef(parts));
}

static PyObject *get_form(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->form ? self->form : Py_None);
}

static int set_form(CzRawRequestObject *self, PyObject *value, void *closure) {
    (void)closure;
    Py_XSETREF(self->form, value && value != Py_None ? Py_NewRef(value) : NULL);
    return 0;
}

static PyObject *get_form_parts(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->form_parts ? self->form_parts : Py_None);
}

PyObject *cz_py_request_stream(PyObject *raw) {
    return Py_IS_TYPE(raw, &CzRawRequest_Type) ? ((CzRawRequestObject *)raw)->body_stream : NULL;
}

static PyObject *get_body_stream(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->body_stream ? self->body_stream : Py_None);
}

static PyObject *get_allocator(CzRawRequestObject *self, void *closure) {
    (void)closure;
    return Py_NewRef((PyObject *)self->alloc);
}

static PyGetSetDef RawRequest_getset[] = {
    {"allocator", (getter)get_allocator, NULL, "The app's Allocator (for parsing the body in C).", NULL},
    {"method", (getter)get_method, NULL, "Request method.", NULL},
    {"path", (getter)get_path, NULL, "Raw path (not percent-decoded).", NULL},
    {"query_string", (getter)get_query_string, NULL, "Raw query string, without '?'.", NULL},
    {"body", (getter)get_body, NULL, "Body bytes (de-chunked); empty while body_stream is set.", NULL},
    {"body_stream", (getter)get_body_stream, NULL, "The body as it arrives (a _BodyStream), or None: read whole.",
     NULL},
    {"form_parts", (getter)get_form_parts, NULL,
     "The multipart body spooled as it arrived: [(name, filename, content_type, headers, bytes or (fd, size))], "
     "or None.",
     NULL},
    {"websocket", (getter)get_websocket, NULL, "The connection side of a WebSocket request, or None.", NULL},
    {"form", (getter)get_form, (setter)set_form,
     "The form as parsed for the endpoint's parameters, within the route's limits (request.form() returns it), "
     "or None.",
     NULL},
    {"headers", (getter)get_headers, NULL, "[(lowercased name, value), ...].", NULL},
    {"path_params", (getter)get_path_params, NULL, "{name: raw value}.", NULL},
    {"client", (getter)get_client, NULL, "(host, port) of the peer, or None.", NULL},
    {"http_version", (getter)get_http_version, NULL, "'1.1' or '1.0'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject CzRawRequest_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core.RawRequest",
    .tp_basicsize = sizeof(CzRawRequestObject),
    .tp_dealloc = (destructor)RawRequest_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One HTTP request as received; see catzilla.Request for the friendly view.",
    .tp_getset = RawRequest_getset,
};

int cz_py_request_register(PyObject *module) {
    if (PyType_Ready(&CzRawRequest_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "RawRequest", (PyObject *)&CzRawRequest_Type);
}
