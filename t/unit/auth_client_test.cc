// Unit tests for the auth service's clients, against a scripted fake service on a
// real UNIX socket: answers out of order, cancelled requests, a service that is
// not running, one that never answers, one that hangs up or is not the auth
// service, a callback that destroys the client, and the blocking client.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mail/auth_client.h"
#include "mail/auth_protocol.h"
#include "util/event.h"
#include "util/socket.h"

using namespace postern;
using postern::test::TempDir;
using namespace std::chrono_literals;

namespace {

// Answers by user name: "slow" after 100 ms, "silent" never, "hangup" by closing
// the connection, anyone else at once: ok when the password is "right", else fail.
class FakeService {
 public:
  FakeService(EventLoop& loop, const std::string& path, std::string hello_service = "auth")
      : loop_(loop), hello_service_(std::move(hello_service)) {
    auto fd = listen_unix(path, 0600);
    REQUIRE(fd.ok());
    listener_ = std::move(*fd);
    watcher_ = std::make_unique<IoWatcher>(loop, listener_.get(), IoWatcher::kReadable, [this](int) { accept(); });
  }
  int connections = 0;
  std::vector<AuthRequest> requests;

 private:
  void accept() {
    auto fd = accept_connection(listener_.get());
    if (!fd) return;
    ++connections;
    auto conn = std::make_shared<std::unique_ptr<FramedConnection>>();
    *conn = std::make_unique<FramedConnection>(
        loop_, std::move(*fd), FrameOptions{},
        [this, conn](std::string payload) { on_request(*conn, payload); },
        [conn](FramedConnection::Error, const std::string&) { conn->reset(); });
    REQUIRE((*conn)->send_message(make_hello(hello_service_)).ok());
    conns_.push_back(conn);
  }

  void on_request(std::unique_ptr<FramedConnection>& conn, const std::string& payload) {
    auto request = decode<AuthRequest>(payload);
    REQUIRE(request.ok());
    requests.push_back(*request);
    AuthReply reply{request->id, request->password == "right" ? "ok" : "fail", request->user, "scripted"};
    if (request->user == "silent") return;
    if (request->user == "hangup") {
      conn.reset();
      return;
    }
    if (request->user == "slow") {
      auto timer = std::make_shared<std::unique_ptr<Timer>>();
      FramedConnection* c = conn.get();
      *timer = std::make_unique<Timer>(loop_, [c, reply, timer] {
        (void)c->send_message(reply);
        timer->reset();
      });
      (*timer)->start_once(100ms);
      return;
    }
    REQUIRE(conn->send_message(reply).ok());
  }

  EventLoop& loop_;
  std::string hello_service_;
  UniqueFd listener_;
  std::unique_ptr<IoWatcher> watcher_;
  std::vector<std::shared_ptr<std::unique_ptr<FramedConnection>>> conns_;
};

// Stops a loop that would otherwise run for ever when the code under test is broken.
struct Watchdog {
  bool fired = false;
  Timer timer;
  explicit Watchdog(EventLoop& loop)
      : timer(loop, [this, &loop] {
          fired = true;
          loop.stop();
        }) {
    timer.start_once(5s);
  }
};

AuthQuery query(const std::string& user, const std::string& password = "right") {
  return AuthQuery{"smtp", user, password, "192.0.2.1"};
}

}  // namespace

TEST_CASE("answers are matched to their requests, in whatever order they come", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth");
  AuthClient client(loop, dir.path + "/auth", 2s);
  std::vector<std::string> order;
  std::map<std::string, AuthReply> replies;
  auto record = [&](const std::string& name) {
    return [&, name](const AuthReply& r) {
      order.push_back(name);
      replies[name] = r;
      if (order.size() == 3) loop.stop();
    };
  };
  AuthTicket slow = client.verify(query("slow"), record("slow"));
  AuthTicket good = client.verify(query("alice"), record("alice"));
  AuthTicket bad = client.verify(query("bob", "wrong"), record("bob"));
  CHECK(order.empty());  // never inside verify()
  CHECK(client.pending() == 3);
  loop.run();
  REQUIRE_FALSE(watchdog.fired);
  CHECK(order == std::vector<std::string>{"alice", "bob", "slow"});
  CHECK(replies["alice"].status == "ok");
  CHECK(replies["alice"].user == "alice");
  CHECK(replies["bob"].status == "fail");
  CHECK(replies["slow"].status == "ok");
  CHECK(client.pending() == 0);
  CHECK(service.connections == 1);
  REQUIRE(service.requests.size() == 3);
  CHECK(service.requests[1].service == "smtp");
  CHECK(service.requests[1].password == "right");
  CHECK(service.requests[1].client_address == "192.0.2.1");
}

TEST_CASE("a dropped ticket cancels its callback", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth");
  AuthClient client(loop, dir.path + "/auth", 2s);
  int called = 0;
  {
    AuthTicket gone = client.verify(query("slow"), [&](const AuthReply&) { ++called; });
  }
  CHECK(client.pending() == 0);
  AuthTicket kept = client.verify(query("slow"), [&](const AuthReply&) { loop.stop(); });
  loop.run();
  REQUIRE_FALSE(watchdog.fired);
  CHECK(called == 0);
  // Cancelling after the answer does nothing.
  kept.cancel();
}

