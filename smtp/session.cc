// One SMTP session of the smtp client (see session.h).
#include "session.h"

#include <algorithm>

#include "mail/sasl.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {
namespace {

SmtpTimeout seconds_of(const Config& config, std::string_view name) {
  return std::chrono::seconds(config.seconds(name));
}

TlsLevel parse_level(const Config& config) {
  std::string level = config.str("smtp_tls_security_level");
  if (level == "may") return TlsLevel::kMay;
  if (level == "encrypt") return TlsLevel::kEncrypt;
  if (level == "verify") return TlsLevel::kVerify;
  if (level == "secure") return TlsLevel::kSecure;
  return TlsLevel::kNone;
}

SessionFailure failure(std::string dsn, std::string text) { return SessionFailure{std::move(dsn), std::move(text)}; }

}  // namespace

SmtpSettings::SmtpSettings(const Config& config)
    : helo_name(config.str("smtp_helo_name")),
      myhostname(config.str("myhostname")),
      connect_timeout(seconds_of(config, "smtp_connect_timeout")),
      helo_timeout(seconds_of(config, "smtp_helo_timeout")),
      mail_timeout(seconds_of(config, "smtp_mail_timeout")),
      rcpt_timeout(seconds_of(config, "smtp_rcpt_timeout")),
      data_init_timeout(seconds_of(config, "smtp_data_init_timeout")),
      data_xfer_timeout(seconds_of(config, "smtp_data_xfer_timeout")),
      data_done_timeout(seconds_of(config, "smtp_data_done_timeout")),
      quit_timeout(seconds_of(config, "smtp_quit_timeout")),
      tls_level(parse_level(config)),
      verify_match(config.list("smtp_tls_verify_cert_match")),
      secure_match(config.list("smtp_tls_secure_cert_match")) {
  if (tls_level != TlsLevel::kNone) {
    TlsClientSettings tls;
    tls.ca_file = config.str("smtp_tls_CAfile");
    tls.ca_path = config.str("smtp_tls_CApath");
    tls.cert_file = config.str("smtp_tls_cert_file");
    tls.key_file = config.str("smtp_tls_key_file");
    tls.exclude_ciphers = config.str("smtp_tls_exclude_ciphers");
    bool mandatory = tls_level != TlsLevel::kMay;
    tls.protocols = config.str(mandatory ? "smtp_tls_mandatory_protocols" : "smtp_tls_protocols");
    tls.cipher_grade = config.str(mandatory ? "smtp_tls_mandatory_ciphers" : "smtp_tls_ciphers");
    bool have_cas = !tls.ca_file.empty() || !tls.ca_path.empty();
    if (tls_level >= TlsLevel::kVerify) {
      if (!have_cas) {
        const Config::Entry* where = config.entry("smtp_tls_security_level");
        throw ConfigError(where ? where->file : config.main_cf_path(), where ? where->line : 0,
                          "smtp_tls_security_level = " + config.str("smtp_tls_security_level") +
                              " needs smtp_tls_CAfile or smtp_tls_CApath");
      }
      tls.verify = TlsVerify::kVerify;
    } else {
      tls.verify = have_cas ? TlsVerify::kMay : TlsVerify::kNone;
    }
    tls_context = make_client_context(tls);
  }
  if (config.boolean("smtp_sasl_auth_enable") && !config.str("smtp_sasl_password_maps").empty())
    sasl_passwords = std::make_unique<TableList>(config.str("smtp_sasl_password_maps"));
}

std::string SmtpSession::said(const SmtpReply& reply, std::string_view command) const {
  return remote_said(target_.host, target_.address, reply, command);
}

std::string SmtpSession::lost(std::string_view error, std::string_view while_doing) const {
  bool timeout = error.find("timeout") != std::string_view::npos || error.find("timed out") != std::string_view::npos;
  return (timeout ? "conversation with " : "lost connection with ") + target_.host + "[" + target_.address + "] " +
         (timeout ? "timed out " : "") + "while " + std::string(while_doing);
}

