#include "backends/pmml/pmml_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <pugixml.hpp>
#include <unordered_map>

#include "common/strings.h"

namespace osprey {
namespace pmml {
namespace {

using Xml = pugi::xml_node;
using Scope = std::vector<Value>;

enum class Tri : uint8_t { kFalse, kTrue, kUnknown };

absl::Status Unsupported(std::string_view what) {
  return absl::UnimplementedError(StrCat("PMML: ", what, " is not supported"));
}
absl::Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("PMML: ", what));
}

bool ParseDouble(std::string_view s, double* out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A value as a number: numbers as they are, text when it parses.
bool AsNumber(const Value& v, double* out) {
  if (v.kind == Value::Kind::kNumber) {
    *out = v.number;
    return true;
  }
  return v.kind == Value::Kind::kString && ParseDouble(v.text, out);
}

// A number as text the way a category is written ("1", "2.5").
std::string FormatNumber(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

bool IsNumericType(std::string_view data_type) {
  return data_type == "double" || data_type == "float" || data_type == "integer" ||
         data_type == "boolean";
}

// Space-separated array content, with "quoted strings" (PMML Array).
std::vector<std::string> ArrayValues(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    std::string item;
    if (text[i] == '"') {
      ++i;
      while (i < text.size() && text[i] != '"') {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        item += text[i++];
      }
      ++i;
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])))
        item += text[i++];
    }
    out.push_back(std::move(item));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Fields: every name (data, derived, output) gets a slot in a row's scope.

struct Field {
  std::string name;
  bool numeric = true;
  std::vector<std::string> valid;  // categorical: the valid values, when listed
};

class Symbols {
 public:
  int Add(const std::string& name, bool numeric) {
    auto it = index_.find(name);
    if (it != index_.end()) return it->second;
    int slot = static_cast<int>(fields_.size());
    fields_.push_back({name, numeric, {}});
    index_[name] = slot;
    return slot;
  }
  int Find(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? -1 : it->second;
  }
  Field& at(int slot) { return fields_[static_cast<size_t>(slot)]; }
  const Field& at(int slot) const { return fields_[static_cast<size_t>(slot)]; }
  size_t size() const { return fields_.size(); }

 private:
  std::unordered_map<std::string, int> index_;
  std::vector<Field> fields_;
};

absl::StatusOr<int> FieldSlot(const Symbols& syms, Xml n, const char* attr = "field") {
  std::string_view name = n.attribute(attr).as_string();
  if (name.empty()) return Invalid(StrCat(n.name(), " has no '", attr, "' attribute"));
  int slot = syms.Find(name);
  if (slot < 0) return Invalid(StrCat(n.name(), " refers to unknown field '", name, "'"));
  return slot;
}

// A predicate/expression constant compared with a field's values.
Value ConstantFor(const Field& f, std::string_view text) {
  double d;
  if (f.numeric && ParseDouble(text, &d)) return Value::Number(d);
  return Value::String(std::string(text));
}

bool Equal(const Value& a, const Value& b) {
  if (a.kind == Value::Kind::kNumber && b.kind == Value::Kind::kNumber) return a.number == b.number;
  if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kString) return a.text == b.text;
  if (a.kind == Value::Kind::kNumber && b.kind == Value::Kind::kString) {
    double d;
    return ParseDouble(b.text, &d) && d == a.number;
  }
  if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kNumber) return Equal(b, a);
  return false;
}

// <0, 0, >0; numbers numerically, else as strings.
int Compare(const Value& a, const Value& b) {
  double x, y;
  bool xn = AsNumber(a, &x);
  bool yn = AsNumber(b, &y);
  if (xn && yn) return x < y ? -1 : x > y ? 1 : 0;
  std::string sa = a.kind == Value::Kind::kNumber ? FormatNumber(a.number) : a.text;
  std::string sb = b.kind == Value::Kind::kNumber ? FormatNumber(b.number) : b.text;
  return sa.compare(sb);
}

// ---------------------------------------------------------------------------
// Expressions (DerivedField, transformedValue outputs)

