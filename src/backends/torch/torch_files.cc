#include "backends/torch/torch_files.h"

#include "backends/model_files.h"

namespace osprey::torch_files {
namespace {

namespace fs = std::filesystem;

bool IsTorchScriptFile(const fs::path& p) {
  auto ext = p.extension().string();
  return (ext == ".pt" || ext == ".pth" || ext == ".torchscript") &&
         FileStartsWith(p, std::string_view("PK\x03\x04", 4));  // a TorchScript zip archive
}

}  // namespace

absl::StatusOr<fs::path> FindTorchFile(const fs::path& dir, const std::string& named) {
  if (!named.empty()) {
    fs::path p = dir / named;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec))
      return absl::NotFoundError(
          StrCat("default_model_filename '", named, "' not found in ", dir.string()));
    return p;
  }
  return FindModelFile(dir, "TorchScript model (*.pt, *.pth or *.torchscript)", IsTorchScriptFile);
}

// KServe's torchserve layout: model-store/<name>.mar (a zip holding
// MAR-INF/MANIFEST.json and the serialized model), config/config.properties.
absl::StatusOr<fs::path> FindModelArchive(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir / "model-store", ec))
    return absl::NotFoundError(StrCat("no model-store directory in ", dir.string()));
  return FindModelFile(dir / "model-store", "TorchServe model archive (*.mar)",
                       [](const fs::path& p) { return p.extension() == ".mar"; });
}

}  // namespace osprey::torch_files
