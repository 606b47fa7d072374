// deploy/kubernetes/clusterservingruntimes.yaml is what `kubectl apply -k
// deploy/kubernetes` installs in a cluster; BuiltinClusterRuntimes() is what
// the local platform and the operator's runtime selection know. They must be
// the same runtimes, field by field, so that a model picks the same runtime
// on one machine and in a cluster.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "common/strings.h"
#include "resources/resources.h"

#ifndef OSPREY_DEPLOY_RUNTIMES_YAML
#error "OSPREY_DEPLOY_RUNTIMES_YAML (path of deploy/kubernetes/clusterservingruntimes.yaml) unset"
#endif

namespace osprey::resources {
namespace {

std::map<std::string, ServingRuntime> ByName(const std::vector<ServingRuntime>& runtimes) {
  std::map<std::string, ServingRuntime> out;
  for (const ServingRuntime& rt : runtimes) {
    EXPECT_TRUE(out.emplace(rt.meta.name, rt).second) << "runtime listed twice: " << rt.meta.name;
  }
  return out;
}

std::vector<ServingRuntime> ParseDeployFile() {
  std::ifstream in(OSPREY_DEPLOY_RUNTIMES_YAML);
  EXPECT_TRUE(in.good()) << "cannot read " << OSPREY_DEPLOY_RUNTIMES_YAML;
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<Resource>> parsed = ParseYaml(text.str());
  EXPECT_TRUE(parsed.ok()) << OSPREY_DEPLOY_RUNTIMES_YAML << ": " << parsed.status();
  std::vector<ServingRuntime> out;
  if (!parsed.ok()) return out;
  for (const Resource& r : *parsed) {
    EXPECT_EQ(KindOf(r), "ClusterServingRuntime") << "every document is a ClusterServingRuntime";
    if (const auto* rt = std::get_if<ServingRuntime>(&r)) out.push_back(*rt);
  }
  return out;
}

std::string Formats(const ServingRuntime& rt) {
  std::string out;
  for (const SupportedModelFormat& f : rt.formats) {
    out += StrCat(f.name, ":", f.version, f.auto_select ? " autoSelect" : "",
                  f.priority ? StrCat(" priority=", *f.priority) : "", "; ");
  }
  return out;
}

std::string Env(const Container& c) {
  std::string out;
  for (const EnvVar& e : c.env) out += StrCat(e.name, "=", e.value, "; ");
  return out;
}

TEST(DeployRuntimes, SameNamesAsBuiltins) {
  std::map<std::string, ServingRuntime> deployed = ByName(ParseDeployFile());
  std::map<std::string, ServingRuntime> builtin = ByName(BuiltinClusterRuntimes());
  ASSERT_FALSE(builtin.empty());
  for (const auto& [name, rt] : builtin) {
    EXPECT_TRUE(deployed.contains(name)) << name << " is built in but not in the deploy file";
  }
  for (const auto& [name, rt] : deployed) {
    EXPECT_TRUE(builtin.contains(name)) << name << " is in the deploy file but not built in";
  }
}

TEST(DeployRuntimes, EachRuntimeEqualsItsBuiltin) {
  std::map<std::string, ServingRuntime> deployed = ByName(ParseDeployFile());
  for (const ServingRuntime& want : BuiltinClusterRuntimes()) {
    auto it = deployed.find(want.meta.name);
    if (it == deployed.end()) continue;  // reported by SameNamesAsBuiltins
    const ServingRuntime& got = it->second;
    SCOPED_TRACE(want.meta.name);
    EXPECT_TRUE(got.cluster);
    EXPECT_EQ(got.meta.namespace_, "");
    EXPECT_EQ(Formats(got), Formats(want));
    EXPECT_EQ(got.protocol_versions, want.protocol_versions);
    EXPECT_EQ(got.multi_model, want.multi_model);
    EXPECT_EQ(got.disabled, want.disabled);
    ASSERT_EQ(got.containers.size(), want.containers.size());
    for (size_t i = 0; i < want.containers.size(); ++i) {
      const Container& g = got.containers[i];
      const Container& w = want.containers[i];
      SCOPED_TRACE(w.name);
      EXPECT_EQ(g.name, w.name);
      EXPECT_EQ(g.image, w.image);
      EXPECT_EQ(g.command, w.command);
      EXPECT_EQ(g.args, w.args);
      EXPECT_EQ(Env(g), Env(w));
      EXPECT_EQ(g.resources_json, w.resources_json);
      EXPECT_EQ(g.readiness_probe_json, w.readiness_probe_json);
    }
    // Whatever the fields above miss (labels, annotations, probe reading).
    EXPECT_TRUE(got == want) << "ToJson(deployed):\n"
                             << ToJson(got) << "\nToJson(builtin):\n"
                             << ToJson(want);
  }
}

}  // namespace
}  // namespace osprey::resources
