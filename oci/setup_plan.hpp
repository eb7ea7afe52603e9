// The plan of a container's process (oci/child.hpp), built in the runtime from a Spec: every
// path, flag and option computed, every namespace path and mount source opened (the root
// filesystem and bind sources as detached trees, captured in the host's mount namespace), the
// seccomp program compiled. It owns all of that, and knows what each step is called in an error.
#pragma once

#include "nsfork/error.hpp"
#include "nsfork/fd.hpp"
#include "oci/child.hpp"
#include "oci/seccomp.hpp"
#include "oci/setup.hpp"

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace nsfork::oci {

class SetupPlan {
public:
    SetupPlan() = default;
    SetupPlan(const SetupPlan&) = delete; // the plan points into its own storage
    SetupPlan& operator=(const SetupPlan&) = delete;

    // The plan for the child, its report fd and parent pidfd still to be filled in.
    child::Plan& plan() { return plan_; }
    // "mounts[4] (/sys): mount sysfs": what the runtime calls step `index` in an error.
    const std::string& describe(std::size_t index) const { return what_.at(index); }

    // Building (setup_plan.cpp).
    // A new step; the reference lasts until the next add.
    child::Step& add(child::Op op, std::string what);
    std::size_t size() const { return steps_.size(); }
    const char* keep(std::string text);
    int keep(UniqueFd fd);
    const char* const* keep_list(std::vector<const char*> list); // null-terminated by the caller
    void finish(const ProcessIo& io, const Process& process, const std::vector<std::string>& env,
                std::vector<const char*> candidates, SeccompProgram filter);

private:
    child::Plan plan_;
    std::vector<child::Step> steps_;
    std::vector<std::string> what_;
    std::deque<std::string> strings_;     // a deque: what c_str() returned stays put
    std::deque<std::vector<const char*>> lists_;
    std::vector<UniqueFd> fds_;
    std::vector<int> preserved_;
    std::vector<gid_t> groups_;
    std::vector<const char*> candidates_;
    std::vector<char*> argv_, envp_;
    SeccompProgram filter_;
};

// The plans of create_process and exec_process (setup.hpp); `target_root` is an O_PATH fd of
// the running container's root directory.
Result<std::unique_ptr<SetupPlan>> plan_create(const CreateRequest& request);
Result<std::unique_ptr<SetupPlan>> plan_exec(const ExecRequest& request, UniqueFd target_root);

} // namespace nsfork::oci
