// Istio's Gateway, VirtualService, ServiceEntry and DestinationRule: parsing with Istio's
// validation rules, and canonical JSON (istio.h).

#include "resources/istio.h"

#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "resources/graph_internal.h"
#include "resources/resources.h"
#include "resources/value.h"

namespace osprey::resources::internal {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A protobuf Duration as Istio writes them: "2s", "0.5s", "100ms", "1m", "1h".
absl::Status ReadDuration(const Value& parent, std::string_view key, std::string_view path,
                          int64_t* ms) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  std::string text;
  OSPREY_RETURN_IF_ERROR(ToString(*v, Field(path, key), &text));
  struct Unit {
    std::string_view suffix;
    double ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  for (const Unit& u : units) {
    if (!text.ends_with(u.suffix)) continue;
    const std::string number = text.substr(0, text.size() - u.suffix.size());
    double d = -1;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
    if (number.empty() || ec != std::errc() || end != number.data() + number.size() || d < 0) break;
    if (d * u.ms > 1e13) return Error(v, Field(path, key), "is too long");
    *ms = static_cast<int64_t>(d * u.ms + 0.5);
    if (*ms < 1) return Error(v, Field(path, key), "must be at least 1ms");
    return absl::OkStatus();
  }
  return Error(v, Field(path, key),
               StrCat("\"", text, "\" is invalid: expected a duration such as 2s, 0.5s or 100ms"));
}

absl::Status ReadPercent(const Value& v, std::string_view path, double* out) {
  if (v.kind == Value::Kind::kInt) {
    *out = static_cast<double>(v.i);
  } else if (v.kind == Value::Kind::kFloat) {
    *out = v.d;
  } else {
    return Error(&v, path, StrCat("expected a number, got ", Describe(v)));
  }
  if (!(*out >= 0 && *out <= 100))
    return Error(&v, path, StrCat("must be between 0 and 100, got ", *out));
  return absl::OkStatus();
}

// fault.delay / fault.abort's share: percentage.value, or the legacy integer percent.
absl::Status ReadShare(const Value& v, std::string_view path, double* out) {
  *out = 100;
  if (const Value* p = v.Find("percentage"); p != nullptr) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*p, Field(path, "percentage")));
    OSPREY_RETURN_IF_ERROR(CheckFields(*p, Field(path, "percentage"), {"value"}));
    if (const Value* value = p->Find("value"); value != nullptr)
      OSPREY_RETURN_IF_ERROR(ReadPercent(*value, Field(Field(path, "percentage"), "value"), out));
  } else if (const Value* legacy = v.Find("percent"); legacy != nullptr) {
    OSPREY_RETURN_IF_ERROR(ReadPercent(*legacy, Field(path, "percent"), out));
  }
  return absl::OkStatus();
}

absl::Status ReadStringMatch(const Value& v, std::string_view path, IstioStringMatch* out) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, {"exact", "prefix", "regex"}));
  int given = 0;
  for (auto [key, kind] : {std::pair{"exact", IstioStringMatch::Kind::kExact},
                           std::pair{"prefix", IstioStringMatch::Kind::kPrefix},
                           std::pair{"regex", IstioStringMatch::Kind::kRegex}}) {
    if (v.Find(key) == nullptr) continue;
    ++given;
    out->kind = kind;
    OSPREY_RETURN_IF_ERROR(ReadString(v, key, path, &out->value));
  }
  if (given != 1) return Error(&v, path, "must have exactly one of exact, prefix, regex");
  if (out->kind == IstioStringMatch::Kind::kRegex) {
    RE2 re(out->value, RE2::Quiet);
    if (!re.ok())
      return Error(v.Find("regex"), Field(path, "regex"),
                   StrCat("\"", out->value, "\" is not a valid RE2 expression: ", re.error()));
  }
  return absl::OkStatus();
}

absl::Status ReadMatchMap(const Value& parent, std::string_view key, std::string_view path,
                          bool lower_names,
                          std::vector<std::pair<std::string, IstioStringMatch>>* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  const std::string at = Field(path, key);
  if (v->kind != Value::Kind::kMap)
    return Error(v, at, StrCat("expected a map of string matches, got ", Describe(*v)));
  for (const auto& [name, m] : v->map) {
    IstioStringMatch match;
    OSPREY_RETURN_IF_ERROR(ReadStringMatch(m, Field(at, name), &match));
    out->emplace_back(lower_names ? Lower(name) : name, std::move(match));
  }
  return absl::OkStatus();
}

absl::Status ReadHeaderOps(const Value& v, std::string_view path, IstioHeaderOperations* out) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, {"set", "add", "remove"}));
  std::map<std::string, std::string> set, add;
  OSPREY_RETURN_IF_ERROR(ReadStringsMap(v, "set", path, &set));
  OSPREY_RETURN_IF_ERROR(ReadStringsMap(v, "add", path, &add));
  OSPREY_RETURN_IF_ERROR(ReadStrings(v, "remove", path, &out->remove));
  for (auto& [k, value] : set) out->set.emplace_back(Lower(k), value);
  for (auto& [k, value] : add) out->add.emplace_back(Lower(k), value);
  for (auto& r : out->remove) r = Lower(r);
  // The gateway writes these itself (as Envoy refuses to let routes change them).
  auto reserved = [](const std::string& name) {
    for (std::string_view h : {"host", ":authority", "content-length", "transfer-encoding",
                               "connection", "keep-alive", "upgrade", "te", "trailer"})
      if (name == h) return true;
    return false;
  };
  for (const auto& [list, names] : {std::pair{"set", &out->set}, std::pair{"add", &out->add}}) {
    for (const auto& [name, value] : *names)
      if (reserved(name))
        return Error(&v, Field(Field(path, list), name),
                     "may not be changed (the gateway writes it; for the Host use "
                     "rewrite.authority)");
  }
  for (const auto& name : out->remove)
    if (reserved(name))
      return Error(&v, Field(path, "remove"), StrCat("\"", name, "\" may not be removed"));
  return absl::OkStatus();
}

// parent.headers: {request, response}, each set/add/remove.
absl::Status ReadHeaders(const Value& parent, std::string_view path, IstioHeaderOperations* request,
                         IstioHeaderOperations* response) {
  const Value* headers = parent.Find("headers");
  if (headers == nullptr) return absl::OkStatus();
  const std::string at = Field(path, "headers");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*headers, at));
  OSPREY_RETURN_IF_ERROR(CheckFields(*headers, at, {"request", "response"}));
  if (const Value* q = headers->Find("request"); q != nullptr)
    OSPREY_RETURN_IF_ERROR(ReadHeaderOps(*q, Field(at, "request"), request));
  if (const Value* a = headers->Find("response"); a != nullptr)
    OSPREY_RETURN_IF_ERROR(ReadHeaderOps(*a, Field(at, "response"), response));
  return absl::OkStatus();
}

absl::Status ReadDestination(const Value& v, std::string_view path, IstioDestination* out) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, {"host", "port", "subset"}));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "subset", path, &out->subset));
  if (v.Find("subset") != nullptr && !IsDns1123Label(out->subset))
    return Error(v.Find("subset"), Field(path, "subset"),
                 StrCat("\"", out->subset, "\" is invalid: a subset name is a DNS label"));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "host", path, &out->host));
  if (out->host.empty()) return Error(&v, Field(path, "host"), "required");
  out->host = Lower(out->host);
  if (const Value* port = v.Find("port"); port != nullptr) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*port, Field(path, "port")));
    OSPREY_RETURN_IF_ERROR(CheckFields(*port, Field(path, "port"), {"number"}));
    std::optional<int> number;
    OSPREY_RETURN_IF_ERROR(ReadIntField(*port, "number", Field(path, "port"), &number));
    if (!number || *number < 1 || *number > 65535)
      return Error(port, Field(Field(path, "port"), "number"), "must be between 1 and 65535");
    out->port = *number;
  }
  return absl::OkStatus();
}

