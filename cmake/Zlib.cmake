# zlib (target catzilla::zlib), for permessage-deflate (csrc/ws/cz_ws_deflate.c).
# By default compiled here from its pinned source (third_party/pins.txt:
# Debian's zlib source package), static and PIC, with hidden symbols, so that
# the wheel needs no libz.so.1 and the extension exports nothing of zlib
# (cmake/exports.map). Only the raw-stream part is built: no gz* file I/O.
#
# Falls back to the system's shared zlib, with one warning saying why, when
# the pinned source cannot be had (not cached, no download), as jemalloc
# falls back to malloc-only; such an extension needs libz.so.1 at run time.
# -DCATZILLA_SYSTEM_ZLIB=ON asks for the system's zlib outright (distro
# builds: Debian's zlib1g-dev), without a warning.
#
# Sets CATZILLA_ZLIB_VERSION, CATZILLA_ZLIB_LINKAGE ("static" or "system")
# and CATZILLA_ZLIB_STATUS (where it came from, or why the system's).
option(CATZILLA_SYSTEM_ZLIB "Link the system's shared zlib (zlib1g-dev) instead of building the pinned source" OFF)
set(CATZILLA_ZLIB_SOURCE "" CACHE STRING
    "Local zlib source: a directory or a zlib source tarball (Debian's orig.tar or a zlib release)")
set(CATZILLA_ZLIB_URL "" CACHE STRING "Download URL(s) for the pinned zlib archive instead of third_party/pins.txt's")

catzilla_pin(zlib)
set(CATZILLA_ZLIB_VERSION "${CATZILLA_PIN_zlib_VERSION}")

# zlib's part of the library, compiled here (zlib's own CMakeLists.txt would
# also build the shared library, gz*, examples and install rules).
set(_zlib_files adler32 compress crc32 deflate infback inffast inflate inftrees trees uncompr zutil)

# The system's shared zlib; fatal only if there is none either.
function(_catzilla_zlib_system why warn)
  find_package(ZLIB QUIET)
  if(NOT ZLIB_FOUND)
    message(FATAL_ERROR "Catzilla: zlib is required (WebSocket permessage-deflate) and neither its pinned source "
                        "nor a system zlib is usable: ${why}\n"
                        "Fix: run scripts/bootstrap (caches the pinned source), pass -DCATZILLA_ZLIB_SOURCE=<zlib "
                        "directory or tarball>, or install the system's zlib (Debian: apt-get install zlib1g-dev)")
  endif()
  add_library(catzilla::zlib ALIAS ZLIB::ZLIB)
  set(CATZILLA_ZLIB_LINKAGE "system" PARENT_SCOPE)
  set(CATZILLA_ZLIB_VERSION "${ZLIB_VERSION_STRING}" PARENT_SCOPE)
  set(CATZILLA_ZLIB_STATUS "${why}" PARENT_SCOPE)
  if(warn)
    message(WARNING "Catzilla: building with the SYSTEM zlib ${ZLIB_VERSION_STRING} (the extension will need "
                    "libz.so.1): ${why}")
  else()
    message(STATUS "Catzilla: zlib ${ZLIB_VERSION_STRING}: the system's shared library (${why})")
  endif()
endfunction()

if(CATZILLA_SYSTEM_ZLIB)
  _catzilla_zlib_system("CATZILLA_SYSTEM_ZLIB=ON" FALSE)
  return()
endif()

# The source: a given directory or archive, else the cache or a download.
catzilla_pinned_source(zlib CATZILLA_ZLIB_SOURCE "${CATZILLA_ZLIB_URL}" zlib.h _zlib_src _zlib_archive _zlib_why)
if(NOT _zlib_why)
  foreach(_f IN LISTS _zlib_files ITEMS zconf.h)
    if(NOT _f MATCHES "\\.h$")
      set(_f "${_f}.c")
    endif()
    if(NOT EXISTS "${_zlib_src}/${_f}")
      set(_zlib_why "${_zlib_archive} is not a zlib source tree (no ${_f})")
      break()
    endif()
  endforeach()
endif()

if(NOT _zlib_why)
  file(STRINGS "${_zlib_src}/zlib.h" _zlib_ver REGEX "^#define ZLIB_VERSION ")
  string(REGEX REPLACE ".*\"([^\"]+)\".*" "\\1" _zlib_ver "${_zlib_ver}")
  if(NOT CATZILLA_ZLIB_SOURCE AND NOT _zlib_ver STREQUAL CATZILLA_ZLIB_VERSION)
    message(FATAL_ERROR "Catzilla: ${_zlib_src} is zlib ${_zlib_ver}, third_party/pins.txt pins ${CATZILLA_ZLIB_VERSION}")
  endif()
endif()

if(_zlib_why)
  _catzilla_zlib_system("${_zlib_why}" TRUE)
  return()
endif()

set(CATZILLA_ZLIB_VERSION "${_zlib_ver}")
set(CATZILLA_ZLIB_LINKAGE "static")
set(CATZILLA_ZLIB_STATUS "built from ${_zlib_archive}")
list(TRANSFORM _zlib_files PREPEND "${_zlib_src}/")
list(TRANSFORM _zlib_files APPEND ".c")
add_library(cz_zlib STATIC ${_zlib_files})
target_include_directories(cz_zlib SYSTEM PUBLIC "${_zlib_src}")
set_target_properties(cz_zlib PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
if(MSVC)
  target_compile_definitions(cz_zlib PRIVATE _CRT_SECURE_NO_DEPRECATE _CRT_NONSTDC_NO_DEPRECATE)
else()
  # HAVE_HIDDEN as zlib's configure sets it where the compiler has visibility
  # (ZLIB_INTERNAL); third-party code: not ours to warn about.
  target_compile_definitions(cz_zlib PRIVATE HAVE_HIDDEN)
  target_compile_options(cz_zlib PRIVATE -w)
endif()
add_library(catzilla::zlib ALIAS cz_zlib)
message(STATUS "Catzilla: zlib ${CATZILLA_ZLIB_VERSION} from ${_zlib_src}: compiled static and PIC, symbols hidden")
