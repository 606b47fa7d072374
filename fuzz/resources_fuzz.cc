// KServe, Knative and Istio YAML (and JSON) on any bytes; every resource
// read is written back and read again, and must come back equal
// (resources.h: FromJson(ToJson(r)) == r).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "resources/resources.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = osprey::resources::ParseYaml(text);
  (void)osprey::resources::YamlToJson(text);
  if (!parsed.ok()) return 0;
  for (const auto& r : *parsed) {
    const std::string json = osprey::resources::ToJson(r);
    auto again = osprey::resources::FromJson(json);
    if (!again.ok() || !(*again == r)) {
      std::fprintf(stderr, "round trip differs: %s\n%s\n", json.c_str(),
                   again.ok() ? osprey::resources::ToJson(*again).c_str()
                              : std::string(again.status().message()).c_str());
      std::abort();
    }
    (void)osprey::resources::JsonToYaml(json);
  }
  return 0;
}