absl::Status ParseHttpRoute(const Value& v, std::string_view path, IstioHttpRoute* r) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(
      CheckFields(v, path,
                  {"name", "match", "route", "redirect", "rewrite", "timeout", "retries", "fault",
                   "mirror", "mirrorPercentage", "mirrorPercent", "headers", "corsPolicy"}));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "name", path, &r->name));
  if (const Value* matches = v.Find("match"); matches != nullptr) {
    const std::string at = Field(path, "match");
    if (matches->kind != Value::Kind::kList)
      return Error(matches, at, StrCat("expected a list, got ", Describe(*matches)));
    for (size_t i = 0; i < matches->list.size(); ++i) {
      const Value& item = matches->list[i];
      const std::string mi = Index(at, i);
      OSPREY_RETURN_IF_ERROR(ExpectMap(item, mi));
      OSPREY_RETURN_IF_ERROR(CheckFields(item, mi,
                                         {"name", "uri", "method", "authority", "headers",
                                          "queryParams", "ignoreUriCase", "port"}));
      if (item.Find("ignoreUriCase") != nullptr)
        return Error(item.Find("ignoreUriCase"), Field(mi, "ignoreUriCase"),
                     "not supported by Osprey yet");
      IstioHttpMatch m;
      OSPREY_RETURN_IF_ERROR(ReadString(item, "name", mi, &m.name));
      std::optional<int> match_port;
      OSPREY_RETURN_IF_ERROR(ReadIntField(item, "port", mi, &match_port));
      if (match_port && (*match_port < 1 || *match_port > 65535))
        return Error(item.Find("port"), Field(mi, "port"), "must be a port from 1 to 65535");
      m.port = match_port.value_or(0);
      for (auto [key, field] : {std::pair{"uri", &m.uri}, std::pair{"method", &m.method},
                                std::pair{"authority", &m.authority}}) {
        const Value* s = item.Find(key);
        if (s == nullptr) continue;
        IstioStringMatch sm;
        OSPREY_RETURN_IF_ERROR(ReadStringMatch(*s, Field(mi, key), &sm));
        *field = std::move(sm);
      }
      OSPREY_RETURN_IF_ERROR(ReadMatchMap(item, "headers", mi, true, &m.headers));
      OSPREY_RETURN_IF_ERROR(ReadMatchMap(item, "queryParams", mi, false, &m.query_params));
      r->match.push_back(std::move(m));
    }
  }
  const Value* route = v.Find("route");
  const Value* redirect = v.Find("redirect");
  if ((route == nullptr) == (redirect == nullptr))
    return Error(&v, path, "must have exactly one of route, redirect");
  if (route != nullptr) {
    const std::string at = Field(path, "route");
    if (route->kind != Value::Kind::kList || route->list.empty())
      return Error(route, at, "expected a non-empty list of destinations");
    int sum = 0;
    for (size_t i = 0; i < route->list.size(); ++i) {
      const Value& item = route->list[i];
      const std::string di = Index(at, i);
      OSPREY_RETURN_IF_ERROR(ExpectMap(item, di));
      OSPREY_RETURN_IF_ERROR(CheckFields(item, di, {"destination", "weight", "headers"}));
      const Value* d = item.Find("destination");
      if (d == nullptr) return Error(&item, Field(di, "destination"), "required");
      IstioRouteDestination dest;
      OSPREY_RETURN_IF_ERROR(ReadDestination(*d, Field(di, "destination"), &dest));
      OSPREY_RETURN_IF_ERROR(ReadHeaders(item, di, &dest.request_headers, &dest.response_headers));
      std::optional<int> weight;
      OSPREY_RETURN_IF_ERROR(ReadIntField(item, "weight", di, &weight));
      if (weight && (*weight < 0 || *weight > 100))
        return Error(item.Find("weight"), Field(di, "weight"),
                     StrCat("must be between 0 and 100, got ", *weight));
      dest.weight = weight.value_or(route->list.size() == 1 ? 100 : 0);
      sum += dest.weight;
      r->route.push_back(std::move(dest));
    }
    if (sum != 100) return Error(route, at, StrCat("the weights sum to ", sum, ", want 100"));
  } else {
    const std::string at = Field(path, "redirect");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*redirect, at));
    OSPREY_RETURN_IF_ERROR(
        CheckFields(*redirect, at, {"uri", "authority", "redirectCode", "scheme", "port"}));
    r->redirect = true;
    OSPREY_RETURN_IF_ERROR(ReadString(*redirect, "uri", at, &r->redirect_uri));
    OSPREY_RETURN_IF_ERROR(ReadString(*redirect, "authority", at, &r->redirect_authority));
    OSPREY_RETURN_IF_ERROR(ReadString(*redirect, "scheme", at, &r->redirect_scheme));
    if (!r->redirect_scheme.empty() && r->redirect_scheme != "http" &&
        r->redirect_scheme != "https")
      return Error(redirect->Find("scheme"), Field(at, "scheme"),
                   StrCat("\"", r->redirect_scheme, "\" is invalid: must be http or https"));
    std::optional<int> port;
    OSPREY_RETURN_IF_ERROR(ReadIntField(*redirect, "port", at, &port));
    if (port && (*port < 1 || *port > 65535))
      return Error(redirect->Find("port"), Field(at, "port"),
                   StrCat("must be a port from 1 to 65535, got ", *port));
    r->redirect_port = port.value_or(0);
    std::optional<int> code;
    OSPREY_RETURN_IF_ERROR(ReadIntField(*redirect, "redirectCode", at, &code));
    if (code && (*code < 300 || *code > 399))
      return Error(redirect->Find("redirectCode"), Field(at, "redirectCode"),
                   StrCat("must be a 3xx status, got ", *code));
    r->redirect_code = code.value_or(301);
  }
  if (const Value* rw = v.Find("rewrite"); rw != nullptr) {
    const std::string at = Field(path, "rewrite");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*rw, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(*rw, at, {"uri", "authority"}));
    if (rw->Find("uri") != nullptr) {
      std::string uri;
      OSPREY_RETURN_IF_ERROR(ReadString(*rw, "uri", at, &uri));
      r->rewrite_uri = uri;
    }
    OSPREY_RETURN_IF_ERROR(ReadString(*rw, "authority", at, &r->rewrite_authority));
  }
  OSPREY_RETURN_IF_ERROR(ReadDuration(v, "timeout", path, &r->timeout_ms));
  if (const Value* retries = v.Find("retries"); retries != nullptr) {
    const std::string at = Field(path, "retries");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*retries, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(*retries, at, {"attempts", "perTryTimeout", "retryOn"}));
    OSPREY_RETURN_IF_ERROR(ReadIntField(*retries, "attempts", at, &r->retry_attempts));
    if (r->retry_attempts && *r->retry_attempts < 0)
      return Error(retries->Find("attempts"), Field(at, "attempts"), "must be >= 0");
    OSPREY_RETURN_IF_ERROR(
        ReadDuration(*retries, "perTryTimeout", at, &r->retry_per_try_timeout_ms));
    OSPREY_RETURN_IF_ERROR(ReadString(*retries, "retryOn", at, &r->retry_on));
    std::string_view rest = r->retry_on;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view cond = rest.substr(0, comma);
      while (!cond.empty() && cond.front() == ' ') cond.remove_prefix(1);
      while (!cond.empty() && cond.back() == ' ') cond.remove_suffix(1);
      static constexpr std::string_view kKnown[] = {
          "5xx", "gateway-error", "connect-failure", "refused-stream", "reset", "retriable-4xx"};
      if (std::find(std::begin(kKnown), std::end(kKnown), cond) == std::end(kKnown))
        return Error(retries->Find("retryOn"), Field(at, "retryOn"),
                     StrCat("\"", cond,
                            "\" is not a condition Osprey retries on (5xx, gateway-error, "
                            "connect-failure, refused-stream, reset, retriable-4xx)"));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (const Value* fault = v.Find("fault"); fault != nullptr) {
    const std::string at = Field(path, "fault");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*fault, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(*fault, at, {"delay", "abort"}));
    if (const Value* delay = fault->Find("delay"); delay != nullptr) {
      const std::string di = Field(at, "delay");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*delay, di));
      OSPREY_RETURN_IF_ERROR(CheckFields(*delay, di, {"fixedDelay", "percentage", "percent"}));
      OSPREY_RETURN_IF_ERROR(ReadDuration(*delay, "fixedDelay", di, &r->delay_ms));
      if (r->delay_ms == 0) return Error(delay, Field(di, "fixedDelay"), "required");
      OSPREY_RETURN_IF_ERROR(ReadShare(*delay, di, &r->delay_percent));
    }
    if (const Value* abort = fault->Find("abort"); abort != nullptr) {
      const std::string ai = Field(at, "abort");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*abort, ai));
      OSPREY_RETURN_IF_ERROR(CheckFields(*abort, ai, {"httpStatus", "percentage", "percent"}));
      std::optional<int> status;
      OSPREY_RETURN_IF_ERROR(ReadIntField(*abort, "httpStatus", ai, &status));
      if (!status || *status < 200 || *status > 599)
        return Error(abort, Field(ai, "httpStatus"), "required: an HTTP status from 200 to 599");
      r->abort_http_status = *status;
      OSPREY_RETURN_IF_ERROR(ReadShare(*abort, ai, &r->abort_percent));
    }
  }
  if (const Value* mirror = v.Find("mirror"); mirror != nullptr) {
    IstioDestination m;
    OSPREY_RETURN_IF_ERROR(ReadDestination(*mirror, Field(path, "mirror"), &m));
    r->mirror = std::move(m);
    if (const Value* p = v.Find("mirrorPercentage"); p != nullptr) {
      OSPREY_RETURN_IF_ERROR(ExpectMap(*p, Field(path, "mirrorPercentage")));
      OSPREY_RETURN_IF_ERROR(CheckFields(*p, Field(path, "mirrorPercentage"), {"value"}));
      if (const Value* value = p->Find("value"); value != nullptr)
        OSPREY_RETURN_IF_ERROR(ReadPercent(*value, Field(Field(path, "mirrorPercentage"), "value"),
                                           &r->mirror_percent));
    } else if (const Value* legacy = v.Find("mirrorPercent"); legacy != nullptr) {
      OSPREY_RETURN_IF_ERROR(
          ReadPercent(*legacy, Field(path, "mirrorPercent"), &r->mirror_percent));
    }
  }
  OSPREY_RETURN_IF_ERROR(ReadHeaders(v, path, &r->request_headers, &r->response_headers));
  if (const Value* cors = v.Find("corsPolicy"); cors != nullptr) {
    const std::string at = Field(path, "corsPolicy");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*cors, at));
    OSPREY_RETURN_IF_ERROR(
        CheckFields(*cors, at,
                    {"allowOrigins", "allowOrigin", "allowMethods", "allowHeaders", "exposeHeaders",
                     "maxAge", "allowCredentials", "unmatchedPreflights"}));
    IstioCorsPolicy c;
    if (const Value* origins = cors->Find("allowOrigins"); origins != nullptr) {
      if (origins->kind != Value::Kind::kList)
        return Error(origins, Field(at, "allowOrigins"),
                     StrCat("expected a list, got ", Describe(*origins)));
      for (size_t i = 0; i < origins->list.size(); ++i) {
        IstioStringMatch m;
        OSPREY_RETURN_IF_ERROR(
            ReadStringMatch(origins->list[i], Index(Field(at, "allowOrigins"), i), &m));
        c.allow_origins.push_back(std::move(m));
      }
    }
    // The old allowOrigin (exact origins) counts only without allowOrigins, as in Istio.
    std::vector<std::string> exact;
    OSPREY_RETURN_IF_ERROR(ReadStrings(*cors, "allowOrigin", at, &exact));
    if (c.allow_origins.empty())
      for (auto& o : exact)
        c.allow_origins.push_back({IstioStringMatch::Kind::kExact, std::move(o)});
    OSPREY_RETURN_IF_ERROR(ReadStrings(*cors, "allowMethods", at, &c.allow_methods));
    OSPREY_RETURN_IF_ERROR(ReadStrings(*cors, "allowHeaders", at, &c.allow_headers));
    OSPREY_RETURN_IF_ERROR(ReadStrings(*cors, "exposeHeaders", at, &c.expose_headers));
    OSPREY_RETURN_IF_ERROR(ReadDuration(*cors, "maxAge", at, &c.max_age_ms));
    if (cors->Find("allowCredentials") != nullptr) {
      bool b = false;
      OSPREY_RETURN_IF_ERROR(ReadBoolField(*cors, "allowCredentials", at, &b));
      c.allow_credentials = b;
    }
    std::string unmatched;
    OSPREY_RETURN_IF_ERROR(ReadString(*cors, "unmatchedPreflights", at, &unmatched));
    if (!unmatched.empty() && unmatched != "FORWARD" && unmatched != "IGNORE" &&
        unmatched != "UNSPECIFIED")
      return Error(cors->Find("unmatchedPreflights"), Field(at, "unmatchedPreflights"),
                   StrCat("\"", unmatched, "\" is invalid: must be FORWARD or IGNORE"));
    c.forward_unmatched_preflights = unmatched != "IGNORE";
    r->cors = std::move(c);
  }
  return absl::OkStatus();
}

