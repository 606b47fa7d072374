#include "backends/xgboost/forest.h"

#include <algorithm>
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
      obj == "reg:pseudohubererror" || obj == "reg:absoluteerror" || obj.rfind("rank:", 0) == 0) {
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
    const Value& tree_json = (*trees)[t];
    int64_t group = 0;
    if (!ReadInt((*info)[t], &group) || group < 0 || group >= f->num_groups_)
      return Unsupported("tree_info out of range");
    const Value* left = Path(tree_json, {"left_children"});
    const Value* right = Path(tree_json, {"right_children"});
    const Value* index = Path(tree_json, {"split_indices"});
    const Value* cond = Path(tree_json, {"split_conditions"});
    const Value* dleft = Path(tree_json, {"default_left"});
    const Value* type = Path(tree_json, {"split_type"});
    const Value* leaf_vec = Path(tree_json, {"tree_param", "size_leaf_vector"});
    int64_t leaf_size = 0;
    if (leaf_vec != nullptr && ReadInt(*leaf_vec, &leaf_size) && leaf_size > 1)
      return Unsupported("vector leaves");
    if (!left || !right || !index || !cond || !dleft || !left->IsArray())
      return Unsupported("tree arrays missing");
    rapidjson::SizeType n = left->Size();
    if (n == 0 || right->Size() != n || index->Size() != n || cond->Size() != n ||
        dleft->Size() != n)
      return Unsupported("tree arrays of different lengths");
    struct Raw {
      float value;
      int64_t left, right, feature, default_left;
    };
    std::vector<Raw> raw(n);
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      Raw& r = raw[i];
      int64_t st = 0;
      if (!ReadInt((*left)[i], &r.left) || !ReadInt((*right)[i], &r.right) ||
          !ReadInt((*index)[i], &r.feature) || !ReadInt((*dleft)[i], &r.default_left) ||
          !ReadFloat((*cond)[i], &r.value))
        return Unsupported("unreadable tree node");
      if (type != nullptr && type->IsArray() && type->Size() == n && ReadInt((*type)[i], &st) &&
          st != 0)
        return Unsupported("categorical splits");
      if (r.left != -1 && (r.left < 0 || r.right < 0 || r.left >= n || r.right >= n ||
                           r.feature < 0 || r.feature >= f->num_features_))
        return Unsupported("tree node out of range");
    }
    // Depth of the tree, guarding against shared or cyclic children.
    std::vector<uint32_t> depth_of(n, 0);
    std::vector<int64_t> stack = {0};
    uint32_t depth = 0;
    size_t visited = 0;
    while (!stack.empty()) {
      int64_t i = stack.back();
      stack.pop_back();
      if (++visited > n) return Unsupported("tree with shared or cyclic children");
      const Raw& r = raw[static_cast<size_t>(i)];
      depth = std::max(depth, depth_of[static_cast<size_t>(i)]);
      if (r.left == -1) continue;
      depth_of[static_cast<size_t>(r.left)] = depth_of[static_cast<size_t>(i)] + 1;
      depth_of[static_cast<size_t>(r.right)] = depth_of[static_cast<size_t>(i)] + 1;
      stack.push_back(r.left);
      stack.push_back(r.right);
    }
    if (depth > kMaxDepth) return Unsupported(StrCat("trees deeper than ", kMaxDepth));
    Tree tree{static_cast<uint32_t>(f->thresholds_.size()),
              static_cast<uint32_t>(f->leaves_.size()), depth, static_cast<uint32_t>(group)};
    const size_t splits = (size_t{1} << depth) - 1;
    if (f->thresholds_.size() + splits > kMaxNodes) return Unsupported("forest too large");
    // Padding splits (above a leaf copied downwards) keep a NaN threshold: both
    // their subtrees are the same leaf, so the direction does not matter.
    f->thresholds_.resize(f->thresholds_.size() + splits, std::nanf(""));
    f->features_.resize(f->features_.size() + splits, 0);
    f->missing_right_.resize(f->missing_right_.size() + splits, 0);
    f->leaves_.resize(f->leaves_.size() + splits + 1, 0.0f);
    // Fill the perfect tree: (raw node, heap position) pairs, top down.
    std::vector<std::pair<int64_t, size_t>> todo = {{0, 0}};
    while (!todo.empty()) {
      auto [i, pos] = todo.back();
      todo.pop_back();
      const Raw& r = raw[static_cast<size_t>(i)];
      if (pos >= splits) {  // bottom level: a leaf
        f->leaves_[tree.leaf_offset + (pos - splits)] = r.value;
        continue;
      }
      if (r.left == -1) {  // a leaf above the bottom: both subtrees are it
        todo.push_back({i, 2 * pos + 1});
        todo.push_back({i, 2 * pos + 2});
        continue;
      }
      f->thresholds_[tree.offset + pos] = r.value;
      f->features_[tree.offset + pos] = static_cast<uint32_t>(r.feature);
      f->missing_right_[tree.offset + pos] = r.default_left ? 0 : 1;
      todo.push_back({r.left, 2 * pos + 1});
      todo.push_back({r.right, 2 * pos + 2});
    }
    f->trees_.push_back(tree);
  }
  return f;
}

