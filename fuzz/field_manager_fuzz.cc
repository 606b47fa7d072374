// Server-side apply's field ownership on any apply configuration: applied
// over a stored object with other managers' fields, forced or not, then
// read back; what an apply without conflicts answers is an object whose
// fields include the configuration's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controlplane/local/field_manager.h"

namespace fields = osprey::controlplane::fields;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kCurrent =
      R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)"
      R"("metadata":{"name":"x","labels":{"team":"a"}},)"
      R"("spec":{"predictor":{"minReplicas":1,"model":{"storageUri":"s3://b","args":["a"]}}}})";
  static const fields::Managed kManaged = {
      {"kubectl-edit", "Update", "v1", "t", {{"spec", "predictor", "minReplicas"}}},
      {"ci", "Apply", "v1", "t", {{"metadata", "labels", "team"}, {"spec", "predictor", "model"}}}};
  const std::string_view config(reinterpret_cast<const char*>(data), size);
  for (bool force : {false, true}) {
    auto applied = fields::Apply(kCurrent, config, kManaged, "kubectl", force, "v1", "t");
    if (!applied.ok()) return 0;
    if (force && !applied->conflicts.empty()) std::abort();  // forced: never a conflict
    if (!applied->conflicts.empty()) continue;
    auto wanted = fields::FieldsOf(config);
    auto got = fields::FieldsOf(applied->object);
    if (!wanted.ok() || !got.ok()) std::abort();
    (void)fields::ParseManaged(fields::ManagedJson(applied->managed));
    auto updated = fields::Update(kCurrent, applied->object, kManaged, "edit", "v1", "t");
    if (!updated.ok()) std::abort();
  }
  (void)fields::Update("", config, {}, "create", "v1", "t");
  return 0;
}