// A host as Istio takes it: "*", "*.suffix", or a DNS name.
absl::Status CheckHost(const Value* at, std::string_view path, const std::string& host) {
  std::string_view name = host;
  if (name == "*") return absl::OkStatus();
  if (name.starts_with("*.")) name.remove_prefix(2);
  bool ok = !name.empty() && name.size() <= 253;
  size_t start = 0;
  while (ok && start <= name.size()) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    ok = IsDns1123Label(label);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!ok)
    return Error(at, path,
                 StrCat("\"", host, "\" is invalid: expected a DNS name, \"*\" or \"*.suffix\""));
  return absl::OkStatus();
}

absl::Status ReadHosts(const Value& spec, std::string_view path, std::vector<std::string>* out) {
  OSPREY_RETURN_IF_ERROR(ReadStrings(spec, "hosts", path, out));
  if (out->empty()) return Error(&spec, Field(path, "hosts"), "required");
  for (size_t i = 0; i < out->size(); ++i) {
    (*out)[i] = Lower((*out)[i]);
    OSPREY_RETURN_IF_ERROR(
        CheckHost(&spec.Find("hosts")->list[i], Index(Field(path, "hosts"), i), (*out)[i]));
  }
  return absl::OkStatus();
}

absl::StatusOr<VirtualService> ParseVirtualService(const Value& doc) {
  VirtualService vs;
  OSPREY_RETURN_IF_ERROR(ParseObjectMeta(doc, &vs.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.hosts", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", {"hosts", "gateways", "http", "exportTo"}));
  OSPREY_RETURN_IF_ERROR(ReadHosts(*spec, "spec", &vs.hosts));
  OSPREY_RETURN_IF_ERROR(ReadStrings(*spec, "gateways", "spec", &vs.gateways));
  const Value* http = spec->Find("http");
  if (http == nullptr) return Error(spec, "spec.http", "required (Osprey routes HTTP)");
  if (http->kind != Value::Kind::kList || http->list.empty())
    return Error(http, "spec.http", "expected a non-empty list of routes");
  for (size_t i = 0; i < http->list.size(); ++i) {
    IstioHttpRoute r;
    OSPREY_RETURN_IF_ERROR(ParseHttpRoute(http->list[i], Index("spec.http", i), &r));
    vs.http.push_back(std::move(r));
  }
  return vs;
}