std::variant<std::unique_ptr<SmtpSession>, SessionFailure> SmtpSession::open(const SmtpTarget& target,
                                                                             const NextHop& hop,
                                                                             const SmtpSettings& settings,
                                                                             bool plaintext) {
  auto conn = SmtpConnection::connect(target.address, target.port, settings.connect_timeout);
  if (!conn) {
    std::string why = conn.error();
    if (why.starts_with("connect: ")) why = why.substr(9);
    return failure("4.4.1", "connect to " + target.host + "[" + target.address + "]:" + std::to_string(target.port) +
                                ": " + why);
  }
  std::unique_ptr<SmtpSession> session(new SmtpSession(std::move(*conn), target, settings));
  if (auto failed = session->hello(hop, plaintext)) return *failed;
  if (auto failed = session->authenticate(hop)) return *failed;
  return session;
}

std::optional<SessionFailure> SmtpSession::hello(const NextHop& hop, bool plaintext) {
  conn_.set_timeout(settings_.helo_timeout);
  auto greeting = conn_.read_reply();
  if (!greeting) return failure("4.4.2", lost(greeting.error(), "receiving the initial server greeting"));
  if (!greeting->positive()) {
    (void)conn_.command("QUIT\r\n");
    return failure("4" + greeting->dsn().substr(1), "host " + target_.host + "[" + target_.address +
                                                      "] refused to talk to me: " + greeting->text());
  }
  std::string greeted_name = lowercase(greeting->lines.front().substr(0, greeting->lines.front().find(' ')));
  if (!settings_.myhostname.empty() && greeted_name == lowercase(settings_.myhostname)) {
    SessionFailure loop = failure("5.4.6", "mail for " + hop.host + " loops back to myself");
    loop.bounce = true;
    return loop;
  }
  for (int round = 0; round < 2; ++round) {
    auto ehlo = conn_.command("EHLO " + settings_.helo_name + "\r\n");
    if (!ehlo) return failure("4.4.2", lost(ehlo.error(), "performing the EHLO handshake"));
    if (!ehlo->positive()) {
      auto helo = conn_.command("HELO " + settings_.helo_name + "\r\n");
      if (!helo) return failure("4.4.2", lost(helo.error(), "performing the HELO handshake"));
      if (!helo->positive()) return failure("4" + helo->dsn().substr(1), said(*helo, "HELO"));
      ext_ = {};
    } else {
      ext_ = parse_ehlo(*ehlo);
    }
    if (round == 1 || settings_.tls_level == TlsLevel::kNone || plaintext) break;
    std::string where = target_.host + "[" + target_.address + "]";
    if (!ext_.starttls) {
      if (settings_.tls_level == TlsLevel::kMay) break;
      return failure("4.7.4", "TLS is required, but was not offered by host " + where);
    }
    auto go = conn_.command("STARTTLS\r\n");
    if (!go) return failure("4.4.2", lost(go.error(), "sending STARTTLS"));
    if (!go->positive()) {
      if (settings_.tls_level == TlsLevel::kMay) break;
      return failure("4.7.5", said(*go, "STARTTLS"));
    }
    std::vector<std::string> names;
    if (settings_.tls_level >= TlsLevel::kVerify) {
      const auto& match = settings_.tls_level == TlsLevel::kSecure ? settings_.secure_match : settings_.verify_match;
      for (const std::string& m : match) {
        if (m == "hostname") names.push_back(target_.host);
        else if (m == "nexthop") names.push_back(hop.host);
        else if (m == "dot-nexthop") names.push_back("." + hop.host);
        else names.push_back(lowercase(m));
      }
    }
    auto started = conn_.start_tls(make_client_ssl(settings_.tls_context.get(), target_.host, names));
    if (!started) {
      SessionFailure f = failure("4.7.5", "TLS handshake with " + where + " failed: " + started.error());
      f.retry_plaintext = settings_.tls_level == TlsLevel::kMay;
      return f;
    }
    bool verified = tls_peer_verified(conn_.tls()->ssl());
    const char* trust = verified ? (settings_.tls_level >= TlsLevel::kVerify ? "Verified" : "Trusted") : "Untrusted";
    tls_summary_ = std::string(trust) + " TLS connection established to " + where + ":" +
                   std::to_string(target_.port) + ": " + conn_.tls()->describe();
    // RFC 3207: forget what was learnt before TLS and ask again.
  }
  return std::nullopt;
}

