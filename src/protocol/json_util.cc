#include "protocol/json_util.h"

#include "common/json_numbers.h"
#include "common/json_writer.h"
#include "common/strings.h"
#include "rapidjson/error/en.h"

namespace osprey {

absl::Status ParseJson(std::string_view json, rapidjson::Document* doc) {
  constexpr unsigned kFlags = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseNanAndInfFlag |
                              rapidjson::kParseIterativeFlag;
  // Numbers RapidJSON's full-precision parser misreads (and may crash on),
  // written as what they denote first (common/json_numbers.h).
  ParseSafely<kFlags>(*doc, json);
  if (doc->HasParseError())
    return absl::InvalidArgumentError(StrCat("invalid JSON at offset ", doc->GetErrorOffset(), ": ",
                                             rapidjson::GetParseError_En(doc->GetParseError())));
  return absl::OkStatus();
}

absl::Status DecodeParameters(const rapidjson::Value& value, std::string_view what,
                              Parameters* out) {
  if (!value.IsObject()) return absl::InvalidArgumentError(StrCat(what, " must be an object"));
  for (const auto& m : value.GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value& v = m.value;
    if (v.IsBool())
      out->emplace_back(std::move(key), v.GetBool());
    else if (v.IsInt64())
      out->emplace_back(std::move(key), v.GetInt64());
    else if (v.IsNumber())
      out->emplace_back(std::move(key), v.GetDouble());
    else if (v.IsString())
      out->emplace_back(std::move(key), std::string(v.GetString(), v.GetStringLength()));
    else
      return absl::InvalidArgumentError(
          StrCat(what, ": parameter '", key, "' must be a string, number or boolean"));
  }
  return absl::OkStatus();
}

void EncodeJsonParameters(const Parameters& params, JsonWriter& w) {
  w.BeginObject();
  for (const auto& [key, value] : params) {
    w.Key(key);
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool>)
            w.Bool(x);
          else if constexpr (std::is_same_v<T, int64_t>)
            w.Int(x);
          else if constexpr (std::is_same_v<T, double>)
            w.Double(x);
          else
            w.String(x);
        },
        value);
  }
  w.EndObject();
}

}  // namespace osprey
