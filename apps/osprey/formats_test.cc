// The control plane's format table and the model server's backends live on
// either side of a layer line (neither may include the other); this test,
// which links both, keeps them in step.

#include <gtest/gtest.h>

#include "backends/registry.h"
#include "controlplane/local/placement.h"

namespace osprey {
namespace {

TEST(Formats, EveryFormatOspreyServeIsGivenHasABackend) {
  const auto backends = controlplane::LocalFormatBackends();
  ASSERT_FALSE(backends.empty());
  for (const auto& name : backends)
    EXPECT_NE(FindBackend(name), nullptr) << "osprey serve --model-format " << name;
}

}  // namespace
}  // namespace osprey
