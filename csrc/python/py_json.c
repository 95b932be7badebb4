#include "py_json.h"

#include <math.h>
#include <string.h>

/* Deeper than this is almost surely a cycle; Python's json decides then. */
#define MAX_DEPTH 256

static int put(cz_http_buf_t *b, const char *s, size_t n) {
    if (cz_http_buf_append(b, s, n) != CZ_HTTP_OK) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int put_string(cz_http_buf_t *b, PyObject *str) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(str, &n);
    if (!s) return -1;
    /* Worst case every byte becomes \u00XX. */
    if (cz_http_buf_reserve(b, (size_t)n * 6 + 2) != CZ_HTTP_OK) {
        PyErr_NoMemory();
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        *o++ = '\\';
        switch (ch) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static cz_json_result_t write_value(PyObject *obj, cz_http_buf_t *b, int depth);

static cz_json_result_t write_float(PyObject *obj, cz_http_buf_t *b) {
    double d = PyFloat_AS_DOUBLE(obj);
    if (!isfinite(d)) {
        PyErr_Format(PyExc_ValueError, "Out of range float values are not JSON compliant: %R", obj);
        return CZ_JSON_ERROR;
    }
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return CZ_JSON_ERROR;
    int rc = put(b, s, strlen(s));
    PyMem_Free(s);
    return rc ? CZ_JSON_ERROR : CZ_JSON_OK;
}

static cz_json_result_t write_int(PyObject *obj, cz_http_buf_t *b) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred()) return CZ_JSON_ERROR;
        char tmp[24];
        int n = snprintf(tmp, sizeof(tmp), "%lld", v);
        return put(b, tmp, (size_t)n) ? CZ_JSON_ERROR : CZ_JSON_OK;
    }
    PyObject *s = PyObject_Str(obj);
    if (!s) return CZ_JSON_ERROR;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    int rc = u ? put(b, u, (size_t)n) : -1;
    Py_DECREF(s);
    return rc ? CZ_JSON_ERROR : CZ_JSON_OK;
}

static cz_json_result_t write_seq(PyObject *obj, cz_http_buf_t *b, int depth) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    PyObject **items = PySequence_Fast_ITEMS(obj);
    if (put(b, "[", 1)) return CZ_JSON_ERROR;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && put(b, ",", 1)) return CZ_JSON_ERROR;
        cz_json_result_t r = write_value(items[i], b, depth + 1);
        if (r != CZ_JSON_OK) return r;
    }
    return put(b, "]", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
}

static cz_json_result_t write_dict(PyObject *obj, cz_http_buf_t *b, int depth) {
    if (put(b, "{", 1)) return CZ_JSON_ERROR;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int first = 1;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        /* Non-str keys (json converts ints, floats, ...) are Python's business. */
        if (!PyUnicode_CheckExact(key)) return CZ_JSON_UNSUPPORTED;
        if (!first && put(b, ",", 1)) return CZ_JSON_ERROR;
        first = 0;
        if (put_string(b, key) || put(b, ":", 1)) return CZ_JSON_ERROR;
        cz_json_result_t r = write_value(value, b, depth + 1);
        if (r != CZ_JSON_OK) return r;
    }
    return put(b, "}", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
}

static cz_json_result_t write_value(PyObject *obj, cz_http_buf_t *b, int depth) {
    if (depth > MAX_DEPTH) return CZ_JSON_UNSUPPORTED;
    if (obj == Py_None) return put(b, "null", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (obj == Py_True) return put(b, "true", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (obj == Py_False) return put(b, "false", 5) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (PyUnicode_CheckExact(obj)) return put_string(b, obj) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (PyLong_CheckExact(obj)) return write_int(obj, b);
    if (PyFloat_CheckExact(obj)) return write_float(obj, b);
    if (PyDict_CheckExact(obj)) {
        if (Py_EnterRecursiveCall(" while writing JSON")) return CZ_JSON_ERROR;
        cz_json_result_t r = write_dict(obj, b, depth);
        Py_LeaveRecursiveCall();
        return r;
    }
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
        if (Py_EnterRecursiveCall(" while writing JSON")) return CZ_JSON_ERROR;
        cz_json_result_t r = write_seq(obj, b, depth);
        Py_LeaveRecursiveCall();
        return r;
    }
    return CZ_JSON_UNSUPPORTED;
}

cz_json_result_t cz_json_write(PyObject *obj, cz_http_buf_t *out) {
    size_t start = out->len;
    cz_json_result_t r = write_value(obj, out, 0);
    if (r != CZ_JSON_OK) out->len = start;
    return r;
}
