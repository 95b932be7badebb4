# libuv (target catzilla::libuv): by default built here from its pinned
# source (third_party/pins.txt), static and PIC, so that the wheel needs no
# libuv.so; its symbols stay inside the extension (cmake/exports.map).
# -DCATZILLA_SYSTEM_LIBUV=ON links the system's shared libuv instead (distro
# builds: Debian's libuv1-dev); Debian's static libuv_a.a is not PIC, so it
# cannot go into the extension.
#
# Sets CATZILLA_LIBUV_VERSION and CATZILLA_LIBUV_LINKAGE ("static" or "system").
option(CATZILLA_SYSTEM_LIBUV "Link the system's shared libuv (libuv1-dev) instead of building the pinned source" OFF)
set(CATZILLA_LIBUV_SOURCE "" CACHE STRING
    "Local libuv source: a directory, a libuv release tarball, or the pinned uvloop sdist")
set(CATZILLA_LIBUV_URL "" CACHE STRING "Download URL(s) for the pinned libuv archive instead of third_party/pins.txt's")

if(CATZILLA_SYSTEM_LIBUV)
  set(CATZILLA_LIBUV_LINKAGE "system")
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(LIBUV QUIET IMPORTED_TARGET libuv>=1.40)
  endif()
  if(TARGET PkgConfig::LIBUV)
    add_library(catzilla::libuv ALIAS PkgConfig::LIBUV)
    set(CATZILLA_LIBUV_VERSION "${LIBUV_VERSION}")
  else()
    find_path(LIBUV_INCLUDE_DIR uv.h)
    find_library(LIBUV_LIBRARY NAMES uv libuv)
    if(NOT LIBUV_INCLUDE_DIR OR NOT LIBUV_LIBRARY)
      message(FATAL_ERROR "Catzilla: CATZILLA_SYSTEM_LIBUV=ON but no libuv found: install libuv1-dev "
                          "(Debian) or drop the option to build the pinned libuv source")
    endif()
    add_library(catzilla::libuv UNKNOWN IMPORTED)
    set_target_properties(catzilla::libuv PROPERTIES IMPORTED_LOCATION "${LIBUV_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${LIBUV_INCLUDE_DIR}")
    set(CATZILLA_LIBUV_VERSION "system")
  endif()
  message(STATUS "Catzilla: libuv ${CATZILLA_LIBUV_VERSION}: the system's shared library (CATZILLA_SYSTEM_LIBUV=ON)")
  return()
endif()

set(CATZILLA_LIBUV_LINKAGE "static")
catzilla_pin(libuv)
set(CATZILLA_LIBUV_VERSION "${CATZILLA_PIN_libuv_VERSION}")

# The source: a given directory or archive, else the cache or a download.
# Required (unlike jemalloc): there is no server without it, so fail now,
# before jemalloc's long build, and say how to get it.
set(_uv_fix "run scripts/bootstrap (caches it), pass -DCATZILLA_LIBUV_SOURCE=<libuv directory or tarball>, or build against the system's libuv with -DCATZILLA_SYSTEM_LIBUV=ON (Debian: apt-get install libuv1-dev)")
if(CATZILLA_LIBUV_SOURCE)
  get_filename_component(_uv_archive "${CATZILLA_LIBUV_SOURCE}" ABSOLUTE)
  if(NOT EXISTS "${_uv_archive}")
    message(FATAL_ERROR "Catzilla: CATZILLA_LIBUV_SOURCE=${CATZILLA_LIBUV_SOURCE} does not exist")
  endif()
else()
  catzilla_fetch_pinned(libuv "${CATZILLA_LIBUV_URL}" _uv_archive _uv_why)
  if(NOT _uv_archive)
    message(FATAL_ERROR "Catzilla: libuv ${CATZILLA_LIBUV_VERSION} source is required: ${_uv_why}\n"
                        "Fix: ${_uv_fix}")
  endif()
endif()

if(IS_DIRECTORY "${_uv_archive}")
  set(_uv_src "${_uv_archive}")
else()
  # Extracted once per build directory and per archive (the stamp names it).
  set(_uv_tree "${CMAKE_BINARY_DIR}/libuv-src")
  file(SHA256 "${_uv_archive}" _uv_sum)
  if(NOT EXISTS "${_uv_tree}/.stamp-${_uv_sum}")
    file(REMOVE_RECURSE "${_uv_tree}")
    if(CATZILLA_PIN_libuv_INSIDE AND NOT CATZILLA_LIBUV_SOURCE)
      # Only libuv's part of the uvloop sdist.
      file(ARCHIVE_EXTRACT INPUT "${_uv_archive}" DESTINATION "${_uv_tree}"
           PATTERNS "${CATZILLA_PIN_libuv_INSIDE}")
    else()
      file(ARCHIVE_EXTRACT INPUT "${_uv_archive}" DESTINATION "${_uv_tree}")
    endif()
    file(TOUCH "${_uv_tree}/.stamp-${_uv_sum}")
  endif()
  file(GLOB _uv_h LIST_DIRECTORIES false "${_uv_tree}/include/uv.h" "${_uv_tree}/*/include/uv.h"
       "${_uv_tree}/*/*/include/uv.h" "${_uv_tree}/*/*/*/include/uv.h")
  list(LENGTH _uv_h _n)
  if(NOT _n EQUAL 1)
    message(FATAL_ERROR "Catzilla: ${_uv_archive} does not hold one libuv tree (include/uv.h)\nFix: ${_uv_fix}")
  endif()
  get_filename_component(_uv_src "${_uv_h}" DIRECTORY)
  get_filename_component(_uv_src "${_uv_src}" DIRECTORY)
