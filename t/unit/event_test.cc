// Unit tests for the event loop wrappers, run in a real libevent loop: timers,
// fd watchers, signals, and framed connections over a socketpair.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/event.h"
#include "util/socket.h"

using namespace postern;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Stops a test loop that would otherwise hang when the code under test is broken.
struct Watchdog {
  bool fired = false;
  Timer timer;
  Watchdog(EventLoop& loop, std::chrono::milliseconds limit = 5s)
      : timer(loop, [this, &loop] {
          fired = true;
          loop.stop();
        }) {
    timer.start_once(limit);
  }
};

struct Note {
  std::string text;
  int64_t seq = 0;
  static constexpr std::string_view kType = "note";
  static constexpr auto kFields = std::make_tuple(field("text", &Note::text), field("seq", &Note::seq));
};

std::string be32(uint32_t n) {
  std::string out;
  codec_detail::put_length(out, n);
  return out;
}

void write_raw(int fd, std::string_view bytes) {
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

struct ConnFailure {
  FramedConnection::Error error;
  std::string reason;
};

}  // namespace

TEST_CASE("a one-shot timer fires once after its delay", "[event]") {
  EventLoop loop;
  int fired = 0;
  Timer timer(loop, [&] { ++fired; });
  auto start = Clock::now();
  timer.start_once(30ms);
  CHECK(timer.pending());
  loop.run();  // returns when nothing is left to wait for
  CHECK(fired == 1);
  CHECK(Clock::now() - start >= 30ms);
  CHECK_FALSE(timer.pending());
}

TEST_CASE("a periodic timer repeats until cancelled from its callback", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  int ticks = 0;
  std::optional<Timer> timer;
  timer.emplace(loop, [&] {
    if (++ticks == 3) {
      timer->cancel();
      watchdog.timer.cancel();
    }
  });
  auto start = Clock::now();
  timer->start_periodic(10ms);
  loop.run();
  CHECK(ticks == 3);
  CHECK(Clock::now() - start >= 30ms);
  CHECK_FALSE(watchdog.fired);
}

TEST_CASE("a destroyed timer never fires, and a timer may destroy itself", "[event]") {
  EventLoop loop;
  int fired = 0;
  {
    Timer gone(loop, [&] { ++fired; });
    gone.start_once(1ms);
  }
  std::unique_ptr<Timer> self;
  self = std::make_unique<Timer>(loop, [&] {
    ++fired;
    self.reset();
  });
  self->start_periodic(5ms);
  loop.run();
  CHECK(fired == 1);
  CHECK(self == nullptr);
}

TEST_CASE("the loop's clock follows the wall clock", "[event]") {
  EventLoop loop;
  auto now = std::chrono::system_clock::now();
  CHECK(loop.now() - now < 2s);
  CHECK(now - loop.now() < 2s);
}

TEST_CASE("an exception from a callback stops the loop and comes out of run()", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  Timer boom(loop, [] { throw std::runtime_error("boom"); });
  boom.start_once(1ms);
  CHECK_THROWS_WITH(loop.run(), "boom");
  CHECK_FALSE(watchdog.fired);
}

TEST_CASE("IoWatcher calls back when a pipe becomes readable", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  UniqueFd r(fds[0]), w(fds[1]);
  std::string got;
  IoWatcher watcher(loop, r.get(), IoWatcher::kReadable, [&](int events) {
    CHECK(events == IoWatcher::kReadable);
    char buf[16];
    ssize_t n = ::read(r.get(), buf, sizeof(buf));
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (got == "ping") loop.stop();
  });
  Timer writer(loop, [&] { write_raw(w.get(), "ping"); });
  writer.start_once(5ms);
  loop.run();
  CHECK(got == "ping");
  CHECK_FALSE(watchdog.fired);

  // Stopped, it no longer calls back even though data waits.
  watcher.stop();
  write_raw(w.get(), "more");
  Timer done(loop, [&] { loop.stop(); });
  done.start_once(20ms);
  loop.run();
  CHECK(got == "ping");
}

TEST_CASE("IoWatcher reports a writable socket", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  auto [a, b] = make_socketpair();
  int seen = 0;
  IoWatcher watcher(loop, a.get(), IoWatcher::kWritable, [&](int events) {
    seen = events;
    loop.stop();
  });
  loop.run();
  CHECK(seen == IoWatcher::kWritable);
}

TEST_CASE("SignalWatcher calls back on the loop after raise()", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  int hups = 0;
  SignalWatcher hup(loop, SIGHUP, [&] {
    ++hups;
    loop.stop();
  });
  ::raise(SIGHUP);
  loop.run();
  CHECK(hups == 1);
  CHECK_FALSE(watchdog.fired);
}

