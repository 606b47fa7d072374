#include "storage/s3.h"

#include <charconv>
#include <pugixml.hpp>

#include "common/strings.h"
#include "storage/crypto.h"

namespace osprey::storage {
namespace {

bool IsFalse(const std::optional<std::string>& v) {
  return v.has_value() && (*v == "0" || *v == "false" || *v == "False" || *v == "FALSE");
}

std::optional<std::string> NonEmpty(const EnvLookup& getenv, std::string_view name) {
  std::optional<std::string> v = getenv(name);
  if (v.has_value() && v->empty()) return std::nullopt;
  return v;
}

// S3 answers 403 both for "who are you?" and "not for you"; the codes below
// are the first kind, which no other object or listing would fix.
absl::Status S3StatusError(std::string_view what, long status, std::string_view body) {
  std::string detail = S3ErrorDetail(body);
  absl::Status error = HttpStatusError(what, status, detail);
  for (std::string_view code : {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
                                "ExpiredToken", "AuthorizationHeaderMalformed"})
    if (std::string_view(detail).starts_with(code))
      return absl::UnauthenticatedError(error.message());
  return error;
}

class S3Bucket : public ObjectStore {
 public:
  S3Bucket(S3Config config, std::string bucket, HttpClient* http)
      : config_(std::move(config)), bucket_(std::move(bucket)), http_(http) {}

  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    std::vector<ObjectInfo> out;
    std::string token;
    for (;;) {
      HeaderList query = {{"list-type", "2"}, {"prefix", std::string(prefix)}};
      if (!token.empty()) query.emplace_back("continuation-token", token);
      OSPREY_ASSIGN_OR_RETURN(HttpResponse response, http_->Get(Request("", query)));
      if (response.status != 200)
        return S3StatusError(StrCat("listing ", Name(prefix)), response.status, response.body);
      pugi::xml_document doc;
      if (!doc.load_buffer(response.body.data(), response.body.size()))
        return absl::UnavailableError(
            StrCat("listing ", Name(prefix), ": the answer is not a ListBucketResult"));
      pugi::xml_node result = doc.child("ListBucketResult");
      if (!result)
        return absl::UnavailableError(
            StrCat("listing ", Name(prefix), ": the answer is not a ListBucketResult"));
      for (pugi::xml_node c : result.children("Contents")) {
        ObjectInfo info;
        info.key = c.child_value("Key");
        std::string_view size = c.child_value("Size");
        std::from_chars(size.data(), size.data() + size.size(), info.size);
        out.push_back(std::move(info));
      }
      std::string_view truncated = result.child_value("IsTruncated");
      token = result.child_value("NextContinuationToken");
      if (truncated != "true") break;
      if (token.empty())
        return absl::UnavailableError(
            StrCat("listing ", Name(prefix), ": truncated listing without a continuation token"));
    }
    return out;
  }

  absl::Status Get(std::string_view key, const std::filesystem::path& file,
                   const ByteProgress& progress) override {
    OSPREY_ASSIGN_OR_RETURN(HttpResponse response,
                            http_->Download(Request(key, {}), file, progress));
    if (response.status < 200 || response.status >= 300)
      return S3StatusError(Name(key), response.status, response.body);
    return absl::OkStatus();
  }

  std::string Name(std::string_view key) const override {
    return StrCat("s3://", bucket_, "/", key);
  }

  std::string Origin() const override { return S3AddressOf(config_, bucket_, "").base_url; }

 private:
  // A GET of `key` (empty: the bucket) with `query`, signed anew at each attempt.
  HttpRequest Request(std::string_view key, HeaderList query) const {
    S3Address address = S3AddressOf(config_, bucket_, key);
    HttpRequest request;
    request.url = StrCat(address.base_url, UriEncode(address.path, /*encode_slash=*/false));
    if (!query.empty()) StrAppend(&request.url, "?", CanonicalQuery(query));
    request.headers = [this, address, query] {
      static const std::string kEmptySha256 = Sha256Hex("");
      std::vector<std::string> headers = {StrCat("Host: ", address.host),
                                          StrCat("x-amz-content-sha256: ", kEmptySha256)};
      if (config_.credentials.access_key_id.empty()) return headers;
      SigV4Request r;
      r.host = address.host;
      r.path = address.path;
      r.query = query;
      r.headers = {{"x-amz-content-sha256", kEmptySha256}};
      r.payload_sha256 = kEmptySha256;
      SigV4Signature sig = SignV4(r, config_.credentials, config_.region, "s3",
                                  AmzDate(std::chrono::system_clock::now()));
      headers.clear();
      for (const auto& [name, value] : sig.headers) headers.push_back(StrCat(name, ": ", value));
      return headers;
    };
    return request;
  }

