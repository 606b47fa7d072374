#include "kube/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "common/strings.h"

namespace osprey::kube {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(what, " ", path, " cannot be read"));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Base64 as kubeconfig's *-data fields hold it (whitespace ignored).
absl::StatusOr<std::string> DecodeBase64(std::string_view text, std::string_view field) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    int v = value(c);
    if (v < 0) return absl::InvalidArgumentError(StrCat(field, ": not base64"));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string Scalar(const YAML::Node& node, const char* key) {
  if (!node.IsMap() || !node[key] || !node[key].IsScalar()) return "";
  return node[key].as<std::string>();
}

// The entry named `name` of a kubeconfig list (clusters, users, contexts).
std::optional<YAML::Node> Named(const YAML::Node& list, const std::string& name,
                                const char* inner) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& e : list)
    if (Scalar(e, "name") == name && e[inner]) return e[inner];
  return std::nullopt;
}

std::string Resolve(const fs::path& base, const std::string& file) {
  if (file.empty() || fs::path(file).is_absolute()) return file;
  return (base / file).string();
}

}  // namespace

absl::StatusOr<Config> LoadKubeconfig(const std::string& path, const std::string& context_name) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(StrCat("kubeconfig ", path, " cannot be read"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path, ": ", e.what()));
  }
  std::string ctx = context_name.empty() ? Scalar(root, "current-context") : context_name;
  if (ctx.empty())
    return absl::InvalidArgumentError(
        StrCat("kubeconfig ", path, ": no current-context and no context given"));
  std::optional<YAML::Node> found_context = Named(root["contexts"], ctx, "context");
  if (!found_context)
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path, ": no context named ", ctx));
  const YAML::Node& context = *found_context;
  std::string cluster_name = Scalar(context, "cluster");
  std::string user_name = Scalar(context, "user");
  std::optional<YAML::Node> found_cluster = Named(root["clusters"], cluster_name, "cluster");
  if (!found_cluster)
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path, ": context ", ctx,
                                             " names cluster ", cluster_name,
                                             ", which is not in clusters"));
  const YAML::Node& cluster = *found_cluster;
  std::optional<YAML::Node> found_user = Named(root["users"], user_name, "user");
  if (!user_name.empty() && !found_user)
    return absl::InvalidArgumentError(StrCat("kubeconfig ", path, ": context ", ctx, " names user ",
                                             user_name, ", which is not in users"));
  YAML::Node user = found_user.value_or(YAML::Node());
  const fs::path base = fs::path(path).parent_path();

  Config c;
  c.source = StrCat("kubeconfig ", path, " (context ", ctx, ")");
  c.server = Scalar(cluster, "server");
  while (c.server.ends_with('/')) c.server.pop_back();
  if (c.server.empty())
    return absl::InvalidArgumentError(
        StrCat("kubeconfig ", path, ": cluster ", cluster_name, " has no server"));
  c.insecure = Scalar(cluster, "insecure-skip-tls-verify") == "true";
  if (std::string data = Scalar(cluster, "certificate-authority-data"); !data.empty()) {
    OSPREY_ASSIGN_OR_RETURN(c.ca_pem, DecodeBase64(data, "certificate-authority-data"));
  } else {
    c.ca_file = Resolve(base, Scalar(cluster, "certificate-authority"));
  }
  if (user.IsMap()) {
    if (std::string data = Scalar(user, "client-certificate-data"); !data.empty()) {
      OSPREY_ASSIGN_OR_RETURN(c.cert_pem, DecodeBase64(data, "client-certificate-data"));
    } else {
      c.cert_file = Resolve(base, Scalar(user, "client-certificate"));
    }
    if (std::string data = Scalar(user, "client-key-data"); !data.empty()) {
      OSPREY_ASSIGN_OR_RETURN(c.key_pem, DecodeBase64(data, "client-key-data"));
    } else {
      c.key_file = Resolve(base, Scalar(user, "client-key"));
    }
    c.token = Scalar(user, "token");
    c.token_file = Resolve(base, Scalar(user, "tokenFile"));
    if (user["exec"] || user["auth-provider"])
      return absl::UnimplementedError(
          StrCat("kubeconfig ", path, ": user ", user_name,
                 " authenticates through an exec plugin or auth provider, which Osprey does not "
                 "run; use a token, a client certificate or a service account"));
  }
  if (std::string ns = Scalar(context, "namespace"); !ns.empty()) c.namespace_ = ns;
  return c;
}

absl::StatusOr<Config> InClusterConfig(const std::string& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0')
    return absl::FailedPreconditionError(
        "not in a cluster: KUBERNETES_SERVICE_HOST is not set (give --kubeconfig)");
  Config c;
  c.source = "in-cluster service account";
  std::string h = host;
  if (h.find(':') != std::string::npos) h = StrCat("[", h, "]");  // IPv6
  c.server = StrCat("https://", h, ":", port != nullptr && *port != '\0' ? port : "443");
  c.token_file = StrCat(dir, "/token");
  c.ca_file = StrCat(dir, "/ca.crt");
  if (!fs::exists(c.token_file))
    return absl::NotFoundError(StrCat("service account token ", c.token_file, " is missing"));
  if (auto ns = ReadFile(StrCat(dir, "/namespace"), "namespace file"); ns.ok()) {
    std::string text = *ns;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (!text.empty()) c.namespace_ = text;
  }
  return c;
}

absl::StatusOr<Config> ResolveConfig(const std::string& flag) {
  if (!flag.empty()) return LoadKubeconfig(flag);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string list = env;
    for (size_t start = 0; start <= list.size();) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      std::string file = list.substr(start, end - start);
      if (!file.empty() && fs::exists(file)) return LoadKubeconfig(file);
      start = end + 1;
    }
    return absl::NotFoundError(StrCat("KUBECONFIG=", list, ": no such file"));
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0')
    return InClusterConfig();
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    std::string file = StrCat(home, "/.kube/config");
    if (fs::exists(file)) return LoadKubeconfig(file);
  }
  return absl::NotFoundError(
      "no Kubernetes configuration: give --kubeconfig, set KUBECONFIG, or run in a cluster");
}

}  // namespace osprey::kube
