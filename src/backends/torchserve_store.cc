#include "backends/torchserve_store.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

#include "backends/archive.h"
#include "common/strings.h"

namespace osprey::torchserve {
namespace {

namespace fs = std::filesystem;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\f'; }

// A code point as UTF-8.
void AppendUtf8(uint32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// A logical line's escapes resolved (\t, \n, \r, \f, \uXXXX as Java's
// Properties.store writes non-ASCII; any other escaped character is itself).
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char c = s[++i];
    if (c == 'u' && i + 4 < s.size()) {
      uint32_t code = 0;
      bool hex = true;
      for (size_t k = 1; k <= 4; ++k) {
        const char h = s[i + k];
        const int v = h >= '0' && h <= '9'   ? h - '0'
                      : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                             : -1;
        hex = hex && v >= 0;
        code = code * 16 + static_cast<uint32_t>(v < 0 ? 0 : v);
      }
      if (hex) {
        AppendUtf8(code, &out);
        i += 4;
        continue;
      }
    }
    out.push_back(c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 'f' ? '\f' : c);
  }
  return out;
}

// True when `line` ends in an odd number of backslashes (it continues).
bool Continues(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && line[line.size() - 1 - n] == '\\') ++n;
  return n % 2 == 1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Stem(const std::string& file) { return fs::path(file).stem().string(); }

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("config.properties: ", what));
}

absl::StatusOr<StoreModel> ArchiveModel(const std::map<std::string, std::string>& archives,
                                        std::string name, const std::string& file,
                                        std::string_view property) {
  if (!archives.contains(file)) {
    std::string held;
    for (const auto& [f, _] : archives) StrAppend(&held, held.empty() ? "" : ", ", f);
    return Malformed(StrCat(property, " names ", file,
                            ", which model-store/ does not hold (it has ",
                            held.empty() ? std::string("no archive") : held, ")"));
  }
  if (name.empty()) {
    const std::string& manifest_name = archives.at(file);
    name = manifest_name.empty() ? Stem(file) : manifest_name;
  }
  return StoreModel{std::move(name), "", fs::path("model-store") / file};
}

absl::StatusOr<std::vector<StoreModel>> FromSnapshot(
    const std::string& text, const std::map<std::string, std::string>& archives) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("models") || !d["models"].IsObject())
    return Malformed("model_snapshot is not JSON with a \"models\" object");
  std::vector<StoreModel> out;
  for (const auto& m : d["models"].GetObject()) {
    const std::string name = m.name.GetString();
    if (!m.value.IsObject() || m.value.MemberCount() == 0)
      return Malformed(StrCat("model_snapshot.models.", name, " has no version"));
    const rapidjson::Value* chosen = nullptr;
    std::string version;
    for (const auto& v : m.value.GetObject()) {
      if (!v.value.IsObject())
        return Malformed(
            StrCat("model_snapshot.models.", name, ".", v.name.GetString(), " is not an object"));
      auto def = v.value.FindMember("defaultVersion");
      if (chosen == nullptr || (def != v.value.MemberEnd() && def->value.IsTrue())) {
        chosen = &v.value;
        version = v.name.GetString();
      }
    }
    auto mar = chosen->FindMember("marName");
    if (mar == chosen->MemberEnd() || !mar->value.IsString())
      return Malformed(StrCat("model_snapshot.models.", name, ".", version, " has no marName"));
    OSPREY_ASSIGN_OR_RETURN(StoreModel model, ArchiveModel(archives, name, mar->value.GetString(),
                                                           StrCat("model_snapshot.models.", name,
                                                                  ".", version, ".marName")));
    model.version = version;
    out.push_back(std::move(model));
  }
  if (out.empty()) return Malformed("model_snapshot has no model");
  return out;
}

}  // namespace

bool IsStore(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir / "model-store", ec))
    if (e.path().extension() == ".mar" && e.is_regular_file(ec)) return true;
  return false;
}

