#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace nsfork::bench {

namespace {

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

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
            else out += c;
        }
    }
    return out + "\"";
}

// JSON has no NaN or infinity; a figure that is not finite is written as null.
std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

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
    std::string j = "{\n  \"tool\": \"nsfork-bench\",\n";
    j += fmt::format("  \"quick\": {},\n  \"machine\": {{", quick ? "true" : "false");
    for (std::size_t i = 0; i < machine_.size(); ++i)
        j += fmt::format("{}{}: {}", i ? ", " : "", json_string(machine_[i].first), json_string(machine_[i].second));
    j += "},\n  \"ratio_definition\": \"subject median / baseline median\",\n  \"figures\": [\n";
    for (std::size_t i = 0; i < figures_.size(); ++i) {
        const Figure& f = figures_[i];
        j += fmt::format("    {{\"scenario\": {}, \"group\": {}, \"name\": {}, \"role\": \"{}\", \"unit\": {}, "
                         "\"n\": {}, \"median\": {}, \"p90\": {}, \"p99\": {}, \"min\": {}, \"max\": {}, \"ratios\": {{",
                         json_string(f.scenario), json_string(f.group), json_string(f.name),
                         f.role == Role::subject ? "subject" : "baseline", json_string(f.unit), f.summary.n,
                         json_number(f.summary.median), json_number(f.summary.p90), json_number(f.summary.p99),
                         json_number(f.summary.min), json_number(f.summary.max));
        for (std::size_t r = 0; r < f.ratios.size(); ++r)
            j += fmt::format("{}{}: {}", r ? ", " : "", json_string(f.ratios[r].first), json_number(f.ratios[r].second));
        j += fmt::format("}}, \"note\": {}}}{}\n", json_string(f.note), i + 1 < figures_.size() ? "," : "");
    }
    j += "  ],\n  \"skipped\": [\n";
    for (std::size_t i = 0; i < skipped_.size(); ++i)
        j += fmt::format("    {{\"scenario\": {}, \"name\": {}, \"reason\": {}}}{}\n", json_string(skipped_[i].scenario),
                         json_string(skipped_[i].name), json_string(skipped_[i].reason), i + 1 < skipped_.size() ? "," : "");
    auto pairs = [&](const char* key, const auto& list) {
        j += fmt::format("  ],\n  \"{}\": [\n", key);
        for (std::size_t i = 0; i < list.size(); ++i)
            j += fmt::format("    {{\"scenario\": {}, \"text\": {}}}{}\n", json_string(list[i].first),
                             json_string(list[i].second), i + 1 < list.size() ? "," : "");
    };
    pairs("notes", notes_);
    pairs("errors", errors_);
    j += "  ],\n  \"targets\": [\n";
    for (std::size_t i = 0; i < targets_.size(); ++i)
        j += fmt::format("    {{\"goal\": {}, \"verdict\": \"{}\", \"detail\": {}}}{}\n", json_string(targets_[i].goal),
                         verdict_name(targets_[i].verdict), json_string(targets_[i].detail),
                         i + 1 < targets_.size() ? "," : "");
    j += "  ]\n}\n";

    std::FILE* f = std::fopen(path.c_str(), "we");
    if (!f) return sys_error(Errc::internal, "cannot write " + path, errno);
    const bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
    if (std::fclose(f) != 0 || !ok) return sys_error(Errc::internal, "cannot write " + path, errno);
    return {};
}

} // namespace nsfork::bench
