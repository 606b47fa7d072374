#pragma once

// s3://bucket/key-or-prefix over the S3 REST API, signed with SigV4
// (anonymous when no credentials are set).
//
// Environment (KServe's names):
//   AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or S3_ENDPOINT   host[:port] or URL;
//       when set, requests are path-style against it ({endpoint}/{bucket}/{key});
//       else virtual-hosted against AWS ({bucket}.s3.{region}.amazonaws.com).
//   S3_USE_HTTPS    "0"/"false": http for an endpoint without a scheme (default 1)
//   S3_VERIFY_SSL   "0"/"false": do not verify the server's certificate (default 1)
//   AWS_CA_BUNDLE   PEM file of CAs to trust
//   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
//   AWS_DEFAULT_REGION (then AWS_REGION; default us-east-1)

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/object_store.h"
#include "storage/sigv4.h"

namespace osprey::storage {

struct S3Config {
  std::string scheme = "https";
  std::string endpoint;  // host[:port]; empty: AWS
  bool verify_tls = true;
  std::string ca_bundle;
  std::string region = "us-east-1";
  SigV4Credentials credentials;  // empty access key: anonymous requests
};

// InvalidArgument for a malformed endpoint, or only one of the key pair set.
absl::StatusOr<S3Config> S3ConfigFromEnv(const EnvLookup& getenv);

struct S3Address {
  std::string base_url;  // scheme://host[:port]
  std::string host;      // the Host header
  std::string path;      // decoded: "/bucket/key" (path-style) or "/key"
};

// Where a request about `key` in `bucket` goes (key may be empty: the bucket).
S3Address S3AddressOf(const S3Config& config, std::string_view bucket, std::string_view key);

// "Code: Message" from an S3 error document (<Error><Code>..</Code>
// <Message>..</Message></Error>); empty when `xml` is not one.
std::string S3ErrorDetail(std::string_view xml);

// `http` must outlive the store.
std::unique_ptr<ObjectStore> NewS3Bucket(S3Config config, std::string bucket, HttpClient* http);

}  // namespace osprey::storage
