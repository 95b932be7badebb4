# Provides the imported target catzilla::jemalloc, or explains in one
# message why this build is malloc-only. Never fails the configuration.
#
# Sets CATZILLA_HAVE_JEMALLOC (BOOL) and CATZILLA_JEMALLOC_STATUS (text).

set(CATZILLA_JEMALLOC_VERSION "5.3.0")
set(CATZILLA_JEMALLOC_URL
    "https://github.com/jemalloc/jemalloc/releases/download/${CATZILLA_JEMALLOC_VERSION}/jemalloc-${CATZILLA_JEMALLOC_VERSION}.tar.bz2")
# Same bytes as Debian's jemalloc_5.3.0.orig.tar.bz2.
set(CATZILLA_JEMALLOC_SHA256 "2db82d1e7119df3e71b7640219b6dfe84789bc0537983c3b7ac4f7189aecfeaa")

set(CATZILLA_HAVE_JEMALLOC OFF)

function(_catzilla_jemalloc_off why)
  message(WARNING "Catzilla: building WITHOUT jemalloc (malloc only): ${why}")
  set(CATZILLA_JEMALLOC_STATUS "${why}" PARENT_SCOPE)
endfunction()

function(_catzilla_jemalloc_target root)
  add_library(catzilla::jemalloc STATIC IMPORTED GLOBAL)
  set_target_properties(catzilla::jemalloc PROPERTIES
    IMPORTED_LOCATION "${root}/lib/libjemalloc_pic.a"
    INTERFACE_INCLUDE_DIRECTORIES "${root}/include")
  find_package(Threads REQUIRED)
  target_link_libraries(catzilla::jemalloc INTERFACE Threads::Threads ${CMAKE_DL_LIBS})
  if(NOT APPLE)
    target_link_libraries(catzilla::jemalloc INTERFACE m)
  endif()
endfunction()

if(NOT CATZILLA_USE_JEMALLOC)
  set(CATZILLA_JEMALLOC_STATUS "disabled by CATZILLA_USE_JEMALLOC=OFF")
  message(STATUS "Catzilla: malloc-only build (CATZILLA_USE_JEMALLOC=OFF)")
  return()
endif()
if(NOT CATZILLA_JEMALLOC_SUPPORTED)
  set(CATZILLA_JEMALLOC_STATUS "not supported on ${CMAKE_SYSTEM_NAME}")
  message(STATUS "Catzilla: malloc-only build (jemalloc is not supported on ${CMAKE_SYSTEM_NAME})")
  return()
endif()

if(NOT CATZILLA_BUILD_JEMALLOC)
  # A prefixed (je_), PIC, static jemalloc installed elsewhere.
  set(CATZILLA_JEMALLOC_ROOT "" CACHE PATH "Install prefix of a prebuilt je_-prefixed static jemalloc")
  if(CATZILLA_JEMALLOC_ROOT AND EXISTS "${CATZILLA_JEMALLOC_ROOT}/lib/libjemalloc_pic.a")
    _catzilla_jemalloc_target("${CATZILLA_JEMALLOC_ROOT}")
    set(CATZILLA_HAVE_JEMALLOC ON)
    set(CATZILLA_JEMALLOC_STATUS "prebuilt at ${CATZILLA_JEMALLOC_ROOT}")
  else()
    _catzilla_jemalloc_off("CATZILLA_BUILD_JEMALLOC=OFF and no CATZILLA_JEMALLOC_ROOT with lib/libjemalloc_pic.a")
  endif()
  return()
endif()

# Where the source comes from: an explicit local tarball/directory, the
# bootstrap cache, or the pinned URL.
if(NOT CATZILLA_JEMALLOC_SOURCE)
  catzilla_cache_dir(_cache)
  set(_cached "${_cache}/jemalloc-${CATZILLA_JEMALLOC_VERSION}.tar.bz2")
  if(EXISTS "${_cached}")
    set(_je_source "${_cached}")
  else()
    set(_je_source "${CATZILLA_JEMALLOC_URL}")
  endif()
else()
  set(_je_source "${CATZILLA_JEMALLOC_SOURCE}")
  if(NOT EXISTS "${_je_source}")
    _catzilla_jemalloc_off("CATZILLA_JEMALLOC_SOURCE=${_je_source} does not exist")
    return()
  endif()
  get_filename_component(_je_source "${_je_source}" ABSOLUTE)
endif()

set(_je_dir "${CMAKE_BINARY_DIR}/jemalloc")
set(_je_install "${_je_dir}/install")
set(_je_flags "${CMAKE_C_FLAGS}")
if(CATZILLA_JEMALLOC_DEBUG)
  set(_je_flags "${_je_flags} -O1 -g")
else()
  set(_je_flags "${_je_flags} -O2 -g0")
endif()
message(STATUS "Catzilla: building jemalloc ${CATZILLA_JEMALLOC_VERSION} from ${_je_source} (debug=${CATZILLA_JEMALLOC_DEBUG})")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${CMAKE_CURRENT_LIST_DIR}/jemalloc" -B "${_je_dir}/project"
          -G "Unix Makefiles"
          "-DJE_SOURCE=${_je_source}" "-DJE_SHA256=${CATZILLA_JEMALLOC_SHA256}"
          "-DJE_INSTALL=${_je_install}" "-DJE_DEBUG=${CATZILLA_JEMALLOC_DEBUG}"
          "-DJE_CC=${CMAKE_C_COMPILER}" "-DJE_CFLAGS=${_je_flags}"
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(_rc EQUAL 0)
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${_je_dir}/project"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
endif()
if(NOT _rc EQUAL 0 OR NOT EXISTS "${_je_install}/lib/libjemalloc_pic.a")
  file(WRITE "${_je_dir}/failure.log" "${_out}")
  string(REGEX MATCH "[^\n]*(error|Error|ERROR|failed|HASH)[^\n]*" _first "${_out}")
  _catzilla_jemalloc_off("could not get or build jemalloc ${CATZILLA_JEMALLOC_VERSION} from ${_je_source}: ${_first} (full log: ${_je_dir}/failure.log; run scripts/bootstrap for an offline source)")
  return()
endif()

_catzilla_jemalloc_target("${_je_install}")
set(CATZILLA_HAVE_JEMALLOC ON)
set(CATZILLA_JEMALLOC_STATUS "built from ${_je_source}")
