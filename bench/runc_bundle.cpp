#include "runc_bundle.hpp"

#include "process.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace nsfork::bench {

namespace {

// The absolute paths ldd names for `binary`: its libraries and the dynamic loader.
Result<std::vector<std::string>> libraries_of(const std::string& binary) {
    const std::string cmd = "ldd '" + binary + "' 2>/dev/null";
    std::FILE* p = ::popen(cmd.c_str(), "re");
    if (!p) return sys_error(Errc::unavailable, "cannot run ldd", errno);
    std::vector<std::string> out;
    char line[1024];
    while (std::fgets(line, sizeof line, p)) {
        const char* slash = std::strchr(line, '/');
        if (!slash) continue; // linux-vdso.so.1 has no file
        std::string path(slash);
        path = path.substr(0, path.find_first_of(" \t\n"));
        out.push_back(path);
    }
    if (::pclose(p) != 0) return Error{Errc::unavailable, "ldd " + binary + " failed"};
    return out;
}

// Copies a host file to the same path under `root`.
Result<void> copy_into(const fs::path& root, const std::string& file) {
    std::error_code ec;
    const fs::path target = root / fs::path(file).relative_path();
    fs::create_directories(target.parent_path(), ec);
    if (!ec) fs::copy_file(fs::canonical(file, ec), target, fs::copy_options::overwrite_existing, ec);
    if (ec) return Error{Errc::unavailable, "cannot copy " + file + " into the runc rootfs: " + ec.message()};
    return {};
}

std::string config_json(const std::string& command) {
    // No hostname (no UTS namespace), no resources, maskedPaths or readonlyPaths, no terminal:
    // the least runc can be asked to do for a pid namespace with /proc.
    return fmt::format(R"({{
  "ociVersion": "1.0.2",
  "process": {{
    "terminal": false,
    "user": {{"uid": 0, "gid": 0}},
    "args": ["{}"],
    "env": ["{}"],
    "cwd": "/"
  }},
  "root": {{"path": "rootfs", "readonly": true}},
  "mounts": [{{"destination": "/proc", "type": "proc", "source": "proc"}}],
  "linux": {{"namespaces": [{{"type": "pid"}}, {{"type": "mount"}}]}}
}}
)",
                       command, kPathEnv);
}

} // namespace

Result<RuncBundle> RuncBundle::create(const std::string& runc, const std::string& command) {
    auto dir = TempDir::create("runc");
    if (!dir) return std::move(dir).error();
    const fs::path rootfs = fs::path(dir->path()) / "bundle" / "rootfs";
    std::error_code ec;
    fs::create_directories(rootfs / "proc", ec);
    fs::create_directories(fs::path(dir->path()) / "state", ec);
    if (ec) return Error{Errc::unavailable, "cannot create the runc bundle: " + ec.message()};
    auto libs = libraries_of(command);
    if (!libs) return std::move(libs).error();
    libs->push_back(command);
    for (const std::string& file : *libs)
        if (auto ok = copy_into(rootfs, file); !ok) return std::move(ok).error();
    std::ofstream(fs::path(dir->path()) / "bundle" / "config.json") << config_json(command);
    return RuncBundle(std::move(*dir), runc);
}

std::vector<std::string> RuncBundle::run_argv() {
    return {runc_, "--root", dir_.path() + "/state", "run", "--bundle", dir_.path() + "/bundle",
            fmt::format("nsfork-bench-{}-{}", ::getpid(), next_++)};
}

} // namespace nsfork::bench
