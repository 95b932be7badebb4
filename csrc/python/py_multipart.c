/* _core.parse_multipart: a multipart/form-data body (cz_multipart.h) as parts. */
#include "py_multipart.h"

#include "cz_multipart.h"
#include "py_allocator.h"

static PyObject *str_of(cz_multipart_str_t s) {
    return PyUnicode_DecodeUTF8(s.base, (Py_ssize_t)s.len, "surrogateescape");
}

/* One part as (name, filename or None, content_type, headers, data). */
static PyObject *part_tuple(const cz_multipart_part_t *part, PyObject *data) {
    PyObject *headers = PyList_New((Py_ssize_t)part->num_headers);
    if (!headers) return NULL;
    for (size_t i = 0; i < part->num_headers; i++) {
        const cz_multipart_header_t *h = &part->headers[i];
        PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(h->name.base, (Py_ssize_t)h->name.len, NULL),
                                       PyUnicode_DecodeLatin1(h->value.base, (Py_ssize_t)h->value.len, NULL));
        if (!pair) {
            Py_DECREF(headers);
            return NULL;
        }
        PyList_SET_ITEM(headers, (Py_ssize_t)i, pair);
    }
    PyObject *filename = part->has_filename ? str_of(part->filename) : Py_NewRef(Py_None);
    return Py_BuildValue("(NNNNO)", str_of(part->name), filename, str_of(part->content_type), headers, data);
}

static PyObject *parse_multipart(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *alloc_obj;
    Py_buffer body;
    const char *ctype;
    Py_ssize_t ctype_len, max_files, max_fields, max_field;
    if (!PyArg_ParseTuple(args, "O!y*s#nnn:parse_multipart", &CzAllocator_Type, &alloc_obj, &body, &ctype, &ctype_len,
                          &max_files, &max_fields, &max_field))
        return NULL;
    char boundary[CZ_MULTIPART_BOUNDARY_MAX];
    size_t blen;
    const char *reason = NULL;
    int status = cz_multipart_boundary(ctype, (size_t)ctype_len, boundary, &blen, &reason);
    if (status) {
        PyBuffer_Release(&body);
        return Py_BuildValue("(is)", status, reason ? reason : "multipart: bad Content-Type");
    }
    cz_multipart_limits_t limits = {0}; /* 0: the parser's default */
    if (max_files > 0) limits.max_files = (size_t)max_files;
    if (max_fields > 0) limits.max_fields = (size_t)max_fields;
    if (max_field > 0) limits.max_field_size = (size_t)max_field;
    cz_multipart_t p;
    cz_multipart_init(&p, ((CzAllocatorObject *)alloc_obj)->alloc, boundary, blen, &limits);
    PyObject *parts = PyList_New(0), *data = NULL, *result = NULL;
    const char *in = body.buf;
    size_t left = (size_t)body.len;
    int done = 0;
    /* Data of one part comes in views into `body` (or the parser's held
     * bytes): joined into one bytes object per part. */
    while (parts && !done) {
        size_t used = 0;
        cz_multipart_event_t ev = left ? cz_multipart_feed(&p, in, left, &used) : cz_multipart_finish(&p);
        in += used;
        left -= used;
        switch (ev) {
        case CZ_MULTIPART_PART_BEGIN:
            Py_XSETREF(data, PyBytes_FromStringAndSize(NULL, 0));
            if (!data) Py_CLEAR(parts);
            break;
        case CZ_MULTIPART_PART_DATA: {
            cz_multipart_str_t d = cz_multipart_data(&p);
            PyObject *more = PyBytes_FromStringAndSize(d.base, (Py_ssize_t)d.len);
            if (more) PyBytes_ConcatAndDel(&data, more);
            if (!more || !data) Py_CLEAR(parts);
            break;
        }
        case CZ_MULTIPART_PART_END: {
            PyObject *t = part_tuple(cz_multipart_part(&p), data);
            if (!t || PyList_Append(parts, t) < 0) Py_CLEAR(parts);
            Py_XDECREF(t);
            Py_CLEAR(data);
            break;
        }
        case CZ_MULTIPART_DONE: done = 1; break;
        case CZ_MULTIPART_ERROR:
            result = Py_BuildValue("(is)", cz_multipart_status(&p), cz_multipart_reason(&p));
            done = 1;
            break;
        case CZ_MULTIPART_NEED_MORE:
        default: break; /* left is 0 now: finish() next */
        }
    }
    cz_multipart_destroy(&p);
    PyBuffer_Release(&body);
    Py_XDECREF(data);
    if (result || !parts) {
        Py_XDECREF(parts);
        return result;
    }
    return Py_BuildValue("(iN)", 0, parts);
}

PyMethodDef cz_py_multipart_methods[] = {
    {"parse_multipart", parse_multipart, METH_VARARGS,
     "parse_multipart(allocator, body, content_type, max_files, max_fields, max_field_size) -> (0, parts) or "
     "(status, reason).\n"
     "parts: [(name, filename or None, content_type, [(header, value)], data)]; 0 limits mean the defaults."},
    {NULL, NULL, 0, NULL},
};
