// Per-window drift test time of Osprey's detector (monitor/detector.h), for
// bench/drift_bench.py: the reference and the windows come from .npy files,
// the rows go through Detector::Observe as a replica's requests do, and the
// detector thread tests each window; its own per-window times and p-values
// are printed as one JSON object:
//   {"windows": [{"index", "drift", "seconds", "p_values": [...]}, ...]}
//
// usage: osprey_drift_bench REFERENCE.npy WINDOWS.npy WINDOW [CATEGORICAL,...]

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "monitor/detector.h"

namespace {

absl::StatusOr<osprey::monitor::Matrix> Read(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(std::string("cannot read ") + path);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return osprey::monitor::ParseReference(path, bytes.str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s REFERENCE.npy WINDOWS.npy WINDOW [CATEGORICAL,...]\n", argv[0]);
    return 2;
  }
  auto reference = Read(argv[1]);
  auto rows = Read(argv[2]);
  if (!reference.ok() || !rows.ok()) {
    std::fprintf(
        stderr, "%s\n",
        std::string((reference.ok() ? rows.status() : reference.status()).message()).c_str());
    return 1;
  }
  osprey::monitor::DetectorOptions o;
  o.model = "bench";
  o.reference = *std::move(reference);
  o.window = static_cast<size_t>(std::stoul(argv[3]));
  o.buffer_rows = rows->rows;
  o.history = rows->rows / o.window + 1;
  o.outlier_quantile = 0;  // the drift tests alone
  if (argc > 4) {
    std::stringstream list(argv[4]);
    for (std::string part; std::getline(list, part, ',');)
      o.categorical.push_back(std::stoul(part));
  }
  auto detector = osprey::monitor::Detector::Start(std::move(o));
  if (!detector.ok()) {
    std::fprintf(stderr, "%s\n", std::string(detector.status().message()).c_str());
    return 1;
  }
  const size_t windows = rows->rows / (*detector)->options().window;
  (*detector)->Observe(rows->values.data(), rows->rows, rows->cols);
  if (!(*detector)->WaitForWindows(windows, std::chrono::minutes(10))) {
    std::fprintf(stderr, "the detector did not test %zu windows\n", windows);
    return 1;
  }
  std::printf("%s\n", (*detector)->StateJson().c_str());
  return 0;
}