struct Expr {
  virtual ~Expr() = default;
  virtual Value Eval(const Scope& s) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct ConstantExpr : Expr {
  Value v;
  Value Eval(const Scope&) const override { return v; }
};

struct FieldRefExpr : Expr {
  int slot;
  Value map_missing;
  Value Eval(const Scope& s) const override {
    const Value& v = s[static_cast<size_t>(slot)];
    return v.missing() ? map_missing : v;
  }
};

struct NormContinuousExpr : Expr {
  int slot;
  std::vector<std::pair<double, double>> points;  // (orig, norm), ascending orig
  std::string outliers = "asIs";
  Value map_missing;
  Value Eval(const Scope& s) const override {
    const Value& in = s[static_cast<size_t>(slot)];
    double x;
    if (in.missing() || !AsNumber(in, &x)) return map_missing;
    const auto& first = points.front();
    const auto& last = points.back();
    auto interpolate = [](const std::pair<double, double>& a, const std::pair<double, double>& b,
                          double v) {
      return a.second + (v - a.first) * (b.second - a.second) / (b.first - a.first);
    };
    if (x < first.first || x > last.first) {
      if (outliers == "asMissingValues") return Value::Missing();
      if (outliers == "asExtremeValues")
        return Value::Number(x < first.first ? first.second : last.second);
      // asIs: extrapolate from the outermost segment.
      return Value::Number(x < first.first ? interpolate(points[0], points[1], x)
                                           : interpolate(points[points.size() - 2], last, x));
    }
    for (size_t i = 1; i < points.size(); ++i)
      if (x <= points[i].first) return Value::Number(interpolate(points[i - 1], points[i], x));
    return Value::Number(last.second);
  }
};

struct NormDiscreteExpr : Expr {
  int slot;
  Value value;
  Value map_missing;
  Value Eval(const Scope& s) const override {
    const Value& in = s[static_cast<size_t>(slot)];
    if (in.missing()) return map_missing;
    return Value::Number(Equal(in, value) ? 1.0 : 0.0);
  }
};

struct ApplyExpr : Expr {
  std::string function;
  std::vector<ExprPtr> args;
  Value map_missing;
  Value default_value;
  Value Eval(const Scope& s) const override {
    std::vector<Value> v;
    v.reserve(args.size());
    for (const auto& a : args) v.push_back(a->Eval(s));
    const std::string& f = function;
    auto num = [&](size_t i, double* out) { return AsNumber(v[i], out); };
    auto boolean = [](bool b) { return Value::Number(b ? 1.0 : 0.0); };
    if (f == "isMissing") return boolean(v[0].missing());
    if (f == "isNotMissing") return boolean(!v[0].missing());
    if (f == "if") {
      double c;
      if (v[0].missing() || !num(0, &c)) return map_missing;
      if (c != 0) return v[1];
      return v.size() > 2 ? v[2] : Value::Missing();
    }
    if (f == "isIn" || f == "isNotIn") {
      if (v[0].missing()) return map_missing;
      bool in = false;
      for (size_t i = 1; i < v.size(); ++i) in = in || Equal(v[0], v[i]);
      return boolean(f == "isIn" ? in : !in);
    }
    for (const Value& x : v)
      if (x.missing()) return map_missing;
    if (f == "equal") return boolean(Compare(v[0], v[1]) == 0);
    if (f == "notEqual") return boolean(Compare(v[0], v[1]) != 0);
    if (f == "lessThan") return boolean(Compare(v[0], v[1]) < 0);
    if (f == "lessOrEqual") return boolean(Compare(v[0], v[1]) <= 0);
    if (f == "greaterThan") return boolean(Compare(v[0], v[1]) > 0);
    if (f == "greaterOrEqual") return boolean(Compare(v[0], v[1]) >= 0);
    std::vector<double> d(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      if (!num(i, &d[i])) return default_value;
    double r = 0;
    if (f == "+")
      r = d[0] + d[1];
    else if (f == "-")
      r = d[0] - d[1];
    else if (f == "*")
      r = d[0] * d[1];
    else if (f == "/") {
      if (d[1] == 0) return default_value;
      r = d[0] / d[1];
    } else if (f == "min")
      r = *std::min_element(d.begin(), d.end());
    else if (f == "max")
      r = *std::max_element(d.begin(), d.end());
    else if (f == "sum")
      for (double x : d) r += x;
    else if (f == "avg") {
      for (double x : d) r += x;
      r /= static_cast<double>(d.size());
    } else if (f == "product") {
      r = 1;
      for (double x : d) r *= x;
    } else if (f == "log10")
      r = std::log10(d[0]);
    else if (f == "ln")
      r = std::log(d[0]);
    else if (f == "sqrt")
      r = std::sqrt(d[0]);
    else if (f == "abs")
      r = std::fabs(d[0]);
    else if (f == "exp")
      r = std::exp(d[0]);
    else if (f == "pow")
      r = std::pow(d[0], d[1]);
    else if (f == "threshold")
      r = d[0] > d[1] ? 1 : 0;
    else if (f == "floor")
      r = std::floor(d[0]);
    else if (f == "ceil")
      r = std::ceil(d[0]);
    else if (f == "round")
      r = std::round(d[0]);
    else if (f == "and") {
      r = 1;
      for (double x : d) r = (r != 0 && x != 0) ? 1 : 0;
    } else if (f == "or") {
      for (double x : d) r = (r != 0 || x != 0) ? 1 : 0;
    } else if (f == "not")
      r = d[0] == 0 ? 1 : 0;
    if (std::isnan(r)) return default_value;
    return Value::Number(r);
  }
};

const std::map<std::string, std::pair<int, int>>& ApplyArity() {
  // function -> (min args, max args); -1: any
  static const std::map<std::string, std::pair<int, int>> kArity = {
      {"+", {2, 2}},           {"-", {2, 2}},           {"*", {2, 2}},
      {"/", {2, 2}},           {"min", {1, -1}},        {"max", {1, -1}},
      {"sum", {1, -1}},        {"avg", {1, -1}},        {"product", {1, -1}},
      {"log10", {1, 1}},       {"ln", {1, 1}},          {"sqrt", {1, 1}},
      {"abs", {1, 1}},         {"exp", {1, 1}},         {"pow", {2, 2}},
      {"threshold", {2, 2}},   {"floor", {1, 1}},       {"ceil", {1, 1}},
      {"round", {1, 1}},       {"isMissing", {1, 1}},   {"isNotMissing", {1, 1}},
      {"equal", {2, 2}},       {"notEqual", {2, 2}},    {"lessThan", {2, 2}},
      {"lessOrEqual", {2, 2}}, {"greaterThan", {2, 2}}, {"greaterOrEqual", {2, 2}},
      {"and", {2, -1}},        {"or", {2, -1}},         {"not", {1, 1}},
      {"isIn", {2, -1}},       {"isNotIn", {2, -1}},    {"if", {2, 3}},
  };
  return kArity;
}

Value MapMissing(Xml n, const char* attr = "mapMissingTo") {
  pugi::xml_attribute a = n.attribute(attr);
  if (!a) return Value::Missing();
  double d;
  if (ParseDouble(a.value(), &d)) return Value::Number(d);
  return Value::String(a.value());
}

absl::StatusOr<ExprPtr> ParseExpr(Xml n, const Symbols& syms) {
  std::string_view name = n.name();
  if (name == "Constant") {
    auto e = std::make_unique<ConstantExpr>();
    std::string_view type = n.attribute("dataType").as_string();
    double d;
    if (n.attribute("missing").as_bool())
      e->v = Value::Missing();
    else if ((type.empty() || IsNumericType(type)) && ParseDouble(n.text().as_string(), &d))
      e->v = Value::Number(d);
    else
      e->v = Value::String(n.text().as_string());
    return ExprPtr(std::move(e));
  }
  if (name == "FieldRef") {
    auto e = std::make_unique<FieldRefExpr>();
    OSPREY_ASSIGN_OR_RETURN(e->slot, FieldSlot(syms, n));
    e->map_missing = MapMissing(n);
    return ExprPtr(std::move(e));
  }
  if (name == "NormContinuous") {
    auto e = std::make_unique<NormContinuousExpr>();
    OSPREY_ASSIGN_OR_RETURN(e->slot, FieldSlot(syms, n));
    e->map_missing = MapMissing(n);
    if (n.attribute("outliers")) e->outliers = n.attribute("outliers").as_string();
    for (Xml p : n.children("LinearNorm")) {
      double o, v;
      if (!ParseDouble(p.attribute("orig").as_string(), &o) ||
          !ParseDouble(p.attribute("norm").as_string(), &v))
        return Invalid("LinearNorm needs numeric orig and norm");
      e->points.push_back({o, v});
    }
    if (e->points.size() < 2) return Invalid("NormContinuous needs at least two LinearNorm");
    std::sort(e->points.begin(), e->points.end());
    return ExprPtr(std::move(e));
  }
  if (name == "NormDiscrete") {
    auto e = std::make_unique<NormDiscreteExpr>();
    OSPREY_ASSIGN_OR_RETURN(e->slot, FieldSlot(syms, n));
    e->value = ConstantFor(syms.at(e->slot), n.attribute("value").as_string());
    e->map_missing = MapMissing(n);
    return ExprPtr(std::move(e));
  }
  if (name == "Apply") {
    auto e = std::make_unique<ApplyExpr>();
    e->function = n.attribute("function").as_string();
    auto arity = ApplyArity().find(e->function);
    if (arity == ApplyArity().end())
      return Unsupported(StrCat("Apply function '", e->function, "'"));
    for (Xml c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element || std::string_view(c.name()) == "Extension") continue;
      OSPREY_ASSIGN_OR_RETURN(ExprPtr arg, ParseExpr(c, syms));
      e->args.push_back(std::move(arg));
    }
    int count = static_cast<int>(e->args.size());
    if (count < arity->second.first || (arity->second.second >= 0 && count > arity->second.second))
      return Invalid(StrCat("Apply '", e->function, "' has ", count, " arguments"));
    e->map_missing = MapMissing(n);
    e->default_value = MapMissing(n, "defaultValue");
    return ExprPtr(std::move(e));
  }
  return Unsupported(StrCat("expression element ", name));
}

struct Derived {
  int slot;
  ExprPtr expr;
};

absl::Status ParseDerivedFields(Xml parent, Symbols* syms, std::vector<Derived>* out) {
  for (Xml d : parent.children("DerivedField")) {
    std::string name = d.attribute("name").as_string();
    if (name.empty()) return Invalid("DerivedField without a name");
    Xml body;
    for (Xml c = d.first_child(); c; c = c.next_sibling())
      if (c.type() == pugi::node_element && std::string_view(c.name()) != "Extension" &&
          std::string_view(c.name()) != "Value")
        body = c;
    if (!body) return Invalid(StrCat("DerivedField '", name, "' has no expression"));
    OSPREY_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(body, *syms));
    std::string_view type = d.attribute("dataType").as_string();
    int slot = syms->Add(name, type.empty() || IsNumericType(type));
    out->push_back({slot, std::move(e)});
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Predicates

struct Predicate {
  virtual ~Predicate() = default;
  virtual Tri Eval(const Scope& s) const = 0;
};
using PredicatePtr = std::unique_ptr<Predicate>;

struct ConstPredicate : Predicate {
  bool value;
  Tri Eval(const Scope&) const override { return value ? Tri::kTrue : Tri::kFalse; }
};

struct SimplePredicate : Predicate {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMissing, kNotMissing };
  int slot;
  Op op;
  Value value;
  Tri Eval(const Scope& s) const override {
    const Value& x = s[static_cast<size_t>(slot)];
    if (op == Op::kMissing) return x.missing() ? Tri::kTrue : Tri::kFalse;
    if (op == Op::kNotMissing) return x.missing() ? Tri::kFalse : Tri::kTrue;
    if (x.missing()) return Tri::kUnknown;
    bool r;
    switch (op) {
      case Op::kEq:
        r = Equal(x, value);
        break;
      case Op::kNe:
        r = !Equal(x, value);
        break;
      case Op::kLt:
        r = Compare(x, value) < 0;
        break;
      case Op::kLe:
        r = Compare(x, value) <= 0;
        break;
      case Op::kGt:
        r = Compare(x, value) > 0;
        break;
      default:
        r = Compare(x, value) >= 0;
        break;
    }
    return r ? Tri::kTrue : Tri::kFalse;
  }
};

struct SetPredicate : Predicate {
  int slot;
  bool is_in;
  std::vector<Value> values;
  Tri Eval(const Scope& s) const override {
    const Value& x = s[static_cast<size_t>(slot)];
    if (x.missing()) return Tri::kUnknown;
    bool found =
        std::any_of(values.begin(), values.end(), [&](const Value& v) { return Equal(x, v); });
    return found == is_in ? Tri::kTrue : Tri::kFalse;
  }
};

struct CompoundPredicate : Predicate {
  enum class Op { kAnd, kOr, kXor, kSurrogate };
  Op op;
  std::vector<PredicatePtr> parts;
  Tri Eval(const Scope& s) const override {
    switch (op) {
      case Op::kAnd: {
        Tri r = Tri::kTrue;
        for (const auto& p : parts) {
          Tri t = p->Eval(s);
          if (t == Tri::kFalse) return Tri::kFalse;
          if (t == Tri::kUnknown) r = Tri::kUnknown;
        }
        return r;
      }
      case Op::kOr: {
        Tri r = Tri::kFalse;
        for (const auto& p : parts) {
          Tri t = p->Eval(s);
          if (t == Tri::kTrue) return Tri::kTrue;
          if (t == Tri::kUnknown) r = Tri::kUnknown;
        }
        return r;
      }
      case Op::kXor: {
        bool r = false;
        for (const auto& p : parts) {
          Tri t = p->Eval(s);
          if (t == Tri::kUnknown) return Tri::kUnknown;
          r = r != (t == Tri::kTrue);
        }
        return r ? Tri::kTrue : Tri::kFalse;
      }
      case Op::kSurrogate:
        for (const auto& p : parts) {
          Tri t = p->Eval(s);
          if (t != Tri::kUnknown) return t;
        }
        return Tri::kUnknown;
    }
    return Tri::kUnknown;
  }
};

absl::StatusOr<PredicatePtr> ParsePredicate(Xml n, const Symbols& syms) {
  std::string_view name = n.name();
  if (name == "True" || name == "False") {
    auto p = std::make_unique<ConstPredicate>();
    p->value = name == "True";
    return PredicatePtr(std::move(p));
  }
  if (name == "SimplePredicate") {
    auto p = std::make_unique<SimplePredicate>();
    OSPREY_ASSIGN_OR_RETURN(p->slot, FieldSlot(syms, n));
    std::string_view op = n.attribute("operator").as_string();
    static const std::map<std::string_view, SimplePredicate::Op> kOps = {
        {"equal", SimplePredicate::Op::kEq},
        {"notEqual", SimplePredicate::Op::kNe},
        {"lessThan", SimplePredicate::Op::kLt},
        {"lessOrEqual", SimplePredicate::Op::kLe},
        {"greaterThan", SimplePredicate::Op::kGt},
        {"greaterOrEqual", SimplePredicate::Op::kGe},
        {"isMissing", SimplePredicate::Op::kMissing},
        {"isNotMissing", SimplePredicate::Op::kNotMissing}};
    auto it = kOps.find(op);
    if (it == kOps.end()) return Unsupported(StrCat("SimplePredicate operator '", op, "'"));
    p->op = it->second;
    p->value = ConstantFor(syms.at(p->slot), n.attribute("value").as_string());
    return PredicatePtr(std::move(p));
  }
  if (name == "SimpleSetPredicate") {
    auto p = std::make_unique<SetPredicate>();
    OSPREY_ASSIGN_OR_RETURN(p->slot, FieldSlot(syms, n));
    std::string_view op = n.attribute("booleanOperator").as_string();
    if (op != "isIn" && op != "isNotIn")
      return Unsupported(StrCat("SimpleSetPredicate booleanOperator '", op, "'"));
    p->is_in = op == "isIn";
    for (const std::string& v : ArrayValues(n.child("Array").text().as_string()))
      p->values.push_back(ConstantFor(syms.at(p->slot), v));
    return PredicatePtr(std::move(p));
  }
  if (name == "CompoundPredicate") {
    auto p = std::make_unique<CompoundPredicate>();
    std::string_view op = n.attribute("booleanOperator").as_string();
    if (op == "and")
      p->op = CompoundPredicate::Op::kAnd;
    else if (op == "or")
      p->op = CompoundPredicate::Op::kOr;
    else if (op == "xor")
      p->op = CompoundPredicate::Op::kXor;
    else if (op == "surrogate")
      p->op = CompoundPredicate::Op::kSurrogate;
    else
      return Unsupported(StrCat("CompoundPredicate booleanOperator '", op, "'"));
    for (Xml c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element || std::string_view(c.name()) == "Extension") continue;
      OSPREY_ASSIGN_OR_RETURN(PredicatePtr part, ParsePredicate(c, syms));
      p->parts.push_back(std::move(part));
    }
    if (p->parts.size() < 2) return Invalid("CompoundPredicate needs at least two predicates");
    return PredicatePtr(std::move(p));
  }
  return Unsupported(StrCat("predicate element ", name));
}

