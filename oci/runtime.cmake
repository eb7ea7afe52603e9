# nsfork-oci: runc's command line over the node's server. Its pure parts (options, log, state,
# cgroup paths) are a library the unit tests link (oci/*_test.cpp); the verbs link the config and
# setup parts and the client library — no Asio, no server code.
add_library(nsfork_oci_runtime STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/options.cpp ${CMAKE_CURRENT_SOURCE_DIR}/log.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/state.cpp ${CMAKE_CURRENT_SOURCE_DIR}/cgroup_path.cpp)
target_link_libraries(nsfork_oci_runtime
  PUBLIC nsfork_base
  PRIVATE CLI11::CLI11 nlohmann_json::nlohmann_json)
target_include_directories(nsfork_oci_runtime PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_definitions(nsfork_oci_runtime PUBLIC NSFORK_VERSION="${PROJECT_VERSION}")

# Built once the setup part (oci/setup.cmake) defines its library.
if(NOT TARGET nsfork_oci_setup)
  return()
endif()
add_executable(nsfork-oci
  ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp ${CMAKE_CURRENT_SOURCE_DIR}/lifecycle.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/verbs.cpp ${CMAKE_CURRENT_SOURCE_DIR}/support.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/hooks.cpp ${CMAKE_CURRENT_SOURCE_DIR}/warm.cpp)
target_link_libraries(nsfork-oci PRIVATE nsfork_oci_runtime nsfork_oci_setup nsfork_oci_config nsfork_protocol
                      nlohmann_json::nlohmann_json nsfork_seccomp)
# Its start-up is paid on every engine call, so it is a static PIE: no dynamic loader mapping
# and relocating libc (state: 0.89x the same program linked dynamically against libc alone).
# fmt is compiled in (fmt.cpp, without the usage requirements of fmt::fmt, which would define
# FMT_SHARED) and libseccomp is its archive (oci/CMakeLists.txt); glibc's functions that load
# modules at run time (NSS, iconv, dlopen) are not used: the link would warn. A static PIE, not a
# plain static binary: the unwinder then finds frames through PT_GNU_EH_FRAME, where a static
# binary's first exception (CLI11's --version) sorts every FDE, ~20M instructions. The
# sanitizers' runtimes are shared libraries: their build links libc dynamically.
add_library(nsfork_oci_fmt OBJECT ${CMAKE_CURRENT_SOURCE_DIR}/fmt.cpp)
target_sources(nsfork-oci PRIVATE $<TARGET_OBJECTS:nsfork_oci_fmt>)
if(NSFORK_SANITIZE OR NOT SECCOMP_ARCHIVE)
  target_link_options(nsfork-oci PRIVATE -static-libstdc++ -static-libgcc)
else()
  target_link_options(nsfork-oci PRIVATE -static-pie)
endif()
# The full program is libexec/nsfork/nsfork-oci; engines run the front below, bin/nsfork-oci, which
# finds it at ../libexec/nsfork/ relative to itself, and the server beside itself for the warm
# runtimes (warm.hpp).
set_target_properties(nsfork-oci PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/libexec/nsfork)
install(TARGETS nsfork-oci DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/nsfork)

# The front (front.cpp): static on musl (cmake/musl_program.cmake), with the container's child
# code (child.cpp) and the plan's decoding (front_wire.cpp).
set(NSFORK_OCI_FRONT ${CMAKE_BINARY_DIR}/bin/nsfork-oci)
nsfork_musl_program(nsfork-oci-front ${NSFORK_OCI_FRONT} KERNEL_HEADERS
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/front.cpp ${CMAKE_CURRENT_SOURCE_DIR}/front_wire.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/child.cpp
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/front_wire.hpp ${CMAKE_CURRENT_SOURCE_DIR}/child.hpp
          ${CMAKE_CURRENT_SOURCE_DIR}/mount_api.h ${CMAKE_CURRENT_SOURCE_DIR}/defaults.h
          ${CMAKE_CURRENT_SOURCE_DIR}/forwarded_signals.h ${PROJECT_SOURCE_DIR}/launcher/clone.hpp
          ${PROJECT_SOURCE_DIR}/base/syscalls.hpp ${PROJECT_SOURCE_DIR}/base/fdpass.h
          ${PROJECT_SOURCE_DIR}/base/limits.h ${PROJECT_SOURCE_DIR}/base/exit_codes.h)
add_dependencies(nsfork-oci nsfork-oci-front)
install(PROGRAMS ${NSFORK_OCI_FRONT} DESTINATION ${CMAKE_INSTALL_BINDIR})
