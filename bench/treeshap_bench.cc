// In-process TreeSHAP: Osprey's explainers (backends/tree_shap.h through the
// XGBoost and LightGBM backends' structures) against the frameworks' own
// contribution predictors through their C APIs: libxgboost's
// XGBoosterPredictFromDMatrix with type 2 (pred_contribs) and LightGBM's
// LGBM_BoosterPredictForMat with C_API_PREDICT_CONTRIB (lib_lightgbm.so from
// the lightgbm wheel, loaded with dlopen). One thread each, same rows.
//
// usage: osprey_treeshap_bench xgboost MODEL_JSON ROWS_F32 NUM_FEATURES SECONDS
//        osprey_treeshap_bench lightgbm MODEL_TXT ROWS_F64 NUM_FEATURES LIB_LIGHTGBM SECONDS
//   ROWS_*: raw little-endian rows, row-major.
// Prints one JSON object per line: {"engine", "batch", "rows_per_s"}, after
// checking that both agree on every contribution (1e-5 relative, 1e-6 floor);
// exits 3 when they do not.

#include <dlfcn.h>
#include <xgboost/c_api.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "backends/lightgbm/lgbm_model.h"
#include "backends/xgboost/xgb_explainer.h"

namespace {

template <typename Step>
double Measure(double seconds, int64_t batch, Step step) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 20; ++i) step(i);  // warm-up (and the tables, built on first use)
  int64_t calls = 0;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    step(calls++);
    now = Clock::now();
  } while (now < deadline);
  return static_cast<double>(calls * batch) / std::chrono::duration<double>(now - start).count();
}

void Report(const char* engine, int64_t batch, double rows_per_s) {
  std::printf("{\"engine\": \"%s\", \"batch\": %lld, \"rows_per_s\": %.1f}\n", engine,
              static_cast<long long>(batch), rows_per_s);
  std::fflush(stdout);
}

std::string ReadAll(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

template <typename T>
std::vector<T> ReadRows(const char* path) {
  std::string raw = ReadAll(path);
  std::vector<T> rows(raw.size() / sizeof(T));
  std::memcpy(rows.data(), raw.data(), rows.size() * sizeof(T));
  return rows;
}

template <typename A, typename B>
bool Agree(const std::vector<A>& ours, const B* theirs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double a = ours[i], b = theirs[i];
    if (!(std::fabs(a - b) <= 1e-5 * std::fabs(b) + 1e-6)) {
      std::fprintf(stderr, "contribution %zu differs: osprey %.9g, framework %.9g\n", i, a, b);
      return false;
    }
  }
  return true;
}

int Xgboost(int argc, char** argv) {
  if (argc != 6) return 2;
  const std::string json = ReadAll(argv[2]);
  std::vector<float> rows = ReadRows<float>(argv[3]);
  const int64_t features = std::stoll(argv[4]);
  const double seconds = std::stod(argv[5]);
  const int64_t n = static_cast<int64_t>(rows.size()) / features;
  auto explainer = osprey::XgbExplainer::Parse(json);
  if (!explainer.ok()) {
    std::fprintf(stderr, "osprey: %s\n", std::string(explainer.status().message()).c_str());
    return 1;
  }
  BoosterHandle booster = nullptr;
  if (XGBoosterCreate(nullptr, 0, &booster) != 0 ||
      XGBoosterLoadModelFromBuffer(booster, json.data(), json.size()) != 0 ||
      XGBoosterSetParam(booster, "nthread", "1") != 0) {
    std::fprintf(stderr, "xgboost: %s\n", XGBGetLastError());
    return 1;
  }
  const char* config =
      "{\"type\":2,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
      "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}";
  // Contributions have no in-place predict: each call makes a DMatrix of its
  // rows (as Booster.predict(DMatrix(X), pred_contribs=True) does) and frees it.
  auto theirs = [&](const float* x, int64_t batch, std::vector<float>* out) {
    DMatrixHandle m = nullptr;
    if (XGDMatrixCreateFromMat(x, static_cast<bst_ulong>(batch), static_cast<bst_ulong>(features),
                               NAN, &m) != 0)
      return -1;
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    int rc = XGBoosterPredictFromDMatrix(booster, m, config, &shape, &dim, &result);
    if (rc == 0 && out != nullptr) {
      bst_ulong count = 1;
      for (bst_ulong d = 0; d < dim; ++d) count *= shape[d];
      out->assign(result, result + count);
    }
    XGDMatrixFree(m);
    return rc;
  };
  const int64_t width = (*explainer)->num_groups() * (features + 1);
  std::vector<float> ours(static_cast<size_t>(n * width));
  if (!(*explainer)->Explain(rows.data(), n, ours.data()).ok()) return 1;
  std::vector<float> reference;
  if (theirs(rows.data(), n, &reference) != 0) {
    std::fprintf(stderr, "xgboost: %s\n", XGBGetLastError());
    return 1;
  }
  if (reference.size() != ours.size()) {
    std::fprintf(stderr, "xgboost answered %zu values, osprey %zu\n", reference.size(),
                 ours.size());
    return 3;
  }
  if (!Agree(ours, reference.data(), ours.size())) return 3;
  for (int64_t batch : {int64_t{1}, int64_t{1000}}) {
    if (batch > n) continue;
    const int64_t slots = n / batch;
    auto at = [&](int64_t call) { return rows.data() + (call % slots) * batch * features; };
    Report("osprey", batch, Measure(seconds, batch, [&](int64_t call) {
             (void)(*explainer)->Explain(at(call), batch, ours.data());
           }));
    Report("xgboost", batch,
           Measure(seconds, batch, [&](int64_t call) { theirs(at(call), batch, nullptr); }));
  }
  XGBoosterFree(booster);
  return 0;
}