  S3Config config_;
  std::string bucket_;
  HttpClient* http_;
};

}  // namespace

absl::StatusOr<S3Config> S3ConfigFromEnv(const EnvLookup& getenv) {
  S3Config config;
  std::optional<std::string> endpoint = NonEmpty(getenv, "AWS_ENDPOINT_URL_S3");
  if (!endpoint) endpoint = NonEmpty(getenv, "AWS_ENDPOINT_URL");
  if (!endpoint) endpoint = NonEmpty(getenv, "S3_ENDPOINT");
  if (IsFalse(getenv("S3_USE_HTTPS"))) config.scheme = "http";
  if (endpoint) {
    std::string_view e = *endpoint;
    if (size_t sep = e.find("://"); sep != std::string_view::npos) {
      config.scheme = std::string(e.substr(0, sep));
      e.remove_prefix(sep + 3);
      if (config.scheme != "http" && config.scheme != "https")
        return absl::InvalidArgumentError(
            StrCat("S3 endpoint '", *endpoint, "': scheme must be http or https"));
    }
    while (e.ends_with('/')) e.remove_suffix(1);
    if (e.empty() || e.find('/') != std::string_view::npos)
      return absl::InvalidArgumentError(
          StrCat("S3 endpoint '", *endpoint, "' must be host[:port] or scheme://host[:port]"));
    config.endpoint = std::string(e);
  }
  config.verify_tls = !IsFalse(getenv("S3_VERIFY_SSL"));
  config.ca_bundle = NonEmpty(getenv, "AWS_CA_BUNDLE").value_or("");
  std::optional<std::string> region = NonEmpty(getenv, "AWS_DEFAULT_REGION");
  if (!region) region = NonEmpty(getenv, "AWS_REGION");
  if (region) config.region = *region;
  config.credentials.access_key_id = NonEmpty(getenv, "AWS_ACCESS_KEY_ID").value_or("");
  config.credentials.secret_access_key = NonEmpty(getenv, "AWS_SECRET_ACCESS_KEY").value_or("");
  config.credentials.session_token = NonEmpty(getenv, "AWS_SESSION_TOKEN").value_or("");
  if (config.credentials.access_key_id.empty() != config.credentials.secret_access_key.empty())
    return absl::InvalidArgumentError(
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, for "
        "anonymous access)");
  return config;
}

S3Address S3AddressOf(const S3Config& config, std::string_view bucket, std::string_view key) {
  S3Address address;
  // Virtual-hosted on AWS, except for bucket names with dots, which TLS
  // wildcard certificates do not cover.
  bool path_style = !config.endpoint.empty() || bucket.find('.') != std::string_view::npos;
  if (path_style) {
    address.host =
        config.endpoint.empty() ? StrCat("s3.", config.region, ".amazonaws.com") : config.endpoint;
    address.path = StrCat("/", bucket);
    if (!key.empty()) StrAppend(&address.path, "/", key);
  } else {
    address.host = StrCat(bucket, ".s3.", config.region, ".amazonaws.com");
    address.path = StrCat("/", key);
  }
  address.base_url = StrCat(config.scheme, "://", address.host);
  return address;
}

std::string S3ErrorDetail(std::string_view xml) {
  pugi::xml_document doc;
  if (xml.empty() || !doc.load_buffer(xml.data(), xml.size())) return "";
  pugi::xml_node error = doc.child("Error");
  if (!error) return "";
  std::string code = error.child_value("Code");
  std::string message = error.child_value("Message");
  if (code.empty()) return message;
  return message.empty() ? code : StrCat(code, ": ", message);
}

std::unique_ptr<ObjectStore> NewS3Bucket(S3Config config, std::string bucket, HttpClient* http) {
  return std::make_unique<S3Bucket>(std::move(config), std::move(bucket), http);
}

}  // namespace osprey::storage