std::map<std::string, std::string> ParseProperties(std::string_view text) {
  std::map<std::string, std::string> out;
  std::string logical;
  bool continuing = false;
  size_t at = 0;
  while (at <= text.size()) {
    size_t end = text.find_first_of("\r\n", at);  // \n, \r\n or a lone \r ends a line
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + (end + 1 < text.size() && text[end] == '\r' && text[end + 1] == '\n' ? 2 : 1);
    size_t lead = 0;
    while (lead < line.size() && IsSpace(line[lead])) ++lead;
    line.remove_prefix(lead);
    if (!continuing && (line.empty() || line[0] == '#' || line[0] == '!')) {
      if (at > text.size()) break;
      continue;
    }
    continuing = Continues(line);
    if (continuing) line.remove_suffix(1);
    logical.append(line);
    if (continuing && at <= text.size()) continue;
    continuing = false;
    // The key ends at the first unescaped '=', ':' or space.
    size_t k = 0;
    while (k < logical.size() && logical[k] != '=' && logical[k] != ':' && !IsSpace(logical[k]))
      k += logical[k] == '\\' ? 2 : 1;
    k = std::min(k, logical.size());
    size_t v = k;
    while (v < logical.size() && IsSpace(logical[v])) ++v;
    if (v < logical.size() && (logical[v] == '=' || logical[v] == ':')) ++v;
    while (v < logical.size() && IsSpace(logical[v])) ++v;
    out[Unescape(std::string_view(logical).substr(0, k))] =
        Unescape(std::string_view(logical).substr(v));
    logical.clear();
  }
  return out;
}

absl::StatusOr<std::vector<StoreModel>> PlanStoreModels(
    const std::map<std::string, std::string>& properties,
    const std::map<std::string, std::string>& archives) {
  if (auto s = properties.find("model_snapshot"); s != properties.end() && !s->second.empty())
    return FromSnapshot(s->second, archives);
  std::string load = "all";
  if (auto l = properties.find("load_models"); l != properties.end() && !l->second.empty())
    load = l->second;
  std::vector<StoreModel> out;
  std::string lowered = load;
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lowered == "all") {
    for (const auto& [file, _] : archives) {
      OSPREY_ASSIGN_OR_RETURN(StoreModel m, ArchiveModel(archives, "", file, "load_models"));
      out.push_back(std::move(m));
    }
  } else {
    for (size_t at = 0; at <= load.size();) {
      size_t comma = std::min(load.find(',', at), load.size());
      std::string_view item = Trim(std::string_view(load).substr(at, comma - at));
      at = comma + 1;
      if (item.empty()) continue;
      std::string name;
      std::string file(item);
      if (size_t eq = item.find('='); eq != std::string_view::npos) {
        name = std::string(Trim(item.substr(0, eq)));
        file = std::string(Trim(item.substr(eq + 1)));
      }
      OSPREY_ASSIGN_OR_RETURN(StoreModel m, ArchiveModel(archives, name, file, "load_models"));
      out.push_back(std::move(m));
    }
  }
  if (out.empty())
    return absl::NotFoundError("model-store/ holds no TorchServe model archive (*.mar)");
  std::map<std::string, std::string> seen;  // name -> archive
  for (const StoreModel& m : out)
    if (auto [it, fresh] = seen.emplace(m.name, m.archive.filename().string()); !fresh)
      return Malformed(StrCat("two archives serve the model name '", m.name, "' (", it->second,
                              " and ", m.archive.filename().string(), ")"));
  return out;
}

absl::StatusOr<std::vector<StoreModel>> StoreModels(const fs::path& dir) {
  std::map<std::string, std::string> properties;
  std::error_code ec;
  if (fs::is_regular_file(dir / "config" / "config.properties", ec)) {
    std::ifstream in(dir / "config" / "config.properties");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    properties = ParseProperties(text);
  }
  std::map<std::string, std::string> archives;
  for (const auto& e : fs::directory_iterator(dir / "model-store", ec)) {
    if (e.path().extension() != ".mar" || !e.is_regular_file(ec)) continue;
    std::string name;
    if (auto manifest = ReadArchiveMember(e.path(), "MAR-INF/MANIFEST.json", 1 << 20);
        manifest.ok()) {
      rapidjson::Document d;
      d.Parse(manifest->data(), manifest->size());
      if (!d.HasParseError() && d.IsObject() && d.HasMember("model") && d["model"].IsObject() &&
          d["model"].HasMember("modelName") && d["model"]["modelName"].IsString())
        name = d["model"]["modelName"].GetString();
    }
    archives.emplace(e.path().filename().string(), std::move(name));
  }
  return PlanStoreModels(properties, archives);
}

absl::StatusOr<StoreModel> FindStoreModel(const fs::path& dir, std::string_view name) {
  OSPREY_ASSIGN_OR_RETURN(std::vector<StoreModel> models, StoreModels(dir));
  for (const StoreModel& m : models)
    if (m.name == name) return m;
  if (models.size() == 1) return models[0];
  std::string names;
  for (const StoreModel& m : models) StrAppend(&names, names.empty() ? "" : ", ", m.name);
  return absl::NotFoundError(StrCat("the TorchServe store ", dir.string(), " serves no model '",
                                    name, "' (it serves ", names, ")"));
}

}  // namespace osprey::torchserve
