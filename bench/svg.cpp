#include "svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <limits>

namespace nsfork::bench {

namespace {

constexpr double kWidth = 720, kHeight = 440;
constexpr double kLeft = 80, kRight = 200, kTop = 40, kBottom = 60; // margins
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

// One axis: maps data values to pixels, linearly or by log10.
struct Axis {
    double lo, hi;
    bool log;
    double from, to; // pixel range

    double map(double v) const {
        const double a = log ? std::log10(lo) : lo, b = log ? std::log10(hi) : hi;
        const double x = log ? std::log10(v) : v;
        return from + (x - a) / (b - a) * (to - from);
    }
    // Tick values: powers of ten (and 2x, 5x when the range is short) on a log axis, five
    // even steps on a linear one.
    std::vector<double> ticks() const {
        std::vector<double> t;
        if (log) {
            const bool fine = std::log10(hi / lo) < 2.5;
            for (double p = std::pow(10, std::floor(std::log10(lo))); p <= hi * 1.0001; p *= 10)
                for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1})
                    if (p * m >= lo * 0.9999 && p * m <= hi * 1.0001) t.push_back(p * m);
        } else {
            for (int i = 0; i <= 5; ++i) t.push_back(lo + (hi - lo) * i / 5);
        }
        return t;
    }
};

std::string label(double v) {
    if (v >= 1e4 || (v > 0 && v < 1e-2)) return fmt::format("{:g}", v);
    return fmt::format("{:.4g}", v);
}

std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else if (c == '&') out += "&amp;";
        else out += c;
    }
    return out;
}

// The data range of one coordinate, widened so that a single value or a log axis still works.
std::pair<double, double> range(const Chart& c, bool x, bool log) {
    double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
    for (const Series& s : c.series)
        for (const auto& [px, py] : s.points) {
            const double v = x ? px : py;
            if (log && v <= 0) continue;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    if (lo > hi) return {1, 10};
    if (log) return {std::pow(10, std::floor(std::log10(lo))), std::pow(10, std::ceil(std::log10(hi)))};
    if (!x) lo = std::min(lo, 0.0); // linear y from zero: no exaggerated slopes
    if (hi == lo) hi = lo + 1;
    return {lo, hi + (x ? 0 : (hi - lo) * 0.05)};
}

} // namespace

Result<void> write_svg(const Chart& c, const std::string& path) {
    const auto [xlo, xhi] = range(c, true, c.log_x);
    const auto [ylo, yhi] = range(c, false, c.log_y);
    const Axis xa{xlo, xhi, c.log_x, kLeft, kWidth - kRight};
    const Axis ya{ylo, yhi, c.log_y, kHeight - kBottom, kTop};

    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        "<text x=\"{2}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{3}</text>\n",
        kWidth, kHeight, (kLeft + kWidth - kRight) / 2, escape(c.title));
    for (double t : xa.ticks()) {
        const double x = xa.map(t);
        s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
                         "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                         x, kTop, kHeight - kBottom, kHeight - kBottom + 16, label(t));
    }
    for (double t : ya.ticks()) {
        const double y = ya.map(t);
        s += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>"
                         "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                         kLeft, y, kWidth - kRight, kLeft - 6, y + 4, label(t));
    }
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", kLeft,
                     kTop, kWidth - kLeft - kRight, kHeight - kTop - kBottom);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (kLeft + kWidth - kRight) / 2,
                     kHeight - 18, escape(c.x_label + (c.log_x ? " (log scale)" : "")));
    s += fmt::format("<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     (kTop + kHeight - kBottom) / 2, escape(c.y_label + (c.log_y ? " (log scale)" : "")));

    for (std::size_t i = 0; i < c.series.size(); ++i) {
        const Series& ser = c.series[i];
        const char* colour = kColours[i % std::size(kColours)];
        std::string points;
        for (const auto& [x, y] : ser.points)
            if ((!c.log_x || x > 0) && (!c.log_y || y > 0))
                points += fmt::format("{:.1f},{:.1f} ", xa.map(x), ya.map(y));
        s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", colour, points);
        for (const auto& [x, y] : ser.points)
            if ((!c.log_x || x > 0) && (!c.log_y || y > 0))
                s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"><title>{}: {} at {}</title></circle>\n",
                                 xa.map(x), ya.map(y), colour, escape(ser.name), label(y), label(x));
        const double ly = kTop + 10 + 20 * static_cast<double>(i);
        s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"/>"
                         "<text x=\"{4}\" y=\"{5}\">{6}</text>\n",
                         kWidth - kRight + 12, ly, kWidth - kRight + 36, colour, kWidth - kRight + 42, ly + 4,
                         escape(ser.name));
    }
    s += "</svg>\n";

    std::FILE* f = std::fopen(path.c_str(), "we");
    if (!f) return sys_error(Errc::internal, "cannot write " + path, errno);
    const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
    if (std::fclose(f) != 0 || !ok) return sys_error(Errc::internal, "cannot write " + path, errno);
    return {};
}

} // namespace nsfork::bench
