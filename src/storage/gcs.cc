#include "storage/gcs.h"

#include <rapidjson/document.h>

#include <charconv>

#include "common/strings.h"
#include "storage/s3.h"
#include "storage/uri.h"

namespace osprey::storage {
namespace {

// The "message" of a JSON API error document, else empty.
std::string GcsErrorDetail(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return "";
  auto error = doc.FindMember("error");
  if (error == doc.MemberEnd() || !error->value.IsObject()) return "";
  auto message = error->value.FindMember("message");
  if (message == error->value.MemberEnd() || !message->value.IsString()) return "";
  return std::string(message->value.GetString(), message->value.GetStringLength());
}

class GcsBucket : public ObjectStore {
 public:
  GcsBucket(std::string base, std::string bucket, HttpClient* http)
      : base_(std::move(base)), bucket_(std::move(bucket)), http_(http) {}

  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    std::vector<ObjectInfo> out;
    std::string token;
    for (;;) {
      HttpRequest request{GcsListUrl(base_, bucket_, prefix, token), nullptr};
      OSPREY_ASSIGN_OR_RETURN(HttpResponse response, http_->Get(request));
      if (response.status != 200)
        return HttpStatusError(StrCat("listing ", Name(prefix)), response.status,
                               GcsErrorDetail(response.body));
      rapidjson::Document doc;
      doc.Parse(response.body.data(), response.body.size());
      if (doc.HasParseError() || !doc.IsObject())
        return absl::UnavailableError(StrCat("listing ", Name(prefix), ": the answer is not JSON"));
      if (auto items = doc.FindMember("items");
          items != doc.MemberEnd() && items->value.IsArray()) {
        for (const auto& item : items->value.GetArray()) {
          if (!item.IsObject() || !item.HasMember("name") || !item["name"].IsString()) continue;
          ObjectInfo info;
          info.key.assign(item["name"].GetString(), item["name"].GetStringLength());
          // The JSON API spells the size as a decimal string.
          if (item.HasMember("size") && item["size"].IsString()) {
            std::string_view size(item["size"].GetString(), item["size"].GetStringLength());
            std::from_chars(size.data(), size.data() + size.size(), info.size);
          }
          out.push_back(std::move(info));
        }
      }
      auto next = doc.FindMember("nextPageToken");
      if (next == doc.MemberEnd() || !next->value.IsString() || next->value.GetStringLength() == 0)
        break;
      token.assign(next->value.GetString(), next->value.GetStringLength());
    }
    return out;
  }

  absl::Status Get(std::string_view key, const std::filesystem::path& file,
                   const ByteProgress& progress) override {
    HttpRequest request{GcsObjectUrl(base_, bucket_, key), nullptr};
    OSPREY_ASSIGN_OR_RETURN(HttpResponse response, http_->Download(request, file, progress));
    if (response.status < 200 || response.status >= 300) {
      // Object reads answer errors in the XML API's shape, like S3's.
      std::string detail = S3ErrorDetail(response.body);
      if (detail.empty()) detail = GcsErrorDetail(response.body);
      return HttpStatusError(Name(key), response.status, detail);
    }
    return absl::OkStatus();
  }

  std::string Name(std::string_view key) const override {
    return StrCat("gs://", bucket_, "/", key);
  }

  std::string Origin() const override { return base_; }

 private:
  std::string base_;
  std::string bucket_;
  HttpClient* http_;
};

}  // namespace

std::string GcsBaseUrl(const EnvLookup& getenv) {
  std::optional<std::string> emulator = getenv("STORAGE_EMULATOR_HOST");
  if (!emulator || emulator->empty()) return "https://storage.googleapis.com";
  std::string base = *emulator;
  while (base.ends_with('/')) base.pop_back();
  if (base.find("://") == std::string::npos) base = StrCat("http://", base);
  return base;
}

std::unique_ptr<ObjectStore> NewGcsBucket(std::string base_url, std::string bucket,
                                          HttpClient* http) {
  return std::make_unique<GcsBucket>(std::move(base_url), std::move(bucket), http);
}

}  // namespace osprey::storage
