#include "gateway/graph_gjson.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/json_numbers.h"

namespace osprey::gateway {
namespace {

using Value = rapidjson::Value;
using Alloc = rapidjson::Document::AllocatorType;

// A result: a value of the document or one built in the scratch allocator;
// nullptr when nothing exists.
using Result = const Value*;

struct Context {
  Alloc* alloc;
  std::vector<std::unique_ptr<Value>> built;  // values made for multipaths, #., # and modifiers
  Result Keep(Value v) {
    built.push_back(std::make_unique<Value>(std::move(v)));
    return built.back().get();
  }
};

Result Get(Context& c, Result v, std::string_view path);

// GJSON's pattern match (tidwall/match): * any run, ? one character, a
// backslash escapes the next one.
bool Like(std::string_view s, std::string_view p) {
  size_t si = 0, pi = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
      continue;
    }
    if (pi < p.size()) {
      const bool escaped = p[pi] == '\\' && pi + 1 < p.size();
      const char pc = escaped ? p[pi + 1] : p[pi];
      if ((!escaped && pc == '?') || pc == s[si]) {
        pi += escaped ? 2 : 1;
        ++si;
        continue;
      }
    }
    if (star == std::string_view::npos) return false;
    pi = star + 1;
    si = ++mark;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && static_cast<unsigned char>(s.front()) <= ' ') s.remove_prefix(1);
  while (!s.empty() && static_cast<unsigned char>(s.back()) <= ' ') s.remove_suffix(1);
  return s;
}

