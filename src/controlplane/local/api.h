#pragma once

// The control plane's REST API (JSON), served by the HTTP server:
//
//   POST   /osprey/v1/apply?namespace=NS          body: KServe YAML (multi-document)
//   GET    /apis/serving.kserve.io/v1beta1[/namespaces/NS]/inferenceservices[/NAME]
//   DELETE /apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices/NAME
//   GET    /apis/serving.kserve.io/v1alpha1[/namespaces/NS]/servingruntimes[/NAME]
//   DELETE /apis/serving.kserve.io/v1alpha1/namespaces/NS/servingruntimes/NAME
//   GET    /apis/serving.kserve.io/v1alpha1/clusterservingruntimes[/NAME]
//   DELETE /apis/serving.kserve.io/v1alpha1/clusterservingruntimes/NAME
//   GET    /apis/serving.knative.dev/v1[/namespaces/NS]/revisions[/NAME]
//   GET    /osprey/v1[/namespaces/NS]/events
//   GET    /osprey/v1/namespaces/NS/inferenceservices/NAME/logs?revision=R&tail=N
//   GET    /apis/autoscaling.internal.knative.dev/v1alpha1[/namespaces/NS]/podautoscalers
//   GET    /osprey/v1/prometheus/targets          Prometheus HTTP service discovery: this API
//                                                 and every ready replica, labelled
//   GET    /metrics                               the gateway's metrics and the platform's
//                                                 (Prometheus text)
//   GET    /healthz
//
// Anything that changes state needs "Authorization: Bearer <token>" (401
// otherwise); reads are open. Errors are {"error": "..."} with the status
// code of their Status (400 for validation errors naming the field).

#include <functional>
#include <string>

#include "controlplane/local/controller.h"
#include "net/http_types.h"

namespace osprey::controlplane {

class ApiHandler : public HttpHandler {
 public:
  // `metrics` renders the gateway's Prometheus metrics for GET /metrics.
  ApiHandler(Controller* controller, std::string token, std::function<std::string()> metrics)
      : controller_(controller), token_(std::move(token)), metrics_(std::move(metrics)) {}
  void Handle(const HttpRequest& request, HttpDone done) override;

 private:
  HttpResponse Route(const HttpRequest& request);
  Controller* controller_;
  std::string token_;
  std::function<std::string()> metrics_;
};

}  // namespace osprey::controlplane
