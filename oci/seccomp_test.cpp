// linux.seccomp compiled by libseccomp: the profiles podman and Docker send compile, and the
// programs really filter — each is loaded in a forked child (no_new_privs, so no root needed)
// that makes a denied system call and reports the errno it got.
#include "oci/seccomp.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <linux/seccomp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

using namespace nsfork;
using namespace nsfork::oci;
using nlohmann::json;

namespace {

// Loads `program` in a forked child and returns what `probe` returned there (0..255).
int in_filtered_child(const SeccompProgram& program, const std::function<int()>& probe) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sock_fprog prog{static_cast<unsigned short>(program.filter.size()),
                        const_cast<sock_filter*>(program.filter.data())};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(250);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, program.flags, &prog) != 0) _exit(251);
        _exit(probe());
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// The errno of a system call that is expected to fail, 0 if it succeeded.
int errno_of(long rc) { return rc < 0 ? errno : 0; }

Seccomp allow_all_but(std::vector<SeccompRule> rules) {
    Seccomp s;
    s.default_action = "SCMP_ACT_ALLOW";
    s.syscalls = std::move(rules);
    return s;
}

std::string error_of(const Seccomp& s) {
    auto program = compile_seccomp(s);
    return program ? "" : program.error().message;
}

// The running kernel's "major.minor" is at least `version`.
bool kernel_at_least(const std::string& version) {
    utsname u{};
    uname(&u);
    int major = 0, minor = 0, want_major = 0, want_minor = 0;
    std::sscanf(u.release, "%d.%d", &major, &minor);
    std::sscanf(version.c_str(), "%d.%d", &want_major, &want_minor);
    return major > want_major || (major == want_major && minor >= want_minor);
}

// What dockerd (moby/profiles/seccomp setupSeccomp) and podman (containers/common's copy of it)
// send as linux.seccomp, made from their profile source for an x86_64 container with the
// bounding set `caps`: the architectures of the native entry of archMap, and the rules whose
// includes/excludes match the architecture, the capabilities and the kernel.
Seccomp engine_profile(const json& source, const std::set<std::string>& caps) {
    Seccomp s;
    s.default_action = source.at("defaultAction");
    if (source.contains("defaultErrnoRet")) s.default_errno_ret = source.at("defaultErrnoRet").get<unsigned>();
    for (const json& arch : source.at("archMap")) {
        if (arch.at("architecture") != "SCMP_ARCH_X86_64") continue;
        s.architectures.push_back(arch.at("architecture"));
        for (const json& sub : arch.at("subArchitectures")) s.architectures.push_back(sub);
    }
    auto member = [](const json& rule, const char* section, const char* key) {
        if (!rule.contains(section) || !rule[section].contains(key) || rule[section][key].is_null())
            return std::vector<std::string>{};
        return rule[section][key].get<std::vector<std::string>>();
    };
    auto has = [](const std::vector<std::string>& list, const std::string& item) {
        return std::find(list.begin(), list.end(), item) != list.end();
    };
    for (const json& rule : source.at("syscalls")) {
        auto include_arches = member(rule, "includes", "arches");
        auto include_caps = member(rule, "includes", "caps");
        bool keep = !has(member(rule, "excludes", "arches"), "amd64") &&
                    (include_arches.empty() || has(include_arches, "amd64"));
        for (const std::string& cap : member(rule, "excludes", "caps")) keep &= !caps.count(cap);
        for (const std::string& cap : include_caps) keep &= caps.count(cap) > 0;
        if (rule.contains("includes") && rule["includes"].contains("minKernel"))
            keep &= kernel_at_least(rule["includes"]["minKernel"]);
        if (!keep) continue;
        SeccompRule r;
        r.names = rule.at("names").get<std::vector<std::string>>();
        r.action = rule.at("action");
        if (rule.contains("errnoRet")) r.errno_ret = rule.at("errnoRet").get<unsigned>();
        if (rule.contains("args") && !rule["args"].is_null())
            for (const json& a : rule["args"])
                r.args.push_back(SeccompArg{a.at("index"), a.at("value"), a.value("valueTwo", std::uint64_t{0}), a.at("op")});
        s.syscalls.push_back(std::move(r));
    }
    return s;
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    INFO("reading " << path);
    REQUIRE(in);
    return json::parse(in);
}

} // namespace

TEST_CASE("oci seccomp: a small profile compiles and the kernel enforces its errno, argument and unknown-name rules") {
    Seccomp s = allow_all_but({
        {{"getcwd", "no_such_syscall_anywhere"}, "SCMP_ACT_ERRNO", ENOMEDIUM, {}},
        // personality(PER_LINUX32) refused, personality(0xffffffff) (a query) allowed.
        {{"personality"}, "SCMP_ACT_ERRNO", std::nullopt, {{0, PER_LINUX32, 0, "SCMP_CMP_EQ"}}},
        // two conditions on one argument become two rules, either matching (runc's way).
        {{"dup3"}, "SCMP_ACT_ERRNO", EXDEV, {{2, 1, 0, "SCMP_CMP_EQ"}, {2, 2, 0, "SCMP_CMP_EQ"}}},
        {{"getpid"}, "SCMP_ACT_ALLOW", std::nullopt, {}},
    });
    s.flags = {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"};
    auto program = compile_seccomp(s);
    INFO((program ? "" : program.error().message));
    REQUIRE(program.ok());
    CHECK(program->filter.size() > 4);
    CHECK(program->flags == (SECCOMP_FILTER_FLAG_SPEC_ALLOW | SECCOMP_FILTER_FLAG_LOG));
    char buf[256];
    CHECK(in_filtered_child(*program, [&] { return errno_of(getcwd(buf, sizeof buf) ? 0 : -1); }) == ENOMEDIUM);
    CHECK(in_filtered_child(*program, [] { return errno_of(personality(PER_LINUX32)); }) == EPERM);
    CHECK(in_filtered_child(*program, [] { return errno_of(personality(0xffffffff)); }) == 0);
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_dup3, 0, 100, 2)); }) == EXDEV);
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_dup3, 0, 100, 4)); }) == EINVAL);
}