endif()
if(NOT EXISTS "${_uv_src}/CMakeLists.txt" OR NOT EXISTS "${_uv_src}/include/uv.h")
  message(FATAL_ERROR "Catzilla: ${_uv_src} is not a libuv source tree (no CMakeLists.txt and include/uv.h)\nFix: ${_uv_fix}")
endif()
file(STRINGS "${_uv_src}/include/uv/version.h" _uv_ver REGEX "define UV_VERSION_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE "[^0-9;]" "" _uv_ver "${_uv_ver}")
string(REPLACE ";" "." _uv_ver "${_uv_ver}")
if(NOT CATZILLA_LIBUV_SOURCE AND NOT _uv_ver STREQUAL CATZILLA_LIBUV_VERSION)
  message(FATAL_ERROR "Catzilla: ${_uv_src} is libuv ${_uv_ver}, third_party/pins.txt pins ${CATZILLA_LIBUV_VERSION}")
endif()
set(CATZILLA_LIBUV_VERSION "${_uv_ver}")

# libuv's own CMake project, apart (its install rules, options and warnings
# stay out of ours): only the static library, position-independent.
include(ExternalProject)
set(_uv_prefix "${CMAKE_BINARY_DIR}/libuv")
set(_uv_lib "${_uv_prefix}/lib/${CMAKE_STATIC_LIBRARY_PREFIX}uv${CMAKE_STATIC_LIBRARY_SUFFIX}")
if(WIN32)
  set(_uv_lib "${_uv_prefix}/lib/libuv${CMAKE_STATIC_LIBRARY_SUFFIX}")  # libuv's PREFIX "lib" there
endif()
set(_uv_args
  -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}"
  "-DCMAKE_C_FLAGS=${CMAKE_C_FLAGS}"
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  "-DCMAKE_INSTALL_PREFIX=${_uv_prefix}"
  -DCMAKE_INSTALL_LIBDIR=lib
  -DLIBUV_BUILD_SHARED=OFF -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
  -DENABLE_CLANG_TIDY=OFF)  # on by default upstream, and it needs clang-tidy
foreach(_v CMAKE_OSX_ARCHITECTURES CMAKE_OSX_DEPLOYMENT_TARGET CMAKE_OSX_SYSROOT)
  if(${_v})
    list(APPEND _uv_args "-D${_v}=${${_v}}")
  endif()
endforeach()
ExternalProject_Add(libuv_static
  SOURCE_DIR "${_uv_src}"
  BINARY_DIR "${_uv_prefix}/build"
  INSTALL_DIR "${_uv_prefix}"
  CMAKE_ARGS ${_uv_args}
  BUILD_COMMAND ${CMAKE_COMMAND} --build <BINARY_DIR> --target uv_a
  BUILD_BYPRODUCTS "${_uv_lib}"
  LOG_CONFIGURE ON LOG_BUILD ON LOG_INSTALL ON LOG_OUTPUT_ON_FAILURE ON)

add_library(catzilla::libuv STATIC IMPORTED GLOBAL)
set_target_properties(catzilla::libuv PROPERTIES
  IMPORTED_LOCATION "${_uv_lib}"
  INTERFACE_INCLUDE_DIRECTORIES "${_uv_src}/include")
add_dependencies(catzilla::libuv libuv_static)
find_package(Threads REQUIRED)
target_link_libraries(catzilla::libuv INTERFACE Threads::Threads ${CMAKE_DL_LIBS})
if(WIN32)
  # What libuv's own CMakeLists links on Windows.
  target_link_libraries(catzilla::libuv INTERFACE psapi user32 advapi32 iphlpapi userenv ws2_32 dbghelp ole32 shell32)
elseif(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # libdl and librt are empty since glibc 2.34: --as-needed keeps them out of
  # the extension's DT_NEEDED where they are not used.
  target_link_libraries(catzilla::libuv INTERFACE rt)
  target_link_options(catzilla::libuv INTERFACE "LINKER:--as-needed")
endif()
message(STATUS "Catzilla: libuv ${CATZILLA_LIBUV_VERSION} from ${_uv_src}: built static and PIC at build time")
