#include "py_direct.h"

#include "py_json.h"

#include <string.h>
#include <strings.h>

enum { SRC_PATH, SRC_QUERY, SRC_HEADER, SRC_BODY };
enum { KIND_STR, KIND_INT, KIND_FLOAT, KIND_CALL };
enum { B_GT, B_GE, B_LT, B_LE, NBOUNDS };

typedef struct {
    int source, kind, required;
    PyObject *key;             /* bytes; header names lowercased */
    PyObject *convert;         /* KIND_CALL: str (or body bytes) -> value */
    PyObject *dflt;            /* when absent and not required */
    PyObject *bound[NBOUNDS];  /* NULL: none */
    long long ibound[NBOUNDS]; /* the bounds of an int argument as C values, when all fit */
    int c_bounds;
    Py_ssize_t min_len, max_len; /* -1: none */
} arg_spec_t;

typedef struct {
    PyObject_HEAD
    Py_ssize_t nargs;
    arg_spec_t args[CZ_DIRECT_MAX_ARGS];
    int uses_query;
    int strict_content_type; /* a body without Content-Type is not JSON (FastAPI's default) */
    PyObject *render_type, *render, *render_kwnames, *render_kwvalues, *render_shape, *finish;
    int status;
} CzCallPlanObject;

/* ---- taking values out of the request ---------------------------------------------- */

/* The last `key=value` of the query for `key` (parse_query's rule). */
static int query_lookup(cz_http_str_t q, const char *key, size_t klen, cz_http_str_t *out) {
    int found = 0;
    const char *p = q.base, *end = q.base + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
            *out = eq ? (cz_http_str_t){eq + 1, (size_t)(stop - eq - 1)} : (cz_http_str_t){stop, 0};
            found = 1;
        }
        p = stop + 1;
    }
    return found;
}

/* The last field named `key` (lower-case): the binder's header dict keeps the last. */
static int header_lookup(const cz_http_request_t *req, const char *key, size_t klen, cz_http_str_t *out) {
    int found = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        if (cz_http_ieq(req->headers[i].name, key, klen)) {
            *out = req->headers[i].value;
            found = 1;
        }
    }
    return found;
}

static int path_lookup(const cz_http_request_t *req, const cz_match_t *m, const char *key, size_t klen,
                       cz_http_str_t *out) {
    for (size_t i = 0; i < m->nparams; i++) {
        if (m->params[i].name_len == klen && memcmp(m->params[i].name, key, klen) == 0) {
            *out = (cz_http_str_t){req->path.base + m->params[i].offset, m->params[i].len};
            /* Percent-encoded values are the binder's: it decodes them. */
            return memchr(out->base, '%', out->len) == NULL;
        }
    }
    return 0;
}

/* Digits with an optional sign, as int() reads them; 0 for any other spelling. */
static int parse_int(cz_http_str_t s, long long *out) {
    size_t i = (s.len && (s.base[0] == '-' || s.base[0] == '+')) ? 1 : 0;
    if (i == s.len || s.len - i > 18) return 0;
    long long v = 0;
    for (size_t k = i; k < s.len; k++) {
        if (s.base[k] < '0' || s.base[k] > '9') return 0;
        v = v * 10 + (s.base[k] - '0');
    }
    *out = s.base[0] == '-' ? -v : v;
    return 1;
}

/* An int argument's value, its bounds checked in C when the plan has them as C values. */
static PyObject *take_int(const arg_spec_t *a, cz_http_str_t s) {
    long long v;
    if (!parse_int(s, &v)) return NULL;
    if (a->c_bounds && ((a->bound[B_GT] && v <= a->ibound[B_GT]) || (a->bound[B_GE] && v < a->ibound[B_GE]) ||
                        (a->bound[B_LT] && v >= a->ibound[B_LT]) || (a->bound[B_LE] && v > a->ibound[B_LE])))
        return NULL;
    return PyLong_FromLongLong(v);
}

