#include "backends/xgboost/forest.h"

#include <charconv>
#include <cmath>

#include "rapidjson/document.h"

namespace osprey {
namespace {

using rapidjson::Value;

// Numbers are parsed as strings and read straight into float, as libxgboost
// does; parsing through double could round differently.
bool ReadFloat(const Value& v, float* out) {
  if (!v.IsString()) return false;
  const char* s = v.GetString();
  auto r = std::from_chars(s, s + v.GetStringLength(), *out);
  return r.ec == std::errc();
}

bool ReadInt(const Value& v, int64_t* out) {
  if (!v.IsString()) return false;
  const char* s = v.GetString();
  auto r = std::from_chars(s, s + v.GetStringLength(), *out);
  return r.ec == std::errc();
}

// XGBoost writes some integers as JSON strings ("4"), parsed here the same way.
bool ReadIntField(const Value& obj, const char* key, int64_t* out) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && ReadInt(it->value, out);
}

const Value* Path(const Value& root, std::initializer_list<const char*> keys) {
  const Value* v = &root;
  for (const char* k : keys) {
    if (!v->IsObject()) return nullptr;
    auto it = v->FindMember(k);
    if (it == v->MemberEnd()) return nullptr;
    v = &it->value;
  }
  return v;
}

absl::Status Unsupported(std::string_view why) {
  return absl::UnimplementedError(StrCat("native evaluator: ", why));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Forest>> Forest::Compile(std::string_view model_json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(model_json.data(), model_json.size());
  if (doc.HasParseError() || !doc.IsObject()) return Unsupported("model JSON does not parse");
  const Value* learner = Path(doc, {"learner"});
  if (learner == nullptr) return Unsupported("no 'learner' in model JSON");
  std::unique_ptr<Forest> f(new Forest());

  const Value* booster_name = Path(*learner, {"gradient_booster", "name"});
  if (booster_name == nullptr || !booster_name->IsString() ||
      std::string_view(booster_name->GetString()) != "gbtree")
    return Unsupported("booster is not gbtree");
  const Value* param = Path(*learner, {"learner_model_param"});
  const Value* objective = Path(*learner, {"objective", "name"});
  if (param == nullptr || objective == nullptr || !objective->IsString())
    return Unsupported("missing learner_model_param or objective");
  f->objective_ = objective->GetString();

  int64_t num_class = 0, num_target = 1;
  float base_score = 0.5f;
  ReadIntField(*param, "num_class", &num_class);
  ReadIntField(*param, "num_target", &num_target);
  if (!ReadIntField(*param, "num_feature", &f->num_features_))
    return Unsupported("num_feature missing");
  auto bs = param->FindMember("base_score");
  if (bs != param->MemberEnd() && !ReadFloat(bs->value, &base_score))
    return Unsupported("base_score unreadable");
  if (num_target > 1) return Unsupported("multi-target models");
  f->num_groups_ = num_class > 1 ? num_class : 1;

  // Objective -> (base margin from base_score, output transform), as
  // libxgboost 1.7's ProbToMargin and PredTransform.
  const std::string& obj = f->objective_;
  if (obj == "reg:squarederror" || obj == "reg:linear" || obj == "reg:squaredlogerror" ||
      obj == "reg:pseudohubererror" || obj == "reg:absoluteerror" ||
      obj.rfind("rank:", 0) == 0) {
    f->base_margin_ = base_score;
  } else if (obj == "binary:logistic" || obj == "reg:logistic") {
    f->base_margin_ = -logf(1.0f / base_score - 1.0f);
    f->transform_ = Transform::kSigmoid;
  } else if (obj == "binary:logitraw") {
    f->base_margin_ = base_score;
  } else if (obj == "binary:hinge") {
    f->base_margin_ = base_score;
    f->transform_ = Transform::kHinge;
  } else if (obj == "count:poisson" || obj == "reg:gamma" || obj == "reg:tweedie") {
    f->base_margin_ = logf(base_score);
    f->transform_ = Transform::kExp;
  } else if (obj == "multi:softprob") {
    f->base_margin_ = base_score;
    f->transform_ = Transform::kSoftmax;
    f->output_width_ = f->num_groups_;
  } else if (obj == "multi:softmax") {
    f->base_margin_ = base_score;
    f->transform_ = Transform::kArgmax;
  } else {
    return Unsupported(StrCat("objective '", obj, "'"));
  }

  const Value* model = Path(*learner, {"gradient_booster", "model"});
  const Value* trees = model ? Path(*model, {"trees"}) : nullptr;
  const Value* info = model ? Path(*model, {"tree_info"}) : nullptr;
  if (trees == nullptr || !trees->IsArray() || info == nullptr || !info->IsArray() ||
      info->Size() != trees->Size())
    return Unsupported("trees or tree_info missing");
  for (rapidjson::SizeType t = 0; t < trees->Size(); ++t) {
    const Value& tree = (*trees)[t];
    int64_t group = 0;
    if (!ReadInt((*info)[t], &group) || group < 0 || group >= f->num_groups_)
      return Unsupported("tree_info out of range");
    const Value* left = Path(tree, {"left_children"});
    const Value* right = Path(tree, {"right_children"});
    const Value* index = Path(tree, {"split_indices"});
    const Value* cond = Path(tree, {"split_conditions"});
    const Value* dleft = Path(tree, {"default_left"});
    const Value* type = Path(tree, {"split_type"});
    const Value* leaf_vec = Path(tree, {"tree_param", "size_leaf_vector"});
    int64_t leaf_size = 0;
    if (leaf_vec != nullptr && ReadInt(*leaf_vec, &leaf_size) && leaf_size > 1)
      return Unsupported("vector leaves");
    if (!left || !right || !index || !cond || !dleft || !left->IsArray())
      return Unsupported("tree arrays missing");
    rapidjson::SizeType n = left->Size();
    if (n == 0 || right->Size() != n || index->Size() != n || cond->Size() != n ||
        dleft->Size() != n)
      return Unsupported("tree arrays of different lengths");
    uint32_t base = static_cast<uint32_t>(f->nodes_.size());
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      int64_t l = 0, r = 0, feature = 0, d = 0, st = 0;
      Node node{};
      if (!ReadInt((*left)[i], &l) || !ReadInt((*right)[i], &r) || !ReadInt((*index)[i], &feature) ||
          !ReadInt((*dleft)[i], &d) || !ReadFloat((*cond)[i], &node.value))
        return Unsupported("unreadable tree node");
      if (type != nullptr && type->IsArray() && type->Size() == n && ReadInt((*type)[i], &st) &&
          st != 0)
        return Unsupported("categorical splits");
      if (l == -1) {
        node.feature = -1;
      } else {
        if (l < 0 || r < 0 || l >= n || r >= n || feature < 0 || feature >= f->num_features_)
          return Unsupported("tree node out of range");
        node.feature = static_cast<int32_t>(feature);
        node.left = static_cast<int32_t>(base + l);
        node.right = static_cast<int32_t>(base + r);
        node.missing = d ? node.left : node.right;
      }
      f->nodes_.push_back(node);
    }
    f->trees_.push_back(base);
    f->groups_.push_back(static_cast<uint32_t>(group));
  }
  // Walks must end: every child index points forward (XGBoost numbers children
  // after parents), so no cycle can exist.
  for (size_t i = 0; i < f->nodes_.size(); ++i) {
    const Node& node = f->nodes_[i];
    if (node.feature >= 0 && (node.left <= static_cast<int32_t>(i) ||
                              node.right <= static_cast<int32_t>(i)))
      return Unsupported("tree with backward child links");
  }
  return f;
}

float Forest::TreeValue(size_t tree, const float* row) const {
  const Node* node = &nodes_[trees_[tree]];
  while (node->feature >= 0) {
    float x = row[node->feature];
    int32_t next = std::isnan(x) ? node->missing : (x < node->value ? node->left : node->right);
    node = &nodes_[static_cast<size_t>(next)];
  }
  return node->value;
}

void Forest::Predict(const float* rows, int64_t n, float* out) const {
  std::vector<float> margins(static_cast<size_t>(num_groups_));
  for (int64_t r = 0; r < n; ++r) {
    const float* row = rows + r * num_features_;
    std::fill(margins.begin(), margins.end(), base_margin_);
    for (size_t t = 0; t < trees_.size(); ++t) margins[groups_[t]] += TreeValue(t, row);
    switch (transform_) {
      case Transform::kIdentity:
        out[r] = margins[0];
        break;
      case Transform::kSigmoid:
        out[r] = 1.0f / (expf(-margins[0]) + 1.0f + 1e-16f);
        break;
      case Transform::kHinge:
        out[r] = margins[0] > 0.0f ? 1.0f : 0.0f;
        break;
      case Transform::kExp:
        out[r] = expf(margins[0]);
        break;
      case Transform::kArgmax: {
        size_t best = 0;
        for (size_t g = 1; g < margins.size(); ++g)
          if (margins[g] > margins[best]) best = g;
        out[r] = static_cast<float>(best);
        break;
      }
      case Transform::kSoftmax: {
        float wmax = margins[0];
        for (size_t g = 1; g < margins.size(); ++g) wmax = fmaxf(margins[g], wmax);
        double wsum = 0.0;
        for (float& m : margins) {
          m = expf(m - wmax);
          wsum += m;
        }
        float* o = out + r * output_width_;
        for (size_t g = 0; g < margins.size(); ++g) o[g] = margins[g] / static_cast<float>(wsum);
        break;
      }
    }
  }
}

}  // namespace osprey
