# Static programs built with musl-gcc (MUSL_GCC, shim/CMakeLists.txt), outside the normal
# toolchain: C++ on C headers, of libstdc++ its headers alone (type_traits, cstddef...), whose
# os_defines.h asks glibc's __GLIBC_PREREQ, which musl has not. They start in ~0.06 ms where a
# glibc program pays ~1.1 ms of start-up on these VMs. With KERNEL_HEADERS, the kernel's own
# headers (linux/*.h, asm/*.h: linux-libc-dev) are searched after musl's.
#   nsfork_musl_program(TARGET OUTPUT SOURCES a.cpp... [DEPENDS header...] [KERNEL_HEADERS])
function(nsfork_musl_program target output)
  cmake_parse_arguments(P "KERNEL_HEADERS" "" "SOURCES;DEPENDS" ${ARGN})
  set(includes)
  foreach(dir IN LISTS CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    if(dir MATCHES "/c\\+\\+/[0-9]+$")
      list(APPEND includes -I${dir})
    elseif(P_KERNEL_HEADERS AND NOT dir MATCHES "/gcc/")
      list(APPEND includes -idirafter ${dir})
    endif()
  endforeach()
  get_filename_component(dir ${output} DIRECTORY)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${MUSL_GCC} -x c++ -std=c++20 -fno-exceptions -fno-rtti -static -Os -s -Wall -Wextra -Werror
            "-D__GLIBC_PREREQ(major,minor)=0" -I${PROJECT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR}/include ${includes}
            ${P_SOURCES} -o ${output}
    DEPENDS ${P_SOURCES} ${P_DEPENDS}
    COMMENT "Building the static ${target} with musl-gcc"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${output})
endfunction()
