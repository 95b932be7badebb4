# llhttp's generated C release files, vendored under third_party/llhttp/
# (target llhttp). Their SHA256s are checked against third_party/pins.txt.
catzilla_pin(llhttp)
catzilla_vendored(llhttp _llhttp_files)
set(CATZILLA_LLHTTP_VERSION "${CATZILLA_PIN_llhttp_VERSION}")
list(FILTER _llhttp_files INCLUDE REGEX "\\.c$")
add_library(llhttp STATIC ${_llhttp_files})
target_include_directories(llhttp SYSTEM PUBLIC "${PROJECT_SOURCE_DIR}/third_party/llhttp")
set_target_properties(llhttp PROPERTIES C_VISIBILITY_PRESET hidden)
if(NOT MSVC)
  target_compile_options(llhttp PRIVATE -w)  # third-party code: not ours to warn about
endif()
message(STATUS "Catzilla: llhttp ${CATZILLA_LLHTTP_VERSION} from third_party/llhttp (vendored, SHA256 checked)")