bool ParseIndex(std::string_view s, size_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// A JSON string literal's contents, unescaped ("" on a malformed one).
std::string Unquote(std::string_view quoted) {
  rapidjson::Document d;
  d.Parse(quoted.data(), quoted.size());
  return !d.HasParseError() && d.IsString() ? std::string(d.GetString(), d.GetStringLength())
                                            : std::string(quoted.substr(1, quoted.size() - 2));
}

// The end of a bracketed run starting at `open` ('(' '[' '{'), honouring
// strings and escapes; npos when unbalanced.
size_t Balanced(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
    } else if (ch == '(' || ch == '[' || ch == '{') {
      ++depth;
    } else if (ch == ')' || ch == ']' || ch == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::string_view::npos;
}

// The first '|' outside brackets and strings, or npos.
size_t TopLevelPipe(std::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
    } else if (ch == '(' || ch == '[' || ch == '{') {
      ++depth;
    } else if (ch == ')' || ch == ']' || ch == '}') {
      --depth;
    } else if (ch == '|' && depth == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

constexpr std::string_view kModifiers[] = {"this", "reverse", "keys", "values", "flatten", "valid"};

bool IsModifier(std::string_view rest) {
  size_t end = rest.find_first_of(".|:", 1);
  std::string_view name = rest.substr(1, end == std::string_view::npos ? rest.npos : end - 1);
  return std::find(std::begin(kModifiers), std::end(kModifiers), name) != std::end(kModifiers);
}

struct Query {
  std::string path;
  std::string op;  // "" (exists), "=", "!=", "<", "<=", ">", ">=", "%", "!%"
  std::string value;
  bool all = false;
};

// `#(` ... `)` [#] at the start of `s`; returns the length consumed, 0 when malformed.
size_t ParseQuery(std::string_view s, Query* q) {
  size_t close = Balanced(s, 1);
  if (close == std::string_view::npos) return 0;
  std::string_view inner = s.substr(2, close - 2);
  // The operator: the first of ! = < > % at depth 0, outside strings.
  size_t j = std::string_view::npos;
  int depth = 0;
  for (size_t i = 0; i < inner.size(); ++i) {
    char ch = inner[i];
    if (depth == 0 && (ch == '!' || ch == '=' || ch == '<' || ch == '>' || ch == '%')) {
      j = i;
      break;
    }
    if (ch == '\\') {
      ++i;
    } else if (ch == '(' || ch == '[') {
      ++depth;
    } else if (ch == ')' || ch == ']') {
      --depth;
    } else if (ch == '"') {
      for (++i; i < inner.size() && inner[i] != '"'; ++i)
        if (inner[i] == '\\') ++i;
    }
  }
  if (j == std::string_view::npos) {
    q->path = std::string(Trim(inner));
  } else {
    q->path = std::string(Trim(inner.substr(0, j)));
    std::string_view v = Trim(inner.substr(j));
    size_t op = 1;
    if (v.size() >= 2 && ((v[0] == '!' && (v[1] == '=' || v[1] == '%')) ||
                          ((v[0] == '<' || v[0] == '>') && v[1] == '='))) {
      op = 2;
    } else if (v.size() >= 2 && v[0] == '=' && v[1] == '=') {
      v.remove_prefix(1);
    }
    q->op = std::string(v.substr(0, op));
    std::string_view value = Trim(v.substr(op));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      q->value = Unquote(value);
    else
      q->value = std::string(value);
  }
  size_t used = close + 1;
  if (used < s.size() && s[used] == '#') {
    q->all = true;
    ++used;
  }
  return used;
}

bool Truthy(const Value& v, bool* out) {
  if (v.IsTrue()) return *out = true, true;
  if (v.IsNumber()) return *out = v.GetDouble() != 0, true;
  if (v.IsString()) {
    std::string s(v.GetString(), v.GetStringLength());
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (s == "1" || s == "t" || s == "true") return *out = true, true;
    if (s == "0" || s == "f" || s == "false") return *out = false, true;
  }
  return false;
}

bool Falsy(const Value& v, bool* out) {
  if (v.IsNull() || v.IsFalse()) return *out = true, true;
  if (v.IsNumber()) return *out = v.GetDouble() == 0, true;
  if (v.IsString()) {
    bool t;
    if (Truthy(v, &t)) return *out = !t, true;
  }
  return *out = false, true;
}

bool Matches(const Query& q, Result found) {
  std::string rpv = q.value;
  Value converted;
  if (!rpv.empty() && rpv[0] == '~') {
    std::string_view kind = std::string_view(rpv).substr(1);
    bool ish = false, known = true;
    if (kind == "*") {
      ish = found != nullptr;
    } else if (kind == "null") {
      ish = found != nullptr && found->IsNull();
    } else if (kind == "true") {
      ish = found != nullptr && Truthy(*found, &ish) && ish;
    } else if (kind == "false") {
      ish = found != nullptr && Falsy(*found, &ish) && ish;
    } else {
      known = false;
    }
    if (!known) return false;
    rpv = "true";
    converted.SetBool(ish);
    found = &converted;
  }
  if (found == nullptr) return false;
  if (q.op.empty()) return true;
  const Value& v = *found;
  if (v.IsString()) {
    std::string_view s(v.GetString(), v.GetStringLength());
    if (q.op == "=") return s == rpv;
    if (q.op == "!=") return s != rpv;
    if (q.op == "<") return s < rpv;
    if (q.op == "<=") return s <= rpv;
    if (q.op == ">") return s > rpv;
    if (q.op == ">=") return s >= rpv;
    if (q.op == "%") return Like(s, rpv);
    if (q.op == "!%") return !Like(s, rpv);
    return false;
  }
  if (v.IsNumber()) {
    // strconv.ParseFloat: an unparsable value reads as 0.
    char* end = nullptr;
    double n = std::strtod(rpv.c_str(), &end);
    if (end != rpv.c_str() + rpv.size()) n = 0;
    double x = v.GetDouble();
    if (q.op == "=") return x == n;
    if (q.op == "!=") return x != n;
    if (q.op == "<") return x < n;
    if (q.op == "<=") return x <= n;
    if (q.op == ">") return x > n;
    if (q.op == ">=") return x >= n;
    return false;
  }
  if (v.IsTrue()) {
    if (q.op == "=") return rpv == "true";
    if (q.op == "!=") return rpv != "true";
    if (q.op == ">") return rpv == "false";
    if (q.op == ">=") return true;
    return false;
  }
  if (v.IsFalse()) {
    if (q.op == "=") return rpv == "false";
    if (q.op == "!=") return rpv != "false";
    if (q.op == "<") return rpv == "true";
    if (q.op == "<=") return true;
  }
  return false;
}

Result Modifier(Context& c, Result v, std::string_view path) {
  size_t end = path.find_first_of(".|:", 1);
  std::string_view name = path.substr(1, end == path.npos ? path.npos : end - 1);
  if (end != path.npos && path[end] == ':') return nullptr;  // arguments: unsupported
  Result out = nullptr;
  if (name == "this" || name == "valid") {
    out = v;
  } else if (name == "reverse") {
    if (v->IsArray()) {
      Value a(rapidjson::kArrayType);
      for (auto it = v->End(); it != v->Begin();) a.PushBack(Value(*--it, *c.alloc), *c.alloc);
      out = c.Keep(std::move(a));
    } else if (v->IsObject()) {
      Value o(rapidjson::kObjectType);
      for (auto it = v->MemberEnd(); it != v->MemberBegin();) {
        --it;
        o.AddMember(Value(it->name, *c.alloc), Value(it->value, *c.alloc), *c.alloc);
      }
      out = c.Keep(std::move(o));
    } else {
      out = v;
    }
  } else if (name == "keys" || name == "values") {
    Value a(rapidjson::kArrayType);
    if (v->IsObject()) {
      for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it)
        a.PushBack(Value(name == "keys" ? it->name : it->value, *c.alloc), *c.alloc);
    } else if (v->IsArray() && name == "values") {
      out = v;
    }
    if (out == nullptr) out = c.Keep(std::move(a));
  } else if (name == "flatten") {
    if (!v->IsArray()) {
      out = v;
    } else {
      Value a(rapidjson::kArrayType);
      for (const Value& e : v->GetArray()) {
        if (e.IsArray())
          for (const Value& x : e.GetArray()) a.PushBack(Value(x, *c.alloc), *c.alloc);
        else
          a.PushBack(Value(e, *c.alloc), *c.alloc);
      }
      out = c.Keep(std::move(a));
    }
  } else {
    return nullptr;
  }
  if (end == path.npos) return out;
  return Get(c, out, path.substr(end + 1));
}

// The last component's name of a path, for a {p1,p2} multipath's keys.
std::string NameOfLast(std::string_view path) {
  for (size_t i = path.size(); i-- > 0;) {
    if (path[i] == '|' || path[i] == '.') {
      if (i > 0 && path[i - 1] == '\\') continue;
      return std::string(path.substr(i + 1));
    }
  }
  return std::string(path);
}

bool SimpleName(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (static_cast<unsigned char>(ch) < ' ' || ch == '[' || ch == ']' || ch == '{' || ch == '}' ||
        ch == '(' || ch == ')' || ch == '#' || ch == '|' || ch == '!')
      return false;
  return true;
}

Result MultiPath(Context& c, Result v, std::string_view path) {
  size_t close = Balanced(path, 0);
  if (close == std::string_view::npos) return nullptr;
  const bool object = path[0] == '{';
  std::string_view inner = path.substr(1, close - 1);
  std::vector<std::string_view> subs;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < inner.size(); ++i) {
    char ch = inner[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '"') {
      for (++i; i < inner.size() && inner[i] != '"'; ++i)
        if (inner[i] == '\\') ++i;
    } else if (ch == '(' || ch == '[' || ch == '{') {
      ++depth;
    } else if (ch == ')' || ch == ']' || ch == '}') {
      --depth;
    } else if (ch == ',' && depth == 0) {
      subs.push_back(inner.substr(start, i - start));
      start = i + 1;
    }
  }
  subs.push_back(inner.substr(start));
  Value out(object ? rapidjson::kObjectType : rapidjson::kArrayType);
  for (std::string_view sub : subs) {
    sub = Trim(sub);
    if (sub.empty()) continue;
    std::string name;
    if (object) {
      // "name":path or name:path (a colon outside brackets and strings).
      size_t colon = std::string_view::npos;
      if (sub[0] == '"') {
        size_t q = 1;
        while (q < sub.size() && sub[q] != '"') q += sub[q] == '\\' ? 2 : 1;
        if (q + 1 < sub.size() && sub[q + 1] == ':') {
          name = Unquote(sub.substr(0, q + 1));
          colon = q + 1;
        }
      } else {
        for (size_t i = 0; i < sub.size(); ++i) {
          if (sub[i] == '\\') {
            ++i;
          } else if (sub[i] == '[' || sub[i] == '(' || sub[i] == '{' || sub[i] == '.') {
            break;
          } else if (sub[i] == ':') {
            name = std::string(sub.substr(0, i));
            colon = i;
            break;
          }
        }
      }
      if (colon != std::string_view::npos) {
        sub = sub.substr(colon + 1);
      } else {
        name = NameOfLast(sub);
        if (!SimpleName(name)) name = "_";
      }
    }
    Result r = Get(c, v, sub);
    if (r == nullptr) continue;
    if (object)
      out.AddMember(Value(name.c_str(), static_cast<rapidjson::SizeType>(name.size()), *c.alloc),
                    Value(*r, *c.alloc), *c.alloc);
    else
      out.PushBack(Value(*r, *c.alloc), *c.alloc);
  }
  Result built = c.Keep(std::move(out));
  std::string_view rest = path.substr(close + 1);
  if (rest.empty()) return built;
  if (rest[0] != '.' && rest[0] != '|') return nullptr;
  return Get(c, built, rest.substr(1));
}

