#include "oci/front_link.hpp"

#include "base/syscalls.hpp"
#include "oci/front_wire.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nsfork::oci::front {

namespace {

Link* g_link = nullptr;

// Appends the plan's parts to one buffer, pointers as offsets + 1, descriptors as indices.
class Encoder {
public:
    std::size_t put(const void* data, std::size_t size, std::size_t align) {
        out.resize((out.size() + align - 1) / align * align);
        const std::size_t offset = out.size();
        if (size) out.append(static_cast<const char*>(data), size); // (data may be null then)
        return offset;
    }
    template <typename T>
    static T* offset(std::size_t at) {
        return reinterpret_cast<T*>(at + 1);
    }
    const char* string(const char* s) { return s ? offset<const char>(put(s, std::strlen(s) + 1, 1)) : nullptr; }
    // A null-terminated array of strings (`pairs`: key, value-or-null pairs ended by a null key).
    template <typename P>
    P* strings(P* array, bool pairs) {
        if (!array) return nullptr;
        std::size_t n = 0;
        while (array[n] || (pairs && n % 2 == 1)) ++n;
        std::vector<const char*> encoded(n + 1, nullptr);
        for (std::size_t i = 0; i < n; ++i) encoded[i] = string(array[i]);
        return offset<std::remove_pointer_t<P*>>(put(encoded.data(), encoded.size() * sizeof(char*), alignof(char*)));
    }
    int fd(int f) {
        if (f < 0) return -1;
        fds.push_back(f);
        return static_cast<int>(fds.size() - 1);
    }

    std::string out;
    std::vector<int> fds;
};

} // namespace

EncodedPlan encode_plan(const child::Plan& plan) {
    Encoder e;
    child::Plan p = plan;
    std::vector<child::Step> steps(plan.steps, plan.steps + plan.count);
    e.put(&p, sizeof p, alignof(child::Plan)); // rewritten below, once its fields are encoded
    const std::size_t steps_at = e.put(steps.data(), steps.size() * sizeof(child::Step), alignof(child::Step));
    for (child::Step& s : steps) {
        s.fd = e.fd(s.fd);
        s.path = e.string(s.path);
        s.text = e.string(s.text);
        s.text2 = e.string(s.text2);
        s.options = e.strings(s.options, true);
    }
    if (!steps.empty()) std::memcpy(e.out.data() + steps_at, steps.data(), steps.size() * sizeof(child::Step));
    p.steps = plan.count ? Encoder::offset<child::Step>(steps_at) : nullptr;
    p.report = e.fd(plan.report);
    p.parent_pidfd = -1;
    for (int& fd : p.stdio) fd = e.fd(fd);
    if (plan.preserved_count) {
        std::vector<int> preserved(plan.preserved, plan.preserved + plan.preserved_count);
        for (int& fd : preserved) fd = e.fd(fd);
        p.preserved = Encoder::offset<int>(e.put(preserved.data(), preserved.size() * sizeof(int), alignof(int)));
    } else {
        p.preserved = nullptr;
    }
    p.groups = plan.group_count ? Encoder::offset<const gid_t>(e.put(plan.groups, plan.group_count * sizeof(gid_t), alignof(gid_t)))
                                : nullptr;
    p.candidates = e.strings(plan.candidates, false);
    p.argv = e.strings(plan.argv, false);
    p.envp = e.strings(plan.envp, false);
    p.filter.filter = plan.filter.len ? Encoder::offset<sock_filter>(e.put(plan.filter.filter, plan.filter.len * sizeof(sock_filter),
                                                                            alignof(sock_filter)))
                                      : nullptr;
    std::memcpy(e.out.data(), &p, sizeof p);
    return {std::move(e.out), std::move(e.fds)};
}

Link* link() { return g_link; }
void set_link(Link* l) { g_link = l; }

