// Hold containers (Launch.hold): a runtime forks the container's process into the namespaces and
// the leaf the server made (DESIGN.md, "Two ways a container's process is born"), then Adopts
// it: from then on that main process's end is the container's. It is the runtime's child, not
// ours: the engine above the runtime reaps it, and the container's exit status is its holder's
// (killed by us when the main process ended).
#include <utility> // before Asio: Boost 1.74 + GCC 12 in C++20 needs std::exchange declared

#include "server/hold.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"
#include "base/syscalls.hpp"
#include "protocol/replies.hpp"
#include "server/loop.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>

namespace nsfork {

using Descriptor = boost::asio::posix::stream_descriptor;
using boost::system::error_code;

Result<Cgroup> create_named_cgroup(const std::string& root, std::string_view name) {
    for (std::size_t slash = name.find('/'); slash != std::string_view::npos; slash = name.find('/', slash + 1)) {
        const std::string path = root + "/" + std::string(name.substr(0, slash));
        if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) {
            Error e = sys_error(Errc::unavailable, "cannot create cgroup " + path, errno);
            remove_cgroup_parents(root, name);
            return e;
        }
    }
    auto leaf = Cgroup::create(root, std::string(name));
    if (!leaf) remove_cgroup_parents(root, name);
    return leaf;
}

void remove_cgroup_parents(const std::string& root, std::string_view name) {
    for (std::size_t slash = name.rfind('/'); slash != std::string_view::npos && slash > 0;
         slash = name.rfind('/', slash - 1))
        if (::rmdir((root + "/" + std::string(name.substr(0, slash))).c_str()) < 0) return; // in use: so are its parents
}

namespace {

// Whether the process behind `pidfd` has exited (its pidfd is readable then).
bool exited(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

} // namespace

// The container whose own pid namespace is `pidns` (its init is that namespace's pid 1), if it
// is still running.
Server::Record Server::pidns_owner(ino_t pidns) const {
    for (const auto& [id, c] : registry_.all())
        if (c->visible() && c->own_pidns && c->info.pidns == pidns && !c->has_ended() && !c->kill_sent()) return c;
    return nullptr;
}

// A pidfd of our own of the process behind the client's `pidfd`, if it is one of `c`'s: in its
// pid namespace (when it has one of its own), or in its cgroup leaf or below. Our own, because
// the client's shares its flags with us (watching it would make it non-blocking for the
// client's waitid). Read through /proc and opened by pid, so the process is checked to be alive
// after: its pid cannot have named another process meanwhile.
Result<UniqueFd> Server::adoptable(const ContainerRecord& c, int pidfd) const {
    const pid_t pid = pid_of_pidfd(pidfd);
    if (pid <= 0) return Error{Errc::bad_request, "the fd Adopt carries is not a pidfd of a live process"};
    if (pid == c.info.pid)
        return Error{Errc::bad_request, "the pidfd Adopt carries is the holder's: adopt the process forked into the "
                                        "container '" + c.info.id + "'"};
    bool member = c.own_pidns && procfs::pid_namespace_inode(pid, pidfd) == c.info.pidns;
    if (!member && c.cgroup) {
        const std::string its = procfs::cgroup2_mount() + procfs::cgroup2_path(pid);
        member = its == c.cgroup->path() || its.starts_with(c.cgroup->path() + "/");
    }
    UniqueFd own(sys::pidfd_open(pid, 0));
    if (!own && errno != ESRCH) return sys_error(Errc::internal, "pidfd_open failed", errno);
    if (!own || exited(pidfd)) return Error{Errc::invalid_state, fmt::format("process {} has already exited", pid)};
    if (member) return own;
    if (c.own_pidns)
        return Error{Errc::not_permitted, fmt::format("process {} is not in container '{}': neither in its pid "
                                                      "namespace nor in its cgroup", pid, c.info.id)};
    return Error{Errc::not_permitted, fmt::format("process {} is not in container '{}': not in its cgroup {} (the "
                                                  "container shares its pid namespace)",
                                                  pid, c.info.id, c.cgroup ? c.cgroup->path() : "(none)")};
}

void Server::on_adopt(Connection& conn, std::uint32_t seq, const wire::Adopt& req, std::vector<UniqueFd>& fds) {
    const Waiter w{conn.id(), seq};
    auto c = registry_.find(req.id()->string_view());
    if (!c) return reply_error(w, Error{Errc::unknown_container, fmt::format("no container with id '{}'", req.id()->string_view())});
    if (fds.size() != 1)
        return reply_error(w, Error{Errc::bad_request, fmt::format("Adopt carries {} fds: it takes one, the pidfd of "
                                                                   "the container's main process", fds.size())});
    auto refuse = [&](std::string_view why) {
        reply_error(w, Error{Errc::invalid_state, fmt::format("container '{}' {}", c->info.id, why)});
    };
    if (!c->info.held) return refuse("is not a hold container: its command is the server's");
    if (c->launcher) return refuse("is still starting");
    if (c->main) return refuse("has adopted its main process already");
    if (c->has_ended() || c->kill_sent()) return refuse("has already ended");
    auto main = adoptable(*c, fds[0].get());
    if (!main) return reply_error(w, main.error());
    c->main.emplace(io_, main->release());
    c->tied_to = 0; // it ends with its main process now, no longer with a connection
    watch_main(c);
    spdlog::debug("container {}: adopted pid {}", c->info.id, pid_of_pidfd(c->main->native_handle()));
    set_up(*c);
    flatbuffers::FlatBufferBuilder fbb(64);
    write_adopt_reply(fbb, seq);
    reply(w, fbb);
}

// When the main process ends, so does the container, as a server-born one ends with its
// command: its holder (or, sharing a namespace, its cgroup) is killed, and with it everything
// left in it and nested in it. on_exit goes on once the holder is reaped.
void Server::watch_main(const Record& c) {
    c->main->async_wait(Descriptor::wait_read, [this, c](error_code ec) {
        if (ec || c->has_ended()) return;
        spdlog::debug("container {}: its main process ended", c->info.id);
        last_activity_ns_ = LaunchStatistics::now_ns(); // its end is work for us: the namespaces wait
        registry_.kill(*c, kill_);
    });
}

} // namespace nsfork