bool IsPredicateElement(std::string_view n) {
  return n == "True" || n == "False" || n == "SimplePredicate" || n == "SimpleSetPredicate" ||
         n == "CompoundPredicate";
}

// The first predicate child of `n`; a missing one is an error naming `owner`.
absl::StatusOr<PredicatePtr> ChildPredicate(Xml n, const Symbols& syms, std::string_view owner) {
  for (Xml c = n.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && IsPredicateElement(c.name()))
      return ParsePredicate(c, syms);
  for (Xml c = n.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && std::string_view(c.name()).ends_with("Predicate"))
      return Unsupported(StrCat("predicate element ", c.name()));
  return Invalid(StrCat(owner, " has no predicate"));
}

// ---------------------------------------------------------------------------
// Models

struct Prediction {
  Value value;
  std::vector<std::pair<std::string, double>> probabilities;  // classification
  std::string entity;
  bool missing() const { return value.missing(); }
  double Probability(std::string_view category) const {
    for (const auto& [c, p] : probabilities)
      if (c == category) return p;
    return 0.0;
  }
};

struct OutputSpec {
  enum class Feature { kPredicted, kDisplay, kProbability, kEntity, kTransformed };
  std::string name;
  int slot;
  Feature feature;
  std::string category;  // probability: which one ("" = the predicted)
  ExprPtr expr;          // transformedValue
  bool numeric;
};

struct TargetRescale {
  double factor = 1, constant = 0;
  bool cast_integer = false;
  bool present = false;
};

class Model {
 public:
  virtual ~Model() = default;

  absl::Status Evaluate(Scope& s, Prediction* p) const {
    for (const Derived& d : local_) s[static_cast<size_t>(d.slot)] = d.expr->Eval(s);
    OSPREY_RETURN_IF_ERROR(Predict(s, p));
    if (rescale_.present && p->value.kind == Value::Kind::kNumber) {
      double v = p->value.number * rescale_.factor + rescale_.constant;
      if (rescale_.cast_integer) v = std::round(v);
      p->value.number = v;
    }
    if (target_slot_ >= 0) s[static_cast<size_t>(target_slot_)] = p->value;
    for (const OutputSpec& o : outputs_) s[static_cast<size_t>(o.slot)] = OutputValue(o, *p, s);
    return absl::OkStatus();
  }