/* A plain decimal number, read by float()'s own parser; NULL for any other spelling. */
static PyObject *parse_float(cz_http_str_t s) {
    char buf[64];
    int digits = 0;
    if (s.len == 0 || s.len >= sizeof(buf)) return NULL;
    for (size_t k = 0; k < s.len; k++) {
        char ch = s.base[k];
        if (ch >= '0' && ch <= '9') digits = 1;
        else if (!strchr("+-.eE", ch) || ch == '\0') return NULL;
    }
    if (!digits) return NULL;
    memcpy(buf, s.base, s.len);
    buf[s.len] = '\0';
    char *end;
    double d = PyOS_string_to_double(buf, &end, NULL);
    if (PyErr_Occurred() || end != buf + s.len) return NULL;
    return PyFloat_FromDouble(d);
}

static PyObject *convert_value(const arg_spec_t *a, cz_http_str_t s) {
    switch (a->kind) {
    case KIND_INT: return take_int(a, s);
    case KIND_FLOAT: return parse_float(s);
    default: break;
    }
    /* Query and header bytes are latin-1, as the binder reads them. */
    PyObject *str = PyUnicode_DecodeLatin1(s.base, (Py_ssize_t)s.len, NULL);
    if (!str || a->kind == KIND_STR) return str;
    PyObject *v = PyObject_CallOneArg(a->convert, str);
    Py_DECREF(str);
    return v;
}

/* The binder's checks, as "does the value pass all of them". */
static int within_constraints(const arg_spec_t *a, PyObject *v) {
    static const int fail_op[NBOUNDS] = {Py_LE, Py_LT, Py_GE, Py_GT};
    if (a->c_bounds) return 1; /* take_int checked them, and there are no lengths */
    for (int b = 0; b < NBOUNDS; b++) {
        if (a->bound[b] && PyObject_RichCompareBool(v, a->bound[b], fail_op[b]) != 0) return 0;
    }
    if (a->min_len >= 0 || a->max_len >= 0) {
        Py_ssize_t n = PyObject_Length(v);
        if (n < 0 || (a->min_len >= 0 && n < a->min_len) || (a->max_len >= 0 && n > a->max_len)) return 0;
    }
    return 1;
}

/* A Content-Type that says JSON: application/json or application/...+json
 * (FastAPI parses only those, or a body without Content-Type, as JSON). */
static int json_media_type(cz_http_str_t v) {
    size_t n = 0;
    while (n < v.len && v.base[n] != ';' && v.base[n] != ' ' && v.base[n] != '\t') n++;
    if (n < 12 || strncasecmp(v.base, "application/", 12) != 0) return 0;
    return (n == 16 && strncasecmp(v.base + 12, "json", 4) == 0) ||
           (n > 17 && strncasecmp(v.base + n - 5, "+json", 5) == 0);
}

/* One argument: a new reference, or NULL to decline (any exception cleared). */
static PyObject *take_arg(const CzCallPlanObject *plan, const arg_spec_t *a, const cz_http_request_t *req,
                          const cz_match_t *m) {
    const char *key = PyBytes_AS_STRING(a->key);
    size_t klen = (size_t)PyBytes_GET_SIZE(a->key);
    cz_http_str_t s = {0};
    int found;
    switch (a->source) {
    case SRC_PATH: found = path_lookup(req, m, key, klen, &s); break;
    case SRC_QUERY: found = query_lookup(req->query, key, klen, &s); break;
    case SRC_HEADER: found = header_lookup(req, key, klen, &s); break;
    default: {
        cz_http_str_t ct = {"", 0};
        /* Another media type, or none on a strict route: the binder says why it is refused (422). */
        if (header_lookup(req, "content-type", 12, &ct) ? !json_media_type(ct)
                                                        : plan->strict_content_type && req->body.len > 0)
            return NULL;
        s = req->body;
        found = s.len > 0;
        break;
    }
    }
    if (!found) return a->required ? NULL : Py_NewRef(a->dflt);
    PyObject *v;
    if (a->source == SRC_BODY) {
        PyObject *body = PyBytes_FromStringAndSize(s.base, (Py_ssize_t)s.len);
        v = body ? PyObject_CallOneArg(a->convert, body) : NULL;
        Py_XDECREF(body);
    } else {
        v = convert_value(a, s);
        if (v && !within_constraints(a, v)) Py_CLEAR(v);
    }
    if (!v) PyErr_Clear();
    return v;
}

