#include "backends/registry.h"

#ifdef OSPREY_WITH_LIGHTGBM
#include "backends/lightgbm/lightgbm_backend.h"
#endif
#ifdef OSPREY_WITH_PMML
#include "backends/pmml/pmml_backend.h"
#endif
#ifdef OSPREY_WITH_PYTHON
#include "backends/python/python_backend.h"
#endif
#ifdef OSPREY_WITH_TORCH
#include "backends/torch/torch_plugin.h"
#endif
#ifdef OSPREY_WITH_XGBOOST
#include "backends/xgboost/xgboost_backend.h"
#endif

namespace osprey {

const std::vector<const Backend*>& AllBackends() {
  static const std::vector<const Backend*> backends = [] {
    std::vector<const Backend*> list;
#ifdef OSPREY_WITH_PYTHON
    // First: an MLflow model directory also holds a flavor's model file
    // (model.ubj, model.pkl) that other backends would claim.
    list.push_back(&MlflowBackend());
#endif
#ifdef OSPREY_WITH_XGBOOST
    list.push_back(&XgboostBackend());
#endif
#ifdef OSPREY_WITH_LIGHTGBM
    list.push_back(&LightgbmBackend());
#endif
#ifdef OSPREY_WITH_TORCH
    list.push_back(&LazyTorchBackend());
#endif
#ifdef OSPREY_WITH_PMML
    list.push_back(&PmmlBackend());
#endif
#ifdef OSPREY_WITH_PYTHON
    list.push_back(&SklearnBackend());
    list.push_back(&OnnxBackend());
    list.push_back(&CustomBackend());
    list.push_back(&TensorflowBackend());
    list.push_back(&PaddleBackend());
    list.push_back(&TritonPythonBackend());
    list.push_back(&TorchServeBackend());
    list.push_back(&ArtExplainerBackend());
#endif
    return list;
  }();
  return backends;
}

const Backend* FindBackend(std::string_view name) {
  for (const Backend* b : AllBackends())
    if (b->name() == name) return b;
  return nullptr;
}

}  // namespace osprey
