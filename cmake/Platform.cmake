# The one place that knows what each platform gets.
#   CATZILLA_JEMALLOC_SUPPORTED  jemalloc on Linux and macOS; Windows is malloc-only.
#   catzilla_hide_symbols(tgt)   export only PyInit__core from the extension, so
#                                no static library inside it (jemalloc) leaks out.
if(WIN32)
  set(CATZILLA_JEMALLOC_SUPPORTED OFF)
else()
  set(CATZILLA_JEMALLOC_SUPPORTED ON)
endif()

function(catzilla_hide_symbols tgt)
  set_target_properties(${tgt} PROPERTIES C_VISIBILITY_PRESET hidden)
  if(APPLE)
    target_link_options(${tgt} PRIVATE "LINKER:-exported_symbol,_PyInit__core")
  elseif(UNIX)
    target_link_options(${tgt} PRIVATE "LINKER:--exclude-libs,ALL"
                        "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/exports.map")
  endif()
endfunction()

function(catzilla_warnings tgt)
  if(MSVC)
    target_compile_options(${tgt} PRIVATE /W4 /WX)
  else()
    target_compile_options(${tgt} PRIVATE -Wall -Wextra -Werror)
  endif()
endfunction()

# Where scripts/bootstrap caches pinned third-party sources.
function(catzilla_cache_dir out)
  if(DEFINED ENV{CATZILLA_CACHE_DIR})
    set(${out} "$ENV{CATZILLA_CACHE_DIR}" PARENT_SCOPE)
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(${out} "$ENV{XDG_CACHE_HOME}/catzilla" PARENT_SCOPE)
  else()
    set(${out} "$ENV{HOME}/.cache/catzilla" PARENT_SCOPE)
  endif()
endfunction()
