#pragma once

// Where the Kubernetes API server is and how to prove who we are: from a
// kubeconfig file (out of the cluster) or from the pod's service account (in
// the cluster). Plain data; the client (client.h) turns it into requests.

#include <string>

#include "common/status.h"

namespace osprey::kube {

struct Config {
  std::string server;  // https://host:port, no trailing slash
  // Server certificate authority: PEM data, else a file.
  std::string ca_pem;
  std::string ca_file;
  bool insecure = false;  // insecure-skip-tls-verify
  // Client certificate and key: PEM data, else files.
  std::string cert_pem;
  std::string cert_file;
  std::string key_pem;
  std::string key_file;
  // Bearer token: as given, else read from token_file at each request where
  // the file changed (a service account's projected token rotates).
  std::string token;
  std::string token_file;
  std::string namespace_ = "default";  // the context's, or the pod's
  std::string source;                  // "kubeconfig PATH (context C)" or "in-cluster"
};

// A kubeconfig (the current context, or `context` when given). Relative file
// paths are read relative to the kubeconfig's directory, as kubectl does.
absl::StatusOr<Config> LoadKubeconfig(const std::string& path, const std::string& context = "");

// The pod's service account: KUBERNETES_SERVICE_HOST and _PORT, and `dir`'s
// token, ca.crt and namespace.
absl::StatusOr<Config> InClusterConfig(
    const std::string& dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// --kubeconfig when given, else $KUBECONFIG (its first existing file: files
// are not merged as kubectl merges them), else in-cluster
// when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
absl::StatusOr<Config> ResolveConfig(const std::string& kubeconfig_flag);

}  // namespace osprey::kube