Result InArray(Context& c, const Value& a, std::string_view path) {
  if (path.size() >= 2 && path[0] == '#' && (path[1] == '(' || path[1] == '[')) {
    Query q;
    size_t used = ParseQuery(path, &q);
    if (used == 0) return nullptr;
    std::string_view rest = path.substr(used);
    std::string_view more;
    std::string_view pipe;
    bool piped = false;
    if (!rest.empty()) {
      if (rest[0] == '|') {
        pipe = rest.substr(1);
        piped = true;
      } else if (rest[0] == '.') {
        more = rest.substr(1);
        if (q.all) {
          // In #(...)#.a|b, the pipe applies to the array of matches.
          size_t p = TopLevelPipe(more);
          if (p != std::string_view::npos) {
            pipe = more.substr(p + 1);
            more = more.substr(0, p);
            piped = true;
          }
        }
      } else {
        return nullptr;
      }
    }
    Value all(rapidjson::kArrayType);
    for (const Value& e : a.GetArray()) {
      Result res;
      if (e.IsObject() || e.IsArray())
        res = Get(c, &e, q.path);
      else
        res = q.path.empty() ? &e : nullptr;
      if (!Matches(q, res)) continue;
      Result picked = more.empty() ? &e : Get(c, &e, more);
      if (!q.all) return piped && picked != nullptr ? Get(c, picked, pipe) : picked;
      if (picked != nullptr) all.PushBack(Value(*picked, *c.alloc), *c.alloc);
    }
    if (!q.all) return nullptr;
    Result built = c.Keep(std::move(all));
    return piped ? Get(c, built, pipe) : built;
  }
  if (path == "#" || path.starts_with("#|")) {
    Result count = c.Keep(Value(static_cast<int64_t>(a.Size())));
    return path.size() == 1 ? count : Get(c, count, path.substr(2));
  }
  if (path.starts_with("#.")) {
    std::string_view more = path.substr(2);
    std::string_view pipe;
    size_t p = TopLevelPipe(more);
    if (p != std::string_view::npos) {
      pipe = more.substr(p + 1);
      more = more.substr(0, p);
    }
    Value out(rapidjson::kArrayType);
    for (const Value& e : a.GetArray())
      if (Result r = Get(c, &e, more); r != nullptr) out.PushBack(Value(*r, *c.alloc), *c.alloc);
    Result built = c.Keep(std::move(out));
    return p == std::string_view::npos ? built : Get(c, built, pipe);
  }
  // An index.
  size_t end = path.find_first_of(".|");
  std::string_view part = path.substr(0, end);
  size_t index;
  if (!ParseIndex(part, &index) || index >= a.Size()) return nullptr;
  const Value& e = a[static_cast<rapidjson::SizeType>(index)];
  if (end == std::string_view::npos) return &e;
  return Get(c, &e, path.substr(end + 1));
}