PyObject *cz_py_direct_call(PyObject *plan_obj, PyObject *fn, const cz_http_request_t *req, const cz_match_t *m,
                            int *declined) {
    CzCallPlanObject *plan = (CzCallPlanObject *)plan_obj;
    *declined = 0;
    /* Encoded queries are decoded by the binder (and a "%71" may spell a key). */
    if (plan->uses_query && req->query.len &&
        (memchr(req->query.base, '%', req->query.len) || memchr(req->query.base, '+', req->query.len))) {
        *declined = 1;
        return NULL;
    }
    PyObject *argv[CZ_DIRECT_MAX_ARGS] = {NULL};
    Py_ssize_t n = 0;
    for (; n < plan->nargs; n++) {
        argv[n] = take_arg(plan, &plan->args[n], req, m);
        if (!argv[n]) break;
    }
    PyObject *result = NULL;
    if (n == plan->nargs) result = PyObject_Vectorcall(fn, argv, (size_t)n, NULL);
    else *declined = 1;
    for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(argv[i]);
    return result;
}

int cz_py_direct_render(PyObject *plan_obj, PyObject *value, cz_http_buf_t *out, int *status) {
    CzCallPlanObject *plan = (CzCallPlanObject *)plan_obj;
    if (!plan->render_type || (PyObject *)Py_TYPE(value) != plan->render_type) return 0;
    *status = plan->status;
    if (plan->render_shape) {
        PyObject *dict = PyObject_GenericGetDict(value, NULL);
        cz_json_result_t r = CZ_JSON_UNSUPPORTED;
        if (dict) r = cz_json_write_shape(dict, plan->render_shape, out);
        else PyErr_Clear(); /* no instance dict: the library knows where the fields are */
        Py_XDECREF(dict);
        if (r != CZ_JSON_UNSUPPORTED) return r == CZ_JSON_OK ? 1 : -1;
    }
    PyObject *argv[1 + CZ_DIRECT_MAX_ARGS];
    Py_ssize_t nkw = plan->render_kwnames ? PyTuple_GET_SIZE(plan->render_kwnames) : 0;
    argv[0] = value;
    for (Py_ssize_t i = 0; i < nkw; i++) argv[1 + i] = PyTuple_GET_ITEM(plan->render_kwvalues, i);
    PyObject *body = PyObject_Vectorcall(plan->render, argv, 1, plan->render_kwnames);
    if (!body) return -1;
    int rc = 1;
    if (!PyBytes_Check(body)) {
        PyErr_Format(PyExc_TypeError, "render of %R returned %R, not bytes", plan->render_type, body);
        rc = -1;
    } else if (cz_http_buf_append(out, PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body)) != CZ_HTTP_OK) {
        PyErr_NoMemory();
        rc = -1;
    }
    Py_DECREF(body);
    return rc;
}

PyObject *cz_py_direct_finish(PyObject *plan_obj) {
    return ((CzCallPlanObject *)plan_obj)->finish;
}

/* ---- CallPlan(args, *, render_type, render, render_kwargs, render_shape, status, finish, strict_content_type) -- */

static int pick(PyObject *word, const char *const *names, int n, const char *what, int *out) {
    const char *s = PyUnicode_Check(word) ? PyUnicode_AsUTF8(word) : NULL;
    for (int i = 0; s && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "invalid CallPlan %s %R", what, word);
    return -1;
}

static Py_ssize_t opt_len(PyObject *v) {
    return v == Py_None ? -1 : PyLong_AsSsize_t(v);
}

/* One argument of a plan, by position: the fields of _core.CALL_ARG_FIELDS
 * (the Python layer builds a named tuple of them, catzilla.calling.plan). */
enum {
    ARG_SOURCE,
    ARG_KEY,
    ARG_KIND,
    ARG_CONVERT,
    ARG_REQUIRED,
    ARG_DEFAULT,
    ARG_BOUNDS,
    ARG_MIN_LEN = 10,
    ARG_MAX_LEN,
    NARG_FIELDS
};
static const char *const arg_field_names[NARG_FIELDS] = {
    "source", "key", "kind", "convert", "required", "default", "gt", "ge", "lt", "le", "min_length", "max_length"};

