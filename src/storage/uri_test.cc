// Model URI parsing and the URLs each scheme maps to.

#include "storage/uri.h"

#include <gtest/gtest.h>

#include <map>

#include "storage/gcs.h"
#include "storage/s3.h"

namespace osprey::storage {
namespace {

EnvLookup Env(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ModelUriTest, Schemes) {
  auto s3 = ParseModelUri("s3://models/iris/v1");
  ASSERT_TRUE(s3.ok()) << s3.status();
  EXPECT_EQ(s3->scheme, Scheme::kS3);
  EXPECT_EQ(s3->location, "models");
  EXPECT_EQ(s3->path, "iris/v1");

  auto gs = ParseModelUri("gs://kfserving-examples/models/sklearn/1.0/model");
  ASSERT_TRUE(gs.ok());
  EXPECT_EQ(gs->scheme, Scheme::kGcs);
  EXPECT_EQ(gs->location, "kfserving-examples");
  EXPECT_EQ(gs->path, "models/sklearn/1.0/model");

  auto bucket_only = ParseModelUri("s3://models");
  ASSERT_TRUE(bucket_only.ok());
  EXPECT_EQ(bucket_only->path, "");

  auto pvc = ParseModelUri("pvc://my-claim/models/iris");
  ASSERT_TRUE(pvc.ok());
  EXPECT_EQ(pvc->scheme, Scheme::kPvc);
  EXPECT_EQ(pvc->location, "my-claim");
  EXPECT_EQ(pvc->path, "models/iris");

  auto http = ParseModelUri("https://example.com/models/iris.tar.gz?x=1");
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->scheme, Scheme::kHttp);
  EXPECT_EQ(http->location, "https://example.com/models/iris.tar.gz?x=1");

  auto file = ParseModelUri("file:///mnt/models/my%20model");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->scheme, Scheme::kFile);
  EXPECT_EQ(file->location, "/mnt/models/my model");

  auto bare = ParseModelUri("relative/dir");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->scheme, Scheme::kFile);
  EXPECT_EQ(bare->location, "relative/dir");
  EXPECT_TRUE(IsRemote(Scheme::kS3));
  EXPECT_FALSE(IsRemote(Scheme::kPvc));
}

TEST(ModelUriTest, Refusals) {
  for (std::string_view bad : {"", "ftp://host/x", "s3://", "s3:///key", "gs://", "pvc://",
                               "http://", "file://relative/path", "hdfs://nn/x"}) {
    auto parsed = ParseModelUri(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok() && !bad.empty()) {
      EXPECT_NE(std::string(parsed.status().message()).find(bad), std::string::npos)
          << parsed.status();
    }
  }
}

TEST(ModelUriTest, UrlFileName) {
  EXPECT_EQ(UrlFileName("http://h/models/iris.tar.gz?sig=abc#frag"), "iris.tar.gz");
  EXPECT_EQ(UrlFileName("https://h:8080/a/model%20v1.bst"), "model v1.bst");
  EXPECT_EQ(UrlFileName("http://h/"), "model");
  EXPECT_EQ(UrlFileName("http://h"), "model");
  EXPECT_EQ(UrlFileName("http://h/a/.."), "model");
  EXPECT_EQ(UrlFileName("http://h/a/x%2Fy"), "model");
}

TEST(GcsTest, PublicUrls) {
  EXPECT_EQ(GcsBaseUrl(Env({})), "https://storage.googleapis.com");
  EXPECT_EQ(
      GcsObjectUrl("https://storage.googleapis.com", "kfserving-examples",
                   "models/sklearn/1.0/model/model.joblib"),
      "https://storage.googleapis.com/kfserving-examples/models/sklearn/1.0/model/model.joblib");
  EXPECT_EQ(GcsObjectUrl("https://storage.googleapis.com", "b", "dir/a b+c"),
            "https://storage.googleapis.com/b/dir/a%20b%2Bc");
  EXPECT_EQ(GcsListUrl("https://storage.googleapis.com", "kfserving-examples",
                       "models/sklearn/1.0/model", ""),
            "https://storage.googleapis.com/storage/v1/b/kfserving-examples/"
            "o?prefix=models%2Fsklearn%2F1.0%2Fmodel");
  EXPECT_EQ(GcsListUrl("https://storage.googleapis.com", "b", "p/", "tok=1"),
            "https://storage.googleapis.com/storage/v1/b/b/o?prefix=p%2F&pageToken=tok%3D1");
  EXPECT_EQ(GcsBaseUrl(Env({{"STORAGE_EMULATOR_HOST", "localhost:4443"}})),
            "http://localhost:4443");
  EXPECT_EQ(GcsBaseUrl(Env({{"STORAGE_EMULATOR_HOST", "https://gcs.local/"}})),
            "https://gcs.local");
}

