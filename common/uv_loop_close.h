// Closing a libuv loop for good: every handle still open is closed, their close callbacks run,
// then the loop's own memory is released. Called once at process exit, after the last use.
#pragma once

#include <uv.h>

namespace rend {

inline void close_loop(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

}  // namespace rend
