# libuv as a shared library (target catzilla::libuv). Debian's static
# libuv_a.a is not PIC, so it cannot go into the extension.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(LIBUV QUIET IMPORTED_TARGET libuv>=1.40)
endif()
if(TARGET PkgConfig::LIBUV)
  add_library(catzilla::libuv ALIAS PkgConfig::LIBUV)
else()
  find_path(LIBUV_INCLUDE_DIR uv.h)
  find_library(LIBUV_LIBRARY NAMES uv libuv)
  if(NOT LIBUV_INCLUDE_DIR OR NOT LIBUV_LIBRARY)
    message(FATAL_ERROR "Catzilla: libuv not found; install libuv1-dev (scripts/bootstrap does)")
  endif()
  add_library(catzilla::libuv UNKNOWN IMPORTED)
  set_target_properties(catzilla::libuv PROPERTIES IMPORTED_LOCATION "${LIBUV_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${LIBUV_INCLUDE_DIR}")
endif()
