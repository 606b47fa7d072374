#pragma once

// Kubernetes placement: the objects that run a revision (reconciler.h, in
// KServe's terms) in a cluster, and what the operator reads back from them,
// as pure functions over JSON.
//
// A revision runs as a Deployment named as Knative names a revision's
// ({isvc}-predictor-00001-deployment) and a Service named after the revision
// ({isvc}-predictor-00001), both owned by the InferenceService (deleting it
// garbage-collects them). Knative's naming keeps every revision of a canary
// rollout side by side, which KServe's raw-deployment names
// ({isvc}-predictor) cannot. The revision's spec is kept in an annotation of
// its Deployment, so the operator holds no state of its own: a restarted
// operator reads every revision back from the cluster.
//
// The pod: the storage initializer (`osprey storage pull URI /mnt/models`)
// as an init container into an emptyDir at /mnt/models, KServe's layout; the
// serving container `kserve-container`: Osprey's model server for KServe's
// model-server images, else the container as written.
//
// A Knative Service's revision (RevisionSpec::kind kKnativeServiceKind)
// runs as Knative runs it, owned by the Service: its container as written
// (`user-container` when unnamed) listening on its declared port (8080 when
// it declares none), given in PORT, with K_SERVICE, K_CONFIGURATION and
// K_REVISION; its readiness probe (an httpGet or tcpSocket without a port
// probes that one), else a TCP connect to it (Knative's default).

#include <rapidjson/fwd.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controlplane/knative.h"
#include "controlplane/observe.h"
#include "controlplane/reconciler.h"

