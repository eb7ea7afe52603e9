# What `cmake --install` puts in place for agents that embed nsfork (the binaries install
# themselves: cli/, shim/, oci/):
#   include/nsfork/*.hpp                   the public headers, and nothing else of the source tree
#   LIBDIR/libnsfork.so.MAJOR, libnsfork.a  the client library, shared (soname) and static
#   LIBDIR/cmake/nsfork/                   find_package(nsfork): nsfork::client, ::client_static, ::async
#   LIBDIR/pkgconfig/nsfork.pc             pkg-config nsfork
include(CMakePackageConfigHelpers)

set(NSFORK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nsfork)
set(NSFORK_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nsfork DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS nsfork_client nsfork_client_static EXPORT nsforkTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT nsforkTargets NAMESPACE nsfork:: DESTINATION ${NSFORK_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nsforkConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/nsforkConfig.cmake INSTALL_DESTINATION ${NSFORK_CMAKE_DIR})
# The soname changes with the major version: so does what a find_package may accept.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/nsforkConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/package/nsforkConfig.cmake
              ${CMAKE_BINARY_DIR}/package/nsforkConfigVersion.cmake
        DESTINATION ${NSFORK_CMAKE_DIR})

# nsfork.pc finds its prefix from where it lies (${pcfiledir}), so that a tree installed with
# `cmake --install --prefix DIR`, or moved, still points at itself.
file(RELATIVE_PATH NSFORK_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" NSFORK_PC_TO_PREFIX "${NSFORK_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/nsfork.pc.in ${CMAKE_BINARY_DIR}/package/nsfork.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/package/nsfork.pc DESTINATION ${NSFORK_PKGCONFIG_DIR})
