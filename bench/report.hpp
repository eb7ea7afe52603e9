// Everything a run found — figures, skipped baselines, notes, targets, charts — and the two
// ways it is shown: a table on stdout and a JSON file.
#pragma once

#include "nsfork/error.hpp"
#include "stats.hpp"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace nsfork::bench {

// nsfork itself, or something it is compared with.
enum class Role { subject, baseline };

// One measured series. Every subject is compared with every baseline of the same scenario and
// group: ratio = subject median / baseline median (below 1 is faster for times, above 1 is
// faster for rates; the unit says which).
struct Figure {
    std::string scenario;
    std::string group; // what is comparable, e.g. "/bin/true until exec'd"
    std::string name;  // e.g. "nsfork launch", "raw floor"
    Role role = Role::subject;
    std::string unit;  // "us", "launches/s", "MiB", "fds"
    Summary summary;
    std::string note;
    std::vector<std::pair<std::string, double>> ratios; // baseline name -> ratio; filled by finish()
};

// A baseline or figure that was not measured, and why.
struct Skipped {
    std::string scenario;
    std::string name;
    std::string reason;
};

enum class Verdict { met, missed, not_measured, not_run };

struct Target {
    std::string goal;   // "launch p50 <= 1.5x raw floor (cold)"
    Verdict verdict = Verdict::not_run;
    std::string detail; // the figures behind the verdict, or why there are none
};

// A line chart: series of (x, y) points.
struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;
};
struct Chart {
    std::string file_suffix; // the SVG is written as <json stem>-<suffix>.svg
    std::string title, x_label, y_label;
    bool log_x = false, log_y = false;
    std::vector<Series> series;
};

class Report {
public:
    void add(Figure f) { figures_.push_back(std::move(f)); }
    void skip(std::string scenario, std::string name, std::string reason);
    void note(std::string scenario, std::string text);
    void error(std::string scenario, std::string text);
    void add_chart(Chart c) { charts_.push_back(std::move(c)); }
    void set_targets(std::vector<Target> t) { targets_ = std::move(t); }
    void set_machine(std::vector<std::pair<std::string, std::string>> facts) { machine_ = std::move(facts); }

    // The figure with that scenario, group and name; nullptr if it was not measured.
    const Figure* find(const std::string& scenario, const std::string& group, const std::string& name) const;
    const std::vector<Figure>& figures() const { return figures_; }
    bool has_errors() const { return !errors_.empty(); }

    // Computes every subject's ratio to each baseline of its group.
    void finish();

    // The scenario's table so far (figures, skips, notes, errors).
    void print_scenario(std::FILE* out, const std::string& scenario) const;
    void print_targets(std::FILE* out) const;
    Result<void> write_json(const std::string& path, bool quick) const;
    const std::vector<Chart>& charts() const { return charts_; }

private:
    std::vector<std::pair<std::string, std::string>> machine_;
    std::vector<Figure> figures_;
    std::vector<Skipped> skipped_;
    std::vector<std::pair<std::string, std::string>> notes_, errors_;
    std::vector<Chart> charts_;
    std::vector<Target> targets_;
};

} // namespace nsfork::bench
