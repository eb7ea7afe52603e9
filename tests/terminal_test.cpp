// Issue 13 tests (placeholder, filled in by its owner).
#include <catch2/catch.hpp>
