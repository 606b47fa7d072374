#include "resources/value.h"

#include <charconv>
#include <cmath>
#include <exception>
#include <set>
#include <sstream>

#include "common/json_numbers.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace osprey::resources::internal {
namespace {

// Deeper nesting than any manifest needs; bounds the recursion below.
constexpr int kMaxDepth = 128;
// Values per YAML document once aliases are expanded: bounds what an alias
// bomb ("billion laughs") can cost.
constexpr int64_t kMaxValues = 1 << 18;

int LineOf(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

std::string AtLine(int line) { return line > 0 ? StrCat(" (line ", line, ")") : std::string(); }

bool AllOf(std::string_view s, std::string_view chars) {
  return !s.empty() && s.find_first_not_of(chars) == std::string_view::npos;
}

// YAML 1.2 core schema resolution of a plain scalar.
void ResolvePlain(std::string_view text, Value* v) {
  v->text = std::string(text);
  v->kind = PlainScalarKind(text);
  switch (v->kind) {
    case Value::Kind::kBool:
      v->b = text[0] == 't' || text[0] == 'T';
      return;
    case Value::Kind::kInt: {
      std::string_view s = text;
      bool negative = false;
      if (s[0] == '-' || s[0] == '+') {
        negative = s[0] == '-';
        s.remove_prefix(1);
      }
      int base = 10;
      if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        s.remove_prefix(2);
      }
      uint64_t u = 0;
      auto r = std::from_chars(s.data(), s.data() + s.size(), u, base);
      if (r.ec == std::errc() && u <= static_cast<uint64_t>(INT64_MAX)) {
        v->i = negative ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
        return;
      }
      // Too large for an integer: keep it as a number all the same.
      v->kind = Value::Kind::kFloat;
      v->d = std::strtod(std::string(text).c_str(), nullptr);
      return;
    }
    case Value::Kind::kFloat: {
      std::string_view s = text;
      bool negative = false;
      if (s[0] == '-' || s[0] == '+') {
        negative = s[0] == '-';
        s.remove_prefix(1);
      }
      if (s == ".inf" || s == ".Inf" || s == ".INF") {
        v->d = negative ? -HUGE_VAL : HUGE_VAL;
      } else if (s == ".nan" || s == ".NaN" || s == ".NAN") {
        v->d = std::nan("");
      } else {
        v->d = std::strtod(std::string(text).c_str(), nullptr);
      }
      return;
    }
    default:
      return;
  }
}

absl::Status FromYamlNode(const YAML::Node& node, int depth, int64_t* budget, Value* out) {
  if (--*budget < 0) {
    return absl::InvalidArgumentError(
        StrCat("document too large: more than ", kMaxValues, " values with aliases expanded"));
  }
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        StrCat("nesting deeper than ", kMaxDepth, " levels", AtLine(LineOf(node.Mark()))));
  }
  out->line = LineOf(node.Mark());
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out->kind = Value::Kind::kNull;
      out->text = "null";
      return absl::OkStatus();
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") {
        out->kind = Value::Kind::kString;
        out->text = node.Scalar();
      } else {
        ResolvePlain(node.Scalar(), out);
      }
      return absl::OkStatus();
    }
    case YAML::NodeType::Sequence:
      out->kind = Value::Kind::kList;
      out->list.reserve(node.size());
      for (const YAML::Node& item : node) {
        Value v;
        OSPREY_RETURN_IF_ERROR(FromYamlNode(item, depth + 1, budget, &v));
        out->list.push_back(std::move(v));
      }
      return absl::OkStatus();
    case YAML::NodeType::Map: {
      out->kind = Value::Kind::kMap;
      std::set<std::string> seen;
      for (const auto& entry : node) {
        const YAML::Node& key = entry.first;
        if (key.Type() != YAML::NodeType::Scalar) {
          return absl::InvalidArgumentError(
              StrCat("a map key must be a string", AtLine(LineOf(key.Mark()))));
        }
        if (!seen.insert(key.Scalar()).second) {
          return absl::InvalidArgumentError(
              StrCat("duplicate key \"", key.Scalar(), "\"", AtLine(LineOf(key.Mark()))));
        }
        Value v;
        OSPREY_RETURN_IF_ERROR(FromYamlNode(entry.second, depth + 1, budget, &v));
        if (v.line == 0) v.line = LineOf(key.Mark());
        out->map.push_back({key.Scalar(), std::move(v)});
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown YAML node type");
}

absl::Status FromJsonValue(const rapidjson::Value& j, int depth, Value* out) {
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(StrCat("nesting deeper than ", kMaxDepth, " levels"));
  }
  switch (j.GetType()) {
    case rapidjson::kNullType:
      out->kind = Value::Kind::kNull;
      out->text = "null";
      break;
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      out->kind = Value::Kind::kBool;
      out->b = j.GetBool();
      out->text = out->b ? "true" : "false";
      break;
    case rapidjson::kNumberType:
      if (j.IsInt64()) {
        out->kind = Value::Kind::kInt;
        out->i = j.GetInt64();
        out->text = StrCat(out->i);
      } else {
        out->kind = Value::Kind::kFloat;
        out->d = j.GetDouble();
        out->text = StrCat(out->d);
      }
      break;
    case rapidjson::kStringType:
      out->kind = Value::Kind::kString;
      out->text.assign(j.GetString(), j.GetStringLength());
      break;
    case rapidjson::kArrayType:
      out->kind = Value::Kind::kList;
      out->list.reserve(j.Size());
      for (const auto& item : j.GetArray()) {
        Value v;
        OSPREY_RETURN_IF_ERROR(FromJsonValue(item, depth + 1, &v));
        out->list.push_back(std::move(v));
      }
      break;
    case rapidjson::kObjectType: {
      out->kind = Value::Kind::kMap;
      std::set<std::string> seen;
      for (const auto& m : j.GetObject()) {
        std::string key(m.name.GetString(), m.name.GetStringLength());
        if (!seen.insert(key).second) {
          return absl::InvalidArgumentError(StrCat("duplicate key \"", key, "\""));
        }
        Value v;
        OSPREY_RETURN_IF_ERROR(FromJsonValue(m.value, depth + 1, &v));
        out->map.push_back({std::move(key), std::move(v)});
      }
      break;
    }
  }
  return absl::OkStatus();
}

