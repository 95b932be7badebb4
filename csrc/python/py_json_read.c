#include "py_json_read.h"

#include <float.h>
#include <string.h>

#include "cz_json_read.h"

static PyObject *make_str(const cz_json_token_t *t) {
    if (t->len == 0) return PyUnicode_New(0, 0);
    if (t->chars == 1) { /* the interpreter's own str for a character below 256, as json.loads gives */
        const unsigned char *p = t->s;
        return PyUnicode_FromOrdinal((int)cz_json_string_next(&p));
    }
    if (!t->escaped) {
        if (t->maxchar < 0x80) { /* the bytes are the str's */
            PyObject *s = PyUnicode_New((Py_ssize_t)t->len, 0x7F);
            if (s) memcpy(PyUnicode_DATA(s), t->s, t->len);
            return s;
        }
        /* Checked UTF-8, in which 'surrogatepass' lets the surrogates through as json.loads does. */
        return PyUnicode_DecodeUTF8((const char *)t->s, (Py_ssize_t)t->len, "surrogatepass");
    }
    PyObject *s = PyUnicode_New((Py_ssize_t)t->chars, t->maxchar);
    if (!s) return NULL;
    int kind = PyUnicode_KIND(s);
    void *data = PyUnicode_DATA(s);
    const unsigned char *p = t->s;
    for (size_t i = 0; i < t->chars; i++) PyUnicode_WRITE(kind, data, (Py_ssize_t)i, cz_json_string_next(&p));
    return s;
}

/* Keys repeat: the records of one body, and of every body a route gets,
 * have the same few. A str made for a short ASCII key is kept here (its
 * hash computed once) and given out again for the same bytes, which spares
 * the allocation, the copy and the hashing that dict insertion needs.
 * Indexed by a hash of the bytes; a collision replaces the entry. Touched
 * only with the GIL held; at most KEYS strs of KEY_MAX bytes stay alive. */
#define KEYS    1024
#define KEY_MAX 32
static PyObject *key_cache[KEYS];

static uint64_t load8(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Equal bytes, for n <= KEY_MAX: 8 at a time, the last 8 overlapping. */
static int same_bytes(const unsigned char *a, const unsigned char *b, size_t n) {
    if (n < 8) { /* most keys: a loop beats a call to memcmp */
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i]) return 0;
        return 1;
    }
    for (size_t i = 0; i + 8 < n; i += 8)
        if (load8(a + i) != load8(b + i)) return 0;
    return load8(a + n - 8) == load8(b + n - 8);
}

static PyObject *make_key(const cz_json_token_t *t) {
    if (t->escaped || t->maxchar >= 0x80 || t->len == 0 || t->len > KEY_MAX) return make_str(t);
    /* The slot: the length and the first and last 8 bytes (or all of a shorter key). */
    const unsigned char *s = t->s;
    uint64_t h = t->len;
    if (t->len >= 8) {
        h ^= load8(s) * 0x9E3779B97F4A7C15u;
        h ^= load8(s + t->len - 8) * 0xC2B2AE3D27D4EB4Fu;
    } else {
        for (size_t i = 0; i < t->len; i++) h = (h ^ s[i]) * 0x100000001B3u;
    }
    h ^= h >> 29;
    PyObject **slot = &key_cache[(h ^ (h >> 17)) & (KEYS - 1)];
    PyObject *k = *slot;
    if (k && (size_t)PyUnicode_GET_LENGTH(k) == t->len && same_bytes(PyUnicode_DATA(k), s, t->len)) return Py_NewRef(k);
    if (!(k = make_str(t))) return NULL;
    if (PyObject_Hash(k) == -1) { /* cannot fail for a str; cached in it from now on */
        Py_DECREF(k);
        return NULL;
    }
    Py_XSETREF(*slot, Py_NewRef(k));
    return k;
}

/* The token's text as a C string for CPython's own conversions: on the stack
 * when short, else from the interpreter's allocator (*heap, freed by the caller). */
