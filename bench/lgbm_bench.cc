// In-process LightGBM evaluation: Osprey's native evaluator against the
// LightGBM library's own C API predict (lib_lightgbm.so from the lightgbm
// wheel, loaded with dlopen), one thread each, on the same model and rows.
//
// usage: osprey_lgbm_bench MODEL_TXT ROWS_F64 NUM_FEATURES LIB_LIGHTGBM SECONDS
//   ROWS_F64: raw little-endian float64 rows, row-major.
// Prints one JSON object per line: {"engine", "batch", "rows_per_s"}.
// Exits non-zero when the two disagree on any prediction.

#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "backends/lightgbm/lgbm_model.h"

namespace {

using Handle = void*;
using CreateFn = int (*)(const char*, int*, Handle*);
using PredictFn = int (*)(Handle, const void*, int, int32_t, int32_t, int, int, int, int,
                          const char*, int64_t*, double*);
using FastInitFn = int (*)(Handle, int, int, int, int, int32_t, const char*, Handle*);
using FastFn = int (*)(Handle, const void*, int64_t*, double*);
using ErrorFn = const char* (*)();
constexpr int kFloat64 = 1;
constexpr int kPredictNormal = 0;

// Calls `step` (which handles `batch` rows) until `seconds` pass; rows/s.
template <typename Step>
double Measure(double seconds, int64_t batch, Step step) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 50; ++i) step(i);  // warm-up
  int64_t calls = 0;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    for (int i = 0; i < 64; ++i) step(calls++);
    now = Clock::now();
  } while (now < deadline);
  return static_cast<double>(calls * batch) / std::chrono::duration<double>(now - start).count();
}

void Report(const char* engine, int64_t batch, double rows_per_s) {
  std::printf("{\"engine\": \"%s\", \"batch\": %lld, \"rows_per_s\": %.1f}\n", engine,
              static_cast<long long>(batch), rows_per_s);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s MODEL_TXT ROWS_F64 NUM_FEATURES LIB_LIGHTGBM SECONDS\n",
                 argv[0]);
    return 2;
  }
  std::ifstream model_file(argv[1]);
  std::stringstream text;
  text << model_file.rdbuf();
  auto model = osprey::LgbmModel::Parse(text.str());
  if (!model.ok()) {
    std::fprintf(stderr, "osprey: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const int64_t features = std::stoll(argv[3]);
  std::ifstream rows_file(argv[2], std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(rows_file)), {});
  std::vector<double> rows(raw.size() / sizeof(double));
  std::memcpy(rows.data(), raw.data(), rows.size() * sizeof(double));
  const int64_t n = static_cast<int64_t>(rows.size()) / features;
  const double seconds = std::stod(argv[5]);

  void* lib = dlopen(argv[4], RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  auto create = reinterpret_cast<CreateFn>(dlsym(lib, "LGBM_BoosterCreateFromModelfile"));
  auto predict = reinterpret_cast<PredictFn>(dlsym(lib, "LGBM_BoosterPredictForMat"));
  auto fast_init =
      reinterpret_cast<FastInitFn>(dlsym(lib, "LGBM_BoosterPredictForMatSingleRowFastInit"));
  auto fast = reinterpret_cast<FastFn>(dlsym(lib, "LGBM_BoosterPredictForMatSingleRowFast"));
  auto last_error = reinterpret_cast<ErrorFn>(dlsym(lib, "LGBM_GetLastError"));
  if (!create || !predict || !fast_init || !fast || !last_error) {
    std::fprintf(stderr, "lib_lightgbm lacks the C API functions used here\n");
    return 1;
  }
  Handle booster = nullptr;
  int iterations = 0;
  if (create(argv[1], &iterations, &booster) != 0) {
    std::fprintf(stderr, "LightGBM: %s\n", last_error());
    return 1;
  }
  const int64_t width = (*model)->num_classes();
  const char* params = "num_threads=1";

  // Both must agree before any timing means anything.
  std::vector<double> ours(static_cast<size_t>(n * width)), theirs(ours.size());
  (*model)->Predict(rows.data(), n, ours.data(), false);
  int64_t len = 0;
  if (predict(booster, rows.data(), kFloat64, static_cast<int32_t>(n),
              static_cast<int32_t>(features), 1, kPredictNormal, 0, -1, params, &len,
              theirs.data()) != 0) {
    std::fprintf(stderr, "LightGBM: %s\n", last_error());
    return 1;
  }
  for (size_t i = 0; i < ours.size(); ++i)
    if (ours[i] != theirs[i]) {
      std::fprintf(stderr, "prediction %zu differs: osprey %.17g, lightgbm %.17g\n", i, ours[i],
                   theirs[i]);
      return 3;
    }

  Handle fast_config = nullptr;
  if (fast_init(booster, kPredictNormal, 0, -1, kFloat64, static_cast<int32_t>(features), params,
                &fast_config) != 0) {
    std::fprintf(stderr, "LightGBM: %s\n", last_error());
    return 1;
  }
  std::vector<double> out(static_cast<size_t>(1000 * width));
  for (int64_t batch : {int64_t{1}, int64_t{1000}}) {
    if (batch > n) continue;
    const int64_t slots = n / batch;
    auto at = [&](int64_t call) { return rows.data() + (call % slots) * batch * features; };
    Report("osprey", batch, Measure(seconds, batch, [&](int64_t call) {
             (*model)->Predict(at(call), batch, out.data(), false);
           }));
    Report("lightgbm", batch, Measure(seconds, batch, [&](int64_t call) {
             predict(booster, at(call), kFloat64, static_cast<int32_t>(batch),
                     static_cast<int32_t>(features), 1, kPredictNormal, 0, -1, params, &len,
                     out.data());
           }));
    if (batch == 1)
      Report("lightgbm-single-row-fast", batch, Measure(seconds, batch, [&](int64_t call) {
               fast(fast_config, at(call), &len, out.data());
             }));
  }
  return 0;
}