TEST(S3Test, DefaultsToAwsVirtualHostedAnonymous) {
  auto config = S3ConfigFromEnv(Env({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->region, "us-east-1");
  EXPECT_TRUE(config->credentials.access_key_id.empty());
  EXPECT_TRUE(config->verify_tls);
  S3Address a = S3AddressOf(*config, "models", "iris/model.bst");
  EXPECT_EQ(a.base_url, "https://models.s3.us-east-1.amazonaws.com");
  EXPECT_EQ(a.host, "models.s3.us-east-1.amazonaws.com");
  EXPECT_EQ(a.path, "/iris/model.bst");
  // Dots in a bucket name break TLS wildcards: path-style.
  S3Address dotted = S3AddressOf(*config, "my.models", "k");
  EXPECT_EQ(dotted.base_url, "https://s3.us-east-1.amazonaws.com");
  EXPECT_EQ(dotted.path, "/my.models/k");
}

TEST(S3Test, EndpointMeansPathStyle) {
  auto config = S3ConfigFromEnv(Env({{"S3_ENDPOINT", "minio.local:9000"},
                                     {"S3_USE_HTTPS", "0"},
                                     {"S3_VERIFY_SSL", "0"},
                                     {"AWS_DEFAULT_REGION", "eu-west-1"},
                                     {"AWS_ACCESS_KEY_ID", "AK"},
                                     {"AWS_SECRET_ACCESS_KEY", "SK"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->scheme, "http");
  EXPECT_FALSE(config->verify_tls);
  EXPECT_EQ(config->region, "eu-west-1");
  EXPECT_EQ(config->credentials.access_key_id, "AK");
  S3Address a = S3AddressOf(*config, "models", "iris");
  EXPECT_EQ(a.base_url, "http://minio.local:9000");
  EXPECT_EQ(a.host, "minio.local:9000");
  EXPECT_EQ(a.path, "/models/iris");
  EXPECT_EQ(S3AddressOf(*config, "models", "").path, "/models");

  // AWS_ENDPOINT_URL wins over S3_ENDPOINT, and its scheme over S3_USE_HTTPS.
  auto url = S3ConfigFromEnv(Env({{"AWS_ENDPOINT_URL", "https://s3.internal/"},
                                  {"S3_ENDPOINT", "other:1"},
                                  {"S3_USE_HTTPS", "0"}}));
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->endpoint, "s3.internal");
}

TEST(S3Test, ConfigRefusals) {
  EXPECT_FALSE(S3ConfigFromEnv(Env({{"AWS_ACCESS_KEY_ID", "AK"}})).ok());
  EXPECT_FALSE(S3ConfigFromEnv(Env({{"AWS_ENDPOINT_URL", "ftp://host"}})).ok());
  EXPECT_FALSE(S3ConfigFromEnv(Env({{"S3_ENDPOINT", "host/path"}})).ok());
}

TEST(S3Test, ErrorDetail) {
  EXPECT_EQ(
      S3ErrorDetail("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                    "<Message>The specified key does not exist.</Message>"
                    "<Key>a/b</Key></Error>"),
      "NoSuchKey: The specified key does not exist.");
  EXPECT_EQ(S3ErrorDetail("<Error><Code>AccessDenied</Code></Error>"), "AccessDenied");
  EXPECT_EQ(S3ErrorDetail("not xml"), "");
  EXPECT_EQ(S3ErrorDetail(""), "");
}

}  // namespace
}  // namespace osprey::storage
