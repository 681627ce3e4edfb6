#include "worker/acceptor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace rend::worker {

namespace {
constexpr uint64_t kRetryMs = 100;     // a pause is retried this often even with no close
constexpr int kAcceptsPerWakeup = 64;  // other connections get their turn between bursts
}  // namespace

Acceptor::Acceptor(uv_loop_t* loop, OnAccept on_accept, OnPause on_pause)
    : loop_(loop), on_accept_(std::move(on_accept)), on_pause_(std::move(on_pause)) {
  uv_timer_init(loop_, &retry_);
  retry_.data = this;
}

Acceptor::~Acceptor() {
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
  }
}

bool Acceptor::add(int fd, bool tcp, TierMode mode) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto l = std::make_unique<Listener>(Listener{this, fd, tcp, mode, {}});
  if (uv_poll_init_socket(loop_, &l->poll, fd) != 0) return false;
  l->poll.data = l.get();
  if (!paused_) watch(*l);
  listeners_.push_back(std::move(l));
  return true;
}

void Acceptor::watch(Listener& l) {
  uv_poll_start(&l.poll, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* l = static_cast<Listener*>(p->data);
    l->owner->on_readable(*l);
  });
}

void Acceptor::on_readable(Listener& l) {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    const int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      on_accept_(fd, l.tcp, l.mode);
      if (paused_ || closed_) return;  // the callback may have paused or drained us
      continue;
    }
    switch (errno) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO: continue;  // that client gave up; the next may be there
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM: pause(); return;
      default: return;  // EAGAIN: none left
    }
  }
}

void Acceptor::pause() {
  if (paused_) return;
  paused_ = true;
  for (auto& l : listeners_) uv_poll_stop(&l->poll);
  spdlog::warn("out of descriptors: new connections wait in the listen backlog until some close");
  if (on_pause_) on_pause_();
  uv_timer_start(
      &retry_, [](uv_timer_t* t) { static_cast<Acceptor*>(t->data)->resume(); }, kRetryMs, 0);
}

void Acceptor::resume() {
  if (!paused_ || closed_) return;
  paused_ = false;
  uv_timer_stop(&retry_);
  for (auto& l : listeners_) watch(*l);
}

void Acceptor::close_all() {
  if (closed_) return;
  closed_ = true;
  uv_timer_stop(&retry_);
  for (auto& l : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll),
             [](uv_handle_t* h) { close(static_cast<Listener*>(h->data)->fd); });
  }
}

}  // namespace rend::worker
