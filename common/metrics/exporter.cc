#include "common/metrics/exporter.h"

#include <exception>
#include <iostream>

#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace swarr {

std::unique_ptr<MetricsExporter> MetricsExporter::Start(const std::string& bind_address, const std::string& service) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  e->registry_ = std::make_shared<prometheus::Registry>();
  if (bind_address.empty()) return e;
  try {
    e->exposer_ = std::make_unique<prometheus::Exposer>(bind_address, /*num_threads=*/1);
    e->exposer_->RegisterCollectable(e->registry_);
    const auto ports = e->exposer_->GetListeningPorts();
    e->port_ = ports.empty() ? 0 : ports.front();
  } catch (const std::exception& ex) {
    std::cerr << service << ": metrics exporter cannot listen on " << bind_address << " (" << ex.what()
              << "); running without /metrics\n";
    e->exposer_.reset();
    e->port_ = 0;
  }
  return e;
}

MetricsExporter::~MetricsExporter() = default;

}  // namespace swarr
