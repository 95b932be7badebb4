# mimalloc (target catzilla::mimalloc), the third allocator backend
# (csrc/memory/cz_backend_mimalloc.c): its pinned source (third_party/pins.txt:
# Debian's source package) compiled here as one unit (src/static.c), static
# and PIC, symbols hidden, without malloc override, so that only Catzilla
# calls it. Optional like jemalloc: without its source the build has no
# mimalloc backend and says why.
#
# Sets CATZILLA_HAVE_MIMALLOC (BOOL), CATZILLA_MIMALLOC_VERSION and
# CATZILLA_MIMALLOC_STATUS (where it came from, or why it is missing).
option(CATZILLA_USE_MIMALLOC "Compile mimalloc in so that allocator=\"mimalloc\" can use it" ON)
set(CATZILLA_MIMALLOC_SOURCE "" CACHE STRING "Local mimalloc source: a directory or a source tarball")
set(CATZILLA_MIMALLOC_URL "" CACHE STRING "Download URL(s) for mimalloc instead of third_party/pins.txt's")

catzilla_pin(mimalloc)
set(CATZILLA_MIMALLOC_VERSION "${CATZILLA_PIN_mimalloc_VERSION}")
set(CATZILLA_HAVE_MIMALLOC OFF)

if(NOT CATZILLA_USE_MIMALLOC)
  set(CATZILLA_MIMALLOC_STATUS "disabled by CATZILLA_USE_MIMALLOC=OFF")
  message(STATUS "Catzilla: no mimalloc backend (CATZILLA_USE_MIMALLOC=OFF)")
  return()
endif()
if(NOT CATZILLA_JEMALLOC_SUPPORTED)  # the same platforms: Linux and macOS
  set(CATZILLA_MIMALLOC_STATUS "not supported on ${CMAKE_SYSTEM_NAME}")
  return()
endif()

catzilla_pinned_source(mimalloc CATZILLA_MIMALLOC_SOURCE "${CATZILLA_MIMALLOC_URL}" src/static.c _mi_src _mi_archive
                       _mi_why)
if(NOT _mi_why AND NOT EXISTS "${_mi_src}/include/mimalloc.h")
  set(_mi_why "${_mi_archive} is not a mimalloc source tree (no include/mimalloc.h)")
endif()
if(_mi_why)
  set(CATZILLA_MIMALLOC_STATUS "${_mi_why}")
  message(WARNING "Catzilla: building WITHOUT mimalloc: ${_mi_why}")
  return()
endif()

add_library(cz_mimalloc STATIC "${_mi_src}/src/static.c")
target_include_directories(cz_mimalloc SYSTEM PUBLIC "${_mi_src}/include")
set_target_properties(cz_mimalloc PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
# MI_STAT=1: the committed-memory counters the statistics read; no override
# of malloc (MI_MALLOC_OVERRIDE unset); third-party code: not ours to warn about.
target_compile_definitions(cz_mimalloc PRIVATE MI_STAT=1 MI_BUILD_RELEASE NDEBUG)
target_compile_options(cz_mimalloc PRIVATE -w -O2)
find_package(Threads REQUIRED)
target_link_libraries(cz_mimalloc PUBLIC Threads::Threads)
add_library(catzilla::mimalloc ALIAS cz_mimalloc)
set(CATZILLA_HAVE_MIMALLOC ON)
set(CATZILLA_MIMALLOC_STATUS "built from ${_mi_archive}")
message(STATUS "Catzilla: mimalloc ${CATZILLA_MIMALLOC_VERSION} from ${_mi_src}: compiled static and PIC, symbols hidden")
