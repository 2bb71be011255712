// libevent owners: the loop, watchers, timers, signals and framed connections.
#include "util/event.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <signal.h>
#include <sys/time.h>

#include <cstring>

#include "util/error.h"
#include "util/socket.h"

namespace postern {

namespace {

struct timeval to_timeval(std::chrono::milliseconds ms) {
  struct timeval tv {};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

EventPtr new_event(EventLoop& loop, int fd, short what, event_callback_fn callback, void* arg) {
  EventPtr ev(::event_new(loop.base(), fd, what, callback, arg));
  if (!ev) throw SystemError(ENOMEM, "event_new");
  return ev;
}

}  // namespace

void EventLoop::BaseDeleter::operator()(event_base* base) const { ::event_base_free(base); }
void EventDeleter::operator()(event* ev) const { ::event_free(ev); }
void FramedConnection::BufferDeleter::operator()(bufferevent* bev) const { ::bufferevent_free(bev); }

EventLoop::EventLoop() : base_(::event_base_new()) {
  if (!base_) throw SystemError(errno ? errno : ENOMEM, "event_base_new");
  ::signal(SIGPIPE, SIG_IGN);
}

EventLoop::~EventLoop() = default;

void EventLoop::run() {
  int rc = ::event_base_dispatch(base_.get());
  if (pending_) std::rethrow_exception(std::exchange(pending_, nullptr));
  if (rc < 0) throw SystemError(errno, "event_base_dispatch");
}

void EventLoop::stop() { ::event_base_loopbreak(base_.get()); }

std::chrono::system_clock::time_point EventLoop::now() const {
  struct timeval tv {};
  if (::event_base_gettimeofday_cached(base_.get(), &tv) < 0) ::gettimeofday(&tv, nullptr);
  return std::chrono::system_clock::time_point(std::chrono::seconds(tv.tv_sec) +
                                               std::chrono::microseconds(tv.tv_usec));
}

void EventLoop::abort_run(std::exception_ptr error) noexcept {
  if (!pending_) pending_ = error;
  ::event_base_loopbreak(base_.get());
}

IoWatcher::IoWatcher(EventLoop& loop, int fd, int events, Callback callback)
    : loop_(loop), callback_(std::make_shared<Callback>(std::move(callback))) {
  short what = EV_PERSIST;
  if (events & kReadable) what |= EV_READ;
  if (events & kWritable) what |= EV_WRITE;
  event_ = new_event(loop, fd, what, &IoWatcher::on_event, this);
  start();
}

void IoWatcher::start() { ::event_add(event_.get(), nullptr); }
void IoWatcher::stop() { ::event_del(event_.get()); }

void IoWatcher::on_event(int, short what, void* arg) {
  auto* self = static_cast<IoWatcher*>(arg);
  auto callback = self->callback_;  // survives if the callback destroys the watcher
  int events = ((what & EV_READ) ? kReadable : 0) | ((what & EV_WRITE) ? kWritable : 0);
  self->loop_.call([&] { (*callback)(events); });
}

Timer::Timer(EventLoop& loop, Callback callback)
    : loop_(loop), callback_(std::make_shared<Callback>(std::move(callback))),
      event_(new_event(loop, -1, 0, &Timer::on_event, this)) {}

void Timer::arm(std::chrono::milliseconds delay) {
  struct timeval tv = to_timeval(delay);
  ::event_add(event_.get(), &tv);
}

void Timer::start_once(std::chrono::milliseconds delay) {
  period_ = std::chrono::milliseconds(0);
  arm(delay);
}

void Timer::start_periodic(std::chrono::milliseconds period) {
  period_ = period;
  arm(period);
}

void Timer::cancel() {
  period_ = std::chrono::milliseconds(0);
  ::event_del(event_.get());
}

bool Timer::pending() const { return ::event_pending(event_.get(), EV_TIMEOUT, nullptr) != 0; }

void Timer::on_event(int, short, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  auto callback = self->callback_;
  EventLoop& loop = self->loop_;
  // Re-armed before the callback, which may cancel or destroy the timer.
  if (self->period_.count() > 0) self->arm(self->period_);
  loop.call([&] { (*callback)(); });
}

SignalWatcher::SignalWatcher(EventLoop& loop, int signo, Callback callback)
    : loop_(loop), callback_(std::make_shared<Callback>(std::move(callback))),
      event_(new_event(loop, signo, EV_SIGNAL | EV_PERSIST, &SignalWatcher::on_event, this)) {
  if (::event_add(event_.get(), nullptr) < 0) throw SystemError(errno, "watching signal " + std::to_string(signo));
}

void SignalWatcher::on_event(int, short, void* arg) {
  auto* self = static_cast<SignalWatcher*>(arg);
  auto callback = self->callback_;
  self->loop_.call([&] { (*callback)(); });
}

FramedConnection::FramedConnection(EventLoop& loop, UniqueFd fd, const FrameOptions& options, FrameHandler on_frame,
                                   ErrorHandler on_error)
    : loop_(loop), options_(options), on_frame_(std::make_shared<FrameHandler>(std::move(on_frame))),
      on_error_(std::make_shared<ErrorHandler>(std::move(on_error))), fd_(std::move(fd)) {
  set_nonblocking(fd_.get());
  bev_.reset(::bufferevent_socket_new(loop.base(), fd_.get(), 0));
  if (!bev_) throw SystemError(ENOMEM, "bufferevent_socket_new");
  ::bufferevent_setcb(bev_.get(), &FramedConnection::on_read, nullptr, &FramedConnection::on_event, this);
  struct timeval read_tv = to_timeval(options.read_timeout);
  struct timeval write_tv = to_timeval(options.write_timeout);
  ::bufferevent_set_timeouts(bev_.get(), options.read_timeout.count() > 0 ? &read_tv : nullptr,
                             options.write_timeout.count() > 0 ? &write_tv : nullptr);
  ::bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

FramedConnection::~FramedConnection() { *alive_ = false; }

Result<void> FramedConnection::send(std::string_view payload) {
  if (failed_) return fail("connection is closed");
  auto frame = make_frame(payload, options_.limits);
  if (!frame) return frame.failure();
  if (::bufferevent_write(bev_.get(), frame->data(), frame->size()) < 0) return fail("out of memory queueing a frame");
  return {};
}

size_t FramedConnection::output_pending() const { return ::evbuffer_get_length(::bufferevent_get_output(bev_.get())); }

void FramedConnection::report(Error error, const std::string& reason) {
  failed_ = true;
  ::bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
  auto handler = on_error_;
  (*handler)(error, reason);
}

void FramedConnection::on_read(bufferevent* bev, void* arg) {
  auto* self = static_cast<FramedConnection*>(arg);
  auto alive = self->alive_;
  auto handler = self->on_frame_;
  self->loop_.call([&] {
    evbuffer* input = ::bufferevent_get_input(bev);
    while (*alive && !self->failed_) {
      char header[kFrameHeaderSize];
      if (::evbuffer_copyout(input, header, sizeof(header)) != static_cast<ssize_t>(sizeof(header))) return;
      auto length = frame_length({header, sizeof(header)}, self->options_.limits);
      if (!length) return self->report(Error::kBadFrame, length.error());
      if (::evbuffer_get_length(input) < kFrameHeaderSize + *length) return;
      ::evbuffer_drain(input, kFrameHeaderSize);
      std::string payload(*length, '\0');
      ::evbuffer_remove(input, payload.data(), payload.size());
      (*handler)(std::move(payload));
    }
  });
}

void FramedConnection::on_event(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<FramedConnection*>(arg);
  if (self->failed_) return;
  int err = EVUTIL_SOCKET_ERROR();
  self->loop_.call([&] {
    if (what & BEV_EVENT_TIMEOUT) {
      self->report(Error::kTimeout, (what & BEV_EVENT_READING) ? "timed out waiting for the peer"
                                                               : "timed out writing to the peer");
    } else if (what & BEV_EVENT_EOF) {
      bool mid_frame = ::evbuffer_get_length(::bufferevent_get_input(bev)) > 0;
      self->report(Error::kClosed, mid_frame ? "peer closed the connection in the middle of a frame"
                                             : "peer closed the connection");
    } else if (what & BEV_EVENT_ERROR) {
      if (err == EPIPE || err == ECONNRESET) self->report(Error::kClosed, "peer closed the connection");
      else self->report(Error::kIo, std::string("socket error: ") + std::strerror(err));
    }
  });
}

}  // namespace postern
