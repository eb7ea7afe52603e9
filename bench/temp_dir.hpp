// The bench's temporary directories are the test-support library's (testing/temp_dir.hpp).
#pragma once

#include "testing/temp_dir.hpp"

namespace nsfork::bench {

using testing::TempDir;

} // namespace nsfork::bench