Result InObject(Context& c, const Value& o, std::string_view path) {
  std::string part;
  bool wild = false;
  size_t i = 0;
  for (; i < path.size(); ++i) {
    char ch = path[i];
    if (ch == '\\' && i + 1 < path.size()) {
      part.push_back('\\');
      part.push_back(path[++i]);
      continue;
    }
    if (ch == '.' || ch == '|') break;
    if (ch == '*' || ch == '?') wild = true;
    part.push_back(ch);
  }
  // Without wildcards, escapes are literal characters.
  std::string key;
  if (!wild) {
    for (size_t k = 0; k < part.size(); ++k) key.push_back(part[k] == '\\' ? part[++k] : part[k]);
  }
  const Value* found = nullptr;
  for (auto it = o.MemberBegin(); it != o.MemberEnd(); ++it) {
    std::string_view name(it->name.GetString(), it->name.GetStringLength());
    if (wild ? Like(name, part) : name == key) {
      found = &it->value;
      break;
    }
  }
  if (found == nullptr) return nullptr;
  if (i >= path.size()) return found;
  return Get(c, found, path.substr(i + 1));
}

Result Get(Context& c, Result v, std::string_view path) {
  if (v == nullptr) return nullptr;
  if (path.size() > 1 && path[0] == '@') return IsModifier(path) ? Modifier(c, v, path) : nullptr;
  if (!path.empty() && (path[0] == '[' || path[0] == '{')) return MultiPath(c, v, path);
  if (v->IsArray()) return InArray(c, *v, path);
  if (v->IsObject()) return InObject(c, *v, path);
  return nullptr;  // a scalar has no members
}

}  // namespace

bool ParseGraphJson(std::string_view json, rapidjson::Document* d) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char ch = json[i];
    if (in_string) {
      if (ch == '\\')
        ++i;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > kMaxGraphJsonNesting) return false;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  ParseSafely<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(*d, json);
  return !d->HasParseError();
}

bool GjsonExists(const JsonValue& document, std::string_view path) {
  rapidjson::Document scratch;
  Context c{&scratch.GetAllocator(), {}};
  return Get(c, &document, path) != nullptr;
}

bool GjsonExists(std::string_view json, std::string_view path) {
  rapidjson::Document d;
  if (!ParseGraphJson(json, &d)) return false;
  return GjsonExists(d, path);
}

std::string GjsonGet(std::string_view json, std::string_view path) {
  rapidjson::Document d;
  if (!ParseGraphJson(json, &d)) return "";
  Context c{&d.GetAllocator(), {}};
  Result r = Get(c, &d, path);
  if (r == nullptr) return "";
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  r->Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace osprey::gateway
