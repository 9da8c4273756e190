#include "tools/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace swarr {
namespace {

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// About five "nice" tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi) {
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(t);
  return out;
}

std::string FormatTick(double v) {
  if (std::fabs(v) >= 1e6 || (std::fabs(v) < 1e-3 && v != 0)) return absl::StrFormat("%.0e", v);
  std::string s = absl::StrFormat("%.3f", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

}  // namespace

std::string RenderSvg(const LinePlot& plot) {
  double xlo = plot.x_lo, xhi = plot.x_hi, ylo = plot.y_lo, yhi = plot.y_hi;
  if (xlo == xhi || ylo == yhi) {
    double dxlo = std::numeric_limits<double>::infinity(), dxhi = -dxlo, dylo = dxlo, dyhi = -dxlo;
    for (const PlotSeries& s : plot.series) {
      for (auto [x, y] : s.points) {
        dxlo = std::min(dxlo, x);
        dxhi = std::max(dxhi, x);
        dylo = std::min(dylo, y);
        dyhi = std::max(dyhi, y);
      }
    }
    if (!std::isfinite(dxlo)) dxlo = 0, dxhi = 1, dylo = 0, dyhi = 1;
    if (xlo == xhi) xlo = dxlo, xhi = dxhi > dxlo ? dxhi : dxlo + 1;
    if (ylo == yhi) ylo = dylo, yhi = dyhi > dylo ? dyhi : dylo + 1;
  }
  auto ty = [&](double y) { return plot.log_y ? std::log10(std::max(y, 1e-300)) : y; };
  auto tx = [&](double x) { return plot.log_x ? std::log10(std::max(x, 1e-300)) : x; };
  const double tylo = ty(ylo), tyhi = ty(yhi), txlo = tx(xlo), txhi = tx(xhi);
  const double left = 70, right = 20, top = 40, bottom = 50;
  const double pw = plot.width - left - right, ph = plot.height - top - bottom;
  auto px = [&](double x) { return left + (tx(x) - txlo) / (txhi - txlo) * pw; };
  auto py = [&](double y) { return top + ph - (ty(y) - tylo) / (tyhi - tylo) * ph; };

  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      plot.width, plot.height, plot.width, plot.height);
  absl::StrAppendFormat(&out, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
                        plot.width / 2, Escape(plot.title));
  // Grid and ticks.
  std::vector<double> xticks;
  if (plot.log_x) {
    for (double e = std::ceil(txlo); e <= txhi + 1e-9; e += 1) xticks.push_back(std::pow(10.0, e));
  } else {
    xticks = Ticks(xlo, xhi);
  }
  for (double t : xticks) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                          px(t), top, px(t), top + ph, px(t), top + ph + 16, FormatTick(t));
  }
  std::vector<double> yticks;
  if (plot.log_y) {
    for (double e = std::ceil(tylo); e <= tyhi + 1e-9; e += 1) yticks.push_back(std::pow(10.0, e));
  } else {
    yticks = Ticks(ylo, yhi);
  }
  for (double t : yticks) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          left, py(t), left + pw, py(t), left - 6, py(t) + 4, FormatTick(t));
  }
  absl::StrAppendFormat(&out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
                        left, top, pw, ph);
  absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", left + pw / 2,
                        plot.height - 10, Escape(plot.x_label));
  absl::StrAppendFormat(&out,
                        "<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                        top + ph / 2, Escape(plot.y_label));
  // Series and legend.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& s = plot.series[i];
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    if (s.line && s.points.size() > 1) {
      std::string pts;
      for (auto [x, y] : s.points) absl::StrAppendFormat(&pts, "%.1f,%.1f ", px(x), py(y));
      absl::StrAppendFormat(&out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>\n",
                            color, s.dashed ? " stroke-dasharray=\"6,4\"" : "", pts);
    }
    if (s.markers || !s.line || s.points.size() == 1) {
      for (auto [x, y] : s.points) {
        absl::StrAppendFormat(&out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", px(x), py(y), color);
      }
    }
    const double ly = top + 14 + 16 * static_cast<double>(i);
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          left + 10, ly - 4, left + 30, ly - 4, color, left + 36, ly, Escape(s.name));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace swarr
