# Provides the imported target catzilla::jemalloc, or explains in one
# message why this build is malloc-only. Never fails the configuration.
#
# Sets CATZILLA_HAVE_JEMALLOC (BOOL) and CATZILLA_JEMALLOC_STATUS (text).

catzilla_pin(jemalloc)
set(CATZILLA_JEMALLOC_VERSION "${CATZILLA_PIN_jemalloc_VERSION}")
set(CATZILLA_JEMALLOC_URL "" CACHE STRING "Download URL(s) for jemalloc instead of third_party/pins.txt's")

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

# Where the source comes from: an explicit local tarball/directory, else the
# source cache, else a download into it (pinned URLs and SHA256).
if(NOT CATZILLA_JEMALLOC_SOURCE)
  catzilla_fetch_pinned(jemalloc "${CATZILLA_JEMALLOC_URL}" _je_source _je_why)
  if(NOT _je_source)
    _catzilla_jemalloc_off("${_je_why} Run scripts/bootstrap for an offline copy")
    return()
  endif()
else()
  set(_je_source "${CATZILLA_JEMALLOC_SOURCE}")
  if(NOT EXISTS "${_je_source}")
    _catzilla_jemalloc_off("CATZILLA_JEMALLOC_SOURCE=${_je_source} does not exist")
    return()
  endif()
  get_filename_component(_je_source "${_je_source}" ABSOLUTE)
endif()

# What jemalloc's own build needs (its release tarball carries a generated
# configure: no autoconf), checked before the long step.
find_program(CATZILLA_MAKE NAMES gmake make)
find_program(CATZILLA_SH NAMES sh)
if(NOT CATZILLA_MAKE OR NOT CATZILLA_SH)
  _catzilla_jemalloc_off("jemalloc's build needs make and sh (Debian: apt-get install make)")
  return()
endif()

set(_je_dir "${CMAKE_BINARY_DIR}/jemalloc")
set(_je_install "${_je_dir}/install")
set(_je_flags "${CMAKE_C_FLAGS}")
if(CATZILLA_JEMALLOC_DEBUG)
  set(_je_flags "${_je_flags} -O1 -g")
else()
  set(_je_flags "${_je_flags} -O2 -g0")
endif()
# Most of an installation's time goes here: say so, also without -v, and
# name each stage under -v. A build directory that has it already only
# checks it is up to date.
if(NOT EXISTS "${_je_install}/lib/libjemalloc_pic.a")
  message(NOTICE "Catzilla: building jemalloc ${CATZILLA_JEMALLOC_VERSION} (a minute or two; the rest of the build is quick)")
endif()
message(STATUS "Catzilla: jemalloc: source ${_je_source}, debug=${CATZILLA_JEMALLOC_DEBUG}, build in ${_je_dir}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${CMAKE_CURRENT_LIST_DIR}/jemalloc" -B "${_je_dir}/project"
          -G "Unix Makefiles"
          "-DJE_SOURCE=${_je_source}" "-DJE_SHA256=${CATZILLA_PIN_jemalloc_SHA256}"
          "-DJE_INSTALL=${_je_install}" "-DJE_DEBUG=${CATZILLA_JEMALLOC_DEBUG}"
          "-DJE_CC=${CMAKE_C_COMPILER}" "-DJE_CFLAGS=${_je_flags}" "-DJE_MAKE=${CATZILLA_MAKE}"
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(_rc EQUAL 0)
  message(STATUS "Catzilla: jemalloc: unpacking, checking the hash, running its configure script")
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${_je_dir}/project" --target jemalloc-configure
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
endif()
if(_rc EQUAL 0)
  message(STATUS "Catzilla: jemalloc: compiling lib/libjemalloc_pic.a")
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${_je_dir}/project"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
endif()
if(NOT _rc EQUAL 0 OR NOT EXISTS "${_je_install}/lib/libjemalloc_pic.a")
  file(WRITE "${_je_dir}/failure.log" "${_out}")
  string(REGEX MATCH "[^\n]*(error|Error|ERROR|failed|HASH)[^\n]*" _first "${_out}")
  _catzilla_jemalloc_off("could not build jemalloc ${CATZILLA_JEMALLOC_VERSION} from ${_je_source}: ${_first} (full log: ${_je_dir}/failure.log)")
  return()
endif()

_catzilla_jemalloc_target("${_je_install}")
set(CATZILLA_HAVE_JEMALLOC ON)
set(CATZILLA_JEMALLOC_STATUS "built from ${_je_source}")
message(STATUS "Catzilla: jemalloc ${CATZILLA_JEMALLOC_VERSION} built")