TEST_CASE("FramedConnection exchanges frames inside a loop", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  auto [a, b] = make_socketpair();
  std::vector<ConnFailure> failures;
  auto on_error = [&](FramedConnection::Error e, const std::string& why) { failures.push_back({e, why}); };

  // The server echoes every note back with its sequence number doubled.
  std::unique_ptr<FramedConnection> server;
  server = std::make_unique<FramedConnection>(
      loop, std::move(b), FrameOptions{},
      [&](std::string payload) {
        auto note = decode<Note>(payload);
        REQUIRE(note.ok());
        note->seq *= 2;
        REQUIRE(server->send_message(*note).ok());
      },
      on_error);

  std::vector<Note> replies;
  const std::string big(300 * 1024, 'b');
  FramedConnection client(
      loop, std::move(a), FrameOptions{},
      [&](std::string payload) {
        auto note = decode<Note>(payload);
        REQUIRE(note.ok());
        replies.push_back(*note);
        if (replies.size() == 3) loop.stop();
      },
      on_error);
  REQUIRE(client.send_message(Note{"one", 1}).ok());
  REQUIRE(client.send_message(Note{big, 2}).ok());
  REQUIRE(client.send_message(Note{"", 3}).ok());
  loop.run();

  CHECK_FALSE(watchdog.fired);
  CHECK(failures.empty());
  REQUIRE(replies.size() == 3);
  CHECK(replies[0].text == "one");
  CHECK(replies[0].seq == 2);
  CHECK(replies[1].text == big);
  CHECK(replies[1].seq == 4);
  CHECK(replies[2].seq == 6);
  CHECK(client.output_pending() == 0);
}

TEST_CASE("FramedConnection reports a broken peer once", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  auto [a, b] = make_socketpair();
  std::vector<ConnFailure> failures;
  std::vector<std::string> frames;
  FrameOptions options;
  options.limits.max_frame = 1000;
  auto conn = std::make_unique<FramedConnection>(
      loop, std::move(b), options, [&](std::string payload) { frames.push_back(payload); },
      [&](FramedConnection::Error e, const std::string& why) {
        failures.push_back({e, why});
        loop.stop();
      });

  SECTION("an oversize frame") {
    write_raw(a.get(), be32(1001));
    loop.run();
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].error == FramedConnection::Error::kBadFrame);
    CHECK(failures[0].reason == "frame of 1001 bytes, limit 1000");
    CHECK(conn->failed());
    CHECK(conn->send("late").error() == "connection is closed");
  }
  SECTION("a peer that closes between frames") {
    write_raw(a.get(), be32(2) + "ok");
    a.reset();
    loop.run();
    CHECK(frames == std::vector<std::string>{"ok"});
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].error == FramedConnection::Error::kClosed);
    CHECK(failures[0].reason == "peer closed the connection");
  }
  SECTION("a peer that closes in the middle of a frame") {
    write_raw(a.get(), be32(10) + "abc");
    a.reset();
    loop.run();
    CHECK(frames.empty());
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].error == FramedConnection::Error::kClosed);
    CHECK(failures[0].reason == "peer closed the connection in the middle of a frame");
  }
  SECTION("a payload over the limit is refused when sending") {
    CHECK(conn->send(std::string(1001, 'x')).error() == "message of 1001 bytes, limit 1000");
    CHECK(conn->send(std::string(1000, 'x')).ok());
  }
  CHECK_FALSE(watchdog.fired);
}

TEST_CASE("FramedConnection times out a silent peer", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop);
  auto [a, b] = make_socketpair();
  FrameOptions options;
  options.read_timeout = 50ms;
  std::optional<ConnFailure> failure;
  FramedConnection conn(
      loop, std::move(b), options, [](std::string) {},
      [&](FramedConnection::Error e, const std::string& why) {
        failure = ConnFailure{e, why};
        loop.stop();
      });
  auto start = Clock::now();
  loop.run();
  REQUIRE(failure);
  CHECK(failure->error == FramedConnection::Error::kTimeout);
  CHECK(failure->reason == "timed out waiting for the peer");
  CHECK(Clock::now() - start >= 50ms);
  CHECK_FALSE(watchdog.fired);
}

TEST_CASE("FramedConnection may be destroyed by its own handlers", "[event]") {
  EventLoop loop;
  Watchdog watchdog(loop, 1s);
  auto [a, b] = make_socketpair();
  int frames = 0;
  std::unique_ptr<FramedConnection> conn;
  conn = std::make_unique<FramedConnection>(
      loop, std::move(b), FrameOptions{},
      [&](std::string) {
        ++frames;
        conn.reset();  // two more frames wait in the buffer; none may be delivered
      },
      [&](FramedConnection::Error, const std::string&) { FAIL("no error expected"); });
  write_raw(a.get(), be32(1) + "1" + be32(1) + "2" + be32(1) + "3");
  Timer done(loop, [&] { loop.stop(); });
  done.start_once(50ms);
  loop.run();
  CHECK(frames == 1);
  CHECK(conn == nullptr);

  // The same from the error handler.
  auto [c, d] = make_socketpair();
  int errors = 0;
  conn = std::make_unique<FramedConnection>(
      loop, std::move(d), FrameOptions{}, [](std::string) {},
      [&](FramedConnection::Error, const std::string&) {
        ++errors;
        conn.reset();
        loop.stop();
      });
  c.reset();
  loop.run();
  CHECK(errors == 1);
  CHECK(conn == nullptr);
}
