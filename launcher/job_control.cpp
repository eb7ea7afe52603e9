#include "launcher/job_control.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace nsfork {

Result<std::optional<nsfork_job_event>> receive_job_event(int channel) {
    nsfork_job_event event{};
    ssize_t n;
    do n = ::recv(channel, &event, sizeof event, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ECONNRESET) n = 0; // a shim that died with records unread
    if (n < 0) return sys_error(Errc::internal, "cannot read the job-control channel", errno);
    if (n == 0) return std::optional<nsfork_job_event>();
    if (n != sizeof event) return Error{Errc::internal, "short job-control record"};
    return std::optional<nsfork_job_event>(event);
}

Result<void> send_job_event(int channel, nsfork_job_kind kind) {
    const nsfork_job_event event{kind, 0};
    ssize_t n;
    do n = ::send(channel, &event, sizeof event, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error(Errc::internal, "cannot write the job-control channel", errno);
    return {};
}

} // namespace nsfork