  bool classification() const { return classification_; }
  const std::vector<OutputSpec>& outputs() const { return outputs_; }
  int target_slot() const { return target_slot_; }
  const std::string& kind() const { return kind_; }
  std::vector<int> active;  // active MiningFields, in order
  struct Treatment {
    int slot;
    Value replacement;
    std::string invalid = "returnInvalid";
    std::string outliers = "asIs";
    double low = -INFINITY, high = INFINITY;
  };
  std::vector<Treatment> treatments;  // per active field

 protected:
  virtual absl::Status Predict(Scope& s, Prediction* p) const = 0;

  // Shared parsing: function, MiningSchema, LocalTransformations, Targets, Output.
  absl::Status ParseCommon(Xml n, Symbols* syms) {
    kind_ = n.name();
    std::string_view function = n.attribute("functionName").as_string();
    if (function == "classification") {
      classification_ = true;
    } else if (function != "regression") {
      return Unsupported(StrCat(kind_, " functionName '", function, "'"));
    }
    for (Xml f : n.child("MiningSchema").children("MiningField")) {
      std::string_view usage = f.attribute("usageType").as_string();
      OSPREY_ASSIGN_OR_RETURN(int slot, FieldSlot(*syms, f, "name"));
      if (usage == "target" || usage == "predicted") {
        target_slot_ = slot;
        continue;
      }
      if (!usage.empty() && usage != "active") continue;
      active.push_back(slot);
      Treatment t;
      t.slot = slot;
      if (f.attribute("missingValueReplacement"))
        t.replacement =
            ConstantFor(syms->at(slot), f.attribute("missingValueReplacement").as_string());
      if (f.attribute("invalidValueTreatment"))
        t.invalid = f.attribute("invalidValueTreatment").as_string();
      if (t.invalid != "returnInvalid" && t.invalid != "asIs" && t.invalid != "asMissing")
        return Unsupported(StrCat("invalidValueTreatment '", t.invalid, "'"));
      if (f.attribute("outliers")) t.outliers = f.attribute("outliers").as_string();
      if (f.attribute("lowValue")) t.low = f.attribute("lowValue").as_double();
      if (f.attribute("highValue")) t.high = f.attribute("highValue").as_double();
      treatments.push_back(std::move(t));
    }
    if (Xml local = n.child("LocalTransformations"))
      OSPREY_RETURN_IF_ERROR(ParseDerivedFields(local, syms, &local_));
    if (Xml targets = n.child("Targets")) {
      for (Xml t : targets.children("Target")) {
        if (t.attribute("rescaleFactor"))
          rescale_.factor = t.attribute("rescaleFactor").as_double();
        if (t.attribute("rescaleConstant"))
          rescale_.constant = t.attribute("rescaleConstant").as_double();
        rescale_.cast_integer = std::string_view(t.attribute("castInteger").as_string()) == "round";
        rescale_.present = true;
      }
    }
    return absl::OkStatus();
  }

  // After the model's own parsing (so categories are known).
  absl::Status ParseOutput(Xml n, Symbols* syms) {
    for (Xml o : n.child("Output").children("OutputField")) {
      OutputSpec spec;
      spec.name = o.attribute("name").as_string();
      if (spec.name.empty()) return Invalid("OutputField without a name");
      std::string_view feature = o.attribute("feature").as_string();
      if (feature.empty() || feature == "predictedValue") {
        spec.feature = OutputSpec::Feature::kPredicted;
        spec.numeric = !classification_ || (target_slot_ >= 0 && syms->at(target_slot_).numeric);
      } else if (feature == "predictedDisplayValue") {
        spec.feature = OutputSpec::Feature::kDisplay;
        spec.numeric = false;
      } else if (feature == "probability") {
        spec.feature = OutputSpec::Feature::kProbability;
        spec.category = o.attribute("value").as_string();
        spec.numeric = true;
      } else if (feature == "entityId") {
        spec.feature = OutputSpec::Feature::kEntity;
        spec.numeric = false;
      } else if (feature == "transformedValue") {
        spec.feature = OutputSpec::Feature::kTransformed;
        Xml body;
        for (Xml c = o.first_child(); c; c = c.next_sibling())
          if (c.type() == pugi::node_element && std::string_view(c.name()) != "Extension") body = c;
        if (!body) return Invalid(StrCat("OutputField '", spec.name, "' has no expression"));
        OSPREY_ASSIGN_OR_RETURN(spec.expr, ParseExpr(body, *syms));
        std::string_view type = o.attribute("dataType").as_string();
        spec.numeric = type.empty() || IsNumericType(type);
      } else {
        return Unsupported(StrCat("OutputField feature '", feature, "'"));
      }
      spec.slot = syms->Add(spec.name, spec.numeric);
      outputs_.push_back(std::move(spec));
    }
    return absl::OkStatus();
  }

  static Value OutputValue(const OutputSpec& o, const Prediction& p, const Scope& s) {
    switch (o.feature) {
      case OutputSpec::Feature::kPredicted:
        return p.value;
      case OutputSpec::Feature::kDisplay:
        if (p.value.kind == Value::Kind::kNumber)
          return Value::String(FormatNumber(p.value.number));
        return p.value;
      case OutputSpec::Feature::kProbability: {
        if (p.missing()) return Value::Missing();
        std::string category = o.category;
        if (category.empty())
          category =
              p.value.kind == Value::Kind::kNumber ? FormatNumber(p.value.number) : p.value.text;
        for (const auto& [c, prob] : p.probabilities) {
          Value cv = Value::String(c);
          if (Equal(cv, Value::String(category)) || Compare(cv, Value::String(category)) == 0)
            return Value::Number(prob);
        }
        return Value::Number(0.0);
      }
      case OutputSpec::Feature::kEntity:
        return p.entity.empty() ? Value::Missing() : Value::String(p.entity);
      case OutputSpec::Feature::kTransformed:
        return o.expr->Eval(s);
    }
    return Value::Missing();
  }

  // The target's categories (valid values of its DataField), when listed.
  std::vector<std::string> TargetCategories(const Symbols& syms) const {
    return target_slot_ >= 0 ? syms.at(target_slot_).valid : std::vector<std::string>();
  }

  Value PredictedCategory(const Symbols& syms, const std::string& category) const {
    if (target_slot_ >= 0 && syms.at(target_slot_).numeric) {
      double d;
      if (ParseDouble(category, &d)) return Value::Number(d);
    }
    return Value::String(category);
  }

  bool classification_ = false;
  int target_slot_ = -1;
  std::string kind_;
  std::vector<Derived> local_;
  std::vector<OutputSpec> outputs_;
  TargetRescale rescale_;
};

using ModelPtr = std::unique_ptr<Model>;
absl::StatusOr<ModelPtr> ParseModel(Xml n, Symbols* syms);
bool IsModelElement(std::string_view n);

// The category with the highest probability; the first on ties.
const std::string* Argmax(const std::vector<std::pair<std::string, double>>& probs) {
  const std::string* best = nullptr;
  double best_p = -1;
  for (const auto& [c, p] : probs)
    if (p > best_p) {
      best = &c;
      best_p = p;
    }
  return best;
}

// ----- TreeModel

