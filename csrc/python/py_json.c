#include "py_json.h"

#include "py_allocator.h"

#include <math.h>
#include <stdint.h>
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

/* 1 for the bytes a JSON string escapes: the controls, '"' and '\\'. */
static const unsigned char ESCAPED[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1,
};

/* Nonzero when one of the 8 bytes of `w` is escaped: below 0x20, '"' or
 * '\\'. Exact for "any" (the carries of the zero-byte test only spill above
 * a byte that is a hit), and bytes >= 0x80 never hit, so UTF-8 passes. */
static inline uint64_t escapes8(uint64_t w) {
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
}

/* The rest of put_string from byte `i` on (bytes before it are written;
 * the room is reserved): runs copied whole, escapes written as JSON's. */
__attribute__((noinline)) static int put_escaped(cz_http_buf_t *b, const char *s, Py_ssize_t n, Py_ssize_t i,
                                                 char trail) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    char *o = b->data + b->len + 1 + i;
    for (Py_ssize_t run = i;;) {
        while (i < n && !ESCAPED[u[i]]) i++;
        memcpy(o, s + run, (size_t)(i - run));
        o += i - run;
        if (i == n) break;
        unsigned char ch = u[i++];
        run = i;
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
    if (trail) *o++ = trail;
    b->len = (size_t)(o - b->data);
    return 0;
}

/* `str` as a JSON string, then `trail` (a member's ':'), unless it is 0. */
static inline __attribute__((always_inline)) int put_string(cz_http_buf_t *b, PyObject *str, char trail) {
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_IS_COMPACT_ASCII(str)) { /* most keys and values: their bytes are at hand */
        s = (const char *)PyUnicode_DATA(str);
        n = PyUnicode_GET_LENGTH(str);
    } else if (!(s = PyUnicode_AsUTF8AndSize(str, &n))) {
        return -1;
    }
    /* Worst case every byte becomes \u00XX. */
    if (cz_http_buf_reserve(b, (size_t)n * 6 + 3) != CZ_HTTP_OK) {
        PyErr_NoMemory();
        return -1;
    }
    const unsigned char *u = (const unsigned char *)s;
    char *o = b->data + b->len;
    *o++ = '"';
    /* Most strings escape nothing: test and copy them a word at a time,
     * never touching a byte outside the string or its room. */
    Py_ssize_t i = 0;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, u + i, 8);
        if (escapes8(w)) goto escaping;
        memcpy(o + i, &w, 8);
    }
    if (i < n) {
        if (n >= 8) { /* the last 8 bytes, overlapping what was copied */
            memcpy(&w, u + n - 8, 8);
            if (escapes8(w)) goto escaping;
            memcpy(o + n - 8, &w, 8);
        } else if (n >= 4) { /* two overlapping halves: every byte is in one */
            uint32_t lo, hi;
            memcpy(&lo, u, 4);
            memcpy(&hi, u + n - 4, 4);
            if (escapes8(lo | (uint64_t)hi << 32)) goto escaping;
            memcpy(o, &lo, 4);
            memcpy(o + n - 4, &hi, 4);
        } else { /* 1-3 bytes: first, middle and last, padded with 'a' (not escaped) */
            w = u[0] | (uint64_t)u[n / 2] << 8 | (uint64_t)u[n - 1] << 16 | UINT64_C(0x6161616161) << 24;
            if (escapes8(w)) goto escaping;
            o[0] = (char)u[0];
            o[n / 2] = (char)u[n / 2];
            o[n - 1] = (char)u[n - 1];
        }
    }
    o += n;
    *o++ = '"';
    if (trail) *o++ = trail;
    b->len = (size_t)(o - b->data);
    return 0;
escaping:
    return put_escaped(b, s, n, i, trail);
}
static cz_json_result_t write_value(PyObject *obj, cz_http_buf_t *b, int depth);

