#include "l2/batch.h"

#include "l2/connection.h"

namespace rend::l2 {

void Batch::reserve(size_t bytes, size_t requests) {
  arena_.reserve(bytes);
  requests_.reserve(requests);
}

void Batch::add(const proto::Request& r, const char* bytes, size_t size) {
  const char* base = arena_.data() + arena_.size();
  arena_.append(bytes, size);
  proto::Request copy = r;
  // Only views into the parsed bytes move; the parser's error texts are string literals.
  auto rebase = [&](std::string_view& v) {
    if (v.data() >= bytes && v.data() <= bytes + size) v = std::string_view(base + (v.data() - bytes), v.size());
  };
  rebase(copy.key);
  rebase(copy.keys);
  rebase(copy.value);
  rebase(copy.stats_group);
  rebase(copy.meta_flags);
  requests_.push_back(copy);
}

void Batch::run_inline(InlineBudget& budget) {
  next_ = engine_.execute_inline(requests_, next_, reply_, reply_limit_, budget, conn_.accessor());
}

void Batch::run() { next_ = engine_.execute(requests_, next_, reply_, reply_limit_, cancelled_, conn_.accessor()); }

void Batch::complete() { conn_.on_batch_done(this); }

}  // namespace rend::l2