TEST_CASE("oci seccomp: seccomp errors name their field") {
    Seccomp bad_default = allow_all_but({});
    bad_default.default_action = "SCMP_ACT_FOO";
    CHECK(error_of(bad_default) == "config.json: linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"");
    CHECK(error_of(allow_all_but({{{"read"}, "SCMP_ACT_ERRNO", 1, {}}, {{"write"}, "SCMP_ACT_BAR", {}, {}}})) ==
          "config.json: linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_BAR\"");
    CHECK(error_of(allow_all_but({{{"read"}, "SCMP_ACT_NOTIFY", {}, {}}})) ==
          "config.json: linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs a listener "
          "(linux.seccomp.listenerPath), which nsfork does not support");
    CHECK(error_of(allow_all_but({{{"read"}, "SCMP_ACT_ERRNO", {}, {{0, 1, 0, "SCMP_CMP_SIMILAR"}}}})) ==
          "config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_SIMILAR\"");
    CHECK(error_of(allow_all_but({{{"read"}, "SCMP_ACT_ERRNO", {}, {{6, 1, 0, "SCMP_CMP_EQ"}}}})) ==
          "config.json: linux.seccomp.syscalls[0].args[0].index: a system call has 6 arguments, 0 to 5");
    Seccomp bad_arch = allow_all_but({});
    bad_arch.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"};
    CHECK(error_of(bad_arch) == "config.json: linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\"");
    Seccomp bad_flag = allow_all_but({});
    bad_flag.flags = {"SECCOMP_FILTER_FLAG_FAST"};
    CHECK(error_of(bad_flag) == "config.json: linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\"");
    bad_flag.flags = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
    CHECK_THAT(error_of(bad_flag), Catch::EndsWith("needs a notify listener, which nsfork does not support"));
}

TEST_CASE("oci seccomp: Docker's default profile compiles and denies what it denies") {
    // tests/oci/profiles/docker-default.json is moby/profiles/seccomp v0.2.3's default.json
    // verbatim (vendored in moby/moby at b985e231, vendor/github.com/moby/profiles/seccomp/):
    // dockerd compiles it in and sends what engine_profile makes of it.
    auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "tests/oci/profiles/docker-default.json";
    Seccomp s = engine_profile(read_json(path), {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                                                 "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
                                                 "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                                                 "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"});
    CHECK(s.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
    auto program = compile_seccomp(s);
    INFO((program ? "" : program.error().message));
    REQUIRE(program.ok());
    CHECK(program->flags == 0);
    CHECK(in_filtered_child(*program, [] { return errno_of(getpid() > 0 ? 0 : -1); }) == 0);
    // setns needs CAP_SYS_ADMIN in the profile: the default action, EPERM (unfiltered: EBADF).
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_setns, -1, 0)); }) == EPERM);
    // clone3 gets ENOSYS so that libcs fall back to clone (unfiltered, NULL args: EFAULT/EINVAL).
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_clone3, nullptr, 0)); }) == ENOSYS);
    // socket is allowed unless its family is AF_VSOCK (an argument comparison).
    CHECK(in_filtered_child(*program, [] { return errno_of(socket(AF_VSOCK, SOCK_STREAM, 0)); }) == EPERM);
    CHECK(in_filtered_child(*program, [] {
              int fd = socket(AF_UNIX, SOCK_STREAM, 0);
              return fd < 0 ? errno : 0;
          }) == 0);
}

TEST_CASE("oci seccomp: podman's default profile compiles and denies what it denies") {
    // Debian's golang-github-containers-common installs the profile podman sends.
    const char* path = "/usr/share/containers/seccomp.json";
    INFO("install Debian's golang-github-containers-common for " << path);
    REQUIRE(std::filesystem::exists(path));
    Seccomp s = engine_profile(read_json(path), {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                                                 "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID",
                                                 "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"});
    auto program = compile_seccomp(s);
    INFO((program ? "" : program.error().message));
    REQUIRE(program.ok());
    CHECK(in_filtered_child(*program, [] { return errno_of(getppid() > 0 ? 0 : -1); }) == 0);
    // Its first rule refuses vmsplice with EPERM (unfiltered, fd -1: EBADF).
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_vmsplice, -1, nullptr, 0, 0)); }) == EPERM);
    // Not listed at all: the default action, ENOSYS (unfiltered, a NULL type: EFAULT).
    CHECK(in_filtered_child(*program, [] { return errno_of(syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0)); }) ==
          ENOSYS);
}
