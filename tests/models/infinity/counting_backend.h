// A Backend for tests of the generation loop: a CPU backend behind a counter of transfers, waits, allocations
// and recordings.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sparvar::infinity::test {

// Forwards every op to a CPU backend (NaN-poisoned allocations) and counts what crosses between host and
// backend or waits for it, the allocations (empty and upload) with the bytes they hold, and the recordings.
class CountingBackend final : public Backend {
 public:
  CountingBackend() : inner_(make_cpu_backend(2, true)) {}
  int uploads = 0, downloads = 0, syncs = 0, writes = 0, allocations = 0, records = 0;
  size_t live_bytes = 0, peak_bytes = 0;  // bytes of tensors made by empty() or upload() still alive

  void reset_counts() {
    uploads = downloads = syncs = writes = allocations = records = 0;
    peak_bytes = live_bytes;
  }

  Device device() const override { return inner_->device(); }
  std::string name() const override { return "counting " + inner_->name(); }
  Tensor empty(const Shape& s, DType d) override {
    ++allocations;
    return tracked(inner_->empty(s, d));
  }
  Tensor upload(const Tensor& h, DType d) override {
    ++uploads;
    ++allocations;
    return tracked(inner_->upload(h, d));
  }
  void write(const Tensor& h, Tensor& d) override {
    ++writes;
    inner_->write(h, d);
  }
  std::unique_ptr<RecordedWork> record(const std::function<void()>& body) override {
    ++records;
    return inner_->record(body);
  }
  Tensor download(const Tensor& t) override {
    ++downloads;
    return inner_->download(t);
  }
  Tensor download_raw(const Tensor& t) override {
    ++downloads;
    return inner_->download_raw(t);
  }
  void copy(const Tensor& s, Tensor& d) override { inner_->copy(s, d); }
  void synchronize() override {
    ++syncs;
    inner_->synchronize();
  }
  void copy_slice(const Tensor& s, Tensor& d, int dim, int64_t o) override { inner_->copy_slice(s, d, dim, o); }
  std::unique_ptr<TimingEvent> record_event() override { return inner_->record_event(); }
  void linear(const Tensor& x, const Tensor& w, const Tensor* b, Activation a, Tensor& y) override {
    inner_->linear(x, w, b, a, y);
  }
  void activation(const Tensor& x, Activation a, Tensor& y) override { inner_->activation(x, a, y); }
  void add(const Tensor& a, const Tensor& b, Tensor& y) override { inner_->add(a, b, y); }
  void mul(const Tensor& a, const Tensor& b, Tensor& y) override { inner_->mul(a, b, y); }
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    inner_->layer_norm(x, w, b, eps, y);
  }
  void rms_norm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override { inner_->rms_norm(x, w, eps, y); }
  void adaln_modulate(const Tensor& x, const Tensor& s, const Tensor& t, Tensor& y) override {
    inner_->adaln_modulate(x, s, t, y);
  }
  void softmax(const Tensor& x, Tensor& y) override { inner_->softmax(x, y); }
  void l2_normalize(const Tensor& x, float eps, const Tensor* s, Tensor& y) override {
    inner_->l2_normalize(x, eps, s, y);
  }
  void rope(const Tensor& x, const Tensor& c, const Tensor& s, Tensor& y) override { inner_->rope(x, c, s, y); }
  void permute(const Tensor& x, const std::vector<int>& p, Tensor& y) override { inner_->permute(x, p, y); }
  void layer_norm_modulate(const Tensor& x, const Tensor& s, const Tensor& t, float eps, Tensor& y) override {
    inner_->layer_norm_modulate(x, s, t, eps, y);
  }
  void gated_residual(Tensor& x, const Tensor& g, const Tensor& y) override { inner_->gated_residual(x, g, y); }
  void qkv_to_attention(const Tensor& qkv, const Tensor* qs, const Tensor& c, const Tensor& s, float eps, int64_t o,
                        Tensor& q, Tensor& k, Tensor& v, const QkvRowMap* rows = nullptr) override {
    inner_->qkv_to_attention(qkv, qs, c, s, eps, o, q, k, v, rows);
  }
  void sample_bits(const Tensor& r, const BitSampling& p, const Tensor* u, Tensor* b, Tensor* l) override {
    inner_->sample_bits(r, p, u, b, l);
  }
  void bits_to_codes(const Tensor& b, int p, float z, float o, Tensor& c) override {
    inner_->bits_to_codes(b, p, z, o, c);
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p, Tensor& o) override {
    inner_->attention(q, k, v, p, o);
  }
  void conv2d(const Tensor& x, const Tensor& w, const Tensor* b, int s, int p, Tensor& y) override {
    inner_->conv2d(x, w, b, s, p, y);
  }
  void group_norm(const Tensor& x, int g, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    inner_->group_norm(x, g, w, b, eps, y);
  }
  void resample(const Tensor& x, ResampleMode m, Tensor& y) override { inner_->resample(x, m, y); }
  void image_to_rgb8(const Tensor& x, ImageLayout l, Tensor& rgb) override { inner_->image_to_rgb8(x, l, rgb); }

 private:
  // The same memory, with its bytes counted while any view of it lives.
  Tensor tracked(Tensor inner) {
    const size_t bytes = inner.nbytes();
    live_bytes += bytes;
    peak_bytes = std::max(peak_bytes, live_bytes);
    void* data = inner.data();
    const Shape shape = inner.shape();
    const DType dtype = inner.dtype();
    auto storage = std::make_shared<Storage>(data, bytes, Device::CPU, [this, bytes, keep = std::move(inner)](void*) {
      (void)keep;  // held until the last view goes
      live_bytes -= bytes;
    });
    return Tensor(std::move(storage), 0, shape, dtype);
  }

  std::unique_ptr<Backend> inner_;
};

}  // namespace sparvar::infinity::test