/* "00" to "99": digits are written two per division. */
static const char DIGITS2[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                 "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

/* repr(d) without dtoa for the floats handlers carry, 1e-4 <= |d| < 1e15
 * (where repr writes no exponent): the shortest decimal that reads back as
 * d, the nearest to d among those, found with exact integers. d = m / 2^s
 * with s in [3, 66] there; scaled by 10^k to 17 integer digits, the values
 * that round to d form [lo, hi], and every bound fits 128 bits (4m < 2^55,
 * 10^k <= 10^21 < 2^70). The bounds, halfway to the next doubles, have 19 or
 * more digits here, so no candidate sits on one: whether ties round to even
 * never matters. Returns the length written to `out`, or 0: use repr. */
static int short_decimal(double d, char out[32]) {
    /* 10^k = P10[k % 10] * 10^(10 * (k / 10)), k <= 21 */
    static const uint64_t P10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};
    static const double p10[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                 1e6,  1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    typedef unsigned __int128 u128;
    double a = fabs(d);
    int len = 0;
    if (signbit(d)) out[len++] = '-';
    if (a == 0.0) {
        memcpy(out + len, "0.0", 3);
        return len + 3;
    }
    if (!(a >= 1e-4 && a < 1e15)) return 0;
    uint64_t bits;
    memcpy(&bits, &a, 8);
    int s = 1075 - (int)(bits >> 52); /* a = m / 2^s, normal: 2^52 <= m < 2^53 */
    uint64_t m = (bits & ((UINT64_C(1) << 52) - 1)) | UINT64_C(1) << 52;
    int idigits = -3; /* a < 10^idigits, roughly: a retry below makes it exact enough */
    while (idigits < 15 && a >= p10[idigits + 4]) idigits++;
    int k = 17 - idigits, sh = s + 2;
    uint64_t lo, hi;
    u128 c;
    for (;;) {
        u128 scale = P10[k % 10];
        for (int i = 0; i < k / 10; i++) scale *= UINT64_C(10000000000);
        /* In units of 2^-(s+2): the value and the bounds of its rounding interval
         * (half as far below at a power of two, where the gap below halves). */
        c = (u128)(4 * m) * scale;
        u128 up = (u128)(4 * m + 2) * scale, down = (u128)(4 * m - (m == UINT64_C(1) << 52 ? 1 : 2)) * scale;
        lo = (uint64_t)(down >> sh) + ((down & (((u128)1 << sh) - 1)) != 0); /* the first integer in */
        hi = (uint64_t)(up >> sh);                                           /* the last */
        if (hi >= UINT64_C(10000000000000000) || k == 21) break;
        k++; /* under 17 digits: one more so every 17-digit decimal is an integer here */
    }
    /* The most trailing zeros an integer in [lo, hi] can have: the fewest
     * digits. A multiple of 10^(j+1) in the range implies one of 10^j, so
     * steps of 10^8, 10^4, 10^2 and 10 find j with a few divisions, not 17. */
    int j = 0;
    uint64_t p = 1;
    /* each step a constant divisor: the compiler multiplies, no div */
#define CZ_ZEROS_STEP(q, zeros)                                                                                        \
    while ((lo + (q) - 1) / (q) <= hi / (q)) {                                                                         \
        lo = (lo + (q) - 1) / (q);                                                                                     \
        hi /= (q);                                                                                                     \
        p *= (q);                                                                                                      \
        j += (zeros);                                                                                                  \
    }
    CZ_ZEROS_STEP(UINT64_C(100000000), 8)
    CZ_ZEROS_STEP(UINT64_C(10000), 4)
    CZ_ZEROS_STEP(UINT64_C(100), 2)
    CZ_ZEROS_STEP(UINT64_C(10), 1)
#undef CZ_ZEROS_STEP
    /* Of the candidates t * 10^j, t in [lo, hi], the nearest to the value. */
    u128 unit = (u128)p << sh;
    uint64_t t = (uint64_t)(c >> sh) / p;
    if (t < lo) t = lo;
    else if (t >= hi) t = hi;
    else {
        u128 below = c - (u128)t * unit, above = (u128)(t + 1) * unit - c;
        if (above < below || (above == below && (t & 1))) t++;
    }
    /* t's digits, the point placed by the exponent j - k. */
    char dig[24];
    int nd = 0;
    uint64_t v = t;
    for (; v >= 100; v /= 100) { /* two at a time, lowest first (dig is reversed) */
        dig[nd++] = DIGITS2[2 * (v % 100) + 1];
        dig[nd++] = DIGITS2[2 * (v % 100)];
    }
    if (v >= 10) {
        dig[nd++] = DIGITS2[2 * v + 1];
        dig[nd++] = DIGITS2[2 * v];
    } else if (v) {
        dig[nd++] = (char)('0' + v);
    }
    int point = nd + j - k; /* digits before the point */
    if (point <= 0) {
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -point; i++) out[len++] = '0';
        while (nd) out[len++] = dig[--nd];
    } else {
        int i = nd;
        for (int w = 0; w < point; w++) out[len++] = i ? dig[--i] : '0';
        out[len++] = '.';
        if (!i) out[len++] = '0';
        while (i) out[len++] = dig[--i];
    }
    return len;
}