TEST_CASE("a service that is not running is a temporary failure, answered on the loop", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  AuthClient client(loop, dir.path + "/nothing-here", 2s);
  std::optional<AuthReply> reply;
  AuthTicket t = client.verify(query("alice"), [&](const AuthReply& r) {
    reply = r;
    loop.stop();
  });
  CHECK_FALSE(reply.has_value());
  loop.run();
  REQUIRE(reply.has_value());
  CHECK(reply->status == "temp");
  CHECK(reply->reason == "auth service unavailable");
}

TEST_CASE("a service that does not answer in time is a temporary failure, and the next request reconnects", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth");
  AuthClient client(loop, dir.path + "/auth", 200ms);
  std::vector<AuthReply> replies;
  AuthTicket first, second;
  auto start = std::chrono::steady_clock::now();
  first = client.verify(query("silent"), [&](const AuthReply& r) {
    replies.push_back(r);
    second = client.verify(query("alice"), [&](const AuthReply& r2) {
      replies.push_back(r2);
      loop.stop();
    });
  });
  loop.run();
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].status == "temp");
  CHECK(replies[0].reason == "auth service timed out");
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  CHECK(replies[1].status == "ok");
  CHECK(service.connections == 2);
}

TEST_CASE("a service that hangs up fails every request in flight", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth");
  AuthClient client(loop, dir.path + "/auth", 2s);
  std::vector<AuthReply> replies;
  auto collect = [&](const AuthReply& r) {
    replies.push_back(r);
    if (replies.size() == 2) loop.stop();
  };
  AuthTicket a = client.verify(query("silent"), collect);
  AuthTicket b = client.verify(query("hangup"), collect);
  loop.run();
  REQUIRE(replies.size() == 2);
  for (const auto& r : replies) {
    CHECK(r.status == "temp");
    CHECK(r.reason.starts_with("auth service: "));
  }
}

TEST_CASE("a peer that is not the auth service is refused", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth", "qmgr");
  AuthClient client(loop, dir.path + "/auth", 2s);
  std::optional<AuthReply> reply;
  AuthTicket t = client.verify(query("alice"), [&](const AuthReply& r) {
    reply = r;
    loop.stop();
  });
  loop.run();
  REQUIRE(reply.has_value());
  CHECK(reply->status == "temp");
  CHECK(service.requests.empty());  // nothing was sent to it
}

TEST_CASE("a callback may destroy the client", "[auth]") {
  TempDir dir;
  EventLoop loop;
  Watchdog watchdog(loop);
  FakeService service(loop, dir.path + "/auth");
  auto client = std::make_unique<AuthClient>(loop, dir.path + "/auth", 2s);
  int called = 0;
  AuthTicket a = client->verify(query("alice"), [&](const AuthReply&) {
    ++called;
    client.reset();
  });
  AuthTicket b = client->verify(query("alice"), [&](const AuthReply&) { ++called; });
  Timer stop(loop, [&] { loop.stop(); });
  stop.start_once(300ms);
  loop.run();
  CHECK(called == 1);
  CHECK(client == nullptr);
  // Tickets that outlive their client do nothing.
  a.cancel();
}

TEST_CASE("the blocking client", "[auth]") {
  TempDir dir;
  std::string path = dir.path + "/auth";
  auto listener = listen_unix(path, 0600);
  REQUIRE(listener.ok());
  // One connection per request, served by a plain thread.
  auto serve = [&](std::string hello_service, bool answer) {
    return std::thread([&, hello_service, answer] {
      UniqueFd conn;
      for (int i = 0; i < 500 && !conn.valid(); ++i) {
        if (auto c = accept_connection(listener->get())) conn = std::move(*c);
        else std::this_thread::sleep_for(1ms);
      }
      if (!conn.valid()) return;
      set_nonblocking(conn.get(), false);
      (void)write_message(conn.get(), make_hello(hello_service), 1s);
      auto request = read_message<AuthRequest>(conn.get(), 1s);
      if (!request || !answer) {
        std::this_thread::sleep_for(300ms);
        return;
      }
      (void)write_message(conn.get(), AuthReply{request->id, "ok", request->user + "-canonical", {}}, 1s);
    });
  };

  auto t1 = serve("auth", true);
  AuthReply ok = verify_blocking(path, query("alice"), 2s);
  t1.join();
  CHECK(ok.status == "ok");
  CHECK(ok.user == "alice-canonical");

  auto t2 = serve("auth", false);
  auto start = std::chrono::steady_clock::now();
  AuthReply late = verify_blocking(path, query("alice"), 150ms);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  t2.join();
  CHECK(late.status == "temp");
  CHECK(late.reason.starts_with("auth service: "));

  auto t3 = serve("qmgr", true);
  AuthReply wrong = verify_blocking(path, query("alice"), 2s);
  t3.join();
  CHECK(wrong.status == "temp");

  AuthReply none = verify_blocking(dir.path + "/nothing-here", query("alice"), 2s);
  CHECK(none.status == "temp");
  CHECK(none.reason.starts_with("auth service unavailable: "));
}