static const char *token_cstr(const cz_json_token_t *t, char *small, size_t small_len, char **heap) {
    char *buf = small;
    *heap = NULL;
    if (t->len >= small_len) {
        if (!(buf = *heap = PyMem_Malloc(t->len + 1))) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    memcpy(buf, t->s, t->len);
    buf[t->len] = '\0';
    return buf;
}

static PyObject *make_int(const cz_json_token_t *t) {
    const unsigned char *p = t->s, *e = t->s + t->len;
    int neg = *p == '-';
    p += neg;
    if (e - p <= 18) { /* fits in 63 bits */
        long long v = 0;
        while (p < e) v = v * 10 + (*p++ - '0');
        return PyLong_FromLongLong(neg ? -v : v);
    }
    /* Any size, and the interpreter's limit on digits (ValueError), as json.loads. */
    char small[64], *heap;
    const char *s = token_cstr(t, small, sizeof small, &heap);
    if (!s) return NULL;
    PyObject *v = PyLong_FromString(s, NULL, 10);
    PyMem_Free(heap);
    return v;
}

static PyObject *make_float(const cz_json_token_t *t) {
    /* Up to 19 significant digits and a small exponent are converted here;
     * anything else by CPython's own conversion, which is correctly rounded:
     * so is each path here, so the result is always the same double. */
    const unsigned char *p = t->s, *e = t->s + t->len;
    int neg = *p == '-';
    p += neg;
    unsigned long long m = 0; /* the significant digits, < 10^19 */
    int digits = 0, frac = 0, in_frac = 0;
    for (; p < e && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            in_frac = 1;
            continue;
        }
        if (m == 0 && *p == '0') { /* leading zeros are not significant */
            frac += in_frac;
            continue;
        }
        m = m * 10 + (unsigned)(*p - '0');
        frac += in_frac;
        if (++digits > 19) goto slow;
    }
    long exp = 0;
    if (p < e) {
        int eneg = 0, edigits = 0;
        p++;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        for (; p < e; p++) {
            if (++edigits > 4) goto slow;
            exp = exp * 10 + (*p - '0');
        }
        if (eneg) exp = -exp;
    }
    exp -= frac;
    if (m == 0) return PyFloat_FromDouble(neg ? -0.0 : 0.0);
#if FLT_EVAL_METHOD == 0
    /* Clinger's fast path: up to 15 digits and 10^k for k <= 22 are exact in
     * a double, so one multiplication or division rounds once, correctly. */
    static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (digits <= 15 && exp >= -22 && exp <= 22) {
        double d = (double)m;
        d = exp < 0 ? d / POW10[-exp] : d * POW10[exp];
        return PyFloat_FromDouble(neg ? -d : d);
    }
#endif
#if LDBL_MANT_DIG == 64 && (defined(__x86_64__) || defined(__i386__))
    /* The same with x87's 64-bit significand: up to 19 digits and 10^k for
     * k <= 27 are exact, so x is the exact value rounded once to 64 bits.
     * Rounding x to a double gives the exact value rounded to a double
     * unless x landed on a midpoint between two doubles (its 11 bits below
     * a double's are 10000000000): that case, as rare as it is, is left to
     * CPython. The results lie within 1e-27..1e46: never subnormal. */
    static const long double POW10L[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
                                         1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
                                         1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
    if (exp >= -27 && exp <= 27) {
        long double x = (long double)m;
        x = exp < 0 ? x / POW10L[-exp] : x * POW10L[exp];
        unsigned long long significand;
        memcpy(&significand, &x, sizeof significand); /* x87: the low 8 bytes, integer bit explicit */
        if ((significand & 0x7FF) != 0x400) {
            double d = (double)x;
            return PyFloat_FromDouble(neg ? -d : d);
        }
    }
#endif
slow:;
    char small[64], *heap;
    const char *s = token_cstr(t, small, sizeof small, &heap);
    if (!s) return NULL;
    /* What float() and json.loads use; overflow gives +-inf, as theirs does. */
    double d = PyOS_string_to_double(s, NULL, NULL);
    PyMem_Free(heap);
    if (d == -1.0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(d);
}

static PyObject *json_decode_error(const char *msg, const unsigned char *buf, size_t len, size_t at) {
    PyObject *json = PyImport_ImportModule("json");
    if (!json) return NULL;
    PyObject *cls = PyObject_GetAttrString(json, "JSONDecodeError");
    Py_DECREF(json);
    if (!cls) return NULL;
    /* json counts positions in characters of the decoded text, BOM excluded. */
    size_t skip = len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF ? 3 : 0;
    Py_ssize_t pos = 0;
    for (size_t i = skip; i < at; i++) pos += (buf[i] & 0xC0) != 0x80;
    PyObject *doc = PyUnicode_DecodeUTF8((const char *)buf + skip, (Py_ssize_t)(len - skip), "replace");
    if (doc) {
        PyObject *exc = PyObject_CallFunction(cls, "sOn", msg, doc, pos);
        if (exc) {
            PyErr_SetObject(cls, exc);
            Py_DECREF(exc);
        }
        Py_DECREF(doc);
    }
    Py_DECREF(cls);
    return NULL;
}

/* Values waiting for their container to close: the items of every open
 * array and the keys and values of every open object, in document order.
 * A container is made when it closes, at its final size (no list or dict
 * grows item by item). Starts on the C stack; grows through PyMem. */
typedef struct {
    PyObject **v;
    size_t n, cap;
    PyObject *inline_v[256];
} values_t;

static int push(values_t *vs, PyObject *v) {
    if (vs->n == vs->cap) {
        size_t cap = vs->cap * 2;
        PyObject **grown;
        if (vs->v == vs->inline_v) {
            if ((grown = PyMem_Malloc(cap * sizeof *grown))) memcpy(grown, vs->v, vs->n * sizeof *grown);
        } else {
            grown = cap <= PY_SSIZE_T_MAX / sizeof *grown ? PyMem_Realloc(vs->v, cap * sizeof *grown) : NULL;
        }
        if (!grown) {
            Py_DECREF(v);
            PyErr_NoMemory();
            return -1;
        }
        vs->v = grown;
        vs->cap = cap;
    }
    vs->v[vs->n++] = v;
    return 0;
}

/* The list or dict of the values from `start` on, which it takes over. */
static PyObject *collect(values_t *vs, size_t start, int object) {
    size_t n = vs->n - start;
    PyObject **v = vs->v + start, *c;
    if (!object) {
        if (!(c = PyList_New((Py_ssize_t)n))) return NULL;
        for (size_t i = 0; i < n; i++) PyList_SET_ITEM(c, (Py_ssize_t)i, v[i]); /* steals */
        vs->n = start;
        return c;
    }
    /* Duplicate keys: the last value, in the first one's place, as json.loads. */
    if (!(c = _PyDict_NewPresized((Py_ssize_t)(n / 2)))) return NULL;
    for (size_t i = 0; i < n; i += 2) {
        if (PyDict_SetItem(c, v[i], v[i + 1]) < 0) {
            Py_DECREF(c);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) Py_DECREF(v[i]);
    vs->n = start;
    return c;
}

/* The value of the document, or NULL with an exception; *declined when the
 * reader found an error or a conversion refused (the fallback decides then). */
static PyObject *build(const unsigned char *buf, size_t len, int *declined) {
    cz_json_reader_t r;
    cz_json_token_t t;
    size_t starts[CZ_JSON_MAX_DEPTH]; /* where each open container's values begin */
    values_t vs;
    PyObject *v;
    vs.v = vs.inline_v;
    vs.n = 0;
    vs.cap = sizeof vs.inline_v / sizeof vs.inline_v[0];
    cz_json_read_init(&r, buf, len);
    *declined = 0;
    for (;;) {
        switch (cz_json_read_next(&r, &t)) {
        case CZ_JSON_T_END:
            v = vs.v[0]; /* the one value left */
            if (vs.v != vs.inline_v) PyMem_Free(vs.v);
            return v;
        case CZ_JSON_T_ERROR:
            if (r.error == CZ_JSON_EDEPTH) {
                json_decode_error("Arrays and objects nested deeper than 512 levels", buf, len, r.error_at);
            } else {
                *declined = 1;
            }
            goto fail;
        case CZ_JSON_T_OBJECT:
        case CZ_JSON_T_ARRAY: starts[r.depth - 1] = vs.n; continue;
        case CZ_JSON_T_OBJECT_END:
        case CZ_JSON_T_ARRAY_END: v = collect(&vs, starts[r.depth], t.kind == CZ_JSON_T_OBJECT_END); break;
        case CZ_JSON_T_KEY: v = make_key(&t); break;
        case CZ_JSON_T_STRING: v = make_str(&t); break;
        case CZ_JSON_T_INT: v = make_int(&t); break;
        case CZ_JSON_T_FLOAT: v = make_float(&t); break;
        case CZ_JSON_T_TRUE: v = Py_NewRef(Py_True); break;
        case CZ_JSON_T_FALSE: v = Py_NewRef(Py_False); break;
        case CZ_JSON_T_NULL: v = Py_NewRef(Py_None); break;
        case CZ_JSON_T_NAN: v = PyFloat_FromDouble(Py_NAN); break;
        case CZ_JSON_T_INFINITY: v = PyFloat_FromDouble(Py_HUGE_VAL); break;
        case CZ_JSON_T_NEG_INFINITY: v = PyFloat_FromDouble(-Py_HUGE_VAL); break;
        default:
            v = NULL;
            PyErr_SetString(PyExc_SystemError, "json_read: unknown token");
            break;
        }
        if (!v) {
            /* The integer digit limit: json.loads raises it, or an earlier error. */
            if (PyErr_ExceptionMatches(PyExc_ValueError)) *declined = 1;
            goto fail;
        }
        if (push(&vs, v) < 0) goto fail;
    }
fail:
    for (size_t i = 0; i < vs.n; i++) Py_DECREF(vs.v[i]);
    if (vs.v != vs.inline_v) PyMem_Free(vs.v);
    return NULL;
}

static PyObject *json_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    (void)mod;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "json_read() takes 2 arguments (data, fallback), %zd given", nargs);
        return NULL;
    }
    PyObject *data = args[0], *fallback = args[1];
    PyObject *v;
    int declined;
    /* The values being built hold no cycle, so a collection run meanwhile
     * (every 700 new containers) could free none of them: it would only
     * walk them, over and over on a big body. Nothing else runs meanwhile
     * (the GIL stays held), and the collector's state is restored after. */
    int gc_was = PyGC_Disable();
    if (PyBytes_Check(data)) { /* subclasses too (the request body is one): immutable all the same */
        v = build((const unsigned char *)PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), &declined);
    } else if (PyByteArray_Check(data)) {
        Py_buffer view; /* exported: the bytearray cannot be resized under the reader */
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            if (gc_was) PyGC_Enable();
            return NULL;
        }
        v = build(view.buf, (size_t)view.len, &declined);
        PyBuffer_Release(&view);
    } else {
        if (gc_was) PyGC_Enable();
        return PyObject_CallOneArg(fallback, data);
    }
    if (gc_was) PyGC_Enable();
    if (v || !declined) return v;
    PyErr_Clear();
    return PyObject_CallOneArg(fallback, data);
}

PyMethodDef cz_py_json_read_methods[] = {
    {"json_read", (PyCFunction)(void (*)(void))json_read, METH_FASTCALL,
     "json_read(data, fallback, /): json.loads(data)'s value, read in C; fallback(data) decides whatever the "
     "reader does not (errors, UTF-16/32, str input). Nesting deeper than 512 levels raises JSONDecodeError."},
    {NULL, NULL, 0, NULL},
};
