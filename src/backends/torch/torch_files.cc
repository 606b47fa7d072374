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

}  // namespace osprey::torch_files
