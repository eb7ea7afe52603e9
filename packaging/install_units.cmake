# Run by `cmake --install` (packaging/CMakeLists.txt): writes the systemd units for the prefix
# being installed to, and installs them (file(INSTALL) honours DESTDIR).
# In: NSFORK_UNITS (the units' names), NSFORK_UNITS_SOURCE (where their .in templates are),
# NSFORK_UNITS_STAGING (a build directory to write them in), and NSFORK_BINDIR and
# NSFORK_UNIT_DIR (each under CMAKE_INSTALL_PREFIX unless absolute).
foreach(dir NSFORK_BINDIR NSFORK_UNIT_DIR)
  if(NOT IS_ABSOLUTE "${${dir}}")
    set(${dir} "${CMAKE_INSTALL_PREFIX}/${${dir}}")
  endif()
endforeach()
# The templates' name for it, as in the build tree's copies.
set(CMAKE_INSTALL_FULL_BINDIR "${NSFORK_BINDIR}")
foreach(unit ${NSFORK_UNITS})
  configure_file("${NSFORK_UNITS_SOURCE}/${unit}.in" "${NSFORK_UNITS_STAGING}/${unit}" @ONLY)
  file(INSTALL DESTINATION "${NSFORK_UNIT_DIR}" TYPE FILE FILES "${NSFORK_UNITS_STAGING}/${unit}")
endforeach()
