// A separate `nsfork serve --socket` process: the test-support library's
// (testing/server_process.hpp), shared with the tests.
#pragma once

#include "testing/server_process.hpp"

namespace nsfork::bench {

using testing::ServeProcess;

} // namespace nsfork::bench
