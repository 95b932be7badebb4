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
    ) -> None:
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
        return _core.StaticFiles(allocator, os.fsencode(self.directory), flags, types)

    def __repr__(self) -> str:
        return f"StaticFiles(directory={self.directory!r}, html={self.html})"
