#include "model/weights.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/quant_packed.h"
#include "kernels/traits.h"
#include "model/arch.h"

namespace ninestep {

static std::string shape_of(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

const TensorIn& TensorSet::get(const std::string& name, const std::vector<int64_t>& shape) {
  auto it = tensors_.find(name);
  NS_CHECK(it != tensors_.end(), "tensors: missing '" + name + "' " + shape_of(shape));
  const TensorIn& t = it->second;
  NS_CHECK(t.data != nullptr, "tensors['" + name + "']: no data");
  check_aligned(t.data, t.type, "tensors['" + name + "']");
  NS_CHECK(t.shape == shape, "tensors['" + name + "']: expected shape " + shape_of(shape) + ", got " +
                                 shape_of(t.shape));
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t need = checked_mul(rows, dtype_row_bytes(t.type, shape.back()), name.c_str());
  NS_CHECK(t.nbytes == need, "tensors['" + name + "']: holds " + std::to_string(t.nbytes) + " bytes, " +
                                 dtype_info(t.type).name + " " + shape_of(shape) + " needs " + std::to_string(need));
  used_.insert(name);
  return t;
}

WeightView TensorSet::matrix(const std::string& name, int64_t n, int64_t k) {
  const TensorIn& t = get(name, {n, k});
  check_matmul_kernel(t.type, "tensors['" + name + "']");
  return WeightView{t.data, t.type, n, k};
}

WeightView TensorSet::rows(const std::string& name, int64_t n, int64_t k) {
  const TensorIn& t = get(name, {n, k});
  check_dequantize_kernel(t.type, "tensors['" + name + "']");
  return WeightView{t.data, t.type, n, k};
}

// Norm weights and biases are read as plain floats by the row kernels.
const float* TensorSet::vector(const std::string& name, int64_t n) {
  const TensorIn& t = get(name, {n});
  NS_CHECK(t.type == DType::f32,
           "tensors['" + name + "']: expected f32, got " + dtype_info(t.type).name + " (convert it to float32)");
  return static_cast<const float*>(t.data);
}

Proj TensorSet::proj(const std::string& name, int64_t n, int64_t k, bool bias) {
  Proj p;
  p.w = matrix(name + ".weight", n, k);
  if (bias) p.b = vector(name + ".bias", n);
  return p;
}

WeightView TensorSet::lm_head(const ModelConfig& c, const WeightView& embd) {
  if (!c.tied_embeddings) return matrix("output.weight", c.vocab_size, c.d_model);
  check_matmul_kernel(embd.type, "tensors['token_embd.weight'] (the tied LM head)");
  return embd;
}

// Bytes of memory available now (MemAvailable: free plus reclaimable cache), or -1 if unknown.
static double available_memory() {
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    double kb = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    std::fclose(f);
    if (kb >= 0) return kb * 1024.0;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (double)pages * (double)page : -1.0;
}

// Each quantized matrix of a type the batched GEMM reads packed (quant_packed.h) gets its packed
// copy beside the GGUF rows, which decode's GEMV and the embedding lookup keep reading: a second
// copy of those matrices in memory, skipped when it would take more than a quarter of the memory
// available now or cannot be allocated, or with NINESTEP_PACK=off (the panel then unpacks the GGUF
// rows per batch, as before).
static void pack_matrices(Weights& w) {
  const char* env = std::getenv("NINESTEP_PACK");
  if (env && std::strcmp(env, "off") == 0) return;
  std::vector<WeightView*> views;
  for (LayerWeights& L : w.layers)
    for (Proj* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
      if (*p && packs_matrix(p->w.type, p->w.k)) views.push_back(&p->w);
  if (w.lm_head.data && packs_matrix(w.lm_head.type, w.lm_head.k)) views.push_back(&w.lm_head);
  double total = 0;
  for (WeightView* v : views) total += (double)packed_bytes(v->type, v->n, v->k);
  const double avail = available_memory();
  if (total == 0 || (avail > 0 && total > 0.25 * avail)) return;
  for (WeightView* v : views) {
    const size_t bytes = (size_t)packed_bytes(v->type, v->n, v->k);
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p == nullptr) return;  // the rest stay unpacked
    w.packed.emplace_back(p, std::free);
    pack_weights(p, v->data, v->type, v->n, v->k);
    v->packed = p;
    w.packed_bytes += (int64_t)bytes;
  }
}

Weights Weights::build(const ModelConfig& cfg, const std::map<std::string, TensorIn>& tensors) {
  cfg.validate();
  Weights w;
  w.cfg = cfg;
  w.arch = find_arch(cfg.architecture);
  TensorSet ts(tensors);
  w.arch->load(w, ts);
  for (const auto& kv : tensors)
    NS_CHECK(ts.used().count(kv.first), "tensors: unexpected '" + kv.first + "' for architecture " + cfg.architecture +
                                            (kv.first == "output.weight" ? " (config.tied_embeddings is true)" : ""));
  pack_matrices(w);
  return w;
}

}  // namespace ninestep
