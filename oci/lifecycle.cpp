// create, start, run and delete: a container's life (runtime-spec "Lifecycle").
#include "oci/cgroup_path.hpp"
#include "oci/device_filter.hpp"
#include "oci/front_link.hpp"
#include "oci/commands.hpp"
#include "oci/hooks.hpp"
#include "oci/resources.hpp"
#include "oci/setup.hpp"
#include "oci/spec.hpp"
#include "oci/support.hpp"

#include "base/pidfd.hpp"
#include "base/procfs.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <filesystem>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace nsfork::oci {

namespace {

// What a failed create must take back, undone in reverse order unless the create succeeded.
class Undo {
public:
    Undo() = default;
    Undo(const Undo&) = delete;
    Undo& operator=(const Undo&) = delete;
    ~Undo() {
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
    }
    void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
    void dismiss() { steps_.clear(); }

private:
    std::vector<std::function<void()>> steps_;
};

Error wrap(std::string_view what, Error e) {
    e.message = std::string(what) + ": " + e.message;
    return e;
}

// Removes the container's controller cgroups. Its processes may still be exiting after SIGKILL
// (a cgroup with a task in do_exit is busy), so EBUSY is retried for a while.
Result<void> remove_controllers(const ControllerCgroups& cgroups) {
    Result<void> removed;
    for (int i = 0; i < 500; ++i) {
        removed = cgroups.remove();
        if (removed || removed.error().sys_errno != EBUSY) break;
        ::usleep(10000);
    }
    return removed;
}

// The server's hold container, whose Launch was `sent` ahead: our id when the server takes it
// (its ids are stricter than runc's, and another --root may use the same one), else one it picks.
Result<Container> finish_hold(Client& server, LaunchOptions& launch, Result<std::uint32_t> sent) {
    auto container = sent ? server.receive_launch(*sent, launch) : Result<Container>(std::move(sent).error());
    if (!container && (container.error().code == Errc::invalid_id || container.error().code == Errc::duplicate_id)) {
        launch.id.clear();
        container = server.launch(launch);
    }
    if (!container) return wrap("the nsfork server could not make the container's namespaces", std::move(container).error());
    return container;
}

// The Launch for a hold container as config.json's pid namespace asks: a new one; one joined by
// path (the server nests it under its owner when it is one of its containers'); none listed:
// the server's own (its policy decides).
Result<LaunchOptions> hold_launch(const Spec& spec, const std::string& id, const std::string& cgroups_path,
                                  UniqueFd& pidns) {
    LaunchOptions launch;
    launch.hold = true;
    launch.id = id;
    auto name = server_cgroup_name(cgroups_path);
    if (!name) return std::move(name).error();
    launch.cgroup_name = *name;
    // What the server can do ahead of us: load the device program (once for all containers with
    // the same rules), and make the new network, IPC and UTS namespaces (while it is quiet).
    if (!spec.resources.devices.empty()) {
        auto program = device_filter_for(spec.resources.devices);
        if (!program) return std::move(program).error();
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(program->data());
        launch.device_program.assign(bytes, bytes + program->size() * sizeof(bpf_insn));
    }
    for (const Namespace& wanted : spec.namespaces)
        if (wanted.path.empty() && (wanted.type & (CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)))
            launch.new_namespaces |= static_cast<std::uint32_t>(wanted.type);
    const Namespace* ns = spec.find_namespace(CLONE_NEWPID);
    if (!ns) {
        launch.share_pid_namespace = true;
    } else if (!ns->path.empty()) {
        pidns.reset(::open(ns->path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!pidns) return sys_error(Errc::bad_request, "config.json: linux.namespaces: pid path " + ns->path, errno);
        launch.join_pidns_fd = pidns.get();
    }
    return launch;
}

// The v2 leaf a process of ours was born into (`leaf`, its directory fd), as an absolute path
// in our mount namespace: the fd's own path, or where /proc says the process is ("" when there
// is no cgroup2 mount).
std::string leaf_of(int leaf, pid_t pid) {
    char path[PATH_MAX];
    const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(leaf)).c_str(), path, sizeof path);
    if (n > 0 && static_cast<std::size_t>(n) < sizeof path && path[0] == '/') return std::string(path, static_cast<std::size_t>(n));
    const std::string mount = procfs::cgroup2_mount();
    if (mount.empty()) return {};
    return mount + procfs::cgroup2_path(pid);
}

