#include "container.hpp"

namespace nsfork {

std::string_view to_string(Phase p) {
    switch (p) {
    case Phase::starting: return "starting";
    case Phase::running: return "running";
    case Phase::exited: return "exited";
    case Phase::drained: return "drained";
    case Phase::gone: return "gone";
    }
    return "unknown";
}

bool ContainerRecord::exec_reported() {
    if (phase_ != Phase::starting || teardown_ == Teardown::discarded) return false;
    phase_ = Phase::running;
    return true;
}

bool ContainerRecord::reaped() {
    if (phase_ != Phase::starting && phase_ != Phase::running) return false;
    phase_ = Phase::exited;
    return true;
}

bool ContainerRecord::drained() {
    if (phase_ != Phase::exited) return false;
    phase_ = Phase::drained;
    return true;
}

bool ContainerRecord::forgotten() {
    if (phase_ != Phase::drained) return false;
    phase_ = Phase::gone;
    return true;
}

bool ContainerRecord::take_kill() {
    if (has_ended() || teardown_ >= Teardown::killed) return false;
    teardown_ = Teardown::killed;
    return true;
}

void ContainerRecord::destroy_requested() {
    if (teardown_ < Teardown::destroying) teardown_ = Teardown::destroying;
}

bool ContainerRecord::launch_failed() {
    // Its exec report may be read after it was reaped (phase exited), never once it ran.
    if (phase_ != Phase::starting && phase_ != Phase::exited) return false;
    teardown_ = Teardown::discarded;
    return true;
}

State ContainerRecord::wire_state() const {
    switch (phase_) {
    case Phase::starting: return State::starting;
    case Phase::running: return State::running;
    case Phase::exited:
    case Phase::drained: return destroying() ? State::destroyed : State::exited;
    case Phase::gone: return State::destroyed;
    }
    return State::destroyed;
}

Registry::Record Registry::find(std::string_view id) const {
    auto it = records_.find(id);
    if (it == records_.end() || !it->second->visible()) return nullptr;
    return it->second;
}

void Registry::add(Record r) {
    std::string id = r->info.id;
    records_.emplace(std::move(id), std::move(r));
}

void Registry::kill(ContainerRecord& c, const Kill& kill_one) {
    if (!c.take_kill()) return; // its nest was killed with it, or ended with it (on_exit)
    kill_one(c);
    for (const std::string& child : c.children)
        if (auto n = find(child)) kill(*n, kill_one);
}

void Registry::request_destroy(ContainerRecord& c, const Kill& kill_one) {
    kill(c, kill_one); // first: a container asked to be destroyed counts as killed from then on
    c.destroy_requested();
    for (const std::string& child : c.children)
        if (auto it = records_.find(child); it != records_.end()) request_destroy(*it->second, kill_one);
}

bool Registry::settled(const ContainerRecord& c) const {
    if (!c.is_drained()) return false;
    for (const std::string& child : c.children)
        if (auto it = records_.find(child); it != records_.end() && !settled(*it->second)) return false;
    return true;
}

bool Registry::settle_up(const std::string& id, const OnForget& on_forget) {
    Record done;
    for (auto it = records_.find(id); it != records_.end(); it = records_.find(it->second->info.parent)) {
        const Record& c = it->second;
        if (c->destroying() && settled(*c)) done = c;
        if (c->info.parent.empty()) break;
    }
    if (!done) return false;
    if (!done->info.parent.empty())
        if (auto parent = records_.find(done->info.parent); parent != records_.end())
            std::erase(parent->second->children, done->info.id);
    forget(done->info.id, on_forget);
    return true;
}

// Innermost first: cgroup leaves can only be removed bottom-up.
void Registry::forget(const std::string& id, const OnForget& on_forget) {
    auto it = records_.find(id);
    if (it == records_.end()) return;
    Record c = it->second;
    for (const std::string& child : c->children) forget(child, on_forget);
    (void)c->forgotten();
    on_forget(*c);
    records_.erase(it);
}

} // namespace nsfork