static cz_json_result_t write_float(PyObject *obj, cz_http_buf_t *b) {
    double d = PyFloat_AS_DOUBLE(obj);
    if (!isfinite(d)) {
        PyErr_Format(PyExc_ValueError, "Out of range float values are not JSON compliant: %R", obj);
        return CZ_JSON_ERROR;
    }
    if (cz_http_buf_reserve(b, 32) != CZ_HTTP_OK) {
        PyErr_NoMemory();
        return CZ_JSON_ERROR;
    }
    int n = short_decimal(d, b->data + b->len);
    if (n > 0) {
        b->len += (size_t)n;
        return CZ_JSON_OK;
    }
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return CZ_JSON_ERROR;
    int rc = put(b, s, strlen(s));
    PyMem_Free(s);
    return rc ? CZ_JSON_ERROR : CZ_JSON_OK;
}

/* The value of an int of one machine digit (most ints a handler returns)
 * without a call; 0 where it has more. */
static inline int small_int(PyObject *obj, long long *v) {
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)obj)) return 0;
    *v = (long long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
#else
    Py_ssize_t size = Py_SIZE(obj);
    if (size < -1 || size > 1) return 0;
    *v = (long long)size * (long long)((PyLongObject *)obj)->ob_digit[0];
#endif
    return 1;
}

/* `v` in decimal. */
static inline __attribute__((always_inline)) int put_long(cz_http_buf_t *b, long long v) {
    if (cz_http_buf_reserve(b, 20) != CZ_HTTP_OK) { /* "-" and 19 digits */
        PyErr_NoMemory();
        return -1;
    }
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t n = 1;
    for (unsigned long long t = u; t >= 10; t /= 10) n++;
    char *o = b->data + b->len;
    if (v < 0) *o++ = '-';
    b->len = (size_t)(o + n - b->data);
    for (; u >= 100; u /= 100, n -= 2) /* digits right to left, two at a time: no printf */
        memcpy(o + n - 2, DIGITS2 + 2 * (u % 100), 2);
    if (u >= 10) memcpy(o + n - 2, DIGITS2 + 2 * u, 2);
    else o[n - 1] = (char)('0' + u);
    return 0;
}

static cz_json_result_t write_int(PyObject *obj, cz_http_buf_t *b) {
    int overflow = 0;
    long long v;
    if (!small_int(obj, &v)) v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred()) return CZ_JSON_ERROR;
        return put_long(b, v) ? CZ_JSON_ERROR : CZ_JSON_OK;
    }
    PyObject *s = PyObject_Str(obj);
    if (!s) return CZ_JSON_ERROR;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    int rc = u ? put(b, u, (size_t)n) : -1;
    Py_DECREF(s);
    return rc ? CZ_JSON_ERROR : CZ_JSON_OK;
}

/* A container's item: the scalars most answers are made of written here,
 * in the container's loop, the rest by write_value. */
static inline __attribute__((always_inline)) cz_json_result_t write_item(PyObject *v, cz_http_buf_t *b, int depth) {
    long long i;
    if (PyUnicode_CheckExact(v)) return put_string(b, v, 0) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (PyLong_CheckExact(v) && small_int(v, &i)) return put_long(b, i) ? CZ_JSON_ERROR : CZ_JSON_OK;
    return write_value(v, b, depth);
}

static cz_json_result_t write_seq(PyObject *obj, cz_http_buf_t *b, int depth) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    PyObject **items = PySequence_Fast_ITEMS(obj);
    if (put(b, "[", 1)) return CZ_JSON_ERROR;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && put(b, ",", 1)) return CZ_JSON_ERROR;
        cz_json_result_t r = write_item(items[i], b, depth + 1);
        if (r != CZ_JSON_OK) return r;
    }
    return put(b, "]", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
}

/* One member, "key":value, with the comma before it unless it is the first. */
static inline cz_json_result_t write_member(PyObject *key, PyObject *value, cz_http_buf_t *b, int depth, int first) {
    /* Non-str keys (json converts ints, floats, ...) are Python's business. */
    if (!PyUnicode_CheckExact(key)) return CZ_JSON_UNSUPPORTED;
    if ((!first && put(b, ",", 1)) || put_string(b, key, ':')) return CZ_JSON_ERROR;
    return write_item(value, b, depth + 1);
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
/* CPython 3.11-3.13's dict keys object and entries (Include/internal/
 * pycore_dict.h), for walking a combined table's entries in order without a
 * PyDict_Next call per member (a fifth of a big answer's time). Nothing the
 * writer calls runs Python code, so the table cannot change under the walk. */
#define CZ_DICT_WALK 1
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind; /* 0: general entries; else str keys only */
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[]; /* 1 << dk_log2_index_bytes bytes, then the entries */
} dict_keys_t;
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key, *me_value;
} dict_entry_t;
typedef struct {
    PyObject *me_key, *me_value;
} dict_str_entry_t;
#endif