// A created container, its process our child.
struct Created {
    StateDir dir;
    ContainerState state;
    ContainerProcess process;
    // The connection the container was made on and the server's container, for a run in the
    // foreground, which the server destroys at its end (destroy_on_exit).
    std::optional<Client> server;
    std::optional<Container> holder;
};

// How a created process is started: by whoever opens its exec fifo (create: `start`), or by the
// runtime that made it (run: start_process, without a fifo, whose mkfifo, open and unlink cost
// ~0.4 ms on the ext4 of these VMs).
enum class StartBy { fifo, runtime };

// create: everything up to the process waiting for its start, state written, the process
// adopted by the server. On failure nothing is left: no state, process, cgroup, or server
// container (which is tied to our connection until adopted).
Result<Created> create_container(const Context& ctx, const CreateOptions& o, StartBy start_by, bool destroy_on_exit = false) {
    std::filesystem::path bundle_path = std::filesystem::absolute(o.bundle).lexically_normal();
    if (!bundle_path.has_filename() && bundle_path.has_parent_path()) bundle_path = bundle_path.parent_path(); // "b/"
    const std::string bundle = bundle_path.string();
    std::string config;
    auto spec = load_bundle(bundle, &config);
    if (!spec) return std::move(spec).error();
    // Hooks are processes the runtime starts: a warm one's would be born in the server's cgroup
    // with its limits, not the caller's. The front has the full program run them.
    const Hooks& hooks = spec->hooks;
    if (front::Link* front = front::link())
        if (!hooks.prestart.empty() || !hooks.create_runtime.empty() || !hooks.poststart.empty() || !hooks.poststop.empty())
            return front->fall_back();
    auto cgroups_path = cgroups_path_for(spec->cgroups_path, o.id, ctx.global.systemd_cgroup);
    if (!cgroups_path) return std::move(cgroups_path).error();

    auto server = connect_server(ctx.global.server_socket);
    if (!server) return std::move(server).error();
    // The state directory is the id's lock, taken before anything is asked of the server: two
    // creates of one id at once would otherwise both launch, and the server name both leaves
    // after the id.
    auto dir = StateDir::make(ctx.global.root, o.id);
    if (!dir) return std::move(dir).error();
    bool adopting = false; // the Adopt asked for
    Undo undo;
    undo.add([&dir] { (void)dir->remove(); });
    UniqueFd pidns;
    auto launch = hold_launch(*spec, o.id, *cgroups_path, pidns);
    if (!launch) return std::move(launch).error();
    launch->destroy_on_exit = destroy_on_exit;
    // The server makes the container while we save config.json (a file written on these VMs'
    // ext4 is ~0.1-0.2 ms). Until the process is adopted, the server's container ends with our
    // connection: a failure here leaves it nothing to keep.
    auto sent = server->send_launch(*launch);
    if (auto saved = write_file_atomically(dir->config(), config, 0600); !saved) return std::move(saved).error();
    std::string created_at = rfc3339_now(); // (glibc reads /etc/localtime the first time: meanwhile too)
    auto holder = finish_hold(*server, *launch, std::move(sent));
    if (!holder) return std::move(holder).error();
    ctx.log.debug("the server holds container " + o.id + " as " + holder->id());
    // Adopted, it no longer ends with our connection: destroyed on failure, once the process is
    // reaped (its namespace's pid 1 finishes dying only then; that undo step runs first).
    undo.add([&server, &adopting, id = holder->id()] {
        if (adopting) (void)server->destroy(id);
    });

    auto controllers = ControllerCgroups::create(spec->resources, *cgroups_path, holder->cgroup(), holder->device_program());
    if (!controllers) return std::move(controllers).error();
    undo.add([made = *controllers] { (void)remove_controllers(made); });
    auto procs = controllers->open_procs();
    if (!procs) return std::move(procs).error();

    UniqueFd fifo;
    if (start_by == StartBy::fifo) {
        // Writable by the process whatever user it becomes (runc's 0622); chmod, as the umask trims mkfifo's.
        if (::mkfifo(dir->fifo().c_str(), 0622) < 0 || ::chmod(dir->fifo().c_str(), 0622) < 0)
            return sys_error(Errc::internal, "mkfifo " + dir->fifo(), errno);
        fifo.reset(::open(dir->fifo().c_str(), O_PATH | O_CLOEXEC));
        if (!fifo) return sys_error(Errc::internal, "open " + dir->fifo(), errno);
    }
    auto io = process_io(o.console_socket, o.preserve_fds);
    if (!io) return std::move(io).error();

    ContainerState state;
    state.id = o.id;
    state.bundle = bundle;
    state.rootfs = spec->root;
    state.holder_pid = holder->pid();
    if (auto stat = process_stat(holder->pid())) state.holder_start_time = stat->start_time;
    state.server_socket = ctx.global.server_socket;
    state.server_id = holder->id();
    state.cgroups_path = *cgroups_path;
    state.controllers = controllers->paths();
    state.annotations = spec->annotations;
    state.created = std::move(created_at);
    state.poststart = spec->hooks.poststart;
    state.poststop = spec->hooks.poststop;

    CreateRequest request;
    request.spec = &*spec;
    request.holder_pidfd = holder->pidfd();
    request.cgroup_leaf = holder->cgroup();
    for (const UniqueFd& fd : *procs) request.cgroup_procs.push_back(fd.get());
    request.exec_fifo = fifo.get();
    request.no_pivot = o.no_pivot;
    request.foreground = destroy_on_exit; // a run in the foreground
    for (const UniqueFd& ns : holder->namespaces()) request.made_namespaces.push_back(ns.get());
    request.io = io->io;
    // Written after the hooks, as runc's (a runtime killed in them leaves no container), while
    // the process pivots into its root (without hooks: while it makes its mounts).
    request.resumed = [&](pid_t pid) -> Result<void> {
        state.pid = pid;
        if (auto stat = process_stat(pid)) state.start_time = stat->start_time;
        if (holder->cgroup() >= 0) state.cgroup_leaf = leaf_of(holder->cgroup(), pid);
        return dir->write(state);
    };
    // The process stops for them only when there are some (each stop is a round trip with it).
    if (!spec->hooks.prestart.empty() || !spec->hooks.create_runtime.empty())
        request.create_runtime = [&](pid_t pid) -> Result<void> {
            state.pid = pid;
            const std::string hook_state = hook_state_json(state, Status::creating);
            if (auto r = run_hooks(spec->hooks.prestart, "prestart", hook_state); !r) return r;
            return run_hooks(spec->hooks.create_runtime, "createRuntime", hook_state);
        };
    auto process = create_process(request);
    if (!process) return std::move(process).error();
    // By pid: our child, unreaped, so the pid is still its own (the pidfd is closed by then).
    undo.add([pid = process->pid] {
        if (front::Link* front = front::link()) {
            (void)front->reap(true);
            return;
        }
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, __WALL);
    });

    if (!state.start_time) return Error{Errc::launch_failed, "the container's process ended during create"};
    // Adopted once set up, not before: the adoption tells the server so, and it then refills its
    // pool and makes namespaces, kernel work that would run over the process's set-up. Its reply
    // is awaited: a process started before could end before the server looked at it.
    adopting = true;
    if (auto adopted = server->adopt(holder->id(), process->pidfd.get()); !adopted)
        return wrap("the nsfork server could not adopt the container's process", std::move(adopted).error());
    if (!o.pid_file.empty())
        if (auto written = write_pid_file(o.pid_file, process->pid); !written) return std::move(written).error();
    undo.dismiss();
    Created created{std::move(*dir), std::move(state), std::move(*process), {}, {}};
    if (destroy_on_exit) {
        created.server.emplace(std::move(*server));
        created.holder.emplace(std::move(*holder));
    }
    return created;
}