void Write(const Value& v, rapidjson::Writer<rapidjson::StringBuffer>* w) {
  switch (v.kind) {
    case Value::Kind::kNull:
      w->Null();
      return;
    case Value::Kind::kBool:
      w->Bool(v.b);
      return;
    case Value::Kind::kInt:
      w->Int64(v.i);
      return;
    case Value::Kind::kFloat:
      if (std::isfinite(v.d)) {
        w->Double(v.d);
      } else {
        w->Null();  // JSON has no infinities
      }
      return;
    case Value::Kind::kString:
      w->String(v.text.data(), static_cast<rapidjson::SizeType>(v.text.size()));
      return;
    case Value::Kind::kList:
      w->StartArray();
      for (const Value& item : v.list) Write(item, w);
      w->EndArray();
      return;
    case Value::Kind::kMap:
      w->StartObject();
      for (const auto& [key, item] : v.map) {
        w->Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
        Write(item, w);
      }
      w->EndObject();
      return;
  }
}

// Counts the documents a parse of the stream goes through.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { last = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  YAML::Mark last = YAML::Mark::null_mark();
};

// yaml-cpp (0.7) reads a stream whose next token is a stray ',' (a flow
// entry outside [ ] and { }, which YAML does not allow) as an endless run of
// empty documents, and its LoadAll never returns. A stream holds at most one
// document per "---" or "..." marker, and one more: a parse that goes
// through more is that, refused.
absl::Status CheckDocumentsEnd(std::string_view text) {
  size_t markers = 0;
  for (size_t at = 0; (at = text.find("---", at)) != std::string_view::npos; at += 3) ++markers;
  for (size_t at = 0; (at = text.find("...", at)) != std::string_view::npos; at += 3) ++markers;
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  DocumentCounter counter;
  for (size_t documents = 0; parser.HandleNextDocument(counter);)
    if (++documents > markers + 1) {
      if (counter.last.is_null())
        return absl::InvalidArgumentError(
            "invalid YAML: a ',' outside [ ] or { } (a flow entry where none can be)");
      return absl::InvalidArgumentError(StrCat(
          "invalid YAML at line ", counter.last.line + 1, ", column ", counter.last.column + 1,
          ": a ',' outside [ ] or { } (a flow entry where none can be)"));
    }
  return absl::OkStatus();
}

}  // namespace

