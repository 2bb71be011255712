// Clients of the auth service (see auth_client.h).
#include "mail/auth_client.h"

#include <algorithm>
#include <utility>

#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr std::string_view kServiceName = "auth";
// A local service accepts at once or is overloaded; never wait long to connect.
constexpr std::chrono::milliseconds kMaxConnectWait{1000};

AuthReply temp_failure(int64_t id, const std::string& reason) {
  return AuthReply{id, std::string(kAuthTemp), {}, reason};
}

AuthRequest make_request(int64_t id, const AuthQuery& query) {
  return AuthRequest{id, query.service, query.user, query.password, query.client_address};
}

}  // namespace

AuthReply verify_blocking(const std::string& socket_path, const AuthQuery& query,
                          std::chrono::milliseconds timeout) {
  const int64_t id = 1;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      deadline - std::chrono::steady_clock::now()));
  };
  auto fd = connect_unix(socket_path, std::min(timeout, kMaxConnectWait));
  if (!fd) return temp_failure(id, "auth service unavailable: " + fd.error());
  auto hello = read_hello(fd->get(), kServiceName, left());
  if (!hello) return temp_failure(id, "auth service: " + hello.error());
  auto sent = write_message(fd->get(), make_request(id, query), left(), kAuthCodecLimits);
  if (!sent) return temp_failure(id, "auth service: " + sent.error());
  auto reply = read_message<AuthReply>(fd->get(), left(), kAuthCodecLimits);
  if (!reply) return temp_failure(id, "auth service: " + reply.error());
  if (reply->id != id) return temp_failure(id, "auth service answered another request");
  return *reply;
}

AuthTicket& AuthTicket::operator=(AuthTicket&& other) noexcept {
  if (this != &other) {
    cancel();
    client_ = std::move(other.client_);
    id_ = other.id_;
  }
  return *this;
}

void AuthTicket::cancel() {
  if (auto client = client_.lock(); client && *client) (*client)->cancel(id_);
  client_.reset();
}

AuthClient::AuthClient(EventLoop& loop, std::string socket_path, std::chrono::milliseconds timeout)
    : loop_(loop), socket_path_(std::move(socket_path)), timeout_(timeout),
      self_(std::make_shared<AuthClient*>(this)) {}

AuthClient::~AuthClient() { *self_ = nullptr; }

AuthTicket AuthClient::verify(const AuthQuery& query, Callback done) {
  const int64_t id = next_id_++;
  Pending& p = pending_[id];
  p.done = std::move(done);
  p.timer = std::make_unique<Timer>(loop_, [this, id] {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::string failure = it->second.failure;
    // A service that stopped answering: the next request gets a fresh connection.
    if (failure.empty()) {
      failure = "auth service timed out";
      drop_connection();
    }
    answer(id, temp_failure(id, failure));
  });
  p.timer->start_once(timeout_);

  // A failure found now is still answered on the loop, never inside verify().
  auto fail_soon = [&p](std::string failure) {
    p.failure = std::move(failure);
    p.timer->start_once(std::chrono::milliseconds(0));
  };
  auto payload = encode(make_request(id, query));
  if (!conn_ && !connect()) {
    fail_soon("auth service unavailable");
  } else if (!hello_seen_) {
    unsent_.push_back(std::move(payload));
  } else if (auto sent = conn_->send(payload); !sent) {
    fail_soon("auth service: " + sent.error());
  }
  return AuthTicket(self_, id);
}

bool AuthClient::connect() {
  auto fd = connect_unix(socket_path_, std::min(timeout_, kMaxConnectWait));
  if (!fd) {
    log_warn("cannot reach the auth service: %s", fd.error().c_str());
    return false;
  }
  FrameOptions options;
  options.write_timeout = timeout_;
  options.limits = kAuthCodecLimits;
  hello_seen_ = false;
  conn_ = std::make_unique<FramedConnection>(
      loop_, std::move(*fd), options, [this](std::string payload) { on_frame(payload); },
      [this](FramedConnection::Error, const std::string& reason) { on_error(reason); });
  return true;
}

void AuthClient::on_frame(const std::string& payload) {
  if (!hello_seen_) {
    auto hello = decode<Hello>(payload, kAuthCodecLimits);
    Result<void> checked = hello ? check_hello(*hello, kServiceName) : Result<void>(hello.failure());
    if (!checked) return on_error(checked.error());
    hello_seen_ = true;
    for (const auto& request : unsent_) {
      if (auto sent = conn_->send(request); !sent) return on_error(sent.error());
    }
    unsent_.clear();
    return;
  }
  auto reply = decode<AuthReply>(payload, kAuthCodecLimits);
  if (!reply) return on_error(reply.error());
  if (!pending_.count(reply->id)) return;  // it timed out or was cancelled
  answer(reply->id, *reply);
}

void AuthClient::on_error(const std::string& reason) {
  log_warn("auth service connection: %s", reason.c_str());
  drop_connection();
  fail_all("auth service: " + reason);
}

void AuthClient::drop_connection() {
  conn_.reset();
  hello_seen_ = false;
  unsent_.clear();
}

bool AuthClient::answer(int64_t id, const AuthReply& reply) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return true;
  Callback done = std::move(it->second.done);
  // The timer may be the one calling; destroying it in its own callback is safe.
  auto timer = std::move(it->second.timer);
  pending_.erase(it);
  std::shared_ptr<AuthClient*> self = self_;
  done(reply);
  return *self != nullptr;
}

void AuthClient::fail_all(const std::string& reason) {
  std::vector<int64_t> ids;
  for (const auto& [id, p] : pending_) ids.push_back(id);
  for (int64_t id : ids)
    if (!answer(id, temp_failure(id, reason))) return;
}

}  // namespace postern