// A server's tls block: SIMPLE with files on HTTPS, httpsRedirect on HTTP.
absl::Status ReadServerTls(const Value& server, const std::string& path,
                           const std::string& protocol, std::optional<IstioServerTls>* out) {
  const Value* v = server.Find("tls");
  const std::string at = Field(path, "tls");
  if (v == nullptr) {
    if (protocol == "HTTPS")
      return Error(&server, at,
                   "required on an HTTPS server: mode SIMPLE with serverCertificate and "
                   "privateKey");
    return absl::OkStatus();
  }
  OSPREY_RETURN_IF_ERROR(ExpectMap(*v, at));
  static const FieldSet kTlsFields = {
      "httpsRedirect",      "mode",           "serverCertificate", "privateKey",
      "credentialName",     "caCertificates", "subjectAltNames",   "minProtocolVersion",
      "maxProtocolVersion", "cipherSuites"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*v, at, kTlsFields));
  IstioServerTls tls;
  OSPREY_RETURN_IF_ERROR(ReadBoolField(*v, "httpsRedirect", at, &tls.https_redirect));
  OSPREY_RETURN_IF_ERROR(ReadString(*v, "mode", at, &tls.mode));
  OSPREY_RETURN_IF_ERROR(ReadString(*v, "serverCertificate", at, &tls.server_certificate));
  OSPREY_RETURN_IF_ERROR(ReadString(*v, "privateKey", at, &tls.private_key));
  OSPREY_RETURN_IF_ERROR(ReadString(*v, "minProtocolVersion", at, &tls.min_protocol_version));
  for (const char* key : {"credentialName", "caCertificates", "subjectAltNames",
                          "maxProtocolVersion", "cipherSuites"})
    if (v->Find(key) != nullptr)
      return Error(v->Find(key), Field(at, key),
                   std::string_view(key) == "credentialName"
                       ? "not supported by Osprey yet: give the certificate and key as files "
                         "(serverCertificate, privateKey)"
                       : "not supported by Osprey yet");
  if (protocol == "HTTP") {
    if (!tls.mode.empty() || !tls.server_certificate.empty() || !tls.private_key.empty())
      return Error(v, at,
                   "an HTTP server takes httpsRedirect only; terminate TLS on an HTTPS server");
    *out = std::move(tls);
    return absl::OkStatus();
  }
  if (tls.mode.empty()) tls.mode = "SIMPLE";
  if (tls.mode != "SIMPLE")
    return Error(v->Find("mode"), Field(at, "mode"),
                 StrCat("\"", tls.mode,
                        "\" is not supported by Osprey yet: SIMPLE only (PASSTHROUGH, MUTUAL, "
                        "ISTIO_MUTUAL, AUTO_PASSTHROUGH to come)"));
  if (tls.server_certificate.empty())
    return Error(v, Field(at, "serverCertificate"), "required: the certificate's PEM file");
  if (tls.private_key.empty())
    return Error(v, Field(at, "privateKey"), "required: the private key's PEM file");
  if (!tls.min_protocol_version.empty() && tls.min_protocol_version != "TLSV1_2" &&
      tls.min_protocol_version != "TLSV1_3" && tls.min_protocol_version != "TLS_AUTO")
    return Error(v->Find("minProtocolVersion"), Field(at, "minProtocolVersion"),
                 StrCat("\"", tls.min_protocol_version,
                        "\" is not supported: TLSV1_2, TLSV1_3 or TLS_AUTO (older versions are "
                        "never offered)"));
  *out = std::move(tls);
  return absl::OkStatus();
}

absl::StatusOr<IstioGateway> ParseGateway(const Value& doc) {
  IstioGateway g;
  OSPREY_RETURN_IF_ERROR(ParseObjectMeta(doc, &g.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.servers", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", {"selector", "servers"}));
  OSPREY_RETURN_IF_ERROR(ReadStringsMap(*spec, "selector", "spec", &g.selector));
  const Value* servers = spec->Find("servers");
  if (servers == nullptr || servers->kind != Value::Kind::kList || servers->list.empty())
    return Error(servers != nullptr ? servers : spec, "spec.servers",
                 "required: a non-empty list of servers");
  for (size_t i = 0; i < servers->list.size(); ++i) {
    const Value& item = servers->list[i];
    const std::string at = Index("spec.servers", i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, {"port", "hosts", "name", "tls", "bind"}));
    IstioServer s;
    const Value* port = item.Find("port");
    if (port == nullptr) return Error(&item, Field(at, "port"), "required");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*port, Field(at, "port")));
    OSPREY_RETURN_IF_ERROR(
        CheckFields(*port, Field(at, "port"), {"number", "name", "protocol", "targetPort"}));
    std::optional<int> number;
    OSPREY_RETURN_IF_ERROR(ReadIntField(*port, "number", Field(at, "port"), &number));
    if (!number || *number < 1 || *number > 65535)
      return Error(port, Field(Field(at, "port"), "number"), "required: a port from 1 to 65535");
    s.port = *number;
    OSPREY_RETURN_IF_ERROR(ReadString(*port, "name", Field(at, "port"), &s.port_name));
    OSPREY_RETURN_IF_ERROR(ReadString(*port, "protocol", Field(at, "port"), &s.protocol));
    for (char& c : s.protocol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (s.protocol != "HTTP" && s.protocol != "HTTPS")
      return Error(port->Find("protocol") ? port->Find("protocol") : port,
                   Field(Field(at, "port"), "protocol"),
                   StrCat("\"", s.protocol,
                          "\" is not served by Osprey yet: only HTTP and HTTPS servers (GRPC, "
                          "HTTP2, TCP, TLS to come)"));
    // targetPort is ignored on Gateways (Istio's own rule); bind may name
    // only every address (the gateway's own address is used).
    std::string bind;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "bind", at, &bind));
    if (!bind.empty() && bind != "0.0.0.0" && bind != "::")
      return Error(item.Find("bind"), Field(at, "bind"),
                   StrCat("\"", bind,
                          "\" is not supported by Osprey yet: the gateway's own "
                          "address is used"));
    OSPREY_RETURN_IF_ERROR(ReadServerTls(item, at, s.protocol, &s.tls));
    OSPREY_RETURN_IF_ERROR(ReadHosts(item, at, &s.hosts));
    g.servers.push_back(std::move(s));
  }
  return g;
}

