#pragma once

// A private certificate authority for a local server: what `osprey up`
// makes on its first start so its Kubernetes-style API can speak TLS (kubectl
// sends credentials only over TLS) without anything to install. The CA's
// certificate goes into the kubeconfig; clients verify the server by it.

#include <string>
#include <vector>

#include "common/status.h"

namespace osprey::tls {

struct PkiFiles {
  std::string ca_certificate;      // PEM: the CA clients trust
  std::string server_certificate;  // PEM: the server's, signed by the CA
  std::string server_key;          // PEM: its private key (0600)
};

// Ensures `dir` holds a CA (ca.crt, ca.key) and a server certificate
// (server.crt, server.key) for `hosts` (IP addresses and DNS names, as
// subjectAltNames), made with P-256 keys: kept when present, valid for at
// least another 30 days and naming every host; else made anew (the CA is
// kept when it is still valid). Keys are written owner-only.
absl::StatusOr<PkiFiles> EnsureServerPki(const std::string& dir,
                                         const std::vector<std::string>& hosts);

}  // namespace osprey::tls
