# nsfork_oci_config: config.json as nsfork-oci applies it — the spec (nlohmann::json), seccomp
# compiled by libseccomp, and the cgroup resources. No process is forked here.
add_library(nsfork_oci_config STATIC spec.cpp seccomp.cpp resources.cpp device_filter.cpp)
target_link_libraries(nsfork_oci_config PUBLIC nsfork_base nlohmann_json::nlohmann_json nsfork_seccomp)
target_include_directories(nsfork_oci_config PUBLIC ${PROJECT_SOURCE_DIR})
# The test suites (tests/, tests/oci/) link these too: make the imported targets visible there.
set_target_properties(nlohmann_json::nlohmann_json PkgConfig::SECCOMP PROPERTIES IMPORTED_GLOBAL TRUE)