std::optional<SessionFailure> SmtpSession::authenticate(const NextHop& hop) {
  if (!settings_.sasl_passwords) return std::nullopt;
  std::string port = ":" + std::to_string(hop.port);
  LookupResult found;
  for (const std::string& key : {hop.mx_lookup ? hop.host + port : "[" + hop.host + "]" + port,
                                 hop.mx_lookup ? hop.host : "[" + hop.host + "]", target_.host}) {
    found = settings_.sasl_passwords->lookup(key);
    if (found.status != LookupStatus::kNotFound) break;
  }
  if (found.is_temp_fail()) return failure("4.3.0", "smtp_sasl_password_maps lookup failed: " + found.error);
  if (!found.is_found()) return std::nullopt;
  size_t colon = found.value.find(':');
  std::string user = found.value.substr(0, colon);
  std::string password = colon == std::string::npos ? "" : found.value.substr(colon + 1);
  std::string where = target_.host + "[" + target_.address + "]";
  bool plain = std::find(ext_.auth.begin(), ext_.auth.end(), "PLAIN") != ext_.auth.end();
  bool login = std::find(ext_.auth.begin(), ext_.auth.end(), "LOGIN") != ext_.auth.end();
  if (!plain && !login) return failure("4.7.0", "SASL authentication failed: server " + where + " offered no "
                                                "supported authentication mechanisms");
  if (!conn_.tls() && settings_.tls_level != TlsLevel::kNone)
    return failure("4.7.0", "SASL authentication to " + where + " refused: the password would be sent without TLS");
  Result<SmtpReply> reply = fail("");
  if (plain) {
    reply = conn_.command("AUTH PLAIN " + base64_encode(std::string(1, '\0') + user + '\0' + password) + "\r\n");
  } else {
    reply = conn_.command("AUTH LOGIN\r\n");
    if (reply && reply->code == 334) reply = conn_.command(base64_encode(user) + "\r\n");
    if (reply && reply->code == 334) reply = conn_.command(base64_encode(password) + "\r\n");
  }
  if (!reply) return failure("4.4.2", lost(reply.error(), "authenticating"));
  if (reply->code != 235)
    return failure("4.7.0", "SASL authentication failed; server " + where + " said: " + reply->text());
  return std::nullopt;
}

bool SmtpSession::reset() {
  if (conn_.peer_closed()) return false;
  conn_.set_timeout(settings_.quit_timeout);
  auto r = conn_.command("RSET\r\n");
  return r && r->positive();
}

void SmtpSession::quit() {
  conn_.set_timeout(std::min(settings_.quit_timeout, SmtpTimeout(std::chrono::seconds(10))));
  (void)conn_.command("QUIT\r\n");
}

