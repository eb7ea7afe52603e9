#include "scenarios.hpp"

namespace nsfork::bench {

std::span<const Scenario> all_scenarios() {
    static const Scenario kAll[] = {
        {"cli", run_cli, "whole-process `nsfork run` against unshare and bwrap"},
        {"oci", run_oci, "whole-process `nsfork-oci run` of a bundle against runc and crun"},
        {"launch", run_launch, "launch latency against the raw floor, posix_spawn, unshare, bwrap, runc"},
        {"ipc", run_ipc, "request/reply round trip"},
        {"churn", run_churn, "launches per second with 1..32 in flight, against the raw floor"},
        {"destroy", run_destroy, "destroy time against process count, against namespace kill and cgroups"},
        {"fat-client", run_fat_client, "launch latency from a big multithreaded client, against fork and posix_spawn"},
        {"scale", run_scale, "server footprint and launch latency with many live containers"},
        {"soak", run_soak, "100,000 launches with churn: anything lost or leaked (only when named)", true},
        {"engines", run_engines, "/bin/true through Slurm, podman, containerd, Docker: nsfork-oci against runc (only when named)", true},
    };
    return kAll;
}

void add_figure(Report& report, const std::string& scenario, const Shown& shown, std::vector<double> samples,
                const std::string& unit) {
    Figure f;
    f.scenario = scenario;
    f.group = shown.group;
    f.name = shown.name;
    f.role = shown.role;
    f.unit = unit;
    f.note = shown.note;
    f.summary = summarize(std::move(samples));
    report.add(std::move(f));
}

void record(Report& report, const std::string& scenario, const std::vector<Shown>& shown, const Alternated& runs,
            const std::string& unit) {
    for (std::size_t i = 0; i < shown.size(); ++i) {
        if (runs.errors[i])
            report.error(scenario, shown[i].group + ": " + shown[i].name + ": " + runs.errors[i]->message);
        if (!runs.samples[i].empty()) add_figure(report, scenario, shown[i], runs.samples[i], unit);
    }
}

} // namespace nsfork::bench