class TreeModel : public Model {
 public:
  absl::Status Parse(Xml n, Symbols* syms) {
    OSPREY_RETURN_IF_ERROR(ParseCommon(n, syms));
    std::string_view mvs = n.attribute("missingValueStrategy").as_string();
    if (mvs.empty() || mvs == "none")
      missing_ = Missing::kNone;
    else if (mvs == "lastPrediction")
      missing_ = Missing::kLast;
    else if (mvs == "nullPrediction")
      missing_ = Missing::kNull;
    else if (mvs == "defaultChild")
      missing_ = Missing::kDefaultChild;
    else
      return Unsupported(StrCat("TreeModel missingValueStrategy '", mvs, "'"));
    std::string_view ntc = n.attribute("noTrueChildStrategy").as_string();
    if (ntc.empty() || ntc == "returnNullPrediction")
      last_on_no_true_child_ = false;
    else if (ntc == "returnLastPrediction")
      last_on_no_true_child_ = true;
    else
      return Unsupported(StrCat("TreeModel noTrueChildStrategy '", ntc, "'"));
    std::string_view split = n.attribute("splitCharacteristic").as_string();
    (void)split;  // binarySplit or multiSplit: evaluation is the same
    Xml root = n.child("Node");
    if (!root) return Invalid("TreeModel has no Node");
    int counter = 0;
    OSPREY_RETURN_IF_ERROR(ParseNode(root, *syms, &root_, &counter));
    return ParseOutput(n, syms);
  }

 protected:
  absl::Status Predict(Scope& s, Prediction* p) const override {
    const TNode* node = &root_;
    Tri r = node->predicate->Eval(s);
    if (r != Tri::kTrue) return absl::OkStatus();  // the root does not apply: no prediction
    while (!node->children.empty()) {
      const TNode* next = nullptr;
      for (const TNode& child : node->children) {
        Tri t = child.predicate->Eval(s);
        if (t == Tri::kTrue) {
          next = &child;
          break;
        }
        if (t == Tri::kUnknown) {
          if (missing_ == Missing::kNone) continue;  // unknown counts as false
          if (missing_ == Missing::kLast) return Result(*node, p);
          if (missing_ == Missing::kNull) return absl::OkStatus();
          // defaultChild
          for (const TNode& c : node->children)
            if (c.id == node->default_child) next = &c;
          if (next == nullptr) return Result(*node, p);
          break;
        }
      }
      if (next == nullptr) {
        if (last_on_no_true_child_) return Result(*node, p);
        return absl::OkStatus();
      }
      node = next;
    }
    return Result(*node, p);
  }

 private:
  struct TNode {
    std::string id;
    std::string score;
    bool has_score = false;
    PredicatePtr predicate;
    std::vector<TNode> children;
    std::vector<std::pair<std::string, double>> distribution;  // probabilities
    std::string default_child;
  };
  enum class Missing { kNone, kLast, kNull, kDefaultChild };

  absl::Status ParseNode(Xml n, const Symbols& syms, TNode* out, int* counter) {
    ++*counter;
    out->id = n.attribute("id") ? n.attribute("id").as_string() : std::to_string(*counter);
    if (n.attribute("score")) {
      out->score = n.attribute("score").as_string();
      out->has_score = true;
    }
    out->default_child = n.attribute("defaultChild").as_string();
    OSPREY_ASSIGN_OR_RETURN(out->predicate,
                            ChildPredicate(n, syms, StrCat("Node '", out->id, "'")));
    double total = 0;
    bool explicit_probability = false;
    for (Xml d : n.children("ScoreDistribution")) {
      double count = d.attribute("recordCount").as_double();
      total += count;
      if (d.attribute("probability")) explicit_probability = true;
      out->distribution.push_back(
          {d.attribute("value").as_string(),
           d.attribute("probability") ? d.attribute("probability").as_double() : count});
    }
    if (!explicit_probability && total > 0)
      for (auto& [c, v] : out->distribution) v /= total;
    if (n.child("Regression") || n.child("DecisionTree"))
      return Unsupported("Node with an embedded Regression or DecisionTree");
    for (Xml c : n.children("Node")) {
      out->children.emplace_back();
      OSPREY_RETURN_IF_ERROR(ParseNode(c, syms, &out->children.back(), counter));
    }
    if (!out->has_score && out->distribution.empty() && out->children.empty())
      return Invalid(
          StrCat("leaf Node '", out->id, "' has neither a score nor a ScoreDistribution"));
    return absl::OkStatus();
  }

  absl::Status Result(const TNode& node, Prediction* p) const {
    p->entity = node.id;
    if (classification_) {
      p->probabilities = node.distribution;
      std::string category;
      if (node.has_score) {
        category = node.score;
      } else if (const std::string* best = Argmax(node.distribution)) {
        category = *best;
      } else {
        return absl::OkStatus();
      }
      p->value =
          numeric_target_ ? Value::Number(std::atof(category.c_str())) : Value::String(category);
      return absl::OkStatus();
    }
    double v;
    if (!node.has_score || !ParseDouble(node.score, &v))
      return Invalid(StrCat("regression Node '", node.id, "' has no numeric score"));
    p->value = Value::Number(v);
    return absl::OkStatus();
  }

 public:
  bool numeric_target_ = false;

 private:
  TNode root_;
  Missing missing_ = Missing::kNone;
  bool last_on_no_true_child_ = false;
};

// ----- RegressionModel

double InverseLink(std::string_view method, double y) {
  if (method == "logit") return 1.0 / (1.0 + std::exp(-y));
  if (method == "exp") return std::exp(y);
  if (method == "probit") return 0.5 * std::erfc(-y / std::sqrt(2.0));
  if (method == "cloglog") return 1.0 - std::exp(-std::exp(y));
  if (method == "loglog") return std::exp(-std::exp(-y));
  if (method == "cauchit") return 0.5 + std::atan(y) / M_PI;
  return y;  // none
}

class RegressionModel : public Model {
 public:
  absl::Status Parse(Xml n, Symbols* syms) {
    OSPREY_RETURN_IF_ERROR(ParseCommon(n, syms));
    method_ = n.attribute("normalizationMethod") ? n.attribute("normalizationMethod").as_string()
                                                 : "none";
    static const char* kMethods[] = {"none",    "simplemax", "softmax", "logit", "probit",
                                     "cloglog", "loglog",    "cauchit", "exp"};
    if (std::find(std::begin(kMethods), std::end(kMethods), method_) == std::end(kMethods))
      return Unsupported(StrCat("RegressionModel normalizationMethod '", method_, "'"));
    for (Xml t : n.children("RegressionTable")) {
      Table table;
      table.intercept = t.attribute("intercept").as_double();
      table.category = t.attribute("targetCategory").as_string();
      for (Xml p : t.children("NumericPredictor")) {
        OSPREY_ASSIGN_OR_RETURN(int slot, FieldSlot(*syms, p, "name"));
        table.numeric.push_back(
            {slot, p.attribute("exponent") ? p.attribute("exponent").as_double() : 1.0,
             p.attribute("coefficient").as_double()});
      }
      for (Xml p : t.children("CategoricalPredictor")) {
        OSPREY_ASSIGN_OR_RETURN(int slot, FieldSlot(*syms, p, "name"));
        table.categorical.push_back({slot,
                                     ConstantFor(syms->at(slot), p.attribute("value").as_string()),
                                     p.attribute("coefficient").as_double()});
      }
      for (Xml p : t.children("PredictorTerm")) {
        Term term;
        term.coefficient = p.attribute("coefficient").as_double();
        for (Xml f : p.children("FieldRef")) {
          OSPREY_ASSIGN_OR_RETURN(int slot, FieldSlot(*syms, f));
          term.slots.push_back(slot);
        }
        table.terms.push_back(std::move(term));
      }
      tables_.push_back(std::move(table));
    }
    if (tables_.empty()) return Invalid("RegressionModel has no RegressionTable");
    if (!classification_ && tables_.size() != 1)
      return Invalid("a regression RegressionModel needs exactly one RegressionTable");
    numeric_target_ = target_slot_ >= 0 && syms->at(target_slot_).numeric;
    symbols_ = syms;
    return ParseOutput(n, syms);
  }

