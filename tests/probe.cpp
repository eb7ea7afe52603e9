// nsfork-probe: a multi-call binary the tests run inside containers to look at what the
// container sees. Each verb prints its finding on stdout, one item per line.
#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <string>
#include <vector>

extern char** environ;

namespace {

// Numeric entries of a /proc directory.
std::vector<long> numeric_entries(const char* path) {
    std::vector<long> out;
    DIR* d = ::opendir(path);
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        char* end;
        const long n = std::strtol(e->d_name, &end, 10);
        if (*end == 0 && e->d_name[0] != 0) out.push_back(n);
    }
    ::closedir(d);
    return out;
}

// The state letter of /proc/PID/stat ('Z' for a zombie), or 0.
char proc_state(long pid) {
    char path[64], buf[512];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE* f = std::fopen(path, "re");
    if (!f) return 0;
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* paren = std::strrchr(buf, ')');
    return paren && paren[1] ? paren[2] : 0;
}

void sleep_ms(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000};
    ::nanosleep(&ts, nullptr);
}

[[noreturn]] void sleep_forever() {
    for (;;) ::pause();
}

int usage() {
    std::fputs("usage: nsfork-probe pid|ppid|pidns|fds|env|ps|sleep|exit N|signal-self N|"
               "can-signal PID|trap SIG...|daemon N|orphans N|zombies|cwd|view|forkbomb|group-signal|"
               "group-trap SIG\n",
               stderr);
    return 2;
}

// A file's contents, NULs shown as spaces.
std::string slurp(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return "?";
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
    for (char& c : out)
        if (c == '\0') c = ' ';
    return out;
}

// The targets of a process's fds, "N -> kind" with inode numbers dropped.
std::string fd_kinds(const std::string& dir) {
    std::string out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return "?";
    const int own = ::dirfd(d);
    std::vector<std::string> items;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.' || (dir == "/proc/self/fd" && std::atoi(e->d_name) == own)) continue;
        char target[256] = {};
        ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
        std::string kind = target;
        if (auto bracket = kind.find(":["); bracket != std::string::npos) kind = kind.substr(0, bracket);
        items.push_back(std::string(e->d_name) + "->" + kind);
    }
    ::closedir(d);
    std::sort(items.begin(), items.end());
    for (const auto& i : items) out += i + " ";
    return out;
}

void view() {
    std::printf("pid: %d\nppid: %d\nsid: %d\npgrp: %d\n", ::getpid(), ::getppid(), ::getsid(0), ::getpgrp());
    char cwd[4096];
    std::printf("cwd: %s\n", ::getcwd(cwd, sizeof cwd) ? cwd : "?");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    std::sort(env.begin(), env.end());
    for (const auto& e : env) std::printf("env: %s\n", e.c_str());
    // From our status: identity, capabilities, signals, namespaces depth.
    FILE* f = std::fopen("/proc/self/status", "re");
    char line[512];
    static const char* const keys[] = {"Umask", "Uid", "Gid", "Groups", "NSpid", "NSpgid", "NSsid", "SigBlk", "SigIgn",
                                       "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                                       "Cpus_allowed_list"};
    while (f && std::fgets(line, sizeof line, f))
        for (const char* k : keys)
            if (std::strncmp(line, k, std::strlen(k)) == 0 && line[std::strlen(k)] == ':') std::printf("self.%s", line);
    if (f) std::fclose(f);
    std::printf("self.fds: %s\n", fd_kinds("/proc/self/fd").c_str());
    // Scheduling, ours and pid 1's: a warm pool entry sets itself up at SCHED_IDLE.
    for (pid_t pid : {0, 1}) {
        errno = 0;
        const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(pid));
        std::printf("%s.sched: policy %d nice %d%s\n", pid ? "pid1" : "self", ::sched_getscheduler(pid), nice,
                    errno ? " (getpriority failed)" : "");
    }
    std::printf("pid1.cmdline: %s\n", slurp("/proc/1/cmdline").c_str());
    std::printf("pid1.environ: %s\n", slurp("/proc/1/environ").c_str());
    // Right after our exec, pid 1 may still hold its report channel for a few microseconds
    // (it reports our exec, then closes it): look at its settled state, bounded. Its working
    // directory too: it leaves ours before it reports.
    for (int i = 0; i < 200 && numeric_entries("/proc/1/fd").size() > 4; ++i) sleep_ms(10);
    std::printf("pid1.fds: %s\n", fd_kinds("/proc/1/fd").c_str());
    char pid1_cwd[4096] = {};
    std::printf("pid1.cwd: %s\n", ::readlink("/proc/1/cwd", pid1_cwd, sizeof pid1_cwd - 1) > 0 ? pid1_cwd : "?");
    for (long pid : numeric_entries("/proc")) {
        std::string comm = slurp("/proc/" + std::to_string(pid) + "/comm");
        if (!comm.empty() && comm.back() == '\n') comm.pop_back();
        std::printf("ps: %ld %s\n", pid, comm.c_str());
    }
    std::printf("limits: %s", slurp("/proc/self/limits").c_str());
    std::printf("cgroup: %s", slurp("/proc/self/cgroup").c_str());
    // Mount points and types, in order (ids and options vary with the host, not the path).
    FILE* m = std::fopen("/proc/self/mountinfo", "re");
    while (m && std::fgets(line, sizeof line, m)) {
        char point[512], type[64];
        const char* dash = std::strstr(line, " - ");
        if (std::sscanf(line, "%*s %*s %*s %*s %511s", point) == 1 && dash && std::sscanf(dash + 3, "%63s", type) == 1)
            std::printf("mount: %s %s\n", point, type);
    }
    if (m) std::fclose(m);
}

