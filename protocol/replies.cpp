#include "replies.hpp"

#include <vector>

namespace nsfork {

void write_hello_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ServerStatus& s,
                       std::uint32_t version, bool table, bool full) {
    // Absent tables and vectors read as empty: a reply with no fd and no status is 5 fields.
    const wire::FdRole role = wire::FdRole::StatusTable;
    flatbuffers::Offset<flatbuffers::Vector<wire::FdRole>> fds;
    if (table) fds = fbb.CreateVector(&role, 1);
    flatbuffers::Offset<wire::PoolStatus> pool;
    flatbuffers::Offset<wire::LaunchStatistics> statistics;
    if (full) {
        pool = wire::CreatePoolStatus(fbb, s.pool_size, s.pool_ready, s.pool_warming, s.pool_served,
                                      s.pool_discarded, s.namespaces_pending);
        auto phases = fbb.CreateVector(s.launch_phases.ns.data(), s.launch_phases.ns.size());
        statistics = wire::CreateLaunchStatistics(fbb, s.launch_work_ns, s.launches, phases);
    }
    wire::HelloReplyBuilder b(fbb);
    b.add_version(version);
    b.add_server_pid(s.pid);
    b.add_fds(fds);
    b.add_pool(pool);
    b.add_statistics(statistics);
    finish_reply(fbb, seq, wire::Reply::HelloReply, b.Finish().Union());
}

void write_launch_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info,
                        bool terminal, bool cgroup, bool destroy_on_exit, bool device_program,
                        std::size_t namespaces) {
    auto ci = write_info(fbb, info);
    std::vector<wire::FdRole> roles{wire::FdRole::Pidfd};
    if (terminal) roles.push_back(wire::FdRole::Terminal);
    if (cgroup) roles.push_back(wire::FdRole::Cgroup);
    if (device_program) roles.push_back(wire::FdRole::DeviceProgram);
    roles.insert(roles.end(), namespaces, wire::FdRole::Namespace);
    auto body = wire::CreateLaunchReply(fbb, ci, fbb.CreateVector(roles), destroy_on_exit);
    finish_reply(fbb, seq, wire::Reply::LaunchReply, body.Union());
}

void write_attach_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info) {
    auto ci = write_info(fbb, info);
    const wire::FdRole role = wire::FdRole::Pidfd;
    auto body = wire::CreateAttachReply(fbb, ci, fbb.CreateVector(&role, 1));
    finish_reply(fbb, seq, wire::Reply::AttachReply, body.Union());
}

void write_wait_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info) {
    auto body = wire::CreateWaitReply(fbb, write_info(fbb, info));
    finish_reply(fbb, seq, wire::Reply::WaitReply, body.Union());
}

void write_destroy_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq, const ContainerInfo& info) {
    auto body = wire::CreateDestroyReply(fbb, write_info(fbb, info));
    finish_reply(fbb, seq, wire::Reply::DestroyReply, body.Union());
}

void write_adopt_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq) {
    finish_reply(fbb, seq, wire::Reply::AdoptReply, wire::CreateAdoptReply(fbb).Union());
}

void write_kill_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq) {
    finish_reply(fbb, seq, wire::Reply::KillReply, wire::CreateKillReply(fbb).Union());
}

void write_list_reply(flatbuffers::FlatBufferBuilder& fbb, std::uint32_t seq,
                      std::span<const ContainerInfo* const> containers) {
    std::vector<flatbuffers::Offset<wire::ContainerInfo>> infos;
    infos.reserve(containers.size());
    for (const ContainerInfo* info : containers) infos.push_back(write_info(fbb, *info));
    auto body = wire::CreateListReply(fbb, fbb.CreateVector(infos));
    finish_reply(fbb, seq, wire::Reply::ListReply, body.Union());
}

} // namespace nsfork
