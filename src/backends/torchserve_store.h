#pragma once

// KServe's torchserve layout, as TorchServe starts it: model archives (.mar,
// zips holding MAR-INF/MANIFEST.json, the model, its handler and extra files)
// in model-store/, and config/config.properties saying which to serve under
// which name. The archives run in the Python runtime with TorchServe's own
// handlers (python_backend.h, format torchserve); this is how a directory is
// recognised and which models it serves, read without Python or libtorch.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::torchserve {

// One model a store serves: its name, its version and its archive.
struct StoreModel {
  std::string name;
  std::string version;            // "" when the configuration names none
  std::filesystem::path archive;  // model-store/<file>.mar
};

// A model store: model-store/ holding at least one *.mar.
bool IsStore(const std::filesystem::path& dir);

// Java properties text (what config.properties is): `key=value`, `key: value`
// or `key value` lines, `#`/`!` comments, a trailing backslash continues a line.
std::map<std::string, std::string> ParseProperties(std::string_view text);

// Which models TorchServe would start, from the configuration's properties
// and the store's archives (file name -> the modelName of its manifest):
// model_snapshot's models (each its defaultVersion, or its only version), else
// load_models ("all", or a comma list of `file.mar` / `name=file.mar`), else
// every archive, each under its manifest's modelName (else its file's stem).
// InvalidArgument naming the property when it is malformed or names an
// archive the store lacks. Pure: table-tested.
absl::StatusOr<std::vector<StoreModel>> PlanStoreModels(
    const std::map<std::string, std::string>& properties,
    const std::map<std::string, std::string>& archives);

// PlanStoreModels over `dir`: config/config.properties (optional) and the
// archives of model-store/ (their manifests read from the zips).
absl::StatusOr<std::vector<StoreModel>> StoreModels(const std::filesystem::path& dir);

// The model of `dir` served as `name`: the one so named, else the only one.
absl::StatusOr<StoreModel> FindStoreModel(const std::filesystem::path& dir, std::string_view name);

}  // namespace osprey::torchserve
