#include "controlplane/monitoring.h"

#include <algorithm>

#include "common/strings.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace osprey::controlplane {

const std::vector<MonitorAnnotation>& MonitorAnnotations() {
  static const std::vector<MonitorAnnotation> kTable = {
      {kDriftReferenceAnnotation, "--drift-reference"},
      {"serving.osprey.dev/drift-window", "--drift-window"},
      {"serving.osprey.dev/drift-stride", "--drift-stride"},
      {"serving.osprey.dev/drift-p-value", "--drift-p-value"},
      {"serving.osprey.dev/drift-categorical", "--drift-categorical"},
      {"serving.osprey.dev/outlier-quantile", "--outlier-quantile"},
      {"serving.osprey.dev/outlier-header", "--outlier-header", true},
  };
  return kTable;
}

std::map<std::string, std::string> MonitorAnnotationsOf(
    const std::map<std::string, std::string>& annotations) {
  std::map<std::string, std::string> out;
  for (const MonitorAnnotation& a : MonitorAnnotations())
    if (auto it = annotations.find(std::string(a.annotation)); it != annotations.end())
      out.emplace(it->first, it->second);
  return out;
}

std::string WithMonitorAnnotations(const std::string& predictor_json,
                                   const std::map<std::string, std::string>& isvc_annotations) {
  const auto wanted = MonitorAnnotationsOf(isvc_annotations);
  if (wanted.empty()) return predictor_json;
  rapidjson::Document d;
  d.Parse(predictor_json.data(), predictor_json.size());
  if (d.HasParseError() || !d.IsObject()) return predictor_json;
  auto& alloc = d.GetAllocator();
  if (!d.HasMember("annotations") || !d["annotations"].IsObject()) {
    d.RemoveMember("annotations");
    d.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), alloc);
  }
  rapidjson::Value& annotations = d["annotations"];
  for (const auto& [key, value] : wanted)
    if (!annotations.HasMember(key.c_str()))
      annotations.AddMember(rapidjson::Value(key.c_str(), alloc),
                            rapidjson::Value(value.c_str(), alloc), alloc);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  d.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

std::vector<std::string> MonitorServeFlags(const std::map<std::string, std::string>& annotations) {
  std::vector<std::string> flags;
  if (!annotations.contains(kDriftReferenceAnnotation)) return flags;
  for (const MonitorAnnotation& a : MonitorAnnotations()) {
    auto it = annotations.find(std::string(a.annotation));
    if (it == annotations.end()) continue;
    if (a.boolean) {
      if (it->second == "true") flags.emplace_back(a.flag);
      continue;
    }
    flags.emplace_back(a.flag);
    flags.push_back(it->second);
  }
  return flags;
}

std::optional<DriftEvent> DriftTransition(const std::optional<DriftReport>& before,
                                          const DriftReport& now, std::string_view revision) {
  if (!now.error.empty()) {
    if (before.has_value() && before->error == now.error) return std::nullopt;
    return DriftEvent{"Warning", "DriftDetectorFailed",
                      StrCat("revision ", revision, ": ", now.error)};
  }
  const bool was = before.has_value() && before->drift;
  if (now.drift && !was)
    return DriftEvent{"Warning", "DriftDetected",
                      StrCat("revision ", revision, ": input drift in window ", now.windows_tested,
                             " (min p-value ", now.min_p_value, " < ", now.threshold, ")")};
  if (!now.drift && was)
    return DriftEvent{"Normal", "DriftEnded",
                      StrCat("revision ", revision, ": no drift in window ", now.windows_tested,
                             " (min p-value ", now.min_p_value, ")")};
  return std::nullopt;
}

DriftReport MergeDriftReports(const std::vector<DriftReport>& reports) {
  DriftReport merged;
  for (const DriftReport& r : reports) {
    merged.ready = merged.ready || r.ready;
    merged.drift = merged.drift || r.drift;
    merged.windows_tested += r.windows_tested;
    merged.outliers_total += r.outliers_total;
    merged.min_p_value = std::min(merged.min_p_value, r.min_p_value);
    merged.threshold = std::max(merged.threshold, r.threshold);
    if (merged.error.empty()) merged.error = r.error;
  }
  return merged;
}

std::optional<DriftReport> ParseDriftReport(std::string_view json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("drift") || !d["drift"].IsBool())
    return std::nullopt;
  DriftReport r;
  r.drift = d["drift"].GetBool();
  if (d.HasMember("ready") && d["ready"].IsBool()) r.ready = d["ready"].GetBool();
  if (d.HasMember("windows_tested") && d["windows_tested"].IsUint64())
    r.windows_tested = d["windows_tested"].GetUint64();
  if (d.HasMember("outliers_total") && d["outliers_total"].IsUint64())
    r.outliers_total = d["outliers_total"].GetUint64();
  if (d.HasMember("error") && d["error"].IsString()) r.error = d["error"].GetString();
  if (d.HasMember("last") && d["last"].IsObject()) {
    const auto& last = d["last"];
    if (last.HasMember("threshold") && last["threshold"].IsNumber())
      r.threshold = last["threshold"].GetDouble();
    if (last.HasMember("p_values") && last["p_values"].IsArray())
      for (const auto& p : last["p_values"].GetArray())
        if (p.IsNumber()) r.min_p_value = std::min(r.min_p_value, p.GetDouble());
  }
  return r;
}

}  // namespace osprey::controlplane