absl::StatusOr<ServiceEntry> ParseServiceEntry(const Value& doc) {
  ServiceEntry se;
  OSPREY_RETURN_IF_ERROR(ParseObjectMeta(doc, &se.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.hosts", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  OSPREY_RETURN_IF_ERROR(CheckFields(
      *spec, "spec", {"hosts", "ports", "location", "resolution", "endpoints", "exportTo"}));
  OSPREY_RETURN_IF_ERROR(ReadHosts(*spec, "spec", &se.hosts));
  for (size_t i = 0; i < se.hosts.size(); ++i)
    if (se.hosts[i].find('*') != std::string::npos)
      return Error(spec->Find("hosts"), Index("spec.hosts", i),
                   "a STATIC ServiceEntry needs exact hosts");
  const Value* ports = spec->Find("ports");
  if (ports == nullptr || ports->kind != Value::Kind::kList || ports->list.empty())
    return Error(ports != nullptr ? ports : spec, "spec.ports", "required: a non-empty list");
  for (size_t i = 0; i < ports->list.size(); ++i) {
    const Value& item = ports->list[i];
    const std::string at = Index("spec.ports", i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, {"number", "name", "protocol", "targetPort"}));
    ServiceEntryPort p;
    std::optional<int> number, target;
    OSPREY_RETURN_IF_ERROR(ReadIntField(item, "number", at, &number));
    if (!number || *number < 1 || *number > 65535)
      return Error(&item, Field(at, "number"), "required: a port from 1 to 65535");
    p.number = *number;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &p.name));
    if (p.name.empty()) return Error(&item, Field(at, "name"), "required");
    OSPREY_RETURN_IF_ERROR(ReadString(item, "protocol", at, &p.protocol));
    OSPREY_RETURN_IF_ERROR(ReadIntField(item, "targetPort", at, &target));
    if (target && (*target < 1 || *target > 65535))
      return Error(item.Find("targetPort"), Field(at, "targetPort"),
                   "must be a port from 1 to 65535");
    p.target_port = target.value_or(0);
    se.ports.push_back(std::move(p));
  }
  OSPREY_RETURN_IF_ERROR(ReadString(*spec, "location", "spec", &se.location));
  OSPREY_RETURN_IF_ERROR(ReadString(*spec, "resolution", "spec", &se.resolution));
  if (se.resolution != "STATIC")
    return Error(spec->Find("resolution") ? spec->Find("resolution") : spec, "spec.resolution",
                 StrCat("\"", se.resolution,
                        "\" is not served by Osprey yet: give STATIC with endpoints (the local "
                        "addresses that serve the hosts)"));
  const Value* endpoints = spec->Find("endpoints");
  if (endpoints == nullptr || endpoints->kind != Value::Kind::kList || endpoints->list.empty())
    return Error(endpoints != nullptr ? endpoints : spec, "spec.endpoints",
                 "required with resolution STATIC");
  for (size_t i = 0; i < endpoints->list.size(); ++i) {
    const Value& item = endpoints->list[i];
    const std::string at = Index("spec.endpoints", i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(
        CheckFields(item, at, {"address", "ports", "labels", "network", "locality", "weight"}));
    ServiceEntryEndpoint e;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "address", at, &e.address));
    unsigned char ip[16];
    if (inet_pton(AF_INET, e.address.c_str(), ip) != 1 &&
        inet_pton(AF_INET6, e.address.c_str(), ip) != 1)
      return Error(&item, Field(at, "address"),
                   StrCat("\"", e.address,
                          "\" is invalid: a numeric IPv4 or IPv6 address such "
                          "as 127.0.0.1 is required"));
    if (const Value* p = item.Find("ports"); p != nullptr) {
      if (p->kind != Value::Kind::kMap)
        return Error(p, Field(at, "ports"), "expected a map of port name to port");
      for (const auto& [name, port] : p->map) {
        if (port.kind != Value::Kind::kInt || port.i < 1 || port.i > 65535)
          return Error(&port, Field(Field(at, "ports"), name), "expected a port from 1 to 65535");
        if (std::none_of(se.ports.begin(), se.ports.end(),
                         [&name = name](const ServiceEntryPort& sp) { return sp.name == name; }))
          return Error(&port, Field(Field(at, "ports"), name), "names no port of spec.ports");
        e.ports[name] = static_cast<int>(port.i);
      }
    }
    OSPREY_RETURN_IF_ERROR(ReadStringsMap(item, "labels", at, &e.labels));
    se.endpoints.push_back(std::move(e));
  }
  return se;
}

// A positive count of a connection pool or outlier detection; absent: *out
// unchanged.
absl::Status ReadCount(const Value& parent, std::string_view key, std::string_view path, int* out,
                       int min = 0) {
  std::optional<int> n;
  OSPREY_RETURN_IF_ERROR(ReadIntField(parent, key, path, &n));
  if (!n) return absl::OkStatus();
  if (*n < min) return Error(parent.Find(key), Field(path, key), StrCat("must be at least ", min));
  *out = *n;
  return absl::OkStatus();
}

absl::Status ReadPercentInt(const Value& parent, std::string_view key, std::string_view path,
                            int* out) {
  OSPREY_RETURN_IF_ERROR(ReadCount(parent, key, path, out));
  if (*out > 100)
    return Error(parent.Find(key), Field(path, key), StrCat("must be between 0 and 100"));
  return absl::OkStatus();
}

absl::Status NotYet(const Value& map, std::string_view path,
                    std::initializer_list<std::string_view> fields) {
  for (std::string_view f : fields)
    if (const Value* v = map.Find(f); v != nullptr)
      return Error(v, Field(path, f), "not supported by Osprey yet");
  return absl::OkStatus();
}

