# llhttp 9.3.0 C sources, compiled into the extension (target llhttp).
# Taken from the PyPI sdist llhttp==9.3.0.0, which carries them under lib/;
# found in the bootstrap cache or downloaded, pinned by SHA256 either way.
set(CATZILLA_LLHTTP_SDIST "llhttp-9.3.0.0.tar.gz")
set(CATZILLA_LLHTTP_SHA256 "0d989363e7fb6f270b9d49956e7a3945c26778f8c70a166815264309ac6a8295")
set(CATZILLA_LLHTTP_URL "https://files.pythonhosted.org/packages/source/l/llhttp/${CATZILLA_LLHTTP_SDIST}")

catzilla_cache_dir(_llhttp_cache)

set(_llhttp_tar "${_llhttp_cache}/${CATZILLA_LLHTTP_SDIST}")
if(NOT EXISTS "${_llhttp_tar}")
  set(_llhttp_tar "${CMAKE_BINARY_DIR}/${CATZILLA_LLHTTP_SDIST}")
  if(NOT EXISTS "${_llhttp_tar}")
    message(STATUS "Catzilla: downloading llhttp sources from ${CATZILLA_LLHTTP_URL}")
    file(DOWNLOAD "${CATZILLA_LLHTTP_URL}" "${_llhttp_tar}"
         EXPECTED_HASH SHA256=${CATZILLA_LLHTTP_SHA256} STATUS _st TLS_VERIFY ON)
    list(GET _st 0 _code)
    if(NOT _code EQUAL 0)
      file(REMOVE "${_llhttp_tar}")
      message(FATAL_ERROR "Catzilla: llhttp sources are required and could not be downloaded (${_st}); run scripts/bootstrap")
    endif()
  endif()
endif()
file(SHA256 "${_llhttp_tar}" _sum)
if(NOT _sum STREQUAL CATZILLA_LLHTTP_SHA256)
  message(FATAL_ERROR "Catzilla: ${_llhttp_tar} has SHA256 ${_sum}, expected ${CATZILLA_LLHTTP_SHA256}")
endif()

set(_llhttp_dir "${CMAKE_BINARY_DIR}/llhttp-9.3.0.0")
if(NOT EXISTS "${_llhttp_dir}/lib/llhttp.c")
  file(ARCHIVE_EXTRACT INPUT "${_llhttp_tar}" DESTINATION "${CMAKE_BINARY_DIR}")
endif()

add_library(llhttp STATIC
  ${_llhttp_dir}/lib/api.c ${_llhttp_dir}/lib/http.c ${_llhttp_dir}/lib/llhttp.c)
target_include_directories(llhttp SYSTEM PUBLIC ${_llhttp_dir}/lib)
set_target_properties(llhttp PROPERTIES C_VISIBILITY_PRESET hidden)
if(NOT MSVC)
  target_compile_options(llhttp PRIVATE -w)  # third-party code: not ours to warn about
endif()
