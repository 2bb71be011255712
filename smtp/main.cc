// smtp: the SMTP client, delivery to other mail servers, as Postfix's smtp(8).
//   smtp -n service -t unix ...   (started by master; private/smtp and private/relay)
// One client is one DeliveryRequest from the queue manager
// (lib/mail/delivery_protocol.h): one message, the recipients of one nexthop.
// smtp answers one DeliveryReply with a result per recipient.
//
// The nexthop is "domain" or "host:port" (MX lookup, else the domain's own
// addresses) or "[host]:port" (no MX lookup); without a port, smtp_tcp_port (25).
// The MX hosts are tried in preference order, equal preferences in random order,
// each host's addresses in turn (at most smtp_mx_address_limit in all); smtp moves
// on to the next address when a connection fails, the server greets or answers
// MAIL FROM, DATA or the end of data with 4xx, or the conversation breaks before
// the end of data.  Per-recipient answers to RCPT TO are final: 5xx bounces, 4xx
// defers that recipient alone, so a partly accepted message is retried only for
// the others.  A 5xx to MAIL FROM or DATA bounces every recipient involved.  Remote
// answers are quoted as Postfix words them: "host mx.example.com[192.0.2.1] said:
// 550 5.1.1 <x@example.com>: user unknown (in reply to RCPT TO command)".
// NXDOMAIN, a null MX (RFC 7505) and mail that loops back to this machine (an MX
// host that is $myhostname or one of inet_interfaces, or a server that greets with
// $myhostname) bounce; DNS temporary failures and all hosts down defer.  As a
// backup MX, smtp only tries hosts with a better preference than its own.
//
// ESMTP: PIPELINING (MAIL, RCPT and DATA in one write), SIZE (announced; a message
// over the server's limit bounces 5.3.4), BODY=8BITMIME for 8-bit messages where
// the server has 8BITMIME (otherwise the message goes as it is, unconverted),
// SMTPUTF8 (a message whose envelope addresses are not ASCII bounces 5.6.7 when the
// server lacks SMTPUTF8; one with only UTF-8 headers goes without the parameter),
// DSN RET, ENVID, NOTIFY and ORCPT passed on where the server has DSN.
//
// TLS (smtp_tls_security_level): none; may (STARTTLS when offered; when the
// handshake fails, the same address again in plaintext); encrypt (required, no
// certificate checks; "TLS is required, but was not offered" defers); verify (the
// chain must verify against smtp_tls_CAfile/CApath and the certificate match
// smtp_tls_verify_cert_match: hostname); secure (match smtp_tls_secure_cert_match:
// nexthop, dot-nexthop).  Each delivery logs the session, e.g. "Verified TLS
// connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher ...".
//
// AUTH: with smtp_sasl_auth_enable, smtp_sasl_password_maps is looked up by the
// nexthop ("[host]:port" or "domain:port"), then without the port, then by the
// server's host name; "user:password" is sent with AUTH PLAIN (else LOGIN), and
// when TLS is configured, only over TLS.
//
// Connection cache: a session that ended well stays open for
// smtp_connection_cache_time_limit; the next request for the same nexthop that
// this process serves within that time reuses it after RSET.  (It is checked,
// not watched: an idle session is closed when the next request comes or the
// process exits.)
//
// Delivered recipients are marked done in the queue file with fdatasync before
// the reply (a remote delivery cannot be recognised on a repeat).
//
// Log: "QUEUEID: to=<rcpt>, relay=host[addr]:port, delay=N, status=sent (250 ...)".
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "mail/daemon.h"
#include "mail/delivery_agent.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/transport.h"
#include "session.h"
#include "mail/smtp_targets.h"
#include "util/dns.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kFrameTimeout = std::chrono::seconds(300);
using Clock = std::chrono::steady_clock;

// What a process reads once and keeps between requests.
struct ProcessState {
  explicit ProcessState(const Config& config)
      : settings(config),
        resolver(ResolverOptions{config.str("dns_resolver_conf")}),
        default_port(static_cast<uint16_t>(config.integer("smtp_tcp_port"))),
        cache_time(std::chrono::seconds(config.seconds("smtp_connection_cache_time_limit"))) {
    targets.myhostname = config.str("myhostname");
    targets.own_addresses = interface_addresses(config.list("inet_interfaces"));
    std::string protocols = config.str("inet_protocols");
    targets.ipv4 = protocols.find("ipv4") != std::string::npos || protocols == "all";
    targets.ipv6 = protocols.find("ipv6") != std::string::npos || protocols == "all";
    targets.address_limit = static_cast<size_t>(config.integer("smtp_mx_address_limit"));
  }

