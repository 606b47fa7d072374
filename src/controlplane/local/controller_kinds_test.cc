#include <gtest/gtest.h>

#include "controlplane/local/controller.h"
#include "resources/kinds.h"

namespace osprey::controlplane {
namespace {

// Every kind of the table is served, and users delete exactly the kinds they
// apply: a new kind added to one table and not the other fails here.
TEST(ControllerKinds, EveryKindIsServedAndDeletableExactlyWhenApplied) {
  auto served = Controller::KindsServed();
  ASSERT_EQ(served.size(), resources::Kinds().size());
  for (const auto& [plural, deletable] : served) {
    const resources::KindInfo* k = resources::FindKind(plural);
    ASSERT_NE(k, nullptr) << plural;
    EXPECT_EQ(deletable, k->applied) << plural;
  }
}

}  // namespace
}  // namespace osprey::controlplane
