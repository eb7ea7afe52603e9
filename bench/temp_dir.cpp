#include "temp_dir.hpp"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace nsfork::bench {

Result<TempDir> TempDir::create(const std::string& what) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/nsfork-bench-" + what + "-XXXXXX";
    if (!::mkdtemp(templ.data())) return sys_error(Errc::internal, "mkdtemp " + templ + " failed", errno);
    return TempDir(std::move(templ));
}

TempDir::~TempDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

} // namespace nsfork::bench