static cz_json_result_t write_dict(PyObject *obj, cz_http_buf_t *b, int depth) {
    cz_json_result_t r = CZ_JSON_OK;
    int first = 1;
    if (put(b, "{", 1)) return CZ_JSON_ERROR;
#ifdef CZ_DICT_WALK
    PyDictObject *d = (PyDictObject *)obj;
    if (!d->ma_values) { /* combined: the values are in the entries (split tables: PyDict_Next) */
        dict_keys_t *k = (dict_keys_t *)d->ma_keys;
        const char *entries = k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes);
        Py_ssize_t n = k->dk_nentries;
        if (k->dk_kind) {
            const dict_str_entry_t *e = (const dict_str_entry_t *)entries;
            for (Py_ssize_t i = 0; i < n && r == CZ_JSON_OK; i++) /* a deleted entry has no value */
                if (e[i].me_value) r = write_member(e[i].me_key, e[i].me_value, b, depth, first), first = 0;
        } else {
            const dict_entry_t *e = (const dict_entry_t *)entries;
            for (Py_ssize_t i = 0; i < n && r == CZ_JSON_OK; i++)
                if (e[i].me_value) r = write_member(e[i].me_key, e[i].me_value, b, depth, first), first = 0;
        }
        goto done;
    }
#endif
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (r == CZ_JSON_OK && PyDict_Next(obj, &pos, &key, &value))
        r = write_member(key, value, b, depth, first), first = 0;
#ifdef CZ_DICT_WALK
done:
#endif
    if (r != CZ_JSON_OK) return r;
    return put(b, "}", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
}

static cz_json_result_t write_value(PyObject *obj, cz_http_buf_t *b, int depth) {
    if (depth > MAX_DEPTH) return CZ_JSON_UNSUPPORTED;
    if (obj == Py_None) return put(b, "null", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (obj == Py_True) return put(b, "true", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (obj == Py_False) return put(b, "false", 5) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (PyUnicode_CheckExact(obj)) return put_string(b, obj, 0) ? CZ_JSON_ERROR : CZ_JSON_OK;
    if (PyLong_CheckExact(obj)) return write_int(obj, b);
    if (PyFloat_CheckExact(obj)) return write_float(obj, b);
    /* MAX_DEPTH bounds the recursion: no Py_EnterRecursiveCall per container. */
    if (PyDict_CheckExact(obj)) return write_dict(obj, b, depth);
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) return write_seq(obj, b, depth);
    return CZ_JSON_UNSUPPORTED;
}

/* ---- shapes ---- */

/* Past one kind: any "n" and "l" prefixes, then the scalar letter. */
static const char *skip_kind(const char *k) {
    while (*k == 'n' || *k == 'l') k++;
    return k + 1;
}

/* `v` as its kind `*k` (advanced past it), or UNSUPPORTED where the library
 * would write something else or warn. The depth is bounded by the kind. */
static cz_json_result_t write_kind(PyObject *v, const char **k, cz_http_buf_t *b) {
    switch (*(*k)++) {
    case 'n':
        if (v != Py_None) return write_kind(v, k, b);
        *k = skip_kind(*k);
        return put(b, "null", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
    case 'l': {
        if (!PyList_CheckExact(v)) return CZ_JSON_UNSUPPORTED;
        const char *item = *k;
        *k = skip_kind(item);
        if (put(b, "[", 1)) return CZ_JSON_ERROR;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            const char *ik = item;
            if (i && put(b, ",", 1)) return CZ_JSON_ERROR;
            cz_json_result_t r = write_kind(PyList_GET_ITEM(v, i), &ik, b);
            if (r != CZ_JSON_OK) return r;
        }
        return put(b, "]", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
    }
    case 's':
        if (!PyUnicode_CheckExact(v)) return CZ_JSON_UNSUPPORTED;
        if (put_string(b, v, 0) == 0) return CZ_JSON_OK;
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return CZ_JSON_ERROR;
        PyErr_Clear(); /* a lone surrogate: the library's own rule applies */
        return CZ_JSON_UNSUPPORTED;
    case 'i': return PyLong_CheckExact(v) ? write_int(v, b) : CZ_JSON_UNSUPPORTED;
    case 'f': {
        if (!PyFloat_CheckExact(v)) return CZ_JSON_UNSUPPORTED;
        /* Below 1e-4 repr() switches to 1e-05 where pydantic writes 0.00001;
         * non-finite values follow the model's ser_json_inf_nan. */
        double d = fabs(PyFloat_AS_DOUBLE(v));
        if (!isfinite(d) || (d != 0.0 && d < 1e-4)) return CZ_JSON_UNSUPPORTED;
        return write_float(v, b);
    }
    case 'b':
        if (v == Py_True) return put(b, "true", 4) ? CZ_JSON_ERROR : CZ_JSON_OK;
        if (v == Py_False) return put(b, "false", 5) ? CZ_JSON_ERROR : CZ_JSON_OK;
        return CZ_JSON_UNSUPPORTED;
    default: return CZ_JSON_UNSUPPORTED;
    }
}

int cz_json_shape_check(PyObject *shape) {
    if (!PyTuple_Check(shape)) goto bad;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(shape); i++) {
        PyObject *f = PyTuple_GET_ITEM(shape, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 1)) || !PyUnicode_IS_COMPACT_ASCII(PyTuple_GET_ITEM(f, 1)))
            goto bad;
        const char *k = (const char *)PyUnicode_DATA(PyTuple_GET_ITEM(f, 1));
        while (*k == 'n' || *k == 'l') k++;
        if (!k[0] || !strchr("sifb", k[0]) || k[1]) {
            PyErr_Format(PyExc_ValueError, "invalid kind %R for shape field %R", PyTuple_GET_ITEM(f, 1),
                         PyTuple_GET_ITEM(f, 0));
            return -1;
        }
    }
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "a shape is a tuple of (name, kind) str pairs, got %R", shape);
    return -1;
}

