# nsfork_client_code(TARGET): compiles TARGET's sources as code of the client library
# (libnsfork.so, libnsfork.a): position-independent, with hidden symbols, so that only the
# declarations marked NSFORK_API (include/nsfork/export.hpp) become its ABI. The project's own
# static libraries take the same objects; visibility means nothing to a static link.
function(nsfork_client_code target)
  set_target_properties(${target} PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