 protected:
  absl::Status Predict(Scope& s, Prediction* p) const override {
    std::vector<double> y;
    for (const Table& t : tables_) {
      double v;
      if (!t.Eval(s, &v)) return absl::OkStatus();  // a missing input: no prediction
      y.push_back(v);
    }
    if (!classification_) {
      p->value = Value::Number(InverseLink(method_, y[0]));
      return absl::OkStatus();
    }
    const size_t k = y.size();
    std::vector<double> prob(k);
    if (method_ == "softmax") {
      double m = *std::max_element(y.begin(), y.end()), sum = 0;
      for (size_t i = 0; i < k; ++i) sum += (prob[i] = std::exp(y[i] - m));
      for (double& v : prob) v /= sum;
    } else if (method_ == "simplemax") {
      double sum = 0;
      for (double v : y) sum += v;
      for (size_t i = 0; i < k; ++i) prob[i] = y[i] / sum;
    } else if (k == 1) {
      prob[0] = InverseLink(method_, y[0]);
    } else {
      // The inverse link for all but the last category; the last gets the rest.
      double sum = 0;
      for (size_t i = 0; i + 1 < k; ++i) sum += (prob[i] = InverseLink(method_, y[i]));
      prob[k - 1] = 1.0 - sum;
    }
    for (size_t i = 0; i < k; ++i) p->probabilities.push_back({tables_[i].category, prob[i]});
    if (const std::string* best = Argmax(p->probabilities))
      p->value = PredictedCategory(*symbols_, *best);
    return absl::OkStatus();
  }

 private:
  struct Num {
    int slot;
    double exponent, coefficient;
  };
  struct Cat {
    int slot;
    Value value;
    double coefficient;
  };
  struct Term {
    std::vector<int> slots;
    double coefficient;
  };
  struct Table {
    double intercept = 0;
    std::string category;
    std::vector<Num> numeric;
    std::vector<Cat> categorical;
    std::vector<Term> terms;
    bool Eval(const Scope& s, double* out) const {
      double y = intercept;
      for (const Num& n : numeric) {
        const Value& v = s[static_cast<size_t>(n.slot)];
        double x;
        if (v.missing() || !AsNumber(v, &x)) return false;
        y += n.coefficient * (n.exponent == 1.0 ? x : std::pow(x, n.exponent));
      }
      for (const Cat& c : categorical) {
        const Value& v = s[static_cast<size_t>(c.slot)];
        if (v.missing()) return false;
        if (Equal(v, c.value)) y += c.coefficient;
      }
      for (const Term& t : terms) {
        double prod = t.coefficient;
        for (int slot : t.slots) {
          const Value& v = s[static_cast<size_t>(slot)];
          double x;
          if (v.missing() || !AsNumber(v, &x)) return false;
          prod *= x;
        }
        y += prod;
      }
      *out = y;
      return true;
    }
  };
  std::string method_;
  std::vector<Table> tables_;
  bool numeric_target_ = false;
  const Symbols* symbols_ = nullptr;
};

// ----- GeneralRegressionModel

class GeneralRegressionModel : public Model {
 public:
  absl::Status Parse(Xml n, Symbols* syms) {
    OSPREY_RETURN_IF_ERROR(ParseCommon(n, syms));
    symbols_ = syms;
    model_type_ = n.attribute("modelType").as_string();
    if (model_type_ != "regression" && model_type_ != "generalLinear" &&
        model_type_ != "generalizedLinear" && model_type_ != "multinomialLogistic")
      return Unsupported(StrCat("GeneralRegressionModel modelType '", model_type_, "'"));
    link_ = n.attribute("linkFunction").as_string();
    link_parameter_ = n.attribute("linkParameter").as_double(1.0);
    if (model_type_ == "generalizedLinear") {
      static const char* kLinks[] = {"identity", "log",     "logit",   "probit", "cloglog",
                                     "loglog",   "cauchit", "inverse", "power"};
      if (std::find(std::begin(kLinks), std::end(kLinks), link_) == std::end(kLinks))
        return Unsupported(StrCat("GeneralRegressionModel linkFunction '", link_, "'"));
    }
    if (n.attribute("offsetValue")) offset_value_ = n.attribute("offsetValue").as_double();
    if (n.attribute("offsetVariable")) {
      OSPREY_ASSIGN_OR_RETURN(offset_slot_, FieldSlot(*syms, n, "offsetVariable"));
    }
    for (Xml p : n.child("ParameterList").children("Parameter"))
      params_.push_back({p.attribute("name").as_string(), {}});
    auto param_index = [&](std::string_view name) -> int {
      for (size_t i = 0; i < params_.size(); ++i)
        if (params_[i].name == name) return static_cast<int>(i);
      return -1;
    };
    std::vector<std::string> factors;
    for (Xml f : n.child("FactorList").children("Predictor"))
      factors.push_back(f.attribute("name").as_string());
    for (Xml cell : n.child("PPMatrix").children("PPCell")) {
      int pi = param_index(cell.attribute("parameterName").as_string());
      if (pi < 0)
        return Invalid(StrCat("PPCell refers to unknown parameter '",
                              cell.attribute("parameterName").as_string(), "'"));
      OSPREY_ASSIGN_OR_RETURN(int slot, FieldSlot(*syms, cell, "predictorName"));
      Cell c;
      c.slot = slot;
      c.factor = std::find(factors.begin(), factors.end(), syms->at(slot).name) != factors.end();
      std::string_view value = cell.attribute("value").as_string();
      if (c.factor) {
        c.value = ConstantFor(syms->at(slot), value);
      } else if (!ParseDouble(value, &c.exponent)) {
        c.exponent = 1.0;
      }
      params_[static_cast<size_t>(pi)].cells.push_back(std::move(c));
    }
    for (Xml cell : n.child("ParamMatrix").children("PCell")) {
      int pi = param_index(cell.attribute("parameterName").as_string());
      if (pi < 0)
        return Invalid(StrCat("PCell refers to unknown parameter '",
                              cell.attribute("parameterName").as_string(), "'"));
      std::string category = cell.attribute("targetCategory").as_string();
      auto it = std::find_if(betas_.begin(), betas_.end(),
                             [&](const auto& b) { return b.first == category; });
      if (it == betas_.end()) {
        betas_.push_back({category, std::vector<double>(params_.size(), 0.0)});
        it = betas_.end() - 1;
      }
      it->second[static_cast<size_t>(pi)] = cell.attribute("beta").as_double();
    }
    if (betas_.empty()) return Invalid("GeneralRegressionModel has no ParamMatrix cells");
    if (model_type_ == "multinomialLogistic") {
      categories_ = TargetCategories(*syms);
      std::string reference = n.attribute("targetReferenceCategory").as_string();
      if (categories_.empty()) {
        for (const auto& b : betas_) categories_.push_back(b.first);
        if (!reference.empty()) categories_.push_back(reference);
      }
      if (categories_.size() < 2)
        return Invalid("multinomialLogistic needs the target's categories");
    } else if (betas_.size() != 1) {
      return Invalid("a regression GeneralRegressionModel needs one set of betas");
    }
    return ParseOutput(n, syms);
  }

