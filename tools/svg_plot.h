// Small SVG line charts for reports (swarr demo's report.md): no dependencies, readable in any
// browser and on GitHub.
#ifndef SWARR_TOOLS_SVG_PLOT_H_
#define SWARR_TOOLS_SVG_PLOT_H_

#include <string>
#include <utility>
#include <vector>

namespace swarr {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
  bool markers = false;                           // draw a dot at each point
  bool dashed = false;
  bool line = true;                               // false: markers only
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  // Axis ranges; when lo == hi they are taken from the data.
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  bool log_x = false, log_y = false;  // logarithmic axes (values must be > 0)
  int width = 640, height = 360;
};

// The chart as a standalone SVG document. Series without points are listed in the legend only.
std::string RenderSvg(const LinePlot& plot);

}  // namespace swarr

#endif  // SWARR_TOOLS_SVG_PLOT_H_
