#include "testing/temp_dir.hpp"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace nsfork::testing {

Result<TempDir> TempDir::create(const std::string& what) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/nsfork-" + what + "-XXXXXX";
    if (!::mkdtemp(templ.data())) return sys_error(Errc::internal, "mkdtemp " + templ + " failed", errno);
    return TempDir(std::move(templ));
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
    if (this != &o) {
        remove();
        path_ = std::exchange(o.path_, {});
    }
    return *this;
}

TempDir::~TempDir() { remove(); }

// Removes the tree; a directory already gone (or never made: moved from) is not an error.
void TempDir::remove() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
    path_.clear();
}

} // namespace nsfork::testing