absl::Status ReadTrafficPolicy(const Value& v, std::string_view path, IstioTrafficPolicy* out) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path,
                                     {"loadBalancer", "connectionPool", "outlierDetection", "tls",
                                      "portLevelSettings", "tunnel", "proxyProtocol"}));
  OSPREY_RETURN_IF_ERROR(NotYet(v, path, {"tls", "portLevelSettings", "tunnel", "proxyProtocol"}));
  if (const Value* lb = v.Find("loadBalancer"); lb != nullptr) {
    const std::string at = Field(path, "loadBalancer");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*lb, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(
        *lb, at, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs"}));
    OSPREY_RETURN_IF_ERROR(NotYet(*lb, at, {"localityLbSetting", "warmupDurationSecs"}));
    IstioLoadBalancer b;
    OSPREY_RETURN_IF_ERROR(ReadString(*lb, "simple", at, &b.simple));
    if (b.simple == "LEAST_CONN") b.simple = "LEAST_REQUEST";
    if (b.simple == "UNSPECIFIED") b.simple.clear();
    if (b.simple == "PASSTHROUGH")
      return Error(lb->Find("simple"), Field(at, "simple"),
                   "PASSTHROUGH is not served by Osprey: its gateway always picks the replica "
                   "(ROUND_ROBIN, LEAST_REQUEST or RANDOM)");
    if (!b.simple.empty() && b.simple != "ROUND_ROBIN" && b.simple != "LEAST_REQUEST" &&
        b.simple != "RANDOM")
      return Error(
          lb->Find("simple"), Field(at, "simple"),
          StrCat("\"", b.simple, "\" is invalid: must be ROUND_ROBIN, LEAST_REQUEST or RANDOM"));
    if (const Value* ch = lb->Find("consistentHash"); ch != nullptr) {
      const std::string cat = Field(at, "consistentHash");
      if (!b.simple.empty())
        return Error(ch, cat, "give either simple or consistentHash, not both");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*ch, cat));
      OSPREY_RETURN_IF_ERROR(CheckFields(*ch, cat,
                                         {"httpHeaderName", "httpQueryParameterName", "httpCookie",
                                          "useSourceIp", "ringHash", "maglev", "minimumRingSize"}));
      OSPREY_RETURN_IF_ERROR(
          NotYet(*ch, cat, {"httpCookie", "useSourceIp", "ringHash", "maglev", "minimumRingSize"}));
      OSPREY_RETURN_IF_ERROR(ReadString(*ch, "httpHeaderName", cat, &b.hash_header));
      OSPREY_RETURN_IF_ERROR(ReadString(*ch, "httpQueryParameterName", cat, &b.hash_query));
      b.hash_header = Lower(b.hash_header);
      if (b.hash_header.empty() == b.hash_query.empty())
        return Error(ch, cat, "give exactly one of httpHeaderName or httpQueryParameterName");
    }
    out->load_balancer = std::move(b);
  }
  if (const Value* cp = v.Find("connectionPool"); cp != nullptr) {
    const std::string at = Field(path, "connectionPool");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*cp, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(*cp, at, {"tcp", "http"}));
    IstioConnectionPool pool;
    if (const Value* tcp = cp->Find("tcp"); tcp != nullptr) {
      const std::string tat = Field(at, "tcp");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*tcp, tat));
      OSPREY_RETURN_IF_ERROR(CheckFields(*tcp, tat,
                                         {"maxConnections", "connectTimeout", "tcpKeepalive",
                                          "maxConnectionDuration", "idleTimeout"}));
      OSPREY_RETURN_IF_ERROR(NotYet(
          *tcp, tat, {"connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout"}));
      OSPREY_RETURN_IF_ERROR(ReadCount(*tcp, "maxConnections", tat, &pool.max_connections, 1));
    }
    if (const Value* http = cp->Find("http"); http != nullptr) {
      const std::string hat = Field(at, "http");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*http, hat));
      OSPREY_RETURN_IF_ERROR(CheckFields(
          *http, hat,
          {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries",
           "idleTimeout", "h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams"}));
      OSPREY_RETURN_IF_ERROR(NotYet(*http, hat,
                                    {"maxRetries", "idleTimeout", "h2UpgradePolicy",
                                     "useClientProtocol", "maxConcurrentStreams"}));
      OSPREY_RETURN_IF_ERROR(
          ReadCount(*http, "http1MaxPendingRequests", hat, &pool.http1_max_pending_requests, 1));
      OSPREY_RETURN_IF_ERROR(
          ReadCount(*http, "http2MaxRequests", hat, &pool.http2_max_requests, 1));
      OSPREY_RETURN_IF_ERROR(
          ReadCount(*http, "maxRequestsPerConnection", hat, &pool.max_requests_per_connection, 0));
      if (pool.max_requests_per_connection > 1)
        return Error(http->Find("maxRequestsPerConnection"), Field(hat, "maxRequestsPerConnection"),
                     "only 1 (no connection reuse) is served by Osprey yet; leave it out to "
                     "reuse connections without a bound");
    }
    out->connection_pool = pool;
  }
  if (const Value* od = v.Find("outlierDetection"); od != nullptr) {
    const std::string at = Field(path, "outlierDetection");
    OSPREY_RETURN_IF_ERROR(ExpectMap(*od, at));
    OSPREY_RETURN_IF_ERROR(
        CheckFields(*od, at,
                    {"consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveErrors",
                     "interval", "baseEjectionTime", "maxEjectionPercent", "minHealthPercent",
                     "splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures"}));
    OSPREY_RETURN_IF_ERROR(
        NotYet(*od, at, {"splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures"}));
    IstioOutlierDetection o;
    // The old consecutiveErrors counted gateway errors only.
    if (od->Find("consecutiveErrors") != nullptr && od->Find("consecutive5xxErrors") == nullptr)
      o.consecutive_5xx_errors = 0;
    OSPREY_RETURN_IF_ERROR(ReadCount(*od, "consecutiveErrors", at, &o.consecutive_gateway_errors));
    OSPREY_RETURN_IF_ERROR(
        ReadCount(*od, "consecutiveGatewayErrors", at, &o.consecutive_gateway_errors));
    OSPREY_RETURN_IF_ERROR(ReadCount(*od, "consecutive5xxErrors", at, &o.consecutive_5xx_errors));
    OSPREY_RETURN_IF_ERROR(ReadDuration(*od, "interval", at, &o.interval_ms));
    OSPREY_RETURN_IF_ERROR(ReadDuration(*od, "baseEjectionTime", at, &o.base_ejection_time_ms));
    OSPREY_RETURN_IF_ERROR(ReadPercentInt(*od, "maxEjectionPercent", at, &o.max_ejection_percent));
    OSPREY_RETURN_IF_ERROR(ReadPercentInt(*od, "minHealthPercent", at, &o.min_health_percent));
    out->outlier_detection = o;
  }
  return absl::OkStatus();
}