volatile sig_atomic_t g_caught = 0;
void on_signal(int sig) { g_caught = sig; }

volatile sig_atomic_t g_usr1 = 0;
void count_usr1(int) { g_usr1 = g_usr1 + 1; }

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string verb = argv[1];
    const long arg = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 0;

    if (verb == "pid") std::printf("%d\n", ::getpid());
    else if (verb == "ppid") std::printf("%d\n", ::getppid());
    else if (verb == "cwd") {
        char buf[4096];
        std::printf("%s\n", ::getcwd(buf, sizeof buf) ? buf : "?");
    } else if (verb == "pidns") {
        struct stat st;
        if (::stat("/proc/self/ns/pid", &st) < 0) return 1;
        std::printf("%lu\n", static_cast<unsigned long>(st.st_ino));
    } else if (verb == "fds") {
        // Open the directory first so that its own fd can be left out.
        DIR* d = ::opendir("/proc/self/fd");
        if (!d) return 1;
        const int own = ::dirfd(d);
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.' && std::atoi(e->d_name) != own) std::printf("%s\n", e->d_name);
        ::closedir(d);
    } else if (verb == "env") {
        for (char** e = environ; *e; ++e) std::printf("%s\n", *e);
    } else if (verb == "ps") {
        for (long pid : numeric_entries("/proc")) std::printf("%ld\n", pid);
    } else if (verb == "sleep") {
        std::printf("ready\n");
        std::fflush(stdout);
        sleep_forever();
    } else if (verb == "exit") {
        return static_cast<int>(arg);
    } else if (verb == "signal-self") {
        std::signal(static_cast<int>(arg), SIG_DFL);
        ::kill(::getpid(), static_cast<int>(arg));
        sleep_forever();
    } else if (verb == "can-signal") {
        // kill(pid, 0): "ok" if this process could signal it, else the errno's name.
        const int rc = ::kill(static_cast<pid_t>(arg), 0);
        std::printf("%s\n", rc == 0 ? "ok" : strerrorname_np(errno));
    } else if (verb == "trap") {
        // Handles the named signals; exits with 100+N on the first one caught.
        // Blocked but while sigsuspend() waits (see group-trap).
        sigset_t none, trapped;
        ::sigemptyset(&none);
        ::sigemptyset(&trapped);
        for (int i = 2; i < argc; ++i) {
            std::signal(std::atoi(argv[i]), on_signal);
            ::sigaddset(&trapped, std::atoi(argv[i]));
        }
        ::sigprocmask(SIG_SETMASK, &trapped, nullptr);
        std::printf("ready\n");
        std::fflush(stdout);
        while (!g_caught) ::sigsuspend(&none);
        std::printf("caught %d\n", static_cast<int>(g_caught));
        return 100 + g_caught;
    } else if (verb == "daemon") {
        // A double-forked setsid daemon that starts N sleeping children; this process stays.
        int ready[2];
        if (::pipe2(ready, O_CLOEXEC) < 0) return 1;
        const pid_t first = ::fork();
        if (first == 0) {
            ::setsid();
            if (::fork() != 0) ::_exit(0);
            for (long i = 0; i < arg; ++i)
                if (::fork() == 0) sleep_forever();
            [[maybe_unused]] ssize_t n = ::write(ready[1], "x", 1);
            sleep_forever();
        }
        ::close(ready[1]);
        ::waitpid(first, nullptr, 0);
        char c;
        if (::read(ready[0], &c, 1) != 1) return 1;
        std::printf("ready\n");
        std::fflush(stdout);
        sleep_forever();
    } else if (verb == "orphans") {
        // N children each leave an orphan that exits at once; pid 1 must reap them.
        for (long i = 0; i < arg; ++i) {
            const pid_t child = ::fork();
            if (child == 0) {
                if (::fork() == 0) {
                    sleep_ms(10);
                    ::_exit(0);
                }
                ::_exit(0);
            }
            ::waitpid(child, nullptr, 0);
        }
        std::printf("spawned\n");
        std::fflush(stdout);
        return 0;
    } else if (verb == "view") {
        // What a container looks like from inside, one "key: value" line each, for comparing
        // a warm and a cold container field by field.
        view();
    } else if (verb == "forkbomb") {
        // Forks sleeping children until fork fails; prints how many it made, then stays.
        long made = 0;
        for (;;) {
            const pid_t child = ::fork();
            if (child < 0) break;
            if (child == 0) sleep_forever();
            ++made;
        }
        std::printf("forked %ld (%s)\nready\n", made, strerrorname_np(errno));
        std::fflush(stdout);
        sleep_forever();
    } else if (verb == "group-signal") {
        // `kill -USR1 0`, then how many times SIGUSR1 arrived. The count is taken once a SIGUSR2
        // sent to pid 1 came back forwarded: pid 1 reads its signals lowest first, so a SIGUSR1
        // it got from our group would have been forwarded, and delivered, before it.
        std::signal(SIGUSR1, count_usr1);
        std::signal(SIGUSR2, on_signal);
        sigset_t none, usr2;
        ::sigemptyset(&none);
        ::sigemptyset(&usr2);
        ::sigaddset(&usr2, SIGUSR2);
        ::sigprocmask(SIG_SETMASK, &usr2, nullptr); // but while sigsuspend() waits (see group-trap)
        ::kill(0, SIGUSR1);
        ::kill(1, SIGUSR2);
        while (!g_caught) ::sigsuspend(&none);
        std::printf("usr1 %d\n", static_cast<int>(g_usr1));
    } else if (verb == "group-trap") {
        // This process and a child of it (same process group) wait for signal SIG; each says
        // when it caught it. "ready" once both handle it.
        // SIG stays blocked but while sigsuspend() waits: one arriving between the check of
        // g_caught and the wait would otherwise be handled before pause() and wait forever.
        std::signal(static_cast<int>(arg), on_signal);
        sigset_t none, only;
        ::sigemptyset(&none);
        ::sigemptyset(&only);
        ::sigaddset(&only, static_cast<int>(arg));
        ::sigprocmask(SIG_SETMASK, &only, nullptr);
        std::fflush(stdout);
        const pid_t child = ::fork();
        if (child < 0) return 1;
        const char* who = child == 0 ? "child" : "parent";
        if (child != 0) {
            std::printf("ready\n");
            std::fflush(stdout);
        }
        while (!g_caught) ::sigsuspend(&none);
        std::printf("%s caught %d\n", who, static_cast<int>(g_caught));
        std::fflush(stdout);
        if (child == 0) return 0;
        ::waitpid(child, nullptr, 0);
    } else if (verb == "zombies") {
        // Zombies visible in /proc, after giving pid 1 up to 5 s to reap them.
        int zombies = 0;
        for (int tries = 0; tries < 500; ++tries) {
            zombies = 0;
            for (long pid : numeric_entries("/proc")) zombies += proc_state(pid) == 'Z';
            if (zombies == 0) break;
            sleep_ms(10);
        }
        std::printf("%d\n", zombies);
    } else {
        return usage();
    }
    return 0;
}