// runtime-spec: a failed poststart hook is logged; the container runs on.
void run_poststart(const Context& ctx, const ContainerState& state) {
    if (auto hooks = run_hooks(state.poststart, "poststart", hook_state_json(state, Status::running)); !hooks)
        ctx.log.warning(hooks.error().message);
}

// start: lets the process exec. It is blocked opening the fifo for writing; our open for reading
// releases it. Opened non-blocking and then polled together with the process's pidfd, so that a
// process that died before start is reported rather than waited for forever.
Result<void> start_container(const Context& ctx, const StateDir& dir, const ContainerState& state) {
    switch (status_of(dir, state)) {
    case Status::created: break;
    case Status::stopped: return Error{Errc::invalid_state, "cannot start a container that has stopped"};
    default: return Error{Errc::invalid_state, "cannot start an already running container"};
    }
    auto pidfd = open_process(state.pid, state.start_time);
    if (!pidfd) return Error{Errc::invalid_state, "cannot start a container that has stopped"};
    UniqueFd fifo(::open(dir.fifo().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fifo) return sys_error(Errc::internal, "open " + dir.fifo(), errno);
    for (;;) {
        // A FIFO's reader sees POLLHUP only once a writer came and went: before the process
        // opens its end, only its death wakes us.
        pollfd fds[2] = {{fifo.get(), POLLIN, 0}, {pidfd->get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return sys_error(Errc::internal, "poll", errno);
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) break;
        if (fds[1].revents & POLLIN) return Error{Errc::invalid_state, "the container's process ended before start"};
    }
    char byte;
    (void)!::read(fifo.get(), &byte, 1); // a byte, or EOF: either way it passed the fifo
    ::unlink(dir.fifo().c_str());
    run_poststart(ctx, state);
    return {};
}

// run's start: the process it made waits on its report socket.
Result<void> start_own(const Context& ctx, Created& c) {
    if (auto started = start_process(c.process); !started) return started;
    run_poststart(ctx, c.state);
    return {};
}

// A frozen container dies on SIGKILL in cgroup v2, but its holder would first have to handle
// the server's signal: it is thawed before its end.
void thaw(const ContainerState& state) {
    if (state.cgroup_leaf.empty()) return;
    UniqueFd freeze(::open((state.cgroup_leaf + "/cgroup.freeze").c_str(), O_WRONLY | O_CLOEXEC));
    if (freeze) (void)!::write(freeze.get(), "0", 1);
}

// delete's work once it was allowed: the namespace ended, the cgroups removed, poststop hooks,
// the state gone.
Result<void> delete_container(const Context& ctx, const StateDir& dir, const ContainerState& state) {
    thaw(state);
    if (auto ended = end_container(state); !ended) return ended;
    if (auto removed = remove_controllers(controllers_of(state)); !removed) return removed;
    if (auto hooks = run_hooks(state.poststop, "poststop", hook_state_json(state, Status::stopped)); !hooks)
        ctx.log.warning(hooks.error().message);
    return dir.remove();
}

// A foreground run's delete. The server destroys the container (destroy_on_exit) the moment
// its main process ended, without waiting for a Destroy from us: the state goes meanwhile (as
// runc's delete, before the poststop hooks), and what is left is to hear that it is gone.
Result<void> end_run(const Context& ctx, Created& c) {
    if (!c.server || !c.holder || !c.holder->end_seq()) return delete_container(ctx, c.dir, c.state); // an older server
    thaw(c.state);
    auto state_removed = c.dir.remove();
    if (!c.server->ended(*c.holder))
        if (auto ended = end_container(c.state); !ended) return ended; // the server went away: as delete would
    if (auto removed = remove_controllers(controllers_of(c.state)); !removed) return removed;
    if (auto hooks = run_hooks(c.state.poststop, "poststop", hook_state_json(c.state, Status::stopped)); !hooks)
        ctx.log.warning(hooks.error().message);
    return state_removed;
}

// A create killed before it wrote its state leaves a directory no engine can name (runc: "an
// aborted start"), and maybe controller cgroups: the config saved there says where. Its process
// and server container ended with it (the process lives in the namespace the server ended when
// the connection closed).
void remove_half_made(const Context& ctx, const std::string& id) {
    if (!validate_container_id(id)) return;
    const std::string dir = ctx.global.root + "/" + id;
    if (auto config = read_text_file(dir + "/config.json")) {
        auto spec = parse_config(*config, "/");
        auto path = spec ? cgroups_path_for(spec->cgroups_path, id, ctx.global.systemd_cgroup) : Result<std::string>("");
        if (path && !path->empty()) (void)remove_controllers(ControllerCgroups::find(*path));
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

} // namespace

Result<int> create(const Context& ctx, const CreateOptions& o) {
    auto created = create_container(ctx, o, StartBy::fifo);
    if (!created) return std::move(created).error();
    return 0;
}

Result<int> start(const Context& ctx, const StartOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) return std::move(found).error();
    if (front::Link* front = front::link(); front && !found->state.poststart.empty()) return front->fall_back(); // hooks: see create
    if (auto started = start_container(ctx, found->dir, found->state); !started) return std::move(started).error();
    return 0;
}

Result<int> run(const Context& ctx, const RunOptions& o) {
    auto created = create_container(ctx, o.create, StartBy::runtime, !o.detach);
    if (!created) return std::move(created).error();
    // In the foreground, the signals it forwards have been blocked since the clone
    // (CreateRequest::foreground): those sent to us from then on are for the process, and stay
    // blocked to the end. Served for a front, the process is the front's child, and the front
    // forwards them.
    front::Link* front = o.detach ? nullptr : front::link();
    const sigset_t forwarded = forwarded_signals();
    auto started = front ? front->forward() : Result<void>{};
    if (started) started = start_own(ctx, *created);
    if (!started) {
        // Reaped first: its namespace's pid 1, which the delete ends, finishes dying only then.
        if (front::link()) {
            (void)front::link()->reap(true);
        } else {
            (void)signal_pidfd(created->process.pidfd.get(), SIGKILL);
            (void)reap(created->process.pidfd.get());
        }
        (void)delete_container(ctx, created->dir, created->state);
        return std::move(started).error();
    }
    if (o.detach) return 0;
    auto status = front ? front->ended() : wait_forwarding(created->process.pidfd.get(), forwarded);
    if (auto deleted = end_run(ctx, *created); !deleted) return std::move(deleted).error();
    if (!status) return std::move(status).error();
    return status->shell_code();
}

Result<int> remove(const Context& ctx, const DeleteOptions& o) {
    auto found = find_container(ctx.global.root, o.id);
    if (!found) {
        remove_half_made(ctx, o.id);
        // --force of what does not exist is no error (runc's; engines clean up with it).
        if (o.force && found.error().code == Errc::unknown_container) return 0;
        return std::move(found).error();
    }
    if (front::Link* front = front::link(); front && !found->state.poststop.empty()) return front->fall_back(); // hooks: see create
    const Status status = status_of(found->dir, found->state);
    if (!o.force && status != Status::created && status != Status::stopped)
        return Error{Errc::invalid_state,
                     "cannot delete container " + o.id + " that is not stopped: " + std::string(to_string(status))};
    if (auto deleted = delete_container(ctx, found->dir, found->state); !deleted) return std::move(deleted).error();
    return 0;
}

} // namespace nsfork::oci
