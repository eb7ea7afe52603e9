// The scenarios, in priority order, and what they share for turning samples into figures.
#pragma once

#include "alternate.hpp"
#include "context.hpp"
#include "report.hpp"

#include <span>
#include <string>
#include <vector>

namespace nsfork::bench {

Result<void> run_cli(Context& ctx, Report& report);
Result<void> run_oci(Context& ctx, Report& report);
Result<void> run_launch(Context& ctx, Report& report);
Result<void> run_ipc(Context& ctx, Report& report);
Result<void> run_churn(Context& ctx, Report& report);
Result<void> run_destroy(Context& ctx, Report& report);
Result<void> run_fat_client(Context& ctx, Report& report);
Result<void> run_scale(Context& ctx, Report& report);
Result<void> run_soak(Context& ctx, Report& report);
Result<void> run_engines(Context& ctx, Report& report);

struct Scenario {
    const char* name;
    Result<void> (*run)(Context&, Report&);
    const char* what;
    bool only_when_named = false; // too long for a default run (soak: ~10 minutes, engines: several)
};
// Every scenario, in the order they run by default.
std::span<const Scenario> all_scenarios();

// How one variant of an alternation appears in the report.
struct Shown {
    std::string group, name;
    Role role = Role::subject;
    std::string note = {};
};

// Adds each variant's samples as a figure and each variant's failure as an error.
void record(Report& report, const std::string& scenario, const std::vector<Shown>& shown, const Alternated& runs,
            const std::string& unit = "us");

// A figure from plain samples.
void add_figure(Report& report, const std::string& scenario, const Shown& shown, std::vector<double> samples,
                const std::string& unit);

} // namespace nsfork::bench
