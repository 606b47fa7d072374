#include "gateway/route_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace osprey::gateway {
namespace internal {

bool HeaderNameEquals(std::string_view a, std::string_view b) {
  // ASCII only, as header names and host names are: no locale lookups.
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

bool HostEquals(std::string_view route_host, std::string_view host) {
  return HeaderNameEquals(route_host, host);
}

std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

std::string_view PathModel(std::string_view path) {
  for (std::string_view prefix : {"/v1/models/", "/v2/models/"}) {
    if (path.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = path.substr(prefix.size());
    return rest.substr(0, rest.find_first_of("/:?"));
  }
  return {};
}

}  // namespace internal

double SplitDraw(uint64_t n) {
  constexpr double kPhi = 0.6180339887498948482;  // (sqrt(5) - 1) / 2
  double x = static_cast<double>(n % (1ull << 52)) * kPhi;
  return (x - std::floor(x)) * 100.0;
}

const WeightedRevision* PickWeighted(const std::vector<WeightedRevision>& split, double u) {
  double cumulative = 0;
  const WeightedRevision* last = nullptr;
  for (const auto& w : split) {
    if (w.percent <= 0) continue;
    cumulative += w.percent;
    last = &w;
    if (u < cumulative) return &w;
  }
  // Rounding: u at the very top. A split short of 100 leaves its rest
  // unserved (a VirtualService destination nobody serves).
  return cumulative >= 100 ? last : nullptr;
}

std::pair<std::string_view, std::string_view> RevisionService(std::string_view revision) {
  const size_t digits = revision.rfind('-');
  if (digits == std::string_view::npos || digits + 1 == revision.size()) return {};
  for (char c : revision.substr(digits + 1))
    if (c < '0' || c > '9') return {};
  const std::string_view rest = revision.substr(0, digits);
  const size_t dash = rest.rfind('-');
  const std::string_view component =
      dash == std::string_view::npos ? std::string_view() : rest.substr(dash + 1);
  if (component != "predictor" && component != "transformer" && component != "explainer")
    return {rest, {}};  // a Knative Service's: {service}-{digits}
  if (dash == 0) return {};
  return {rest.substr(0, dash), component};
}

namespace internal {

bool RegexFullMatch(const re2::RE2& re, std::string_view s) {
  return RE2::FullMatch(re2::StringPiece(s.data(), s.size()), re);
}

std::optional<std::string_view> QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace internal

std::optional<StringMatch> StringMatch::Regex(const std::string& pattern) {
  auto re = std::make_shared<const re2::RE2>(pattern, RE2::Quiet);
  if (!re->ok()) return std::nullopt;
  StringMatch m;
  m.kind = Kind::kRegex;
  m.value = pattern;
  m.regex = std::move(re);
  return m;
}

std::string RouteTarget(const Route& route, std::string_view target) {
  if (route.rewrite_path.has_value()) {
    const size_t q = target.find('?');
    std::string out = *route.rewrite_path;
    if (q != std::string_view::npos) out.append(target.substr(q));
    return out;
  }
  if (!route.rewrite.has_value() || !route.uri.has_value() ||
      (route.uri->kind != StringMatch::Kind::kPrefix &&
       route.uri->kind != StringMatch::Kind::kPrefixSuffix) ||
      !target.starts_with(route.uri->value))
    return std::string(target);
  std::string out = *route.rewrite;
  out.append(target.substr(route.uri->value.size()));
  return out;
}

}  // namespace osprey::gateway
