# nsfork_oci_setup: the container's process, fork to exec (setup.hpp). The plan is built in the
# runtime (setup_plan.cpp); the child follows it (child.cpp) between clone3 and exec, where
# nothing may throw.
# A warm runtime's child is cloned by its front (front_link.cpp, front_wire.cpp: runtime.cmake).
add_library(nsfork_oci_setup STATIC setup.cpp setup_plan.cpp child.cpp front_link.cpp front_wire.cpp)
set_source_files_properties(child.cpp front_wire.cpp PROPERTIES COMPILE_OPTIONS -fno-exceptions)
target_link_libraries(nsfork_oci_setup PUBLIC nsfork_oci_config nsfork_launcher nsfork_base)
target_include_directories(nsfork_oci_setup PUBLIC ${PROJECT_SOURCE_DIR})