 protected:
  absl::Status Predict(Scope& s, Prediction* p) const override {
    std::vector<double> x(params_.size(), 1.0);
    for (size_t i = 0; i < params_.size(); ++i) {
      for (const Cell& c : params_[i].cells) {
        const Value& v = s[static_cast<size_t>(c.slot)];
        if (v.missing()) return absl::OkStatus();
        if (c.factor) {
          x[i] *= Equal(v, c.value) ? 1.0 : 0.0;
        } else {
          double d;
          if (!AsNumber(v, &d)) return absl::OkStatus();
          x[i] *= c.exponent == 1.0 ? d : std::pow(d, c.exponent);
        }
      }
    }
    double offset = offset_value_;
    if (offset_slot_ >= 0) {
      const Value& v = s[static_cast<size_t>(offset_slot_)];
      if (v.kind != Value::Kind::kNumber) return absl::OkStatus();
      offset += v.number;
    }
    auto eta = [&](const std::vector<double>& beta) {
      double e = offset;
      for (size_t i = 0; i < beta.size(); ++i) e += beta[i] * x[i];
      return e;
    };
    if (model_type_ != "multinomialLogistic") {
      double e = eta(betas_[0].second);
      double mu = e;
      if (model_type_ == "generalizedLinear") {
        if (link_ == "log")
          mu = std::exp(e);
        else if (link_ == "inverse")
          mu = 1.0 / e;
        else if (link_ == "power")
          mu = link_parameter_ == 0 ? std::exp(e) : std::pow(e, 1.0 / link_parameter_);
        else if (link_ != "identity")
          mu = InverseLink(link_, e);
      }
      p->value = Value::Number(mu);
      return absl::OkStatus();
    }
    std::vector<double> etas;
    for (const std::string& c : categories_) {
      auto it =
          std::find_if(betas_.begin(), betas_.end(), [&](const auto& b) { return b.first == c; });
      etas.push_back(it == betas_.end() ? 0.0 : eta(it->second));  // the reference: 0
    }
    double m = *std::max_element(etas.begin(), etas.end()), sum = 0;
    for (double& e : etas) sum += (e = std::exp(e - m));
    for (size_t i = 0; i < categories_.size(); ++i)
      p->probabilities.push_back({categories_[i], etas[i] / sum});
    if (const std::string* best = Argmax(p->probabilities))
      p->value = PredictedCategory(*symbols_, *best);
    return absl::OkStatus();
  }

 private:
  struct Cell {
    int slot;
    bool factor;
    Value value;
    double exponent = 1.0;
  };
  struct Param {
    std::string name;
    std::vector<Cell> cells;
  };
  std::string model_type_, link_;
  double link_parameter_ = 1.0;
  double offset_value_ = 0;
  int offset_slot_ = -1;
  std::vector<Param> params_;
  std::vector<std::pair<std::string, std::vector<double>>> betas_;  // per target category
  std::vector<std::string> categories_;
  const Symbols* symbols_ = nullptr;
};

// ----- MiningModel

class MiningModel : public Model {
 public:
  absl::Status Parse(Xml n, Symbols* syms) {
    OSPREY_RETURN_IF_ERROR(ParseCommon(n, syms));
    symbols_ = syms;
    Xml seg = n.child("Segmentation");
    if (!seg) return Invalid("MiningModel has no Segmentation");
    method_ = seg.attribute("multipleModelMethod").as_string();
    static const char* kMethods[] = {"modelChain", "sum", "average",      "weightedAverage",
                                     "median",     "max", "majorityVote", "weightedMajorityVote",
                                     "selectFirst"};
    if (std::find(std::begin(kMethods), std::end(kMethods), method_) == std::end(kMethods))
      return Unsupported(StrCat("Segmentation multipleModelMethod '", method_, "'"));
    for (Xml s : seg.children("Segment")) {
      Segment segment;
      segment.weight = s.attribute("weight").as_double(1.0);
      OSPREY_ASSIGN_OR_RETURN(segment.predicate, ChildPredicate(s, *syms, "Segment"));
      Xml model;
      for (Xml c = s.first_child(); c; c = c.next_sibling())
        if (c.type() == pugi::node_element && IsModelElement(c.name())) model = c;
      if (!model) {
        for (Xml c = s.first_child(); c; c = c.next_sibling())
          if (c.type() == pugi::node_element && !IsPredicateElement(c.name()) &&
              std::string_view(c.name()) != "Extension")
            return Unsupported(c.name());
        return Invalid("Segment has no model");
      }
      OSPREY_ASSIGN_OR_RETURN(segment.model, ParseModel(model, syms));
      segments_.push_back(std::move(segment));
    }
    if (segments_.empty()) return Invalid("Segmentation has no Segment");
    return ParseOutput(n, syms);
  }

 protected:
  absl::Status Predict(Scope& s, Prediction* p) const override {
    std::vector<std::pair<const Segment*, Prediction>> results;
    for (const Segment& seg : segments_) {
      if (seg.predicate->Eval(s) != Tri::kTrue) continue;
      Prediction r;
      OSPREY_RETURN_IF_ERROR(seg.model->Evaluate(s, &r));
      if (method_ == "selectFirst") {
        *p = std::move(r);
        return absl::OkStatus();
      }
      results.push_back({&seg, std::move(r)});
    }
    if (results.empty()) return absl::OkStatus();
    if (method_ == "modelChain") {
      *p = std::move(results.back().second);
      return absl::OkStatus();
    }
    for (const auto& r : results)
      if (r.second.missing()) return absl::OkStatus();  // a member without an answer
    if (!classification_) {
      std::vector<double> v;
      double wsum = 0, acc = 0;
      for (const auto& [seg, r] : results) {
        double x =
            r.value.kind == Value::Kind::kNumber ? r.value.number : std::atof(r.value.text.c_str());
        v.push_back(x);
        acc += (method_ == "weightedAverage" ? seg->weight : 1.0) * x;
        wsum += method_ == "weightedAverage" ? seg->weight : 1.0;
      }
      double out;
      if (method_ == "sum")
        out = acc;
      else if (method_ == "average" || method_ == "weightedAverage")
        out = acc / wsum;
      else if (method_ == "max")
        out = *std::max_element(v.begin(), v.end());
      else if (method_ == "median") {
        std::sort(v.begin(), v.end());
        size_t m = v.size() / 2;
        out = v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
      } else {
        return Unsupported(StrCat("multipleModelMethod '", method_, "' for regression"));
      }
      p->value = Value::Number(out);
      return absl::OkStatus();
    }
    // Classification: combine per category, in first-seen order.
    std::vector<std::pair<std::string, double>> acc;
    auto add = [&](const std::string& c, double v) {
      for (auto& [k, x] : acc)
        if (k == c) {
          x += v;
          return;
        }
      acc.push_back({c, v});
    };
    for (const std::string& c : TargetCategories(*symbols_)) add(c, 0.0);
    double total = 0;
    if (method_ == "majorityVote" || method_ == "weightedMajorityVote") {
      for (const auto& [seg, r] : results) {
        double w = method_ == "weightedMajorityVote" ? seg->weight : 1.0;
        add(r.value.kind == Value::Kind::kNumber ? FormatNumber(r.value.number) : r.value.text, w);
        total += w;
      }
    } else if (method_ == "average" || method_ == "weightedAverage") {
      for (const auto& [seg, r] : results) {
        double w = method_ == "weightedAverage" ? seg->weight : 1.0;
        for (const auto& [c, prob] : r.probabilities) add(c, w * prob);
        total += w;
      }
    } else if (method_ == "max") {
      // The member most confident in its own prediction.
      const Prediction* best = nullptr;
      double best_p = -1;
      for (const auto& [seg, r] : results) {
        std::string c =
            r.value.kind == Value::Kind::kNumber ? FormatNumber(r.value.number) : r.value.text;
        double pr = r.Probability(c);
        if (pr > best_p) {
          best_p = pr;
          best = &r;
        }
      }
      *p = *best;
      return absl::OkStatus();
    } else {
      return Unsupported(StrCat("multipleModelMethod '", method_, "' for classification"));
    }
    for (auto& [c, v] : acc) v /= total;
    p->probabilities = std::move(acc);
    if (const std::string* best = Argmax(p->probabilities))
      p->value = PredictedCategory(*symbols_, *best);
    return absl::OkStatus();
  }

 private:
  struct Segment {
    PredicatePtr predicate;
    ModelPtr model;
    double weight = 1.0;
  };
  std::string method_;
  std::vector<Segment> segments_;
  const Symbols* symbols_ = nullptr;
};