cz_json_result_t cz_json_write_shape(PyObject *dict, PyObject *shape, cz_http_buf_t *out) {
    size_t start = out->len;
    cz_json_result_t r = put(out, "{", 1) ? CZ_JSON_ERROR : CZ_JSON_OK;
    for (Py_ssize_t i = 0; r == CZ_JSON_OK && i < PyTuple_GET_SIZE(shape); i++) {
        PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(shape, i), 0);
        const char *kind = (const char *)PyUnicode_DATA(PyTuple_GET_ITEM(PyTuple_GET_ITEM(shape, i), 1));
        PyObject *v = PyDict_GetItemWithError(dict, name); /* kinds are ASCII: cz_json_shape_check */
        if (!v) r = PyErr_Occurred() ? CZ_JSON_ERROR : CZ_JSON_UNSUPPORTED;
        else if ((i && put(out, ",", 1)) || put_string(out, name, ':')) r = CZ_JSON_ERROR;
        else r = write_kind(v, &kind, out);
    }
    if (r == CZ_JSON_OK && put(out, "}", 1)) r = CZ_JSON_ERROR;
    if (r != CZ_JSON_OK) out->len = start;
    return r;
}

cz_json_result_t cz_json_write(PyObject *obj, cz_http_buf_t *out) {
    size_t start = out->len;
    cz_json_result_t r = write_value(obj, out, 0);
    if (r != CZ_JSON_OK) out->len = start;
    return r;
}

static PyObject *json_write(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    (void)mod;
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &CzAllocator_Type))
        return PyErr_Format(PyExc_TypeError, "json_write(allocator, obj) takes an Allocator and a value");
    cz_http_buf_t *b = &((CzAllocatorObject *)args[0])->json_scratch;
    cz_json_result_t r = cz_json_write(args[1], b);
    PyObject *out = r == CZ_JSON_OK            ? PyBytes_FromStringAndSize(b->data, (Py_ssize_t)b->len)
                    : r == CZ_JSON_UNSUPPORTED ? Py_NewRef(Py_None)
                                               : NULL;
    cz_http_buf_reset(b, CZ_JSON_SCRATCH_KEEP);
    return out;
}

PyMethodDef cz_py_json_write_methods[] = {
    {"json_write", (PyCFunction)(void (*)(void))json_write, METH_FASTCALL,
     "json_write(allocator, obj, /) -> bytes | None: obj as the server writes a returned value (compact, UTF-8), "
     "or None where it leaves the value to Python's json."},
    {NULL, NULL, 0, NULL},
};