static int read_spec(PyObject *t, arg_spec_t *a) {
    static const char *const sources[] = {"path", "query", "header", "body"};
    static const char *const kinds[] = {"str", "int", "float", "call"};
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != NARG_FIELDS) {
        PyErr_Format(PyExc_TypeError, "CallPlan argument must be a tuple of CALL_ARG_FIELDS, got %R", t);
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(t, ARG_KEY), *convert = PyTuple_GET_ITEM(t, ARG_CONVERT);
    if (pick(PyTuple_GET_ITEM(t, ARG_SOURCE), sources, 4, "source", &a->source) < 0 ||
        pick(PyTuple_GET_ITEM(t, ARG_KIND), kinds, 4, "kind", &a->kind) < 0)
        return -1;
    if ((a->kind == KIND_CALL || a->source == SRC_BODY) && !PyCallable_Check(convert)) {
        PyErr_Format(PyExc_TypeError, "CallPlan argument %R needs a callable converter", t);
        return -1;
    }
    if (a->source == SRC_BODY && a->kind != KIND_CALL) {
        PyErr_Format(PyExc_ValueError, "CallPlan body argument %R must be of kind 'call'", t);
        return -1;
    }
    a->key = PyUnicode_Check(key) ? PyUnicode_AsLatin1String(key) : NULL;
    if (!a->key) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "CallPlan key must be a str, got %R", key);
        return -1;
    }
    a->convert = Py_NewRef(convert);
    a->required = PyObject_IsTrue(PyTuple_GET_ITEM(t, ARG_REQUIRED));
    a->dflt = Py_NewRef(PyTuple_GET_ITEM(t, ARG_DEFAULT));
    for (int b = 0; b < NBOUNDS; b++) {
        PyObject *v = PyTuple_GET_ITEM(t, ARG_BOUNDS + b);
        a->bound[b] = v == Py_None ? NULL : Py_NewRef(v);
    }
    a->min_len = opt_len(PyTuple_GET_ITEM(t, ARG_MIN_LEN));
    a->max_len = opt_len(PyTuple_GET_ITEM(t, ARG_MAX_LEN));
    a->c_bounds = a->kind == KIND_INT && a->min_len < 0 && a->max_len < 0;
    for (int b = 0; b < NBOUNDS; b++) {
        int overflow = 1;
        if (!a->bound[b]) continue;
        if (PyLong_CheckExact(a->bound[b])) a->ibound[b] = PyLong_AsLongLongAndOverflow(a->bound[b], &overflow);
        if (overflow) a->c_bounds = 0; /* a float or huge bound: Python compares */
    }
    return (a->required < 0 || PyErr_Occurred()) ? -1 : 0;
}

