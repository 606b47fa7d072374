#include "server/metrics.h"

#include <gtest/gtest.h>

namespace osprey {
namespace {

TEST(MetricsTest, RendersCountersAndCumulativeHistograms) {
  Metrics metrics;
  ModelMetrics* m = metrics.ForModel("iris");
  EXPECT_EQ(m, metrics.ForModel("iris"));
  m->success += 3;
  m->failure += 1;
  m->predict.Observe(0.0002);
  m->predict.Observe(0.003);
  metrics.CountHttpResponse(200);
  metrics.CountHttpResponse(404);
  std::string text = metrics.Render();
  EXPECT_NE(text.find("# TYPE request_predict_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find(R"(request_predict_seconds_bucket{model_name="iris",le="0.0001"} 0)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(request_predict_seconds_bucket{model_name="iris",le="0.00025"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(request_predict_seconds_bucket{model_name="iris",le="0.005"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(request_predict_seconds_count{model_name="iris"} 2)"), std::string::npos);
  EXPECT_NE(text.find(R"(osprey_inference_requests_total{model="iris",outcome="success"} 3)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(osprey_inference_requests_total{model="iris",outcome="failure"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(osprey_http_responses_total{code="4xx"} 1)"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValues) {
  Metrics metrics;
  metrics.ForModel("we\"ird\\name");
  EXPECT_NE(metrics.Render().find(R"(model="we\"ird\\name")"), std::string::npos);
}

}  // namespace
}  // namespace osprey