namespace {

Error lost(int err) {
    return sys_error(Errc::internal, "the nsfork-oci front that called this runtime", err ? err : EPIPE);
}

template <typename M>
Result<void> send_message(int conn, const M& m, const int* fds = nullptr, std::size_t count = 0) {
    if (sys::send_with_fds(conn, &m, sizeof m, fds, count) < 0) return lost(errno);
    return {};
}

// The front's answer: a Result of `kind`, and the descriptor it carries, if any.
Result<std::int32_t> receive(int conn, Kind kind, UniqueFd* fd = nullptr) {
    Answer m{};
    int got[1] = {-1};
    std::size_t count = 0;
    int flags = 0;
    const ssize_t n = sys::recv_with_fds(conn, &m, sizeof m, got, 1, &count, &flags);
    UniqueFd received(count ? got[0] : -1);
    if (n < 0) return lost(errno);
    if (n != sizeof m || m.kind != kind) return lost(n == 0 ? EPIPE : EPROTO);
    if (fd) *fd = std::move(received);
    return m.value;
}

} // namespace

Result<std::pair<UniqueFd, pid_t>> Link::clone(const child::Plan& plan, int pidns_pidfd, int cgroup_leaf, bool foreground) {
    EncodedPlan encoded = encode_plan(plan);
    CloneHeader header;
    header.pidns = static_cast<std::int32_t>(encoded.fds.size());
    encoded.fds.push_back(pidns_pidfd);
    if (cgroup_leaf >= 0) {
        header.cgroup = static_cast<std::int32_t>(encoded.fds.size());
        encoded.fds.push_back(cgroup_leaf);
    }
    for (std::size_t sent = 0; sent < encoded.fds.size(); sent += kFdsPerMessage) {
        const Kind fds = Kind::fds;
        const std::size_t count = std::min(kFdsPerMessage, encoded.fds.size() - sent);
        if (auto ok = send_message(conn_.get(), fds, encoded.fds.data() + sent, count); !ok) return std::move(ok).error();
    }
    UniqueFd memfd(::memfd_create("nsfork-oci-plan", MFD_CLOEXEC));
    if (!memfd) return sys_error(Errc::internal, "memfd_create", errno);
    for (std::size_t done = 0; done < encoded.bytes.size();) {
        const ssize_t n = ::write(memfd.get(), encoded.bytes.data() + done, encoded.bytes.size() - done);
        if (n < 0) return sys_error(Errc::internal, "write the plan for the front", errno);
        done += static_cast<std::size_t>(n);
    }
    header.plan_size = static_cast<std::uint32_t>(encoded.bytes.size());
    header.foreground = foreground ? 1 : 0;
    const int plan_fd = memfd.get();
    if (auto ok = send_message(conn_.get(), header, &plan_fd, 1); !ok) return std::move(ok).error();
    UniqueFd pidfd;
    auto pid = receive(conn_.get(), Kind::cloned, &pidfd);
    if (!pid) return std::move(pid).error();
    if (*pid < 0) return sys_error(Errc::launch_failed, cgroup_leaf >= 0 ? "clone3 into the container's cgroup" : "clone3", -*pid);
    if (!pidfd) return lost(EPROTO);
    return std::pair<UniqueFd, pid_t>{std::move(pidfd), *pid};
}

Result<ExitStatus> Link::ended() {
    auto value = receive(conn_.get(), Kind::exited);
    if (!value) return std::move(value).error();
    return *value >= 0 ? ExitStatus{*value, 0} : ExitStatus{0, -*value};
}

Result<ExitStatus> Link::reap(bool kill) {
    Reap r;
    r.kill = kill ? 1 : 0;
    if (auto ok = send_message(conn_.get(), r); !ok) return std::move(ok).error();
    return ended();
}

Result<void> Link::forward() {
    const Kind w = Kind::wait;
    return send_message(conn_.get(), w);
}

void Link::exit(int code) {
    const Answer m{Kind::exit, code};
    (void)send_message(conn_.get(), m);
}

void Link::fallback() {
    const Kind f = Kind::fallback;
    (void)send_message(conn_.get(), f);
}

} // namespace nsfork::oci::front
