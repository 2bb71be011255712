// Clients of the auth service (auth_protocol.h): an asynchronous one for daemons
// that serve many sessions on one event loop (smtpd) and must never block on a
// password check, and a blocking one for daemons that serve one client at a time.
//
// Whatever goes wrong between client and service (the service is not running, the
// connection breaks, no answer in time) is answered as kAuthTemp, so the caller
// replies 454 4.7.0 (SMTP) or the protocol's "try again later".
//
//   AuthClient auth(loop, auth_socket_path(spool), std::chrono::seconds(10));
//   session.ticket = auth.verify({"smtp", user, password, client_address},
//                                [&session](const AuthReply& reply) { session.on_auth(reply); });
//   // Destroying session.ticket before the answer cancels the callback.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mail/auth_protocol.h"
#include "util/event.h"

namespace postern {

// What a client asks; the id is the client's business.
struct AuthQuery {
  std::string service;
  std::string user;
  std::string password;
  std::string client_address;
};

// Asks the service at socket_path and waits at most timeout for the whole
// exchange.  The timeout must be longer than the service's auth_failure_delay.
AuthReply verify_blocking(const std::string& socket_path, const AuthQuery& query, std::chrono::milliseconds timeout);

class AuthClient;

// A request in flight.  Destroying it (or calling cancel) before the answer means
// the callback is never called; after the answer it does nothing.  Move-only.
class AuthTicket {
 public:
  AuthTicket() = default;
  AuthTicket(AuthTicket&& other) noexcept : client_(std::move(other.client_)), id_(other.id_) {}
  AuthTicket& operator=(AuthTicket&& other) noexcept;
  AuthTicket(const AuthTicket&) = delete;
  AuthTicket& operator=(const AuthTicket&) = delete;
  ~AuthTicket() { cancel(); }
  void cancel();

 private:
  friend class AuthClient;
  AuthTicket(std::weak_ptr<AuthClient*> client, int64_t id) : client_(std::move(client)), id_(id) {}
  std::weak_ptr<AuthClient*> client_;
  int64_t id_ = 0;
};

// One connection to the service, opened when the first request needs it and
// opened again after it broke; requests are sent without waiting for earlier
// answers.  Callbacks run on the loop, never inside verify(), and may destroy the
// client or start new requests.
class AuthClient {
 public:
  using Callback = std::function<void(const AuthReply& reply)>;

  // timeout bounds each request, from verify() to its answer.
  AuthClient(EventLoop& loop, std::string socket_path, std::chrono::milliseconds timeout);
  ~AuthClient();
  AuthClient(const AuthClient&) = delete;
  AuthClient& operator=(const AuthClient&) = delete;

  [[nodiscard]] AuthTicket verify(const AuthQuery& query, Callback done);
  // Requests waiting for an answer.
  size_t pending() const { return pending_.size(); }

 private:
  friend class AuthTicket;
  struct Pending {
    Callback done;
    std::unique_ptr<Timer> timer;  // the timeout, or at once for a failure found before sending
    std::string failure;           // what a firing timer answers; empty: the service timed out
  };

  bool connect();
  void on_frame(const std::string& payload);
  void on_error(const std::string& reason);
  void drop_connection();
  // Answers a request and forgets it; false when the callback destroyed the client.
  bool answer(int64_t id, const AuthReply& reply);
  void fail_all(const std::string& reason);
  void cancel(int64_t id) { pending_.erase(id); }

  EventLoop& loop_;
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<FramedConnection> conn_;
  bool hello_seen_ = false;
  std::vector<std::string> unsent_;  // requests waiting for the service's Hello
  int64_t next_id_ = 1;
  std::map<int64_t, Pending> pending_;
  // Points back at this client while it lives; tickets and callbacks hold weak copies.
  std::shared_ptr<AuthClient*> self_;
};

}  // namespace postern
