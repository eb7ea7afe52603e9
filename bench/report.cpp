#include "report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace nsfork::bench {

namespace {

using Json = nlohmann::ordered_json;

const char* verdict_name(Verdict v) {
    switch (v) {
    case Verdict::met: return "met";
    case Verdict::missed: return "missed";
    case Verdict::not_measured: return "not measured";
    default: return "not run";
    }
}

// A number as the table shows it: three significant figures, no exponent for ordinary sizes.
std::string num(double v) {
    if (v == 0) return "0";
    const double a = std::fabs(v);
    if (a >= 1000) return fmt::format("{:.0f}", v);
    if (a >= 100) return fmt::format("{:.1f}", v);
    if (a >= 1) return fmt::format("{:.2f}", v);
    return fmt::format("{:.3f}", v);
}

// JSON has no NaN or infinity; a figure that is not finite is written as null.
Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// Scenario and text pairs (notes, errors) as a JSON array of objects.
Json pairs(const std::vector<std::pair<std::string, std::string>>& list) {
    Json out = Json::array();
    for (const auto& [scenario, text] : list) out.push_back({{"scenario", scenario}, {"text", text}});
    return out;
}

} // namespace

void Report::skip(std::string scenario, std::string name, std::string reason) {
    skipped_.push_back({std::move(scenario), std::move(name), std::move(reason)});
}

void Report::note(std::string scenario, std::string text) { notes_.emplace_back(std::move(scenario), std::move(text)); }

void Report::error(std::string scenario, std::string text) { errors_.emplace_back(std::move(scenario), std::move(text)); }

const Figure* Report::find(const std::string& scenario, const std::string& group, const std::string& name) const {
    for (const Figure& f : figures_)
        if (f.scenario == scenario && f.group == group && f.name == name) return &f;
    return nullptr;
}

void Report::finish() {
    for (Figure& f : figures_) {
        f.ratios.clear();
        if (f.role != Role::subject) continue;
        for (const Figure& b : figures_)
            if (b.role == Role::baseline && b.scenario == f.scenario && b.group == f.group && b.summary.median > 0)
                f.ratios.emplace_back(b.name, f.summary.median / b.summary.median);
    }
}

void Report::print_scenario(std::FILE* out, const std::string& scenario) const {
    fmt::print(out, "\n== {} ==\n", scenario);
    std::string group;
    bool any = false;
    for (const Figure& f : figures_) {
        if (f.scenario != scenario) continue;
        if (!any || f.group != group) {
            group = f.group;
            fmt::print(out, "  {}\n", group);
            fmt::print(out, "    {:<40} {:>6} {:>10} {:>10} {:>10}  {}\n", "", "n", "median", "p90", "p99", "unit");
        }
        any = true;
        fmt::print(out, "    {:<40} {:>6} {:>10} {:>10} {:>10}  {}{}\n",
                   (f.role == Role::baseline ? "  " : "* ") + f.name, f.summary.n, num(f.summary.median),
                   num(f.summary.p90), num(f.summary.p99), f.unit, f.note.empty() ? "" : "  (" + f.note + ")");
        for (const auto& [base, ratio] : f.ratios)
            fmt::print(out, "    {:<40} {:>6} {:>9}x  of {}\n", "", "", num(ratio), base);
    }
    for (const Skipped& s : skipped_)
        if (s.scenario == scenario) fmt::print(out, "    skipped: {}: {}\n", s.name, s.reason);
    for (const auto& [sc, text] : notes_)
        if (sc == scenario) fmt::print(out, "    note: {}\n", text);
    for (const auto& [sc, text] : errors_)
        if (sc == scenario) fmt::print(out, "    ERROR: {}\n", text);
}

void Report::print_targets(std::FILE* out) const {
    fmt::print(out, "\n== targets (printed, never asserted) ==\n");
    for (const Target& t : targets_)
        fmt::print(out, "  [{:<12}] {}\n  {:<14} {}\n", t.verdict == Verdict::missed ? "MISSED" : verdict_name(t.verdict),
                   t.goal, "", t.detail);
}

Result<void> Report::write_json(const std::string& path, bool quick) const {
    Json machine = Json::object();
    for (const auto& [key, value] : machine_) machine[key] = value;
    Json figures = Json::array();
    for (const Figure& f : figures_) {
        Json ratios = Json::object();
        for (const auto& [base, ratio] : f.ratios) ratios[base] = number(ratio);
        figures.push_back({{"scenario", f.scenario}, {"group", f.group}, {"name", f.name},
                           {"role", f.role == Role::subject ? "subject" : "baseline"}, {"unit", f.unit},
                           {"n", f.summary.n}, {"median", number(f.summary.median)}, {"p90", number(f.summary.p90)},
                           {"p99", number(f.summary.p99)}, {"min", number(f.summary.min)},
                           {"max", number(f.summary.max)}, {"ratios", std::move(ratios)}, {"note", f.note}});
    }
    Json skipped = Json::array();
    for (const Skipped& s : skipped_) skipped.push_back({{"scenario", s.scenario}, {"name", s.name}, {"reason", s.reason}});
    Json targets = Json::array();
    for (const Target& t : targets_)
        targets.push_back({{"goal", t.goal}, {"verdict", verdict_name(t.verdict)}, {"detail", t.detail}});
    const Json report = {{"tool", "nsfork-bench"},
                         {"quick", quick},
                         {"machine", std::move(machine)},
                         {"ratio_definition", "subject median / baseline median"},
                         {"figures", std::move(figures)},
                         {"skipped", std::move(skipped)},
                         {"notes", pairs(notes_)},
                         {"errors", pairs(errors_)},
                         {"targets", std::move(targets)}};
    // A byte that is not UTF-8 (a command's output quoted in a note) becomes U+FFFD, not an exception.
    const std::string j = report.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";

    std::FILE* f = std::fopen(path.c_str(), "we");
    if (!f) return sys_error(Errc::internal, "cannot write " + path, errno);
    const bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
    if (std::fclose(f) != 0 || !ok) return sys_error(Errc::internal, "cannot write " + path, errno);
    return {};
}

} // namespace nsfork::bench