absl::StatusOr<ModelPtr> ParseModel(Xml n, Symbols* syms) {
  std::string_view name = n.name();
  if (name == "TreeModel") {
    auto m = std::make_unique<TreeModel>();
    OSPREY_RETURN_IF_ERROR(m->Parse(n, syms));
    m->numeric_target_ = m->target_slot() >= 0 && syms->at(m->target_slot()).numeric;
    return ModelPtr(std::move(m));
  }
  if (name == "RegressionModel") {
    auto m = std::make_unique<RegressionModel>();
    OSPREY_RETURN_IF_ERROR(m->Parse(n, syms));
    return ModelPtr(std::move(m));
  }
  if (name == "GeneralRegressionModel") {
    auto m = std::make_unique<GeneralRegressionModel>();
    OSPREY_RETURN_IF_ERROR(m->Parse(n, syms));
    return ModelPtr(std::move(m));
  }
  if (name == "MiningModel") {
    auto m = std::make_unique<MiningModel>();
    OSPREY_RETURN_IF_ERROR(m->Parse(n, syms));
    return ModelPtr(std::move(m));
  }
  return Unsupported(name);
}

// Every model element of PMML 4.4; the evaluator takes four of them.
bool IsModelElement(std::string_view n) {
  static const char* kModels[] = {"AnomalyDetectionModel",
                                  "AssociationModel",
                                  "BayesianNetworkModel",
                                  "BaselineModel",
                                  "ClusteringModel",
                                  "GaussianProcessModel",
                                  "GeneralRegressionModel",
                                  "MiningModel",
                                  "NaiveBayesModel",
                                  "NearestNeighborModel",
                                  "NeuralNetwork",
                                  "RegressionModel",
                                  "RuleSetModel",
                                  "SequenceModel",
                                  "Scorecard",
                                  "SupportVectorMachineModel",
                                  "TextModel",
                                  "TimeSeriesModel",
                                  "TreeModel"};
  return std::find(std::begin(kModels), std::end(kModels), n) != std::end(kModels);
}

}  // namespace

class Document {
 public:
  Symbols symbols;
  std::vector<Derived> global;  // TransformationDictionary
  ModelPtr model;
  std::vector<Column> inputs, outputs;
  std::vector<int> output_slots;
  std::string kind;
};

}  // namespace pmml

using pmml::Value;

PmmlModel::~PmmlModel() = default;

absl::StatusOr<std::unique_ptr<PmmlModel>> PmmlModel::Parse(std::string_view xml) {
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size());
  if (!parsed)
    return absl::InvalidArgumentError(
        StrCat("PMML: XML does not parse at offset ", parsed.offset, ": ", parsed.description()));
  pugi::xml_node root = doc.child("PMML");
  if (!root) return absl::InvalidArgumentError("PMML: no <PMML> root element");
  auto d = std::make_unique<pmml::Document>();
  for (pugi::xml_node f : root.child("DataDictionary").children("DataField")) {
    std::string name = f.attribute("name").as_string();
    std::string_view optype = f.attribute("optype").as_string();
    std::string_view type = f.attribute("dataType").as_string();
    // Continuous fields, and categorical ones of a numeric type, hold numbers.
    bool numeric = optype == "continuous" || pmml::IsNumericType(type);
    int slot = d->symbols.Add(name, numeric);
    for (pugi::xml_node v : f.children("Value")) {
      std::string_view property = v.attribute("property").as_string();
      if (property.empty() || property == "valid")
        d->symbols.at(slot).valid.push_back(v.attribute("value").as_string());
    }
  }
  if (pugi::xml_node td = root.child("TransformationDictionary")) {
    if (td.child("DefineFunction")) return pmml::Unsupported("DefineFunction");
    OSPREY_RETURN_IF_ERROR(pmml::ParseDerivedFields(td, &d->symbols, &d->global));
  }
  pugi::xml_node model;
  for (pugi::xml_node c = root.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && pmml::IsModelElement(c.name())) {
      model = c;
      break;
    }
  if (!model) return absl::InvalidArgumentError("PMML: no model element");
  OSPREY_ASSIGN_OR_RETURN(d->model, pmml::ParseModel(model, &d->symbols));
  d->kind = model.name();
  for (int slot : d->model->active) {
    const pmml::Field& f = d->symbols.at(slot);
    d->inputs.push_back({f.name, f.numeric});
  }
  if (d->model->target_slot() >= 0) {
    const pmml::Field& f = d->symbols.at(d->model->target_slot());
    d->outputs.push_back({f.name, d->model->classification() ? f.numeric : true});
    d->output_slots.push_back(d->model->target_slot());
  }
  for (const pmml::OutputSpec& o : d->model->outputs()) {
    d->outputs.push_back({o.name, o.numeric});
    d->output_slots.push_back(o.slot);
  }
  if (d->outputs.empty())
    return absl::InvalidArgumentError("PMML: the model has neither a target field nor outputs");
  std::unique_ptr<PmmlModel> m(new PmmlModel());
  m->doc_ = std::move(d);
  return m;
}

const std::vector<pmml::Column>& PmmlModel::inputs() const { return doc_->inputs; }
const std::vector<pmml::Column>& PmmlModel::outputs() const { return doc_->outputs; }
const std::string& PmmlModel::model_kind() const { return doc_->kind; }

absl::Status PmmlModel::Evaluate(std::span<const Value> row, std::vector<Value>* out) const {
  const pmml::Document& d = *doc_;
  pmml::Scope scope(d.symbols.size());
  const auto& treatments = d.model->treatments;
  for (size_t i = 0; i < treatments.size() && i < row.size(); ++i) {
    const auto& t = treatments[i];
    const pmml::Field& f = d.symbols.at(t.slot);
    Value v = row[i];
    bool invalid = false;
    // To the field's type: numbers for numeric fields, text for categorical ones.
    if (v.kind == Value::Kind::kString && f.numeric) {
      double x;
      if (v.text.empty())
        v = Value::Missing();
      else if (pmml::ParseDouble(v.text, &x))
        v = Value::Number(x);
      else
        invalid = true;
    } else if (v.kind == Value::Kind::kNumber && !f.numeric) {
      v = Value::String(pmml::FormatNumber(v.number));
    } else if (v.kind == Value::Kind::kNumber && std::isnan(v.number)) {
      v = Value::Missing();
    } else if (v.kind == Value::Kind::kString && v.text.empty()) {
      v = Value::Missing();
    }
    if (!v.missing() && !invalid && !f.valid.empty()) {
      invalid = std::none_of(f.valid.begin(), f.valid.end(), [&](const std::string& ok) {
        return pmml::Equal(v, pmml::ConstantFor(f, ok));
      });
    }
    if (invalid) {
      if (t.invalid == "returnInvalid")
        return absl::InvalidArgumentError(
            StrCat("field '", f.name, "': invalid value '",
                   v.kind == Value::Kind::kNumber ? pmml::FormatNumber(v.number) : v.text, "'"));
      if (t.invalid == "asMissing") v = Value::Missing();
    }
    if (v.kind == Value::Kind::kNumber && (v.number < t.low || v.number > t.high)) {
      if (t.outliers == "asMissingValues")
        v = Value::Missing();
      else if (t.outliers == "asExtremeValues")
        v.number = v.number < t.low ? t.low : t.high;
    }
    if (v.missing()) v = t.replacement;
    scope[static_cast<size_t>(t.slot)] = std::move(v);
  }
  for (const pmml::Derived& g : d.global) scope[static_cast<size_t>(g.slot)] = g.expr->Eval(scope);
  pmml::Prediction p;
  OSPREY_RETURN_IF_ERROR(d.model->Evaluate(scope, &p));
  out->clear();
  for (int slot : d.output_slots) out->push_back(scope[static_cast<size_t>(slot)]);
  return absl::OkStatus();
}

}  // namespace osprey