static void CallPlan_dealloc(CzCallPlanObject *self) {
    for (Py_ssize_t i = 0; i < self->nargs; i++) {
        arg_spec_t *a = &self->args[i];
        Py_XDECREF(a->key);
        Py_XDECREF(a->convert);
        Py_XDECREF(a->dflt);
        for (int b = 0; b < NBOUNDS; b++) Py_XDECREF(a->bound[b]);
    }
    Py_XDECREF(self->render_type);
    Py_XDECREF(self->render);
    Py_XDECREF(self->render_kwnames);
    Py_XDECREF(self->render_kwvalues);
    Py_XDECREF(self->render_shape);
    Py_XDECREF(self->finish);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *CallPlan_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"args",   "render_type",         "render", "render_kwargs", "render_shape", "status",
                             "finish", "strict_content_type", NULL};
    PyObject *specs, *rtype = Py_None, *render = Py_None, *rkw = Py_None, *shape = Py_None, *finish = Py_None;
    int status = 200, strict = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|$OOOOiOp:CallPlan", kwlist, &PyList_Type, &specs, &rtype, &render,
                                     &rkw, &shape, &status, &finish, &strict))
        return NULL;
    if (shape != Py_None && cz_json_shape_check(shape) < 0) return NULL;
    if (PyList_GET_SIZE(specs) > CZ_DIRECT_MAX_ARGS) {
        return PyErr_Format(PyExc_ValueError, "CallPlan takes at most %d arguments, got %zd", CZ_DIRECT_MAX_ARGS,
                            PyList_GET_SIZE(specs));
    }
    if ((rtype != Py_None && (!PyType_Check(rtype) || !PyCallable_Check(render))) ||
        (rkw != Py_None && !PyDict_Check(rkw)) || (finish != Py_None && !PyCallable_Check(finish)) || status < 200 ||
        status > 999) {
        return PyErr_Format(PyExc_TypeError,
                            "CallPlan needs render_type a type with a callable render, render_kwargs a dict, "
                            "finish callable, status 200..999 (got status=%d)",
                            status);
    }
    CzCallPlanObject *self = (CzCallPlanObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(specs); i++) {
        self->nargs = i + 1; /* dealloc releases what read_spec took */
        if (read_spec(PyList_GET_ITEM(specs, i), &self->args[i]) < 0) goto fail;
        if (self->args[i].source == SRC_QUERY) self->uses_query = 1;
    }
    if (rtype != Py_None) {
        self->render_type = Py_NewRef(rtype);
        self->render = Py_NewRef(render);
        self->render_shape = shape == Py_None ? NULL : Py_NewRef(shape);
        if (rkw != Py_None && PyDict_GET_SIZE(rkw) > 0) {
            self->render_kwnames = PyTuple_New(PyDict_GET_SIZE(rkw));
            self->render_kwvalues = PyTuple_New(PyDict_GET_SIZE(rkw));
            if (!self->render_kwnames || !self->render_kwvalues) goto fail;
            Py_ssize_t pos = 0, i = 0;
            PyObject *k, *v;
            while (PyDict_Next(rkw, &pos, &k, &v)) {
                if (!PyUnicode_Check(k)) {
                    PyErr_Format(PyExc_TypeError, "render_kwargs keys must be str, got %R", k);
                    goto fail;
                }
                PyTuple_SET_ITEM(self->render_kwnames, i, Py_NewRef(k));
                PyTuple_SET_ITEM(self->render_kwvalues, i, Py_NewRef(v));
                i++;
            }
        }
    }
    self->finish = finish == Py_None ? NULL : Py_NewRef(finish);
    self->status = status;
    self->strict_content_type = strict;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *CallPlan_get_render_shape(CzCallPlanObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->render_shape ? self->render_shape : Py_None);
}

static PyGetSetDef CallPlan_getset[] = {
    {"render_shape", (getter)CallPlan_get_render_shape, NULL, "the shape the C core writes answers by, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject CzCallPlan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "catzilla._core.CallPlan",
    .tp_basicsize = sizeof(CzCallPlanObject),
    .tp_dealloc = (destructor)CallPlan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "CallPlan(args, *, render_type=None, render=None, render_kwargs=None, render_shape=None, status=200,\n"
              "         finish=None, strict_content_type=False):\n"
              "how the C core takes a handler's arguments from a request (see py_direct.h).",
    .tp_new = CallPlan_new,
    .tp_getset = CallPlan_getset,
};

int cz_py_direct_register(PyObject *module) {
    if (PyType_Ready(&CzCallPlan_Type) < 0) return -1;
    PyObject *fields = PyTuple_New(NARG_FIELDS);
    if (!fields) return -1;
    for (int i = 0; i < NARG_FIELDS; i++) {
        PyObject *name = PyUnicode_FromString(arg_field_names[i]);
        if (!name) {
            Py_DECREF(fields);
            return -1;
        }
        PyTuple_SET_ITEM(fields, i, name);
    }
    int rc = PyModule_AddObjectRef(module, "CALL_ARG_FIELDS", fields);
    Py_DECREF(fields);
    if (rc < 0 || PyModule_AddIntConstant(module, "CALL_PLAN_MAX_ARGS", CZ_DIRECT_MAX_ARGS) < 0) return -1;
    return PyModule_AddObjectRef(module, "CallPlan", (PyObject *)&CzCallPlan_Type);
}
