#include "backends/xgboost/forest.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#define OSPREY_HAVE_AVX512_KERNEL 1
#endif

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

absl::StatusOr<std::unique_ptr<Forest>> Forest::Compile(std::string_view model_json,
                                                        bool allow_simd) {
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
  // The vector kernel reads a tree's leaves 16 at a time.
  f->leaves_.resize(f->leaves_.size() + 16, 0.0f);
#ifdef OSPREY_HAVE_AVX512_KERNEL
  f->simd_ = allow_simd && __builtin_cpu_supports("avx512f") &&
             std::all_of(f->trees_.begin(), f->trees_.end(),
                         [](const Tree& t) { return t.depth <= kSimdMaxDepth; });
#else
  (void)allow_simd;
#endif
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

#ifdef OSPREY_HAVE_AVX512_KERNEL
namespace {

#define OSPREY_AVX512 __attribute__((target("avx512f")))

// The leaf contribution of one perfect tree of depth D for 16 rows, whose
// features are 16-float columns at col (64-byte aligned) with per-feature NaN
// masks. Unrolled per depth so the reach masks stay in mask registers; a
// masked compare gives the rows reaching the right child in one instruction.
template <uint32_t D, bool kMissing>
OSPREY_AVX512 inline __m512 TreeLeaves(const float* thresholds, const uint32_t* features,
                                       const uint8_t* missing_right, const float* leaves,
                                       const float* col, const uint16_t* nan) {
  constexpr uint32_t kSplits = (1u << D) - 1;
  // Small trees: reach[i] holds the rows at node i (leaves included), and each
  // leaf is blended into the rows its mask holds. From depth 5 on, 2^D blends
  // cost more than finding each row's leaf index (its directions, root first,
  // are the index's bits: right[d] holds the rows going right at depth d) and
  // permuting the leaves.
  constexpr bool kBlend = D <= 4;
  __mmask16 reach[kBlend ? 2 * kSplits + 1 : kSplits];
  __mmask16 right[D] = {};
  reach[0] = 0xFFFF;
  for (uint32_t d = 0, i = 0; d < D; ++d) {
    for (uint32_t k = 0; k < (1u << d); ++k, ++i) {
      const uint32_t f = features[i];
      __m512 x = _mm512_load_ps(col + f * 16);
      __mmask16 r = _mm512_mask_cmp_ps_mask(reach[i], x, _mm512_set1_ps(thresholds[i]), _CMP_GE_OQ);
      if constexpr (kMissing)
        r |= reach[i] & nan[f] & static_cast<uint16_t>(-static_cast<int>(missing_right[i]));
      if (kBlend || d + 1 < D) {
        reach[2 * i + 1] = reach[i] ^ r;
        reach[2 * i + 2] = r;
      }
      if constexpr (!kBlend) right[d] |= r;
    }
  }
  if constexpr (kBlend) {
    __m512 v = _mm512_setzero_ps();
    for (uint32_t j = 0; j <= kSplits; ++j)
      v = _mm512_mask_mov_ps(v, reach[kSplits + j], _mm512_set1_ps(leaves[j]));
    return v;
  } else {
    __m512i index = _mm512_setzero_si512();
    for (uint32_t d = 0; d < D; ++d)
      index = _mm512_mask_add_epi32(index, right[d], index, _mm512_set1_epi32(1 << (D - 1 - d)));
    __m512 low =
        _mm512_permutex2var_ps(_mm512_loadu_ps(leaves), index, _mm512_loadu_ps(leaves + 16));
    if constexpr (D == 5) return low;
    static_assert(D <= 6, "leaves beyond 64 need more permutes");
    __m512 high =
        _mm512_permutex2var_ps(_mm512_loadu_ps(leaves + 32), index, _mm512_loadu_ps(leaves + 48));
    return _mm512_mask_mov_ps(low, _mm512_test_epi32_mask(index, _mm512_set1_epi32(32)), high);
  }
}

template <bool kMissing>
OSPREY_AVX512 inline __m512 TreeLeavesOfDepth(uint32_t depth, const float* t, const uint32_t* fi,
                                              const uint8_t* mr, const float* leaves,
                                              const float* col, const uint16_t* nan) {
  switch (depth) {
    case 0:
      return _mm512_set1_ps(leaves[0]);
    case 1:
      return TreeLeaves<1, kMissing>(t, fi, mr, leaves, col, nan);
    case 2:
      return TreeLeaves<2, kMissing>(t, fi, mr, leaves, col, nan);
    case 3:
      return TreeLeaves<3, kMissing>(t, fi, mr, leaves, col, nan);
    case 4:
      return TreeLeaves<4, kMissing>(t, fi, mr, leaves, col, nan);
    case 5:
      return TreeLeaves<5, kMissing>(t, fi, mr, leaves, col, nan);
    default:
      return TreeLeaves<6, kMissing>(t, fi, mr, leaves, col, nan);
  }
}

}  // namespace

// margins: row-major [nb, groups], in and out. NaN in the rows is handled in
// the same pass: a compare that is ordered (x >= threshold) sends a missing
// value left, and the node's missing-goes-right mask sends it right.
OSPREY_AVX512 void Forest::PredictBlockSimd(const float* rows, int64_t nb, float* margins) const {
  constexpr int64_t kLanes = 16;
  const int64_t groups = num_groups_;
  const int64_t nf = num_features_;
  // Columns and per-group sums of one 16-row chunk, 64-byte aligned; on the
  // stack unless the model is wide.
  constexpr int64_t kStack = 64;
  alignas(64) float col_stack[kStack * kLanes];
  alignas(64) float sum_stack[kStack * kLanes];
  uint16_t nan_stack[kStack];
  std::vector<float> col_heap, sum_heap;
  std::vector<uint16_t> nan_heap;
  auto aligned = [](std::vector<float>& v, int64_t n) {
    v.resize(static_cast<size_t>(n * kLanes + kLanes));
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  };
  float* col = nf <= kStack ? col_stack : aligned(col_heap, nf);
  float* sum = groups <= kStack ? sum_stack : aligned(sum_heap, groups);
  uint16_t* nan = nan_stack;
  if (nf > kStack) {
    nan_heap.resize(static_cast<size_t>(nf));
    nan = nan_heap.data();
  }
  for (int64_t r0 = 0; r0 < nb; r0 += kLanes) {
    const int64_t valid = std::min(kLanes, nb - r0);
    bool missing = false;
    for (int64_t f = 0; f < nf; ++f) {
      for (int64_t k = 0; k < kLanes; ++k)
        col[f * kLanes + k] = k < valid ? rows[(r0 + k) * nf + f] : 0.0f;
      __m512 x = _mm512_load_ps(col + f * kLanes);
      nan[f] = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      missing |= nan[f] != 0;
    }
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t k = 0; k < kLanes; ++k)
        sum[g * kLanes + k] = k < valid ? margins[(r0 + k) * groups + g] : 0.0f;
    for (const Tree& tree : trees_) {
      const float* t = thresholds_.data() + tree.offset;
      const uint32_t* fi = features_.data() + tree.offset;
      const uint8_t* mr = missing_right_.data() + tree.offset;
      const float* leaves = leaves_.data() + tree.leaf_offset;
      static_assert(kSimdMaxDepth == 6, "TreeLeavesOfDepth has a case per depth up to 6");
      __m512 v = missing ? TreeLeavesOfDepth<true>(tree.depth, t, fi, mr, leaves, col, nan)
                         : TreeLeavesOfDepth<false>(tree.depth, t, fi, mr, leaves, col, nan);
      float* s = sum + tree.group * kLanes;
      _mm512_store_ps(s, _mm512_add_ps(_mm512_load_ps(s), v));
    }
    for (int64_t k = 0; k < valid; ++k)
      for (int64_t g = 0; g < groups; ++g) margins[(r0 + k) * groups + g] = sum[g * kLanes + k];
  }
}
#else
void Forest::PredictBlockSimd(const float*, int64_t, float*) const {}
#endif

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
    if (simd_) {
      PredictBlockSimd(block, nb, margins.data());
    } else if (std::any_of(block, block + nb * num_features_, [](float x) { return x != x; })) {
      PredictBlock<true>(block, nb, margins.data());
    } else {
      PredictBlock<false>(block, nb, margins.data());
    }
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