const Value* Value::Find(std::string_view key) const {
  for (const auto& [k, v] : map) {
    if (k == key) return v.is_null() ? nullptr : &v;
  }
  return nullptr;
}

Value::Kind PlainScalarKind(std::string_view text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return Value::Kind::kNull;
  }
  if (text == "true" || text == "True" || text == "TRUE" || text == "false" || text == "False" ||
      text == "FALSE") {
    return Value::Kind::kBool;
  }
  std::string_view s = text;
  if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
  if (AllOf(s, "0123456789")) return Value::Kind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o' && AllOf(s.substr(2), "01234567") &&
      text.size() == s.size()) {
    return Value::Kind::kInt;
  }
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && AllOf(s.substr(2), "0123456789abcdefABCDEF") &&
      text.size() == s.size()) {
    return Value::Kind::kInt;
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF") return Value::Kind::kFloat;
  if (text == ".nan" || text == ".NaN" || text == ".NAN") return Value::Kind::kFloat;
  // [0-9]* ( . [0-9]* )? ( [eE] [-+]? [0-9]+ )? with at least one digit before the exponent.
  size_t pos = 0;
  size_t digits = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos, ++digits;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos, ++digits;
  }
  if (digits == 0) return Value::Kind::kString;
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) ++pos;
    size_t exp_digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos, ++exp_digits;
    if (exp_digits == 0) return Value::Kind::kString;
  }
  return pos == s.size() ? Value::Kind::kFloat : Value::Kind::kString;
}

absl::StatusOr<std::vector<Value>> ParseYamlDocuments(std::string_view text) {
  std::vector<Value> out;
  // yaml-cpp reports errors by throwing; nothing of it escapes this function.
  try {
    OSPREY_RETURN_IF_ERROR(CheckDocumentsEnd(text));
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    out.reserve(docs.size());
    for (const YAML::Node& doc : docs) {
      Value v;
      int64_t budget = kMaxValues;
      OSPREY_RETURN_IF_ERROR(FromYamlNode(doc, 0, &budget, &v));
      out.push_back(std::move(v));
    }
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(StrCat("invalid YAML: ", e.msg));
    return absl::InvalidArgumentError(StrCat("invalid YAML at line ", e.mark.line + 1, ", column ",
                                             e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat("invalid YAML: ", e.what()));
  }
  return out;
}

absl::StatusOr<Value> ParseJsonValue(std::string_view text) {
  rapidjson::Document doc;
  constexpr unsigned kFlags = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag;
  // Numbers RapidJSON's full-precision parser misreads, written as what they denote.
  ParseSafely<kFlags>(doc, text);
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(StrCat("invalid JSON at offset ", doc.GetErrorOffset(), ": ",
                                             rapidjson::GetParseError_En(doc.GetParseError())));
  }
  Value v;
  OSPREY_RETURN_IF_ERROR(FromJsonValue(doc, 0, &v));
  return v;
}

std::string ToCompactJson(const Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  Write(v, &w);
  return std::string(buf.GetString(), buf.GetSize());
}

std::string Describe(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kString:
      return StrCat("\"", v.text, "\"");
    case Value::Kind::kList:
      return "a list";
    case Value::Kind::kMap:
      return "a map";
    default:
      return v.text;
  }
}

}  // namespace osprey::resources::internal