  SmtpSettings settings;
  Resolver resolver;
  TargetOptions targets;
  uint16_t default_port;
  Clock::duration cache_time;
  // The connection cache: one idle session and the nexthop it serves.
  std::string cached_nexthop;
  std::unique_ptr<SmtpSession> cached;
  Clock::time_point cached_until;
};

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

OutgoingMessage outgoing(const DeliveryRequest& request, const QueueFile& file) {
  const QueueEnvelope& env = file.envelope();
  OutgoingMessage m;
  m.queue_id = request.queue_id;
  m.sender = request.sender;
  m.content = file.content();
  m.mail_options.size = env.content_size;
  m.mail_options.eightbit = env.attribute(attr::kBodyType) == "8BITMIME";
  m.mail_options.smtputf8 = !env.attribute(attr::kSmtputf8).empty();
  m.mail_options.ret = env.ret;
  m.mail_options.envid = env.envid;
  m.needs_smtputf8 = !is_ascii(request.sender);
  for (const auto& r : request.recipients) m.needs_smtputf8 = m.needs_smtputf8 || !is_ascii(r.address);
  return m;
}

class Delivery {
 public:
  Delivery(ProcessState& state, const DeliveryRequest& request) : state_(state), request_(request) {
    for (const auto& r : request.recipients) outcomes_.push_back({&r, "", "", ""});
    relays_.resize(outcomes_.size());
  }

  void run(const OutgoingMessage& message) {
    auto hop = parse_nexthop(request_.nexthop, state_.default_port);
    if (!hop) return settle_pending(kDeliveryDefer, "4.3.5", "bad nexthop: " + hop.error());
    if (reuse_cached(message)) return finish_pending();
    TargetList list = find_targets(state_.resolver, *hop, state_.targets);
    if (list.outcome == TargetList::Outcome::kBounce) return settle_pending(kDeliveryBounce, list.dsn, list.text);
    if (list.outcome == TargetList::Outcome::kDefer) return settle_pending(kDeliveryDefer, list.dsn, list.text);
    for (const SmtpTarget& target : list.targets) {
      auto opened = SmtpSession::open(target, *hop, state_.settings);
      if (auto* failed = std::get_if<SessionFailure>(&opened); failed && failed->retry_plaintext) {
        log_info("%s: %s; trying again without TLS", request_.queue_id.c_str(), failed->text.c_str());
        opened = SmtpSession::open(target, *hop, state_.settings, true);
      }
      if (auto* failed = std::get_if<SessionFailure>(&opened)) {
        log_info("%s: %s", request_.queue_id.c_str(), failed->text.c_str());
        if (failed->bounce) return settle_pending(kDeliveryBounce, failed->dsn, failed->text);
        last_dsn_ = failed->dsn;
        last_text_ = failed->text;
        continue;
      }
      auto session = std::move(std::get<std::unique_ptr<SmtpSession>>(opened));
      if (!transact(*session, message)) continue;
      if (!any_pending()) {
        keep(std::move(session));
        break;
      }
      session->quit();  // a 4xx to MAIL FROM, DATA or the end of data: the next host may take them
    }
    finish_pending();
  }

  DeliveryReply reply() const {
    DeliveryReply reply;
    for (const auto& o : outcomes_) reply.results.push_back({o.recipient->offset, o.status, o.dsn, o.text});
    return reply;
  }

  void log_results() const {
    int64_t delay = std::max<int64_t>(0, int64_t(std::time(nullptr)) - request_.arrival_seconds);
    for (size_t i = 0; i < outcomes_.size(); ++i) {
      const auto& o = outcomes_[i];
      const char* status = o.status == kDeliveryOk ? "sent" : o.status == kDeliveryBounce ? "bounced" : "deferred";
      log_info("%s: to=<%s>, relay=%s, delay=%lld, dsn=%s, status=%s (%s)", request_.queue_id.c_str(),
               o.recipient->address.c_str(), relays_[i].empty() ? "none" : relays_[i].c_str(),
               static_cast<long long>(delay), o.dsn.c_str(), status, o.text.c_str());
    }
  }

