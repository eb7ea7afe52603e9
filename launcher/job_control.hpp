// The launcher's side of the job-control channel (job_control.h): the plan socket of a launch
// with LaunchSpec::foreground, once its exec report was read (PlannedLaunch::channel).
#pragma once

#include "nsfork/error.hpp"

#include <optional>

extern "C" {
#include "launcher/job_control.h"
}

namespace nsfork {

// Receives the shim's next record (blocking unless `channel` is non-blocking: then Errc::internal
// with sys_errno EAGAIN when there is none yet); nullopt once the shim is gone (EOF).
Result<std::optional<nsfork_job_event>> receive_job_event(int channel);

// Sends `kind` (NSFORK_JOB_CONTINUE or NSFORK_JOB_CONTINUE_BACKGROUND) to the shim.
Result<void> send_job_event(int channel, nsfork_job_kind kind);

} // namespace nsfork
