#include "server/ids.hpp"

#include <catch2/catch.hpp>

using namespace nsfork;

TEST_CASE("ids: what a container may be called") {
    for (const char* ok : {"a", "job-1", "A.b_c-9", "..."}) CHECK(validate_id(ok));
    CHECK(validate_id(std::string(kMaxIdLength, 'x')));
    for (std::string bad : {std::string(), std::string("."), std::string(".."), std::string("a/b"),
                            std::string("a b"), std::string("a\0b", 3), std::string(kMaxIdLength + 1, 'x'),
                            std::string("é")}) {
        auto r = validate_id(bad);
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().code == Errc::invalid_id);
    }
    CHECK(validate_id("a/b").error().message == "container id contains byte 0x2f; allowed are letters, digits, '_', '-' and '.'");
}