namespace osprey::controlplane {

inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kManagedBy[] = "osprey";
inline constexpr char kIsvcLabel[] = "serving.kserve.io/inferenceservice";
inline constexpr char kRevisionLabel[] = "serving.knative.dev/revision";
inline constexpr char kRevisionAnnotation[] = "serving.osprey.dev/revision";
inline constexpr char kFieldManager[] = "osprey";

// Which InferenceServices this operator takes. kAll: every one, except those
// annotated serving.osprey.dev/controller with another value. kAnnotated:
// only those annotated serving.osprey.dev/controller: osprey, so that a
// cluster that runs KServe's controller too can give Osprey some and KServe
// the rest (KServe's controller must then be kept off them, e.g. in other
// namespaces).
enum class Claim { kAll, kAnnotated };
inline constexpr char kControllerAnnotation[] = "serving.osprey.dev/controller";
bool Claimed(Claim claim, const std::map<std::string, std::string>& annotations);

struct KubePlacementConfig {
  std::string image = "osprey:dev";  // Osprey's image: model server and storage initializer
  std::string image_pull_policy = "IfNotPresent";
  int http_port = 8080;
  int grpc_port = 8081;
  int readiness_period_seconds = 1;
  // Where a transformer or explainer reaches its predictor: the gateway's
  // address in the cluster; its --predictor_host becomes
  // {gateway_address}/serving/{ns}/{isvc}-predictor (the gateway's path
  // route to the predictor, so its split, canary and scale from zero apply).
  std::string gateway_address = "osprey-gateway.osprey-system";
  // Tracing of the replicas: the exporter and sampler every serving
  // container gets (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER(_ARG);
  // empty: none, tracing off), and the platform's resource attributes each
  // one's OTEL_RESOURCE_ATTRIBUTES extends (ReplicaTraceEnv).
  std::vector<std::pair<std::string, std::string>> trace_env;
  std::string trace_resource;
};

struct OwnerRef {
  std::string name;
  std::string uid;
};

// Whether Osprey runs the cluster's Knative Services, from what
// serving.knative.dev/v1 serves: Services, and not Revisions or
// Configurations (which Knative Serving's own CRDs add: its controller runs
// them there).
bool OspreyRunsKnative(const std::set<std::string>& served);

// A Knative Service's in-cluster name ({name}.{ns}.svc.cluster.local, its
// status.address): a Service of type ExternalName to the gateway, as
// Knative makes one to its ingress; "" when the gateway's address is not a
// DNS name without a port (an address or a port cannot be a CNAME).
std::string KnativeAddressServiceJson(const resources::ObjectMeta& ksvc, const OwnerRef& owner,
                                      const KubePlacementConfig& config);

// The port a Knative Service's container serves on: its first declared
// containerPort, else 8080.
int KnativeContainerPort(const resources::Container& c);

// The Deployment's and Service's names of a revision.
std::string DeploymentName(const RevisionSpec& rev);

// A revision that cannot run on Kubernetes (no Osprey backend for its format,
// a model-server image without a format): reason and message; empty if it can.
struct KubeFailure {
  std::string reason;
  std::string message;
};
KubeFailure CheckRunnable(const RevisionSpec& rev);

// The Deployment of `rev` for server-side apply, with `replicas` (nullopt
// leaves spec.replicas to whoever scales it).
std::string DeploymentJson(const RevisionSpec& rev, const OwnerRef& owner,
                           const KubePlacementConfig& config, std::optional<int> replicas);
// The revision's Service (ClusterIP; port 80 to the container's HTTP port,
// and the gRPC port).
std::string ServiceJson(const RevisionSpec& rev, const OwnerRef& owner,
                        const KubePlacementConfig& config);

// The replicas a revision's Deployment is made with; later the autoscaler
// (the gateway's KPA, or an HPA) owns the count.
int InitialReplicas(const RevisionSpec& rev);

// serving.kserve.io/autoscalerClass: hpa on the InferenceService (or its
// predictor): Kubernetes' HorizontalPodAutoscaler scales it, not the KPA.
bool UsesHpa(const std::map<std::string, std::string>& isvc_annotations,
             const std::map<std::string, std::string>& predictor_annotations);

// An autoscaling/v2 HorizontalPodAutoscaler for an aspired revision's
// Deployment, named as the revision: between `min_replicas` (at least 1: an
// HPA does not scale to zero) and `max_replicas` (0, unbounded in KServe,
// becomes min + 10: an HPA needs a bound), on CPU (the default) or memory
// utilization at `target` percent (80).
std::string HpaJson(const RevisionSpec& rev, const OwnerRef& owner, int min_replicas,
                    int max_replicas, const std::string& metric, std::optional<int> target);

// A revision read back from its Deployment (the annotation); nullopt when it
// is not one of Osprey's.
std::optional<RevisionSpec> RevisionOfDeployment(const rapidjson::Value& deployment);

// What the cluster shows of a revision's pods.
struct PodView {
  std::string name;
  bool ready = false;
  bool deleting = false;
  int restarts = 0;
  // The storage initializer: "" not started, running, done, failed (message).
  std::string init_state;
  std::string init_message;
  // The serving container waiting after crashes (CrashLoopBackOff) or
  // terminated with an error: its reason and last message.
  std::string crash_reason;
  std::string crash_message;
};
PodView ReadPod(const rapidjson::Value& pod);

// The observations ObserveRevision takes, from the revision's Deployment
// (null when it does not exist yet) and pods.
RevisionObservations ObserveDeployment(const RevisionSpec& rev, const rapidjson::Value* deployment,
                                       const std::vector<PodView>& pods, bool aspired,
                                       const std::string& now);

// The InferenceService's status as stored, read back: traffic, revisions,
// rollout and the conditions' transition times.
struct StoredStatus {
  IsvcStatus status;
  std::map<std::string, std::string> transition_times;
  int64_t observed_generation = 0;
  bool present = false;
};
StoredStatus ReadStatus(const rapidjson::Value& isvc);

// A Knative Service's status as stored, read back.
struct StoredKnative {
  KnativeStatus status;
  std::map<std::string, std::string> transition_times;
  int64_t observed_generation = 0;
  bool present = false;
};
StoredKnative ReadKnativeStatus(const rapidjson::Value& ksvc);

}  // namespace osprey::controlplane
