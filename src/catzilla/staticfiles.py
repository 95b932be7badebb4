"""``StaticFiles``: a directory the C core serves, as Starlette's (``app.mount``).

::

    app.mount("/static", StaticFiles(directory="static"), name="static")

Every request under the prefix is answered in C, with no Python call: the
path is decoded and checked (no way out of the directory: ``..``,
``%2e%2e``, backslashes, NUL, absolute paths, symlinks leading outside
unless ``follow_symlink=True``), the file is opened beneath the directory
(``openat2`` with ``RESOLVE_BENEATH`` on Linux) and sent with ``sendfile``,
with ``ETag``/``Last-Modified``, conditional requests, single byte ranges
and HEAD, like ``FileResponse``. ``html=True`` serves ``index.html`` for
directories and ``404.html`` for what is not found. A ``.br`` or ``.gz``
file beside the one asked for is sent instead when the client accepts it
(``precompressed=False`` turns that off). ``Content-Type`` comes from the
extension, through the ``mimetypes`` table as it is when the app is mounted.

Small hot files are kept in memory, in the allocator's ``static`` purpose
(``app.get_memory_stats()["arenas"]["static"]`` shows them): up to
``cache_max_entries`` files of at most ``cache_max_file`` bytes,
``cache_max_bytes`` in all, least recently served dropped first; each is
checked against the file's status on every request (no open) and read again
when it changed. ``cache_max_bytes=0`` turns the cache off.
"""

from __future__ import annotations

import mimetypes
import os
from typing import TYPE_CHECKING

from catzilla import _core

if TYPE_CHECKING:
    from catzilla._core import Allocator

__all__ = ["StaticFiles"]

# Flags of csrc/server/cz_files.h.
_HTML, _FOLLOW_SYMLINKS, _PRECOMPRESSED = 1, 2, 4


class StaticFiles:
    def __init__(
        self,
        *,
        directory: str | os.PathLike[str] | None = None,
        packages: list[str] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
        precompressed: bool = True,
        cache_max_bytes: int = 4 * 1024 * 1024,
        cache_max_file: int = 64 * 1024,
        cache_max_entries: int = 512,
    ) -> None:
        for name, value in (
            ("cache_max_bytes", cache_max_bytes),
            ("cache_max_file", cache_max_file),
            ("cache_max_entries", cache_max_entries),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.cache = (cache_max_entries, cache_max_file, cache_max_bytes)
        if packages:
            raise NotImplementedError("StaticFiles(packages=...) is not supported; give directory=")
        if directory is None:
            raise TypeError("StaticFiles needs directory=")
        self.directory = os.fspath(directory)
        self.html = bool(html)
        self.follow_symlink = bool(follow_symlink)
        self.precompressed = bool(precompressed)
        if check_dir and not os.path.isdir(self.directory):
            raise RuntimeError(f"Directory '{self.directory}' does not exist")

    def _core(self, allocator: Allocator) -> _core.StaticFiles:
        """The C object that serves the directory for an app (made at mount)."""
        if not os.path.isdir(self.directory):
            raise RuntimeError(f"Directory '{self.directory}' does not exist")
        flags = (
            (_HTML if self.html else 0)
            | (_FOLLOW_SYMLINKS if self.follow_symlink else 0)
            | (_PRECOMPRESSED if self.precompressed else 0)
        )
        mimetypes.init()
        types = [(ext.lstrip("."), media) for ext, media in mimetypes.types_map.items()]
        entries, max_file, max_bytes = self.cache
        return _core.StaticFiles(allocator, os.fsencode(self.directory), flags, types, entries, max_file, max_bytes)

    def __repr__(self) -> str:
        return f"StaticFiles(directory={self.directory!r}, html={self.html})"
