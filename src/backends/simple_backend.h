#pragma once

// The Backend of a model class that loads itself: `ModelT` has a default
// constructor and `absl::Status Init(const LoadOptions&)`; the directory is
// recognised by a function of it. Every built-in backend is one of these.

#include <filesystem>
#include <memory>
#include <string_view>

#include "backends/backend.h"

namespace osprey {

template <typename ModelT>
class SimpleBackend final : public Backend {
 public:
  using Recognizer = bool (*)(const std::filesystem::path& dir);
  constexpr SimpleBackend(std::string_view name, Recognizer recognizes)
      : name_(name), recognizes_(recognizes) {}

  std::string_view name() const override { return name_; }
  bool Recognizes(const std::filesystem::path& dir) const override { return recognizes_(dir); }
  absl::StatusOr<std::unique_ptr<Model>> Load(const LoadOptions& options) const override {
    auto model = std::make_unique<ModelT>();
    OSPREY_RETURN_IF_ERROR(model->Init(options));
    return std::unique_ptr<Model>(std::move(model));
  }

 private:
  std::string_view name_;
  Recognizer recognizes_;
};

}  // namespace osprey