  const std::vector<RecipientOutcome>& outcomes() const { return outcomes_; }

 private:
  // A cached session to the same nexthop, if it is fresh and answers RSET.
  bool reuse_cached(const OutgoingMessage& message) {
    if (!state_.cached) return false;
    std::unique_ptr<SmtpSession> session = std::move(state_.cached);
    bool fresh = state_.cached_nexthop == request_.nexthop && Clock::now() < state_.cached_until;
    if (!fresh || !session->reset()) {
      if (fresh) log_info("%s: cached session to %s is gone", request_.queue_id.c_str(), request_.nexthop.c_str());
      session->quit();
      return false;
    }
    log_info("%s: reusing the session to %s[%s]", request_.queue_id.c_str(), session->target().host.c_str(),
             session->target().address.c_str());
    if (!transact(*session, message)) return false;
    keep(std::move(session));
    return !any_pending();
  }

  // One transaction; false when the session is no longer usable.
  bool transact(SmtpSession& session, const OutgoingMessage& message) {
    if (!session.tls_summary().empty()) log_info("%s: %s", request_.queue_id.c_str(), session.tls_summary().c_str());
    std::vector<bool> was_pending;
    for (const auto& o : outcomes_) was_pending.push_back(o.pending());
    bool usable = session.deliver(message, outcomes_);
    const SmtpTarget& t = session.target();
    for (size_t i = 0; i < outcomes_.size(); ++i) {
      if (!was_pending[i]) continue;
      relays_[i] = t.host + "[" + t.address + "]:" + std::to_string(t.port);
      if (outcomes_[i].pending() && !outcomes_[i].text.empty()) {
        last_dsn_ = outcomes_[i].dsn;
        last_text_ = outcomes_[i].text;
      }
    }
    return usable;
  }

  void keep(std::unique_ptr<SmtpSession> session) {
    if (state_.cache_time.count() > 0) {
      state_.cached = std::move(session);
      state_.cached_nexthop = request_.nexthop;
      state_.cached_until = Clock::now() + state_.cache_time;
    } else {
      session->quit();
    }
  }

  bool any_pending() const {
    for (const auto& o : outcomes_)
      if (o.pending()) return true;
    return false;
  }

  void settle_pending(std::string_view status, const std::string& dsn, const std::string& text) {
    for (auto& o : outcomes_) {
      if (!o.pending()) continue;
      o.status = std::string(status);
      o.dsn = dsn;
      o.text = text;
    }
  }

  // Whatever no host took is deferred with the last reason heard.
  void finish_pending() {
    for (auto& o : outcomes_) {
      if (!o.pending()) continue;
      o.status = std::string(kDeliveryDefer);
      if (o.text.empty()) {
        o.dsn = last_dsn_.empty() ? "4.4.1" : "4" + last_dsn_.substr(1);
        o.text = last_text_.empty() ? "no server of " + request_.nexthop + " could be reached" : last_text_;
      } else {
        o.dsn = "4" + o.dsn.substr(1);
      }
    }
  }

  ProcessState& state_;
  const DeliveryRequest& request_;
  std::vector<RecipientOutcome> outcomes_;
  std::vector<std::string> relays_;
  std::string last_dsn_, last_text_;
};

DeliveryReply handle(const DeliveryRequest& request, ProcessState& state, const Config& config) {
  auto file = open_request_file(config, request);
  if (!file) return defer_all(request, file.error());
  Delivery delivery(state, request);
  delivery.run(outgoing(request, *file));
  std::vector<int64_t> delivered;
  for (const auto& o : delivery.outcomes())
    if (o.status == kDeliveryOk) delivered.push_back(o.recipient->offset);
  mark_delivered(*file, delivered, true);  // a remote copy cannot be recognised again
  delivery.log_results();
  return delivery.reply();
}

void serve(UniqueFd client, const DaemonContext& context) {
  static std::optional<ProcessState> state;
  if (!state) state.emplace(context.config);
  serve_one_request<DeliveryRequest>(client, context, kFrameTimeout, [&](const DeliveryRequest& request) {
    return handle(request, *state, context.config);
  });
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run_single_server(argc, argv, postern::serve);
}
