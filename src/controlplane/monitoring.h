#pragma once

// Built-in drift and outlier detection in the plan's terms, as pure functions:
//
// - which annotations turn it on and configure it (serving.osprey.dev/drift-*
//   and outlier-*, on the InferenceService or its predictor; the predictor's
//   win). They are part of the predictor's revision: PredictorSpecJson folds
//   the service's into the predictor's annotations, so changing one rolls
//   out a new revision, like any change to how the revision runs;
// - the flags `osprey serve` takes for them (model_server.h appends them);
// - what a change of a replica's verdict means for the service's events:
//   drift started (Warning DriftDetected) or ended (Normal DriftEnded).
//
// The replica reports its detector at GET /v2/models/{model}/drift (JSON,
// monitor/detector.h); executors poll it and feed DriftTransition.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace osprey::controlplane {

// Annotation -> `osprey serve` flag. drift-reference (a storage URI of a .npy
// or .csv file, or first:N) turns detection on; the others need it.
struct MonitorAnnotation {
  std::string_view annotation;
  std::string_view flag;
  bool boolean = false;  // "true" adds the flag alone; anything else nothing
};
const std::vector<MonitorAnnotation>& MonitorAnnotations();
inline constexpr char kDriftReferenceAnnotation[] = "serving.osprey.dev/drift-reference";

// The monitoring annotations of `annotations` (others left out).
std::map<std::string, std::string> MonitorAnnotationsOf(
    const std::map<std::string, std::string>& annotations);

// `predictor_json` (canonical JSON of spec.predictor) with the service's
// monitoring annotations added to its "annotations" where the predictor does
// not set them. Unchanged when the service has none.
std::string WithMonitorAnnotations(const std::string& predictor_json,
                                   const std::map<std::string, std::string>& isvc_annotations);

// `osprey serve` flags for a predictor's annotations; none without
// drift-reference.
std::vector<std::string> MonitorServeFlags(const std::map<std::string, std::string>& annotations);

// What a replica's detector reported at one poll.
struct DriftReport {
  bool ready = false;  // the reference is known (first:N collected)
  bool drift = false;  // the last tested window's verdict
  unsigned long long windows_tested = 0;
  double min_p_value = 1;
  double threshold = 0;
  unsigned long long outliers_total = 0;
  std::string error;  // the detector's own failure (its reference)
};

struct DriftEvent {
  std::string type;    // Normal | Warning
  std::string reason;  // DriftDetected | DriftEnded | DriftDetectorFailed
  std::string message;
};

// The event a service gets when its revision's verdict moves from `before`
// (nullopt: never seen) to `now`: drift starting (including on the first
// report), drift ending, or the detector failing; nothing otherwise.
std::optional<DriftEvent> DriftTransition(const std::optional<DriftReport>& before,
                                          const DriftReport& now, std::string_view revision);

// One report of a revision's replicas (each detects on its own share of the
// traffic): drift when any drifts; windows and outliers summed; the smallest
// p-value; the first error.
DriftReport MergeDriftReports(const std::vector<DriftReport>& reports);

// A replica's /drift JSON read into a report; nullopt when it is not that.
std::optional<DriftReport> ParseDriftReport(std::string_view json);

}  // namespace osprey::controlplane