using Handle = void*;
using CreateFn = int (*)(const char*, int*, Handle*);
using PredictFn = int (*)(Handle, const void*, int, int32_t, int32_t, int, int, int, int,
                          const char*, int64_t*, double*);
using ErrorFn = const char* (*)();
constexpr int kFloat64 = 1;
constexpr int kPredictContrib = 3;

int Lightgbm(int argc, char** argv) {
  if (argc != 7) return 2;
  auto model = osprey::LgbmModel::Parse(ReadAll(argv[2]));
  if (!model.ok()) {
    std::fprintf(stderr, "osprey: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  std::vector<double> rows = ReadRows<double>(argv[3]);
  const int64_t features = std::stoll(argv[4]);
  const double seconds = std::stod(argv[6]);
  const int64_t n = static_cast<int64_t>(rows.size()) / features;
  void* lib = dlopen(argv[5], RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  auto create = reinterpret_cast<CreateFn>(dlsym(lib, "LGBM_BoosterCreateFromModelfile"));
  auto predict = reinterpret_cast<PredictFn>(dlsym(lib, "LGBM_BoosterPredictForMat"));
  auto last_error = reinterpret_cast<ErrorFn>(dlsym(lib, "LGBM_GetLastError"));
  if (!create || !predict || !last_error) return 1;
  Handle booster = nullptr;
  int iterations = 0;
  if (create(argv[2], &iterations, &booster) != 0) {
    std::fprintf(stderr, "LightGBM: %s\n", last_error());
    return 1;
  }
  const char* params = "num_threads=1";
  const int64_t width = (*model)->num_classes() * (features + 1);
  std::vector<double> ours(static_cast<size_t>(n * width)), theirs(ours.size());
  if (!(*model)->Explain(rows.data(), n, ours.data()).ok()) return 1;
  int64_t len = 0;
  auto call_theirs = [&](const double* x, int64_t batch) {
    return predict(booster, x, kFloat64, static_cast<int32_t>(batch),
                   static_cast<int32_t>(features), 1, kPredictContrib, 0, -1, params, &len,
                   theirs.data());
  };
  if (call_theirs(rows.data(), n) != 0) {
    std::fprintf(stderr, "LightGBM: %s\n", last_error());
    return 1;
  }
  if (!Agree(ours, theirs.data(), ours.size())) return 3;
  for (int64_t batch : {int64_t{1}, int64_t{1000}}) {
    if (batch > n) continue;
    const int64_t slots = n / batch;
    auto at = [&](int64_t call) { return rows.data() + (call % slots) * batch * features; };
    Report("osprey", batch, Measure(seconds, batch, [&](int64_t call) {
             (void)(*model)->Explain(at(call), batch, ours.data());
           }));
    Report("lightgbm", batch,
           Measure(seconds, batch, [&](int64_t call) { call_theirs(at(call), batch); }));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (mode == "xgboost") rc = Xgboost(argc, argv);
  if (mode == "lightgbm") rc = Lightgbm(argc, argv);
  if (rc == 2)
    std::fprintf(stderr,
                 "usage: %s xgboost MODEL_JSON ROWS_F32 NUM_FEATURES SECONDS\n"
                 "       %s lightgbm MODEL_TXT ROWS_F64 NUM_FEATURES LIB_LIGHTGBM SECONDS\n",
                 argv[0], argv[0]);
  return rc;
}
