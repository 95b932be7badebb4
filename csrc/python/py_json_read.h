/*
 * catzilla._core.json_read(data, fallback): Python values from a JSON
 * document, built from the tokens of csrc/json/cz_json_read.h. The values
 * are json.loads(data)'s, type for type: int for integers of any size
 * (within sys.get_int_max_str_digits()), float (the double nearest the
 * text, as float() gives it: computed here for up to 19 significant digits
 * within 10^-27..10^27 of them, by CPython's PyOS_string_to_double
 * otherwise), str (lone surrogates included), list, dict (the last of
 * duplicate keys wins, in the first one's place), True, False, None.
 *
 * Errors
 *   `fallback` is json.loads (or anything that behaves as it). It is called
 *   with `data`, and its result or exception is json_read's, whenever the
 *   reader does not produce the value itself: `data` is neither bytes nor
 *   bytearray, is UTF-16 or UTF-32, is not JSON, is not UTF-8, or holds an
 *   integer beyond the digit limit. So every error is exactly json.loads's
 *   (JSONDecodeError with its msg, pos, lineno and colno, UnicodeDecodeError,
 *   ValueError for the digit limit), and only the error path parses twice.
 *   The exception is nesting: deeper than CZ_JSON_MAX_DEPTH (512) arrays and
 *   objects raise json.JSONDecodeError("Arrays and objects nested deeper
 *   than 512 levels", ...) at the bracket that goes too deep, where
 *   json.loads goes as deep as the interpreter's recursion limit lets it
 *   and then raises RecursionError (not a ValueError: a server would answer
 *   500 instead of 400/422). MemoryError propagates.
 *
 * Memory
 *   Values are allocated by the interpreter's allocators; on any error
 *   everything built so far is released. Values wait on one stack until
 *   their array or object closes, which is then made at its final size; the
 *   stack starts in 2 KiB of C stack and grows with PyMem (it holds at most
 *   one pointer per value of the document). Bytearray input is locked
 *   against resizing while it is read. The cyclic collector is paused while
 *   a document is read (the values hold no cycle: a collection would only
 *   walk them) and restored after.
 *
 *   Short ASCII keys (up to 32 bytes) are kept in a cache of 1,024 strs, so
 *   the same key is the same str object from one body to the next and its
 *   hash is computed once; a slot's str is replaced by a new key of its
 *   slot, so the cache holds at most 1,024 strs of at most 32 characters.
 *
 * Threads
 *   Called with the GIL held, which it keeps throughout (the key cache and
 *   the collector's pause rely on it).
 */
#ifndef CZ_PY_JSON_READ_H
#define CZ_PY_JSON_READ_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyMethodDef cz_py_json_read_methods[];

#endif