bool SmtpSession::deliver(const OutgoingMessage& message, std::vector<RecipientOutcome>& recipients) {
  std::string where = target_.host + "[" + target_.address + "]";
  auto settle = [&](RecipientOutcome& r, std::string_view status, std::string dsn, std::string text) {
    r.status = std::string(status);
    r.dsn = std::move(dsn);
    r.text = std::move(text);
  };
  std::vector<RecipientOutcome*> pending;
  for (auto& r : recipients)
    if (r.pending()) pending.push_back(&r);
  if (pending.empty()) return true;
  if (message.needs_smtputf8 && !ext_.smtputf8) {
    for (auto* r : pending)
      settle(*r, kDeliveryBounce, "5.6.7", "SMTPUTF8 is required, but was not offered by host " + where);
    return true;
  }
  if (ext_.size && *ext_.size > 0 && message.mail_options.size > *ext_.size) {
    for (auto* r : pending)
      settle(*r, kDeliveryBounce, "5.3.4",
             "message size " + std::to_string(message.mail_options.size) + " exceeds size limit " +
                 std::to_string(*ext_.size) + " of server " + where);
    return true;
  }
  // Leaves the pending recipients for the next host with this reason.
  std::string next_dsn, next_text;
  auto leave_pending = [&](std::string dsn, std::string text) {
    for (auto* r : pending) {
      if (!r->pending()) continue;
      r->dsn = dsn;  // kept as the reason should no other host take them
      r->text = text;
    }
  };

  std::string mail = mail_from_command(message.sender, message.mail_options, ext_);
  std::vector<std::string> rcpts;
  for (auto* r : pending)
    rcpts.push_back(rcpt_to_command(r->recipient->address, uint8_t(r->recipient->notify), r->recipient->orcpt, ext_));

  // With PIPELINING, MAIL, every RCPT and DATA go in one write; otherwise one by one.
  bool pipelined = ext_.pipelining;
  if (pipelined) {
    std::string batch = mail;
    for (const auto& c : rcpts) batch += c;
    batch += "DATA\r\n";
    conn_.set_timeout(settings_.mail_timeout);
    if (auto sent = conn_.send(batch); !sent) {
      leave_pending("4.4.2", lost(sent.error(), "sending MAIL FROM"));
      return false;
    }
  }
  auto step = [&](const std::string& line, SmtpTimeout timeout) {
    conn_.set_timeout(timeout);
    return pipelined ? conn_.read_reply() : conn_.command(line);
  };
  auto mail_reply = step(mail, settings_.mail_timeout);
  if (!mail_reply) {
    leave_pending("4.4.2", lost(mail_reply.error(), "receiving the MAIL FROM reply"));
    return false;
  }
  bool mail_ok = mail_reply->positive();
  std::vector<RecipientOutcome*> accepted;
  if (mail_ok || pipelined) {
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!mail_ok && !pipelined) break;
      auto reply = step(rcpts[i], settings_.rcpt_timeout);
      if (!reply) {
        leave_pending("4.4.2", lost(reply.error(), "receiving the RCPT TO reply"));
        return false;
      }
      if (!mail_ok) continue;  // pipelined after a refused MAIL FROM: answers to read, not results
      if (reply->positive()) accepted.push_back(pending[i]);
      else settle(*pending[i], reply->temporary() ? kDeliveryDefer : kDeliveryBounce, reply->dsn(),
                  said(*reply, "RCPT TO"));
    }
  }
  if (!mail_ok) {
    if (pipelined) (void)conn_.read_reply();  // DATA's answer
    if (mail_reply->temporary()) {
      leave_pending(mail_reply->dsn(), said(*mail_reply, "MAIL FROM"));
    } else {
      for (auto* r : pending) settle(*r, kDeliveryBounce, mail_reply->dsn(), said(*mail_reply, "MAIL FROM"));
    }
    return reset();
  }
  SmtpReply data_reply;
  if (pipelined) {
    conn_.set_timeout(settings_.data_init_timeout);
    auto r = conn_.read_reply();
    if (!r) {
      leave_pending("4.4.2", lost(r.error(), "receiving the DATA reply"));
      return false;
    }
    data_reply = *r;
    if (accepted.empty()) {
      if (data_reply.code == 354) {  // a server that let DATA through without recipients
        conn_.set_timeout(settings_.data_done_timeout);
        (void)conn_.command(".\r\n");
      }
      return reset();
    }
  } else {
    if (accepted.empty()) return reset();
    auto r = step("DATA\r\n", settings_.data_init_timeout);
    if (!r) {
      leave_pending("4.4.2", lost(r.error(), "receiving the DATA reply"));
      return false;
    }
    data_reply = *r;
  }
  if (data_reply.code != 354) {
    if (data_reply.temporary()) {
      leave_pending(data_reply.dsn(), said(data_reply, "DATA"));
    } else {
      for (auto* r : accepted) settle(*r, kDeliveryBounce, data_reply.dsn(), said(data_reply, "DATA"));
    }
    return reset();
  }
  conn_.set_timeout(settings_.data_xfer_timeout);
  if (auto sent = conn_.send(data_content(message.content)); !sent) {
    leave_pending("4.4.2", lost(sent.error(), "sending message body"));
    return false;
  }
  conn_.set_timeout(settings_.data_done_timeout);
  auto done = conn_.read_reply();
  if (!done) {
    // The server may have the message: no other host gets it in this attempt.
    for (auto* r : accepted) settle(*r, kDeliveryDefer, "4.4.2", lost(done.error(), "sending end of data -- message may be sent more than once"));
    return false;
  }
  for (auto* r : accepted) {
    if (done->positive()) settle(*r, kDeliveryOk, done->dsn(), done->text());
    else if (!done->temporary()) settle(*r, kDeliveryBounce, done->dsn(), said(*done, "end of DATA"));
  }
  if (done->temporary()) leave_pending(done->dsn(), said(*done, "end of DATA"));
  return true;
}

}  // namespace postern