// Adds each tree's leaf to the margins of nb rows, in tree order (per row the
// float sums are then exactly libxgboost's). kMissing: the rows may hold NaN.
template <bool kMissing>
void Forest::PredictBlock(const float* rows, int64_t nb, float* margins) const {
  constexpr int kLanes = 8;
  const int64_t groups = num_groups_;
  const float* thresholds = thresholds_.data();
  const uint32_t* features = features_.data();
  const uint8_t* missing_right = missing_right_.data();
  // One step down from heap position `pos` of the tree whose splits start at `base`.
  auto step = [&](uint32_t base, uint32_t pos, const float* row) -> uint32_t {
    const uint32_t node = base + pos;
    float x = row[features[node]];
    uint32_t right = !(x < thresholds[node]);
    if constexpr (kMissing) right = x != x ? missing_right[node] : right;
    return 2 * pos + 1 + right;
  };
  for (const Tree& tree : trees_) {
    const uint32_t base = tree.offset;
    const uint32_t splits = (1u << tree.depth) - 1;
    const float* leaves = leaves_.data() + tree.leaf_offset;
    int64_t r = 0;
    for (; r + kLanes <= nb; r += kLanes) {
      uint32_t pos[kLanes] = {};
      for (uint32_t d = 0; d < tree.depth; ++d)
        for (int k = 0; k < kLanes; ++k)
          pos[k] = step(base, pos[k], rows + (r + k) * num_features_);
      for (int k = 0; k < kLanes; ++k)
        margins[(r + k) * groups + tree.group] += leaves[pos[k] - splits];
    }
    for (; r < nb; ++r) {
      uint32_t pos = 0;
      for (uint32_t d = 0; d < tree.depth; ++d) pos = step(base, pos, rows + r * num_features_);
      margins[r * groups + tree.group] += leaves[pos - splits];
    }
  }
}

std::vector<std::vector<float>> Forest::SplitThresholds() const {
  std::vector<std::vector<float>> out(static_cast<size_t>(num_features_));
  for (size_t i = 0; i < thresholds_.size(); ++i)
    if (!std::isnan(thresholds_[i])) out[features_[i]].push_back(thresholds_[i]);
  return out;
}

void Forest::Predict(const float* rows, int64_t n, float* out) const {
  constexpr int64_t kBlock = 64;
  std::vector<float> margins(static_cast<size_t>(kBlock * num_groups_));
  for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
    const int64_t nb = std::min(kBlock, n - r0);
    const float* block = rows + r0 * num_features_;
    std::fill(margins.begin(), margins.begin() + nb * num_groups_, base_margin_);
    bool missing = std::any_of(block, block + nb * num_features_, [](float x) { return x != x; });
    if (missing)
      PredictBlock<true>(block, nb, margins.data());
    else
      PredictBlock<false>(block, nb, margins.data());
    for (int64_t r = 0; r < nb; ++r)
      Finish(margins.data() + r * num_groups_, out + (r0 + r) * output_width_);
  }
}

void Forest::Finish(float* margins, float* out) const {
  switch (transform_) {
    case Transform::kIdentity:
      out[0] = margins[0];
      break;
    case Transform::kSigmoid:
      out[0] = 1.0f / (expf(-margins[0]) + 1.0f + 1e-16f);
      break;
    case Transform::kHinge:
      out[0] = margins[0] > 0.0f ? 1.0f : 0.0f;
      break;
    case Transform::kExp:
      out[0] = expf(margins[0]);
      break;
    case Transform::kArgmax: {
      int64_t best = 0;
      for (int64_t g = 1; g < num_groups_; ++g)
        if (margins[g] > margins[best]) best = g;
      out[0] = static_cast<float>(best);
      break;
    }
    case Transform::kSoftmax: {
      float wmax = margins[0];
      for (int64_t g = 1; g < num_groups_; ++g) wmax = fmaxf(margins[g], wmax);
      double wsum = 0.0;
      for (int64_t g = 0; g < num_groups_; ++g) {
        margins[g] = expf(margins[g] - wmax);
        wsum += margins[g];
      }
      for (int64_t g = 0; g < num_groups_; ++g) out[g] = margins[g] / static_cast<float>(wsum);
      break;
    }
  }
}

}  // namespace osprey
