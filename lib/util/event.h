// The event loop every long-running Postern daemon is built on: thin RAII owners
// over libevent 2.1 for the loop, fd watchers, timers and signals, and a
// FramedConnection that exchanges codec frames with a peer without blocking.
//
// Rules for callbacks: they run on the loop's one thread and must not block.  A
// callback may destroy the object that called it (a connection's error handler
// usually does).  An exception that escapes a callback stops the loop and is
// rethrown by EventLoop::run(), so it reaches the daemon's own handler instead of
// unwinding through libevent.
//
// None of these types can be copied or moved: libevent holds their address.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "util/codec.h"
#include "util/fd.h"
#include "util/result.h"

struct event_base;
struct event;
struct bufferevent;

namespace postern {

class EventLoop {
 public:
  // Also ignores SIGPIPE for the process: libevent writes with writev(2), which
  // cannot be told MSG_NOSIGNAL, and a vanished peer must be an error, not a death.
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until stop() is called or nothing is left to wait for.
  void run();
  // Makes run() return after the callback that is running now.
  void stop();
  // The time the loop last woke up, cheaper than asking the system.
  std::chrono::system_clock::time_point now() const;

  event_base* base() const { return base_.get(); }
  // Runs a callback on libevent's behalf; see "Rules for callbacks" above.
  template <typename F>
  void call(F&& callback) noexcept {
    try {
      callback();
    } catch (...) {
      abort_run(std::current_exception());
    }
  }

 private:
  struct BaseDeleter {
    void operator()(event_base* base) const;
  };
  void abort_run(std::exception_ptr error) noexcept;

  std::unique_ptr<event_base, BaseDeleter> base_;
  std::exception_ptr pending_;
};

// Owns a libevent `struct event`.
struct EventDeleter {
  void operator()(event* ev) const;
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

// Calls back while an fd is readable and/or writable; watching starts at once.
class IoWatcher {
 public:
  static constexpr int kReadable = 1;
  static constexpr int kWritable = 2;
  using Callback = std::function<void(int events)>;  // kReadable | kWritable

  IoWatcher(EventLoop& loop, int fd, int events, Callback callback);
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;

  void start();
  void stop();

 private:
  static void on_event(int fd, short what, void* arg);
  EventLoop& loop_;
  std::shared_ptr<Callback> callback_;
  EventPtr event_;
};

// A timer that calls back once, or every period until cancelled.  Destroying it cancels it.
class Timer {
 public:
  using Callback = std::function<void()>;
  Timer(EventLoop& loop, Callback callback);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Both replace whatever the timer was set to before.
  void start_once(std::chrono::milliseconds delay);
  void start_periodic(std::chrono::milliseconds period);
  void cancel();
  bool pending() const;

 private:
  static void on_event(int fd, short what, void* arg);
  void arm(std::chrono::milliseconds delay);
  EventLoop& loop_;
  std::shared_ptr<Callback> callback_;
  std::chrono::milliseconds period_{0};  // zero for a one-shot timer
  EventPtr event_;
};

// Calls back on the loop after a signal arrived (SIGTERM, SIGHUP, SIGCHLD, ...),
// never inside the signal handler.  Destroying it restores the previous handler.
class SignalWatcher {
 public:
  using Callback = std::function<void()>;
  SignalWatcher(EventLoop& loop, int signo, Callback callback);
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  static void on_event(int fd, short what, void* arg);
  EventLoop& loop_;
  std::shared_ptr<Callback> callback_;
  EventPtr event_;
};

struct FrameOptions {
  // How long the peer may stay silent (read) or not take our output (write);
  // zero waits for ever.
  std::chrono::milliseconds read_timeout{0};
  std::chrono::milliseconds write_timeout{0};
  CodecLimits limits;
};

// Codec frames over a connected stream socket, inside a loop.  Each complete
// frame's payload goes to the frame handler; the first failure goes to the error
// handler, after which the connection neither reads nor writes and the owner
// should destroy it.  The socket is made non-blocking.
class FramedConnection {
 public:
  enum class Error {
    kClosed,    // the peer closed or reset the connection (possibly in the middle of a frame)
    kTimeout,   // a read or write timeout ran out
    kBadFrame,  // a frame over the size limit
    kIo,        // any other socket error
  };
  using FrameHandler = std::function<void(std::string payload)>;
  using ErrorHandler = std::function<void(Error error, const std::string& reason)>;

  FramedConnection(EventLoop& loop, UniqueFd fd, const FrameOptions& options, FrameHandler on_frame,
                   ErrorHandler on_error);
  ~FramedConnection();
  FramedConnection(const FramedConnection&) = delete;
  FramedConnection& operator=(const FramedConnection&) = delete;

  // Queues one frame; fails when the payload is over the limit or the connection failed.
  Result<void> send(std::string_view payload);
  template <Message M>
  Result<void> send_message(const M& message) {
    return send(encode(message));
  }
  // Bytes queued but not yet taken by the kernel.
  size_t output_pending() const;
  bool failed() const { return failed_; }
  int fd() const { return fd_.get(); }

 private:
  struct BufferDeleter {
    void operator()(bufferevent* bev) const;
  };
  static void on_read(bufferevent* bev, void* arg);
  static void on_event(bufferevent* bev, short what, void* arg);
  void report(Error error, const std::string& reason);

  EventLoop& loop_;
  FrameOptions options_;
  std::shared_ptr<FrameHandler> on_frame_;
  std::shared_ptr<ErrorHandler> on_error_;
  // Cleared by the destructor, so that a handler that destroys the connection
  // stops the loop that called it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool failed_ = false;
  UniqueFd fd_;  // declared before bev_: the bufferevent goes first
  std::unique_ptr<bufferevent, BufferDeleter> bev_;
};

}  // namespace postern
