#include "backends/torch/torch_plugin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "backends/torch/torch_files.h"
#include "common/logging.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

// A cheap look: a TorchScript file (TorchServe's archives are the Python
// runtime's, python_backend.h).
bool RecognizesTorch(const fs::path& dir) {
  auto config = ReadModelConfig(dir);
  std::string named = config.ok() && config->has_value() ? (*config)->default_model_filename : "";
  return torch_files::FindTorchFile(dir, named).ok();
}

std::vector<std::string> Candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("OSPREY_TORCH_PLUGIN"); env != nullptr && *env != '\0')
    out.emplace_back(env);
#ifdef OSPREY_TORCH_PLUGIN_PATH
  out.emplace_back(OSPREY_TORCH_PLUGIN_PATH);
#endif
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((self.parent_path() / "libosprey_torch.so").string());
  return out;
}

class LazyTorch : public Backend {
 public:
  std::string_view name() const override { return "pytorch"; }
  bool Recognizes(const fs::path& dir) const override { return RecognizesTorch(dir); }
  absl::StatusOr<std::unique_ptr<Model>> Load(const LoadOptions& options) const override {
    std::call_once(once_, [this] { Open(); });
    if (backend_ == nullptr) return absl::FailedPreconditionError(error_);
    return backend_->Load(options);
  }

 private:
  void Open() const {
    std::string tried;
    for (const auto& path : Candidates()) {
      std::error_code ec;
      if (!fs::exists(path, ec)) {
        StrAppend(&tried, tried.empty() ? "" : ", ", path, " (missing)");
        continue;
      }
      // Never closed: models of the plugin live until the process ends.
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        StrAppend(&tried, tried.empty() ? "" : ", ", path, " (", dlerror(), ")");
        continue;
      }
      auto entry = reinterpret_cast<TorchPluginEntry>(dlsym(handle, "osprey_torch_backend"));
      if (entry == nullptr) {
        StrAppend(&tried, tried.empty() ? "" : ", ", path, " (no osprey_torch_backend)");
        continue;
      }
      backend_ = entry();
      OSPREY_LOG(kInfo) << "loaded the PyTorch backend from " << path;
      return;
    }
    error_ = StrCat("the PyTorch backend plugin could not be loaded: tried ", tried);
  }

  mutable std::once_flag once_;
  mutable const Backend* backend_ = nullptr;
  mutable std::string error_;
};

}  // namespace

const Backend& LazyTorchBackend() {
  static const LazyTorch backend;
  return backend;
}

}  // namespace osprey
