/* _core.parse_multipart(): a whole multipart/form-data body, parsed by
 * cz_multipart (csrc/multipart/cz_multipart.h), as a list of parts. The
 * parser's memory comes from the app's allocator (request purpose); the
 * parts are Python objects. */
#ifndef CZ_PY_MULTIPART_H
#define CZ_PY_MULTIPART_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyMethodDef cz_py_multipart_methods[];

#endif