absl::StatusOr<DestinationRule> ParseDestinationRule(const Value& doc) {
  DestinationRule dr;
  OSPREY_RETURN_IF_ERROR(ParseObjectMeta(doc, &dr.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.host", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  OSPREY_RETURN_IF_ERROR(CheckFields(
      *spec, "spec", {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"}));
  OSPREY_RETURN_IF_ERROR(NotYet(*spec, "spec", {"workloadSelector"}));
  OSPREY_RETURN_IF_ERROR(ReadString(*spec, "host", "spec", &dr.host));
  if (dr.host.empty()) return Error(spec, "spec.host", "required");
  dr.host = Lower(dr.host);
  OSPREY_RETURN_IF_ERROR(CheckHost(spec->Find("host"), "spec.host", dr.host));
  if (dr.host == "*")
    return Error(spec->Find("host"), "spec.host", "must name a host or \"*.suffix\", not \"*\"");
  OSPREY_RETURN_IF_ERROR(ReadStrings(*spec, "exportTo", "spec", &dr.export_to));
  for (size_t i = 0; i < dr.export_to.size(); ++i) {
    const std::string& e = dr.export_to[i];
    if (e != "*" && e != "." && !IsDns1123Label(e))
      return Error(spec->Find("exportTo"), Index("spec.exportTo", i),
                   StrCat("\"", e, "\" is invalid: \"*\", \".\" or a namespace"));
  }
  if (const Value* tp = spec->Find("trafficPolicy"); tp != nullptr)
    OSPREY_RETURN_IF_ERROR(ReadTrafficPolicy(*tp, "spec.trafficPolicy", &dr.traffic_policy));
  if (const Value* subsets = spec->Find("subsets"); subsets != nullptr) {
    if (subsets->kind != Value::Kind::kList)
      return Error(subsets, "spec.subsets", StrCat("expected a list, got ", Describe(*subsets)));
    for (size_t i = 0; i < subsets->list.size(); ++i) {
      const Value& item = subsets->list[i];
      const std::string at = Index("spec.subsets", i);
      OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
      OSPREY_RETURN_IF_ERROR(CheckFields(item, at, {"name", "labels", "trafficPolicy"}));
      IstioSubset s;
      OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &s.name));
      if (s.name.empty()) return Error(&item, Field(at, "name"), "required");
      if (!IsDns1123Label(s.name))
        return Error(item.Find("name"), Field(at, "name"),
                     StrCat("\"", s.name, "\" is invalid: a subset name is a DNS label"));
      for (const auto& other : dr.subsets)
        if (other.name == s.name)
          return Error(item.Find("name"), Field(at, "name"),
                       StrCat("\"", s.name, "\" is not unique"));
      OSPREY_RETURN_IF_ERROR(ReadStringsMap(item, "labels", at, &s.labels));
      if (const Value* tp = item.Find("trafficPolicy"); tp != nullptr)
        OSPREY_RETURN_IF_ERROR(
            ReadTrafficPolicy(*tp, Field(at, "trafficPolicy"), &s.traffic_policy));
      dr.subsets.push_back(std::move(s));
    }
  }
  return dr;
}

void StringMatchJson(json::Writer& w, const IstioStringMatch& m) {
  w.StartObject();
  json::Key(w, m.kind == IstioStringMatch::Kind::kExact    ? "exact"
               : m.kind == IstioStringMatch::Kind::kPrefix ? "prefix"
                                                           : "regex");
  json::Str(w, m.value);
  w.EndObject();
}

void MetaJson(json::Writer& w, const ObjectMeta& m) {
  json::Key(w, "metadata");
  w.StartObject();
  json::Field(w, "name", m.name);
  json::Field(w, "namespace", m.namespace_);
  for (auto [key, map] :
       {std::pair{"labels", &m.labels}, std::pair{"annotations", &m.annotations}}) {
    if (map->empty()) continue;
    json::Key(w, key);
    w.StartObject();
    for (const auto& [k, v] : *map) json::Field(w, k, v);
    w.EndObject();
  }
  w.EndObject();
}

void StringsJson(json::Writer& w, std::string_view key, const std::vector<std::string>& list) {
  if (list.empty()) return;
  json::Key(w, key);
  w.StartArray();
  for (const auto& s : list) json::Str(w, s);
  w.EndArray();
}

void DurationJson(json::Writer& w, std::string_view key, int64_t ms) {
  if (ms <= 0) return;
  json::Field(w, key, ms % 1000 == 0 ? StrCat(ms / 1000, "s") : StrCat(ms, "ms"));
}

void DestinationJson(json::Writer& w, const IstioDestination& d) {
  w.StartObject();
  json::Field(w, "host", d.host);
  json::FieldIfSet(w, "subset", d.subset);
  if (d.port != 0) {
    json::Key(w, "port");
    w.StartObject();
    json::Key(w, "number");
    w.Int(d.port);
    w.EndObject();
  }
  w.EndObject();
}

void LabelsJson(json::Writer& w, const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return;
  json::Key(w, "labels");
  w.StartObject();
  for (const auto& [k, v] : labels) json::Field(w, k, v);
  w.EndObject();
}

void IntField(json::Writer& w, std::string_view key, int value) {
  json::Key(w, key);
  w.Int(value);
}

void TrafficPolicyJson(json::Writer& w, const IstioTrafficPolicy& p) {
  json::Key(w, "trafficPolicy");
  w.StartObject();
  if (const auto& lb = p.load_balancer) {
    json::Key(w, "loadBalancer");
    w.StartObject();
    json::FieldIfSet(w, "simple", lb->simple);
    if (!lb->hash_header.empty() || !lb->hash_query.empty()) {
      json::Key(w, "consistentHash");
      w.StartObject();
      json::FieldIfSet(w, "httpHeaderName", lb->hash_header);
      json::FieldIfSet(w, "httpQueryParameterName", lb->hash_query);
      w.EndObject();
    }
    w.EndObject();
  }
  if (const auto& cp = p.connection_pool) {
    json::Key(w, "connectionPool");
    w.StartObject();
    if (cp->max_connections > 0) {
      json::Key(w, "tcp");
      w.StartObject();
      IntField(w, "maxConnections", cp->max_connections);
      w.EndObject();
    }
    if (cp->http1_max_pending_requests > 0 || cp->http2_max_requests > 0 ||
        cp->max_requests_per_connection > 0) {
      json::Key(w, "http");
      w.StartObject();
      if (cp->http1_max_pending_requests > 0)
        IntField(w, "http1MaxPendingRequests", cp->http1_max_pending_requests);
      if (cp->http2_max_requests > 0) IntField(w, "http2MaxRequests", cp->http2_max_requests);
      if (cp->max_requests_per_connection > 0)
        IntField(w, "maxRequestsPerConnection", cp->max_requests_per_connection);
      w.EndObject();
    }
    w.EndObject();
  }
  if (const auto& od = p.outlier_detection) {
    json::Key(w, "outlierDetection");
    w.StartObject();
    IntField(w, "consecutive5xxErrors", od->consecutive_5xx_errors);
    IntField(w, "consecutiveGatewayErrors", od->consecutive_gateway_errors);
    DurationJson(w, "interval", od->interval_ms);
    DurationJson(w, "baseEjectionTime", od->base_ejection_time_ms);
    IntField(w, "maxEjectionPercent", od->max_ejection_percent);
    IntField(w, "minHealthPercent", od->min_health_percent);
    w.EndObject();
  }
  w.EndObject();
}

void HeaderOpsJson(json::Writer& w, std::string_view key, const IstioHeaderOperations& h) {
  if (h.set.empty() && h.add.empty() && h.remove.empty()) return;
  json::Key(w, key);
  w.StartObject();
  for (auto [name, list] : {std::pair{"set", &h.set}, std::pair{"add", &h.add}}) {
    if (list->empty()) continue;
    json::Key(w, name);
    w.StartObject();
    for (const auto& [k, v] : *list) json::Field(w, k, v);
    w.EndObject();
  }
  StringsJson(w, "remove", h.remove);
  w.EndObject();
}

void HeadersJson(json::Writer& w, const IstioHeaderOperations& request,
                 const IstioHeaderOperations& response) {
  if (request == IstioHeaderOperations{} && response == IstioHeaderOperations{}) return;
  json::Key(w, "headers");
  w.StartObject();
  HeaderOpsJson(w, "request", request);
  HeaderOpsJson(w, "response", response);
  w.EndObject();
}

void HttpRouteJson(json::Writer& w, const IstioHttpRoute& r) {
  w.StartObject();
  json::FieldIfSet(w, "name", r.name);
  if (!r.match.empty()) {
    json::Key(w, "match");
    w.StartArray();
    for (const auto& m : r.match) {
      w.StartObject();
      json::FieldIfSet(w, "name", m.name);
      if (m.port != 0) {
        json::Key(w, "port");
        w.Int(m.port);
      }
      for (auto [key, field] : {std::pair{"uri", &m.uri}, std::pair{"method", &m.method},
                                std::pair{"authority", &m.authority}}) {
        if (!field->has_value()) continue;
        json::Key(w, key);
        StringMatchJson(w, **field);
      }
      for (auto [key, list] :
           {std::pair{"headers", &m.headers}, std::pair{"queryParams", &m.query_params}}) {
        if (list->empty()) continue;
        json::Key(w, key);
        w.StartObject();
        for (const auto& [name, sm] : *list) {
          json::Key(w, name);
          StringMatchJson(w, sm);
        }
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndArray();
  }
  if (r.redirect) {
    json::Key(w, "redirect");
    w.StartObject();
    json::FieldIfSet(w, "uri", r.redirect_uri);
    json::FieldIfSet(w, "authority", r.redirect_authority);
    json::FieldIfSet(w, "scheme", r.redirect_scheme);
    if (r.redirect_port != 0) {
      json::Key(w, "port");
      w.Int(r.redirect_port);
    }
    json::Key(w, "redirectCode");
    w.Int(r.redirect_code);
    w.EndObject();
  } else {
    json::Key(w, "route");
    w.StartArray();
    for (const auto& d : r.route) {
      w.StartObject();
      json::Key(w, "destination");
      DestinationJson(w, d);
      json::Key(w, "weight");
      w.Int(d.weight);
      HeadersJson(w, d.request_headers, d.response_headers);
      w.EndObject();
    }
    w.EndArray();
  }
  if (r.rewrite_uri || !r.rewrite_authority.empty()) {
    json::Key(w, "rewrite");
    w.StartObject();
    if (r.rewrite_uri) json::Field(w, "uri", *r.rewrite_uri);
    json::FieldIfSet(w, "authority", r.rewrite_authority);
    w.EndObject();
  }
  DurationJson(w, "timeout", r.timeout_ms);
  if (r.retry_attempts || r.retry_per_try_timeout_ms > 0 || !r.retry_on.empty()) {
    json::Key(w, "retries");
    w.StartObject();
    if (r.retry_attempts) {
      json::Key(w, "attempts");
      w.Int(*r.retry_attempts);
    }
    DurationJson(w, "perTryTimeout", r.retry_per_try_timeout_ms);
    json::FieldIfSet(w, "retryOn", r.retry_on);
    w.EndObject();
  }
  if (r.delay_ms > 0 || r.abort_http_status > 0) {
    json::Key(w, "fault");
    w.StartObject();
    auto share = [&](double percent) {
      json::Key(w, "percentage");
      w.StartObject();
      json::Key(w, "value");
      w.Double(percent);
      w.EndObject();
    };
    if (r.delay_ms > 0) {
      json::Key(w, "delay");
      w.StartObject();
      DurationJson(w, "fixedDelay", r.delay_ms);
      share(r.delay_percent);
      w.EndObject();
    }
    if (r.abort_http_status > 0) {
      json::Key(w, "abort");
      w.StartObject();
      json::Key(w, "httpStatus");
      w.Int(r.abort_http_status);
      share(r.abort_percent);
      w.EndObject();
    }
    w.EndObject();
  }
  if (r.mirror) {
    json::Key(w, "mirror");
    DestinationJson(w, *r.mirror);
    json::Key(w, "mirrorPercentage");
    w.StartObject();
    json::Key(w, "value");
    w.Double(r.mirror_percent);
    w.EndObject();
  }
  HeadersJson(w, r.request_headers, r.response_headers);
  if (const auto& c = r.cors) {
    json::Key(w, "corsPolicy");
    w.StartObject();
    if (!c->allow_origins.empty()) {
      json::Key(w, "allowOrigins");
      w.StartArray();
      for (const auto& m : c->allow_origins) StringMatchJson(w, m);
      w.EndArray();
    }
    StringsJson(w, "allowMethods", c->allow_methods);
    StringsJson(w, "allowHeaders", c->allow_headers);
    StringsJson(w, "exposeHeaders", c->expose_headers);
    DurationJson(w, "maxAge", c->max_age_ms);
    if (c->allow_credentials) {
      json::Key(w, "allowCredentials");
      w.Bool(*c->allow_credentials);
    }
    if (!c->forward_unmatched_preflights) json::Field(w, "unmatchedPreflights", "IGNORE");
    w.EndObject();
  }
  w.EndObject();
}

}  // namespace

absl::StatusOr<Resource> ParseIstio(std::string_view kind, const Value& doc) {
  std::string api_version;
  OSPREY_RETURN_IF_ERROR(ReadString(doc, "apiVersion", "", &api_version));
  if (kind == "VirtualService") {
    OSPREY_ASSIGN_OR_RETURN(VirtualService vs, ParseVirtualService(doc));
    vs.api_version = api_version;
    return Resource(std::move(vs));
  }
  if (kind == "Gateway") {
    OSPREY_ASSIGN_OR_RETURN(IstioGateway g, ParseGateway(doc));
    g.api_version = api_version;
    return Resource(std::move(g));
  }
  if (kind == "DestinationRule") {
    OSPREY_ASSIGN_OR_RETURN(DestinationRule dr, ParseDestinationRule(doc));
    dr.api_version = api_version;
    return Resource(std::move(dr));
  }
  OSPREY_ASSIGN_OR_RETURN(ServiceEntry se, ParseServiceEntry(doc));
  se.api_version = api_version;
  return Resource(std::move(se));
}

void IstioJson(json::Writer& w, const Resource& r) {
  if (const auto* vs = std::get_if<VirtualService>(&r)) {
    json::Field(w, "apiVersion", vs->api_version);
    json::Field(w, "kind", "VirtualService");
    MetaJson(w, vs->meta);
    json::Key(w, "spec");
    w.StartObject();
    StringsJson(w, "hosts", vs->hosts);
    StringsJson(w, "gateways", vs->gateways);
    json::Key(w, "http");
    w.StartArray();
    for (const auto& h : vs->http) HttpRouteJson(w, h);
    w.EndArray();
    w.EndObject();
  } else if (const auto* g = std::get_if<IstioGateway>(&r)) {
    json::Field(w, "apiVersion", g->api_version);
    json::Field(w, "kind", "Gateway");
    MetaJson(w, g->meta);
    json::Key(w, "spec");
    w.StartObject();
    if (!g->selector.empty()) {
      json::Key(w, "selector");
      w.StartObject();
      for (const auto& [k, v] : g->selector) json::Field(w, k, v);
      w.EndObject();
    }
    json::Key(w, "servers");
    w.StartArray();
    for (const auto& s : g->servers) {
      w.StartObject();
      json::Key(w, "port");
      w.StartObject();
      json::Key(w, "number");
      w.Int(s.port);
      json::FieldIfSet(w, "name", s.port_name);
      json::Field(w, "protocol", s.protocol);
      w.EndObject();
      StringsJson(w, "hosts", s.hosts);
      if (s.tls.has_value()) {
        json::Key(w, "tls");
        w.StartObject();
        if (s.tls->https_redirect) {
          json::Key(w, "httpsRedirect");
          w.Bool(true);
        }
        json::FieldIfSet(w, "mode", s.tls->mode);
        json::FieldIfSet(w, "serverCertificate", s.tls->server_certificate);
        json::FieldIfSet(w, "privateKey", s.tls->private_key);
        json::FieldIfSet(w, "minProtocolVersion", s.tls->min_protocol_version);
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  } else if (const auto* se = std::get_if<ServiceEntry>(&r)) {
    json::Field(w, "apiVersion", se->api_version);
    json::Field(w, "kind", "ServiceEntry");
    MetaJson(w, se->meta);
    json::Key(w, "spec");
    w.StartObject();
    StringsJson(w, "hosts", se->hosts);
    json::Key(w, "ports");
    w.StartArray();
    for (const auto& p : se->ports) {
      w.StartObject();
      json::Key(w, "number");
      w.Int(p.number);
      json::Field(w, "name", p.name);
      json::FieldIfSet(w, "protocol", p.protocol);
      if (p.target_port != 0) {
        json::Key(w, "targetPort");
        w.Int(p.target_port);
      }
      w.EndObject();
    }
    w.EndArray();
    json::FieldIfSet(w, "location", se->location);
    json::Field(w, "resolution", se->resolution);
    json::Key(w, "endpoints");
    w.StartArray();
    for (const auto& e : se->endpoints) {
      w.StartObject();
      json::Field(w, "address", e.address);
      if (!e.ports.empty()) {
        json::Key(w, "ports");
        w.StartObject();
        for (const auto& [name, port] : e.ports) {
          json::Key(w, name);
          w.Int(port);
        }
        w.EndObject();
      }
      LabelsJson(w, e.labels);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  } else if (const auto* dr = std::get_if<DestinationRule>(&r)) {
    json::Field(w, "apiVersion", dr->api_version);
    json::Field(w, "kind", "DestinationRule");
    MetaJson(w, dr->meta);
    json::Key(w, "spec");
    w.StartObject();
    json::Field(w, "host", dr->host);
    if (dr->traffic_policy != IstioTrafficPolicy{}) TrafficPolicyJson(w, dr->traffic_policy);
    StringsJson(w, "exportTo", dr->export_to);
    if (!dr->subsets.empty()) {
      json::Key(w, "subsets");
      w.StartArray();
      for (const auto& s : dr->subsets) {
        w.StartObject();
        json::Field(w, "name", s.name);
        LabelsJson(w, s.labels);
        if (s.traffic_policy != IstioTrafficPolicy{}) TrafficPolicyJson(w, s.traffic_policy);
        w.EndObject();
      }
      w.EndArray();
    }
    w.EndObject();
  }
}

}  // namespace osprey::resources::internal
