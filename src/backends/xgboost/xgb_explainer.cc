#include "backends/xgboost/xgb_explainer.h"

#include <charconv>
#include <cmath>

#include "rapidjson/document.h"

namespace osprey {
namespace {

using rapidjson::Value;

// Numbers are parsed from their text straight into float (or integer), as
// libxgboost reads them.
template <typename T>
bool Read(const Value& v, T* out) {
  if (!v.IsString()) return false;
  const char* s = v.GetString();
  auto r = std::from_chars(s, s + v.GetStringLength(), *out);
  return r.ec == std::errc();
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

const Value* Array(const Value& tree, const char* key, rapidjson::SizeType n) {
  const Value* v = Path(tree, {key});
  return v != nullptr && v->IsArray() && v->Size() == n ? v : nullptr;
}

absl::Status Unsupported(std::string_view why) {
  return absl::UnimplementedError(StrCat("explanations: ", why));
}

// The margin base_score stands for, as libxgboost 1.7's ProbToMargin.
absl::StatusOr<double> BaseMargin(const std::string& obj, float base_score) {
  if (obj == "binary:logistic" || obj == "reg:logistic")
    return static_cast<double>(-logf(1.0f / base_score - 1.0f));
  if (obj == "count:poisson" || obj == "reg:gamma" || obj == "reg:tweedie" ||
      obj == "survival:cox" || obj == "survival:aft")
    return static_cast<double>(logf(base_score));
  if (obj == "reg:squarederror" || obj == "reg:linear" || obj == "reg:squaredlogerror" ||
      obj == "reg:pseudohubererror" || obj == "reg:absoluteerror" || obj == "binary:logitraw" ||
      obj == "binary:hinge" || obj == "multi:softprob" || obj == "multi:softmax" ||
      obj.rfind("rank:", 0) == 0)
    return static_cast<double>(base_score);
  return Unsupported(StrCat("objective '", obj, "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<XgbExplainer>> XgbExplainer::Parse(std::string_view model_json,
                                                                  TreeShap::Options options) {
  rapidjson::Document doc;
  // NaN stands in the split conditions of categorical splits.
  doc.Parse<rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseNanAndInfFlag>(
      model_json.data(), model_json.size());
  if (doc.HasParseError() || !doc.IsObject()) return Unsupported("model JSON does not parse");
  const Value* learner = Path(doc, {"learner"});
  if (learner == nullptr) return Unsupported("no 'learner' in model JSON");
  std::unique_ptr<XgbExplainer> e(new XgbExplainer());
  e->options_ = options;
  const Value* booster = Path(*learner, {"gradient_booster", "name"});
  if (booster == nullptr || !booster->IsString() ||
      std::string_view(booster->GetString()) != "gbtree")
    return Unsupported("booster is not gbtree");
  const Value* param = Path(*learner, {"learner_model_param"});
  const Value* objective = Path(*learner, {"objective", "name"});
  if (param == nullptr || objective == nullptr || !objective->IsString())
    return Unsupported("missing learner_model_param or objective");
  int64_t num_class = 0, num_target = 1;
  float base_score = 0.5f;
  if (const Value* v = Path(*param, {"num_class"})) Read(*v, &num_class);
  if (const Value* v = Path(*param, {"num_target"})) Read(*v, &num_target);
  const Value* nf = Path(*param, {"num_feature"});
  if (nf == nullptr || !Read(*nf, &e->num_features_) || e->num_features_ < 0)
    return Unsupported("num_feature missing");
  if (const Value* v = Path(*param, {"base_score"}); v != nullptr && !Read(*v, &base_score))
    return Unsupported("base_score unreadable");
  if (num_target > 1) return Unsupported("multi-target models");
  e->num_groups_ = num_class > 1 ? num_class : 1;
  OSPREY_ASSIGN_OR_RETURN(double base, BaseMargin(objective->GetString(), base_score));
  e->bias_.assign(static_cast<size_t>(e->num_groups_), base);

  const Value* model = Path(*learner, {"gradient_booster", "model"});
  const Value* trees = model ? Path(*model, {"trees"}) : nullptr;
  const Value* info = model ? Path(*model, {"tree_info"}) : nullptr;
  if (trees == nullptr || !trees->IsArray() || info == nullptr || !info->IsArray() ||
      info->Size() != trees->Size())
    return Unsupported("trees or tree_info missing");
  for (rapidjson::SizeType t = 0; t < trees->Size(); ++t) {
    const Value& tree = (*trees)[t];
    TreeShap::Tree out;
    int64_t group = 0;
    if (!Read((*info)[t], &group) || group < 0 || group >= e->num_groups_)
      return Unsupported("tree_info out of range");
    out.group = static_cast<int32_t>(group);
    int64_t leaf_size = 0;
    if (const Value* v = Path(tree, {"tree_param", "size_leaf_vector"});
        v != nullptr && Read(*v, &leaf_size) && leaf_size > 1)
      return Unsupported("vector leaves");
    const Value* left = Path(tree, {"left_children"});
    if (left == nullptr || !left->IsArray() || left->Size() == 0)
      return Unsupported("tree arrays missing");
    const rapidjson::SizeType n = left->Size();
    const Value* right = Array(tree, "right_children", n);
    const Value* index = Array(tree, "split_indices", n);
    const Value* cond = Array(tree, "split_conditions", n);
    const Value* dleft = Array(tree, "default_left", n);
    const Value* hess = Array(tree, "sum_hessian", n);
    const Value* type = Array(tree, "split_type", n);
    if (!right || !index || !cond || !dleft || !hess)
      return Unsupported("tree arrays missing or of different lengths");
    const uint32_t first = static_cast<uint32_t>(e->splits_.size());
    if (e->splits_.size() + n >= (size_t{1} << 31)) return Unsupported("forest too large");
    out.nodes.resize(n);
    e->splits_.resize(e->splits_.size() + n);
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      int64_t l = 0, r = 0, feature = 0, dl = 0, st = 0;
      float c = 0, h = 0;
      if (!Read((*left)[i], &l) || !Read((*right)[i], &r) || !Read((*index)[i], &feature) ||
          !Read((*dleft)[i], &dl) || !Read((*cond)[i], &c) || !Read((*hess)[i], &h))
        return Unsupported("unreadable tree node");
      if (type != nullptr) Read((*type)[i], &st);
      TreeShap::Node& node = out.nodes[i];
      node.id = first + i;
      node.cover = h;  // the float libxgboost keeps, widened
      if (l == -1) {
        node.value = c;
        continue;
      }
      if (l < 0 || r < 0 || l >= n || r >= n || feature < 0 || feature >= e->num_features_)
        return Unsupported("tree node out of range");
      node.left = static_cast<int32_t>(l);
      node.right = static_cast<int32_t>(r);
      node.feature = static_cast<int32_t>(feature);
      Split& s = e->splits_[first + i];
      s.threshold = c;
      s.feature = static_cast<uint32_t>(feature);
      s.default_left = dl != 0;
      s.categorical = st != 0;
    }
    // Categorical splits: the categories each one sends right, as a bitset.
    const Value* cat_nodes = Path(tree, {"categories_nodes"});
    if (cat_nodes != nullptr && cat_nodes->IsArray() && cat_nodes->Size() > 0) {
      const rapidjson::SizeType k = cat_nodes->Size();
      const Value* segments = Array(tree, "categories_segments", k);
      const Value* sizes = Array(tree, "categories_sizes", k);
      const Value* cats = Path(tree, {"categories"});
      if (!segments || !sizes || cats == nullptr || !cats->IsArray())
        return Unsupported("categorical split arrays missing");
      for (rapidjson::SizeType j = 0; j < k; ++j) {
        int64_t node = 0, begin = 0, size = 0;
        if (!Read((*cat_nodes)[j], &node) || !Read((*segments)[j], &begin) ||
            !Read((*sizes)[j], &size) || node < 0 || node >= n || begin < 0 || size < 0 ||
            begin + size > static_cast<int64_t>(cats->Size()))
          return Unsupported("categorical split out of range");
        std::vector<int64_t> values(static_cast<size_t>(size));
        int64_t max_value = -1;
        for (int64_t c = 0; c < size; ++c) {
          if (!Read((*cats)[static_cast<rapidjson::SizeType>(begin + c)], &values[c]) ||
              values[c] < 0 || values[c] >= (int64_t{1} << 24))
            return Unsupported("category out of range");
          max_value = std::max(max_value, values[c]);
        }
        Split& s = e->splits_[first + static_cast<uint32_t>(node)];
        if (!s.categorical) return Unsupported("categories for a numerical split");
        s.cat_begin = static_cast<uint32_t>(e->cat_bits_.size());
        s.cat_words = static_cast<uint32_t>(max_value / 32 + 1);
        e->cat_bits_.resize(e->cat_bits_.size() + s.cat_words, 0);
        for (int64_t v : values)
          e->cat_bits_[s.cat_begin + static_cast<size_t>(v / 32)] |= uint32_t{1} << (v % 32);
      }
    }
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      const Split& s = e->splits_[first + i];
      if (out.nodes[i].left >= 0 && s.categorical && s.cat_words == 0)
        return Unsupported("categorical split without categories");
    }
    e->trees_.push_back(std::move(out));
  }
  return e;
}

// libxgboost 1.7's GetNextNode for TreeSHAP: missing values take the default
// side; a category (the value truncated to an integer) in the split's set goes
// right, any other valid one left; negative categories, categories past 2^24
// and past the set's bitset take the default side.
inline bool XgbExplainer::GoesLeft(const Split& s, const float* row) const {
  const float x = row[s.feature];
  if (std::isnan(x)) return s.default_left;
  if (!s.categorical) [[likely]]
    return x < s.threshold;
  if (x < 0.0f || x >= 16777216.0f) return s.default_left;
  const uint32_t c = static_cast<uint32_t>(static_cast<int32_t>(x));
  if (c / 32 >= s.cat_words) return s.default_left;
  return ((cat_bits_[s.cat_begin + c / 32] >> (c % 32)) & 1) == 0;
}

const TreeShap* XgbExplainer::Tables() const {
  std::call_once(once_, [this] {
    shap_ = TreeShap::Build(trees_, num_features_, bias_, options_);
    trees_.clear();
    trees_.shrink_to_fit();
  });
  return shap_.ok() ? shap_->get() : nullptr;
}

absl::Status XgbExplainer::Explain(const float* rows, int64_t n, float* out) const {
  const TreeShap* shap = Tables();
  if (shap == nullptr) return shap_.status();
  TreeShap::Scratch scratch;
  shap->PrepareScratch(&scratch);
  const int64_t width = shap->row_width();
  std::vector<double> phi(static_cast<size_t>(width));
  for (int64_t r = 0; r < n; ++r) {
    const float* row = rows + r * num_features_;
    shap->ExplainRow([&](uint32_t id) { return GoesLeft(splits_[id], row); }, &scratch, phi.data());
    float* o = out + r * width;
    for (int64_t i = 0; i < width; ++i) o[i] = static_cast<float>(phi[static_cast<size_t>(i)]);
  }
  return absl::OkStatus();
}

}  // namespace osprey
