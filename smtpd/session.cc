// One SMTP session (session.h).
#include "session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

#include "mail/address.h"
#include "mail/config.h"
#include "server.h"
#include "util/error.h"
#include "util/socket.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {

namespace {

// Input kept while the session does not read (waiting for a commit, paused after
// errors): libevent stops reading from the socket above it.
constexpr size_t kInputHighWater = 256 * 1024;

std::string internal_form(const Address& a) { return a.domain.empty() ? a.local : a.local + "@" + a.domain; }

bool has_non_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

std::string line(const std::string& text) { return text + "\r\n"; }

}  // namespace

SmtpdSettings SmtpdSettings::from(const Config& config) {
  SmtpdSettings s;
  s.myhostname = config.str("myhostname");
  s.banner = config.str("smtpd_banner");
  s.mail_name = config.str("mail_name");
  int64_t size = config.bytes("message_size_limit");
  s.message_size_limit = size > 0 ? static_cast<uint64_t>(size) : 0;
  s.recipient_limit = config.integer("smtpd_recipient_limit");
  s.hard_error_limit = config.integer("smtpd_hard_error_limit");
  s.soft_error_limit = config.integer("smtpd_soft_error_limit");
  s.junk_command_limit = config.integer("smtpd_junk_command_limit");
  s.line_length_limit = static_cast<size_t>(config.integer("line_length_limit"));
  s.timeout = std::chrono::seconds(config.seconds("smtpd_timeout"));
  s.error_sleep = std::chrono::seconds(config.seconds("smtpd_error_sleep_time"));
  s.disable_vrfy = config.boolean("disable_vrfy_command");
  s.helo_required = config.boolean("smtpd_helo_required");
  s.smtputf8 = config.boolean("smtputf8_enable");
  s.bare_newline = config.str("smtpd_forbid_bare_newline") == "reject" ? BareNewline::kReject : BareNewline::kAccept;
  for (const std::string& entry : split_list(config.str("smtpd_forbid_bare_newline_exclusions"))) {
    if (auto network = parse_network(entry)) s.bare_newline_exclusions.push_back(*network);
    else log_warn("smtpd_forbid_bare_newline_exclusions: %s is not a network; ignored", entry.c_str());
  }
  std::string level = config.str("smtpd_tls_security_level");
  s.tls_level = level == "encrypt" ? TlsLevel::kEncrypt : level == "may" ? TlsLevel::kMay : TlsLevel::kNone;
  s.wrapper_mode = config.boolean("smtpd_tls_wrappermode");
  s.sasl_enable = config.boolean("smtpd_sasl_auth_enable");
  s.tls_auth_only = config.boolean("smtpd_tls_auth_only");
  s.forbid_unauth_pipelining = config.boolean("smtpd_forbid_unauth_pipelining");
  return s;
}

void Session::BufferDeleter::operator()(bufferevent* bev) const { ::bufferevent_free(bev); }

Session::Session(SmtpServer& server, uint64_t id, UniqueFd fd, std::string client_address)
    : server_(server),
      settings_(server.settings()),
      id_(id),
      client_address_(std::move(client_address)),
      pause_(server.loop(), [this] { resume_after_pause(); }) {
  set_nonblocking(fd.get());
  bufferevent* bev = ::bufferevent_socket_new(server.loop().base(), fd.get(), BEV_OPT_CLOSE_ON_FREE);
  if (!bev) throw SystemError(ENOMEM, "bufferevent_socket_new");
  fd.release();  // the bufferevent closes it
  attach(bev);
}

void Session::attach(bufferevent* bev) {
  bev_.release();  // a TLS filter owns the bufferevent it was put on
  bev_.reset(bev);
  ::bufferevent_setcb(bev, &Session::on_read, &Session::on_write, &Session::on_event, this);
  ::bufferevent_setwatermark(bev, EV_READ, 0, kInputHighWater);
  struct timeval tv {};
  tv.tv_sec = static_cast<time_t>(settings_.timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((settings_.timeout.count() % 1000) * 1000);
  ::bufferevent_set_timeouts(bev, &tv, &tv);
}

Session::~Session() = default;

void Session::start() {
  log_info("connect from unknown[%s]", client_address_.c_str());
  ::bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  // With smtpd_delay_reject = no a client the restrictions refuse is told so
  // instead of the greeting, and the connection ends.
  std::string refused = restricted(SmtpdStage::kConnect, "");
  if (!refused.empty()) return close_after(refused);
  if (!settings_.wrapper_mode) return reply(line("220 " + settings_.banner));
  try {
    start_tls();  // the greeting goes out once the handshake is done
  } catch (const std::exception& e) {
    log_error("TLS for unknown[%s]: %s", client_address_.c_str(), e.what());
    peer_gone_ = true;
    retire();
  }
}

std::string Session::restricted(SmtpdStage stage, const std::string& sender, const std::string& recipient) {
  SmtpdSession s;
  s.client_address = client_address_;
  s.client_name = "unknown";
  s.helo_name = helo_name_;
  s.sender = sender;
  s.recipient = recipient;
  s.recipient_count = static_cast<int>(recipients_.size());
  s.protocol = helo_name_.empty() ? "" : protocol();
  s.sasl_username = sasl_username_;
  s.tls = tls_active_;
  s.unauth_pipelining = unauth_pipelining_;
  PolicyVerdict v = server_.policy().check(stage, s);
  if (v.is_accept()) return "";
  log_info("NOQUEUE: %s", v.log.c_str());
  return line(std::to_string(v.code) + " " + v.dsn + " " + v.text);
}

void Session::refuse(const std::string& text) {
  ::bufferevent_enable(bev_.get(), EV_WRITE);
  close_after(text);
}

// ---- I/O ----

void Session::on_read(bufferevent*, void* arg) {
  auto* s = static_cast<Session*>(arg);
  s->server_.loop().call([s] { s->process_input(); });
}

void Session::on_write(bufferevent*, void* arg) {
  auto* s = static_cast<Session*>(arg);
  if (s->phase_ == Phase::kClosing) s->retire();
}

void Session::on_event(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Session*>(arg);
  s->server_.loop().call([s, what] {
    if (s->phase_ == Phase::kGone) return;
    if (what & BEV_EVENT_CONNECTED) return s->tls_established();
    if (s->tls_handshaking_ && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
      log_info("TLS handshake failed from unknown[%s]: %s", s->client_address_.c_str(), openssl_errors().c_str());
      s->peer_gone_ = true;
      return s->retire();
    }
    if (what & BEV_EVENT_TIMEOUT) {
      if (s->phase_ == Phase::kClosing) return s->retire();
      log_info("timeout after %s from unknown[%s]", s->last_command_.c_str(), s->client_address_.c_str());
      ::bufferevent_enable(s->bev_.get(), EV_WRITE);
      s->close_after(line("421 4.4.2 " + s->settings_.myhostname + " Error: timeout exceeded"));
      return;
    }
    // EOF or an error: what arrived before it is still served (a pipelined QUIT),
    // unless the session waits for a commit, which finishes it.
    s->peer_gone_ = true;
    if (s->phase_ != Phase::kClosing) s->process_input();
    if (s->phase_ != Phase::kWaiting && s->phase_ != Phase::kGone) {
      if (s->phase_ != Phase::kClosing)
        log_info("lost connection after %s from unknown[%s]", s->last_command_.c_str(), s->client_address_.c_str());
      s->retire();
    }
  });
}

void Session::reply(const std::string& text) {
  if (phase_ == Phase::kGone || peer_gone_) return;
  if (paused_) {
    held_ += text;
    return;
  }
  if (::bufferevent_write(bev_.get(), text.data(), text.size()) < 0) log_warn("out of memory queueing a reply");
}

void Session::error_reply(const std::string& text) {
  ++errors_;
  if (errors_ >= settings_.hard_error_limit) {
    reply(text);
    log_warn("too many errors after %s from unknown[%s]", last_command_.c_str(), client_address_.c_str());
    close_after(line("421 4.7.0 " + settings_.myhostname + " Error: too many errors"));
    return;
  }
  if (errors_ > settings_.soft_error_limit && !paused_) {
    // Slow the client down without holding up the other sessions: the reply and
    // everything after it wait for a timer.
    paused_ = true;
    held_ = text;
    pause_.start_once(settings_.error_sleep);
    return;
  }
  reply(text);
}

void Session::resume_after_pause() {
  paused_ = false;
  std::string text = std::move(held_);
  held_.clear();
  reply(text);
  process_input();
}

void Session::close_after(const std::string& text) {
  if (phase_ == Phase::kGone) return;
  paused_ = false;
  reply(held_ + text);
  held_.clear();
  phase_ = Phase::kClosing;
  ::bufferevent_disable(bev_.get(), EV_READ);
  if (peer_gone_ || ::evbuffer_get_length(::bufferevent_get_output(bev_.get())) == 0) retire();
}

void Session::retire() {
  if (phase_ == Phase::kGone) return;
  phase_ = Phase::kGone;
  ::bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
  log_info("disconnect from unknown[%s] commands=%lld errors=%lld", client_address_.c_str(),
           static_cast<long long>(commands_), static_cast<long long>(errors_));
  server_.retire(id_);
}

void Session::process_input() {
  // The per-session boundary: what fails inside one session (no memory for a TLS
  // session, a bug's logic_error) ends that session only, not the others.
  try {
    while (!paused_) {
      bool more = false;
      switch (phase_) {
        case Phase::kCommand:
        case Phase::kAuth: more = read_command_line(); break;
        case Phase::kData: more = read_data(); break;
        case Phase::kBdat: more = read_bdat(); break;
        default: break;
      }
      if (!more) break;
    }
  } catch (const std::exception& e) {
    log_error("session with unknown[%s] failed after %s: %s", client_address_.c_str(), last_command_.c_str(),
              e.what());
    peer_gone_ = true;
    retire();
  }
}

bool Session::read_command_line() {
  evbuffer* in = ::bufferevent_get_input(bev_.get());
  size_t n = 0;
  std::unique_ptr<char, decltype(&std::free)> text(::evbuffer_readln(in, &n, EVBUFFER_EOL_LF), &std::free);
  if (!text) {
    size_t pending = ::evbuffer_get_length(in);
    if (pending > settings_.line_length_limit) {
      // Never buffer a command without end: drop it and answer when its end comes.
      ::evbuffer_drain(in, pending);
      discarding_long_line_ = true;
    }
    return false;
  }
  std::string_view cmd(text.get(), n);
  if (!cmd.empty() && cmd.back() == '\r') cmd.remove_suffix(1);
  if (discarding_long_line_ || cmd.size() > settings_.line_length_limit) {
    discarding_long_line_ = false;
    error_reply(line("500 5.5.0 Error: line too long"));
    return true;
  }
  if (phase_ == Phase::kAuth) {
    auth_step(sasl_->respond(cmd));
    return true;
  }
  // Commands sent ahead of a reply are fine after EHLO showed PIPELINING; before
  // it, or right after EHLO itself, the client could not know (reject_unauth_pipelining).
  std::string verb_upper = parse_smtp_command(cmd).verb;
  if (::evbuffer_get_length(in) > 0 && verb_upper != "BDAT" &&  // BDAT's chunk follows its line
      (!extended_ || verb_upper == "EHLO")) {
    unauth_pipelining_ = true;
    // A client that sends ahead before it may (before the greeting was answered
    // with EHLO, or with EHLO itself) is a bulk mailer that does not wait for
    // replies: Postfix 3.9's smtpd_forbid_unauth_pipelining hangs up on it.
    if (settings_.forbid_unauth_pipelining) {
      std::string_view verb = cmd.substr(0, cmd.find(' '));
      log_warn("improper command pipelining after %s from unknown[%s]: %.*s",
               last_command_.empty() ? "CONNECT" : last_command_.c_str(), client_address_.c_str(),
               int(std::min<size_t>(verb.size(), 20)), verb.data());
      close_after(line("554 5.5.0 Error: SMTP protocol synchronization"));
      return false;
    }
  }
  command(cmd);
  // After STARTTLS nothing that was sent with it may be read as a command.
  return !tls_handshaking_;
}

bool Session::read_data() {
  evbuffer* in = ::bufferevent_get_input(bev_.get());
  while (phase_ == Phase::kData && ::evbuffer_get_length(in) > 0) {
    evbuffer_iovec v;
    if (::evbuffer_peek(in, -1, nullptr, &v, 1) < 1) break;
    size_t used = data_decoder_->feed(std::string_view(static_cast<const char*>(v.iov_base), v.iov_len));
    ::evbuffer_drain(in, used);
    if (data_decoder_->rejected()) {
      log_warn("bare <LF> received from unknown[%s]", client_address_.c_str());
      reset_transaction();
      close_after(line("550 5.5.2 Error: bare <LF> received"));
      return false;
    }
    if (data_decoder_->done()) {
      end_of_message();
      return true;
    }
  }
  return false;
}

bool Session::read_bdat() {
  evbuffer* in = ::bufferevent_get_input(bev_.get());
  while (bdat_left_ > 0 && ::evbuffer_get_length(in) > 0) {
    evbuffer_iovec v;
    if (::evbuffer_peek(in, -1, nullptr, &v, 1) < 1) break;
    size_t take = static_cast<size_t>(std::min<uint64_t>(bdat_left_, v.iov_len));
    if (!bdat_discard_) chunk_decoder_->feed(std::string_view(static_cast<const char*>(v.iov_base), take));
    ::evbuffer_drain(in, take);
    bdat_left_ -= take;
  }
  if (bdat_left_ > 0) return false;
  phase_ = Phase::kCommand;
  if (bdat_discard_) {
    bdat_discard_ = false;
    error_reply(std::exchange(bdat_reply_, ""));
    return true;
  }
  if (!message_error_.empty()) {
    error_reply(refusal_reply(message_error_, message_error_temp_));
    reset_transaction();
    return true;
  }
  if (bdat_last_) {
    chunk_decoder_->finish();
    end_of_message();
  } else {
    reply(line(format("250 2.0.0 Ok: %llu bytes", static_cast<unsigned long long>(bdat_size_))));
  }
  return true;
}

// ---- commands ----

void Session::command(std::string_view text) {
  ++commands_;
  if (text.find('\0') != std::string_view::npos) return error_reply(line("500 5.5.2 Error: bad syntax"));
  SmtpCommand c = parse_smtp_command(text);
  last_command_ = c.verb.empty() ? "CONNECT" : c.verb;
  if (c.verb.size() > 16) last_command_ = "UNKNOWN";
  log_debug("< unknown[%s]: %.*s", client_address_.c_str(), int(text.size()), text.data());
  if (c.verb.empty()) return error_reply(line("500 5.5.2 Error: bad syntax"));
  if (c.verb == "EHLO") return ehlo(c.args, true);
  if (c.verb == "HELO") return ehlo(c.args, false);
  if (c.verb == "MAIL") return mail(c.args);
  if (c.verb == "RCPT") return rcpt(c.args);
  if (c.verb == "DATA") return data(c.args);
  if (c.verb == "BDAT") return bdat(c.args);
  if (c.verb == "RSET") {
    if (!c.args.empty()) return error_reply(line("501 5.5.4 Syntax: RSET"));
    reset_transaction();
    reply(line("250 2.0.0 Ok"));
    return junk();
  }
  if (c.verb == "NOOP") {
    reply(line("250 2.0.0 Ok"));
    return junk();
  }
  if (c.verb == "QUIT") return close_after(line("221 2.0.0 Bye"));
  if (c.verb == "VRFY") return vrfy(c.args);
  if (c.verb == "AUTH") return auth(c.args);
  if (c.verb == "STARTTLS") return starttls(c.args);
  error_reply(line("502 5.5.2 Error: command not recognized"));
}

void Session::junk() {
  // Postfix's smtpd_junk_command_limit: beyond it each such command is an error.
  if (++junk_ > settings_.junk_command_limit) {
    ++errors_;
    if (errors_ >= settings_.hard_error_limit)
      close_after(line("421 4.7.0 " + settings_.myhostname + " Error: too many errors"));
  }
}

void Session::vrfy(std::string_view args) {
  if (settings_.disable_vrfy) return error_reply(line("502 5.5.1 VRFY command is disabled"));
  if (args.empty()) return error_reply(line("501 5.5.4 Syntax: VRFY address"));
  reply(line("252 2.0.0 " + std::string(args)));
  junk();
}

void Session::ehlo(std::string_view args, bool extended) {
  if (args.empty())
    return error_reply(line(extended ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname"));
  reset_transaction();
  std::string previous = std::exchange(helo_name_, std::string(args.substr(0, args.find(' '))));
  bool previous_extended = std::exchange(extended_, extended);
  std::string refused = restricted(SmtpdStage::kHelo, "");
  if (!refused.empty()) {
    helo_name_ = previous;
    extended_ = previous_extended;
    return error_reply(refused);
  }
  if (!extended) return reply(line("250 " + settings_.myhostname));
  std::vector<std::string> lines{settings_.myhostname, "PIPELINING"};
  lines.push_back(settings_.message_size_limit > 0
                      ? format("SIZE %llu", static_cast<unsigned long long>(settings_.message_size_limit))
                      : "SIZE");
  if (!settings_.disable_vrfy) lines.push_back("VRFY");
  lines.insert(lines.end(), {"ENHANCEDSTATUSCODES", "8BITMIME", "DSN"});
  if (settings_.smtputf8) lines.push_back("SMTPUTF8");
  lines.push_back("CHUNKING");
  if (server_.tls_context() && !tls_active_) lines.push_back("STARTTLS");
  if (auth_offered()) lines.push_back("AUTH " + std::string(kSaslMechanisms));
  reply(smtp_reply(250, "", lines));
}

SmtpExtensions Session::offered() const {
  SmtpExtensions e;
  e.size_limit = settings_.message_size_limit;
  e.smtputf8 = settings_.smtputf8;
  e.auth = auth_offered();
  return e;
}

void Session::mail(std::string_view args) {
  if (settings_.helo_required && helo_name_.empty())
    return error_reply(line("503 5.5.1 Error: send HELO/EHLO first"));
  if (sender_) return error_reply(line("503 5.5.1 Error: nested MAIL command"));
  if (settings_.tls_level == TlsLevel::kEncrypt && !tls_active_)
    return error_reply(line("530 5.7.0 Must issue a STARTTLS command first"));
  std::string_view rest;
  if (!strip_path_keyword(args, "FROM:", rest)) return error_reply(line("501 5.5.4 Syntax: MAIL FROM:<address>"));
  AddressOptions options;
  options.allow_null = true;
  options.allow_utf8 = settings_.smtputf8;
  options.allow_local_only = true;
  auto path = parse_path(rest, options);
  if (!path) return error_reply(line("501 5.1.7 Bad sender address syntax: " + path.error()));
  if (!extended_ && !path->rest.empty())
    return error_reply(line("555 5.5.4 Unsupported option: " + std::string(path->rest)));
  auto params = parse_mail_parameters(path->rest, offered());
  if (!params) return error_reply(line(params.error()));
  if (!params->smtputf8 && has_non_ascii(internal_form(path->address)))
    return error_reply(line("553 5.6.7 Must declare SMTPUTF8 to send unicode address"));
  std::string sender = internal_form(path->address);
  std::string refused = restricted(SmtpdStage::kMail, sender);
  if (!refused.empty()) return error_reply(refused);
  sender_ = sender;
  mail_params_ = std::move(*params);
  reply(line("250 2.1.0 Ok"));
}

void Session::rcpt(std::string_view args) {
  if (!sender_) return error_reply(line("503 5.5.1 Error: need MAIL command"));
  std::string_view rest;
  if (!strip_path_keyword(args, "TO:", rest)) return error_reply(line("501 5.5.4 Syntax: RCPT TO:<address>"));
  AddressOptions options;
  options.allow_utf8 = settings_.smtputf8;
  options.allow_local_only = true;
  auto path = parse_path(rest, options);
  if (!path) return error_reply(line("501 5.1.3 Bad recipient address syntax: " + path.error()));
  if (!extended_ && !path->rest.empty())
    return error_reply(line("555 5.5.4 Unsupported option: " + std::string(path->rest)));
  auto params = parse_rcpt_parameters(path->rest, offered());
  if (!params) return error_reply(line(params.error()));
  std::string address = internal_form(path->address);
  if (!mail_params_.smtputf8 && has_non_ascii(address))
    return error_reply(line("553 5.6.7 Must declare SMTPUTF8 to send unicode address"));
  if (static_cast<int64_t>(recipients_.size()) >= settings_.recipient_limit)
    return error_reply(line("452 4.5.3 Error: too many recipients"));
  std::string refused = restricted(SmtpdStage::kRcpt, *sender_, address);
  if (!refused.empty()) return error_reply(refused);
  recipients_.push_back(CleanupRecipient{address, params->orcpt, params->notify});
  reply(line("250 2.1.5 Ok"));
}

void Session::data(std::string_view args) {
  if (!args.empty()) return error_reply(line("501 5.5.4 Syntax: DATA"));
  if (!sender_) return error_reply(line("503 5.5.1 Error: need MAIL command"));
  if (used_bdat_) return error_reply(line("503 5.5.1 Error: DATA after BDAT"));
  if (mail_params_.body == BodyType::kBinaryMime)  // RFC 3030 §3
    return error_reply(line("503 5.5.1 Error: BODY=BINARYMIME requires BDAT"));
  if (recipients_.empty()) return error_reply(line("503 5.5.1 Error: need RCPT command"));
  std::string refused = restricted(SmtpdStage::kData, *sender_);
  if (refused.empty()) refused = begin_message();
  if (!refused.empty()) return error_reply(refused);
  BareNewline policy = settings_.bare_newline;
  auto address = parse_ip(client_address_);
  for (const IpNetwork& n : settings_.bare_newline_exclusions)
    if (address && n.contains(*address)) policy = BareNewline::kAccept;
  data_decoder_ = std::make_unique<DataDecoder>(policy, [this](std::string_view t) { content(t); });
  phase_ = Phase::kData;
  reply(line("354 End data with <CR><LF>.<CR><LF>"));
}

void Session::bdat(std::string_view args) {
  std::vector<std::string> words = split(args, " ");
  std::optional<int64_t> count = words.empty() ? std::nullopt : parse_int(words[0]);
  bool last = words.size() == 2 && iequals(words[1], "LAST");
  if (!count || *count < 0 || words.size() > 2 || (words.size() == 2 && !last))
    return error_reply(line("501 5.5.4 Syntax: BDAT count [LAST]"));
  // The chunk is read in every case, so the session stays in step with the client.
  bdat_left_ = static_cast<uint64_t>(*count);
  bdat_size_ = bdat_left_;
  bdat_last_ = last;
  phase_ = Phase::kBdat;
  if (!sender_) {
    bdat_discard_ = true;
    bdat_reply_ = line("503 5.5.1 Error: need MAIL command");
  } else if (recipients_.empty()) {
    bdat_discard_ = true;
    bdat_reply_ = line("503 5.5.1 Error: need RCPT command");
  } else if (!used_bdat_) {
    used_bdat_ = true;
    std::string refused = restricted(SmtpdStage::kData, *sender_);
    if (refused.empty()) refused = begin_message();
    if (!refused.empty()) {
      bdat_discard_ = true;
      bdat_reply_ = refused;
      reset_transaction();
      return;
    }
    chunk_decoder_ = std::make_unique<ChunkDecoder>([this](std::string_view t) { content(t); });
  }
}

// ---- the message ----

std::string Session::protocol() const {
  if (!extended_) return "SMTP";  // RFC 3848
  return std::string("ESMTP") + (tls_active_ ? "S" : "") + (sasl_username_.empty() ? "" : "A");
}

std::string Session::received_field(const std::string& queue_id) const {
  std::string address = client_address_.find(':') != std::string::npos ? "IPv6:" + client_address_ : client_address_;
  std::string out = "Received: from " + (helo_name_.empty() ? std::string("unknown") : helo_name_) + " (unknown [" +
                    address + "])\n";
  if (tls_active_) out += "\t(using " + tls_description_ + ")\n";
  if (!sasl_username_.empty()) out += "\t(Authenticated sender: " + sasl_username_ + ")\n";
  out += "\tby " + settings_.myhostname + " (" + settings_.mail_name + ") with " +
                    protocol() + " id " + queue_id;
  if (recipients_.size() == 1) out += "\n\tfor <" + to_string(split_address(recipients_.front().address)) + ">";
  auto now = std::chrono::system_clock::to_time_t(server_.loop().now());
  return out + "; " + rfc5322_date(static_cast<int64_t>(now)) + "\n";
}

std::string Session::refusal_reply(const std::string& reason, bool temp) {
  if (temp) return line("451 " + reason);
  return line((reason.rfind("5.3.4", 0) == 0 ? "552 " : "550 ") + reason);
}

std::string Session::begin_message() {
  CleanupBegin begin;
  begin.origin = "smtpd";
  begin.sender = *sender_;
  begin.rewrite_context = "local";
  begin.envid = mail_params_.envid;
  begin.ret = mail_params_.ret;
  begin.attributes = {{std::string(attr::kClientAddress), client_address_},
                      {std::string(attr::kClientName), "unknown"},
                      {std::string(attr::kHeloName), helo_name_},
                      {std::string(attr::kProtocol), protocol()}};
  if (mail_params_.body != BodyType::kUnspecified)
    begin.attributes.push_back({std::string(attr::kBodyType), body_type_name(mail_params_.body)});
  if (mail_params_.smtputf8) begin.attributes.push_back({std::string(attr::kSmtputf8), "yes"});
  if (!sasl_username_.empty()) {
    begin.attributes.push_back({std::string(attr::kSaslMethod), sasl_method_});
    begin.attributes.push_back({std::string(attr::kSaslUsername), sasl_username_});
  }
  message_error_.clear();
  message_error_temp_ = false;
  try {
    message_ = std::make_unique<IncomingMessage>(server_.config(), begin,
                                                 [this](const std::string& id) { return received_field(id); });
    for (const CleanupRecipient& r : recipients_) message_->add_recipient(r);
  } catch (const CleanupRefusal& r) {
    message_.reset();
    log_warn("reject: %s from unknown[%s]", r.reason.c_str(), client_address_.c_str());
    return refusal_reply(r.reason, r.status == "temp");
  }
  return "";
}

void Session::content(std::string_view text) {
  if (!message_) return;  // refused already: the rest is read and dropped
  try {
    message_->add_content(text);
  } catch (const CleanupRefusal& r) {
    message_error_ = r.reason;
    message_error_temp_ = r.status == "temp";
    message_.reset();
  }
}

void Session::end_of_message() {
  phase_ = Phase::kCommand;
  if (message_) {
    std::string refused = restricted(SmtpdStage::kEndOfData, *sender_);
    if (!refused.empty()) {
      error_reply(refused);
      reset_transaction();
      return;
    }
    try {
      message_->finish();
    } catch (const CleanupRefusal& r) {
      message_error_ = r.reason;
      message_error_temp_ = r.status == "temp";
      message_.reset();
    }
  }
  if (!message_) {
    log_warn("reject: %s from unknown[%s]", message_error_.c_str(), client_address_.c_str());
    error_reply(refusal_reply(message_error_, message_error_temp_));
    reset_transaction();
    return;
  }
  queue_id_ = message_->queue_id();
  phase_ = Phase::kWaiting;
  server_.committer().submit(id_, message_->release());
  message_.reset();
}

void Session::committed(const GroupCommitter::Result& result) {
  if (phase_ != Phase::kWaiting) return;
  phase_ = Phase::kCommand;
  if (result.error.empty()) {
    log_info("%s: client=unknown[%s], from=<%s>, nrcpt=%zu", result.queue_id.c_str(), client_address_.c_str(),
             sender_->c_str(), recipients_.size());
    reply(line("250 2.0.0 Ok: queued as " + result.queue_id));
  } else {
    log_warn("%s: queue file write error: %s", result.queue_id.c_str(), result.error.c_str());
    error_reply(line("451 4.3.0 Error: queue file write error"));
  }
  reset_transaction();
  process_input();
  if (peer_gone_ && phase_ != Phase::kGone) retire();
}

void Session::reset_transaction() {
  sender_.reset();
  mail_params_ = MailParameters{};
  recipients_.clear();
  message_.reset();
  message_error_.clear();
  message_error_temp_ = false;
  data_decoder_.reset();
  chunk_decoder_.reset();
  used_bdat_ = false;
}

// ---- STARTTLS (RFC 3207) ----

void Session::starttls(std::string_view args) {
  if (!server_.tls_context()) {
    if (settings_.tls_level == TlsLevel::kNone) return error_reply(line("502 5.5.1 Error: command not implemented"));
    return reply(line("454 4.7.0 TLS not available due to local problem"));
  }
  if (tls_active_) return error_reply(line("554 5.5.1 Error: TLS already active"));
  if (!args.empty()) return error_reply(line("501 5.5.4 Syntax: STARTTLS"));
  reply(line("220 2.0.0 Ready to start TLS"));
  // Whatever the client sent after STARTTLS before the handshake is dropped, never
  // taken as commands of the encrypted session (CVE-2011-0411).
  evbuffer* in = ::bufferevent_get_input(bev_.get());
  ::evbuffer_drain(in, ::evbuffer_get_length(in));
  start_tls();
}

void Session::start_tls() {
  SslPtr ssl = make_ssl(server_.tls_context());
  bufferevent* filter = ::bufferevent_openssl_filter_new(server_.loop().base(), bev_.get(), ssl.get(),
                                                         BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!filter) throw SystemError(ENOMEM, "bufferevent_openssl_filter_new");
  ssl.release();  // the filter frees it
  attach(filter);
  tls_handshaking_ = true;
  ::bufferevent_enable(filter, EV_READ | EV_WRITE);
}

void Session::tls_established() {
  tls_handshaking_ = false;
  tls_active_ = true;
  tls_description_ = describe_tls_session(::bufferevent_openssl_get_ssl(bev_.get()));
  size_t peer = tls_description_.find(", peer ");
  if (peer != std::string::npos) tls_description_.resize(peer);
  log_info("TLS connection established from unknown[%s]: %s", client_address_.c_str(), tls_description_.c_str());
  // RFC 3207 §4.2: the client starts again with EHLO; nothing from before is kept.
  reset_transaction();
  helo_name_.clear();
  extended_ = false;
  if (settings_.wrapper_mode && commands_ == 0) reply(line("220 " + settings_.banner));
  process_input();
}

// ---- AUTH (RFC 4954) ----

bool Session::auth_offered() const {
  return settings_.sasl_enable && (tls_active_ || !settings_.tls_auth_only);
}

void Session::auth(std::string_view args) {
  if (!settings_.sasl_enable) return error_reply(line("503 5.5.1 Error: authentication not enabled"));
  if (settings_.tls_level == TlsLevel::kEncrypt && !tls_active_)
    return error_reply(line("530 5.7.0 Must issue a STARTTLS command first"));
  if (!auth_offered()) return error_reply(line("538 5.7.11 Encryption required for requested authentication mechanism"));
  if (helo_name_.empty() || !extended_) return error_reply(line("503 5.5.1 Error: send EHLO first"));
  if (!sasl_username_.empty()) return error_reply(line("503 5.5.1 Error: already authenticated"));
  if (sender_) return error_reply(line("503 5.5.1 Error: MAIL transaction in progress"));
  std::string_view name = args.substr(0, args.find(' '));
  auto mechanism = parse_sasl_mechanism(name);
  if (!mechanism) return error_reply(line("504 5.5.4 Unsupported authentication mechanism"));
  std::optional<std::string_view> initial;
  if (name.size() < args.size()) initial = trim(args.substr(name.size()), " ");
  sasl_method_ = std::string(name);
  for (char& c : sasl_method_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  sasl_ = std::make_unique<SaslExchange>(*mechanism);
  phase_ = Phase::kAuth;
  auth_step(sasl_->start(initial));
}

void Session::auth_step(SaslStep step) {
  if (auto* challenge = std::get_if<SaslChallenge>(&step)) return reply(line("334 " + challenge->base64));
  phase_ = Phase::kCommand;
  sasl_.reset();
  if (auto* failure = std::get_if<SaslFailure>(&step)) {
    log_warn("unknown[%s]: SASL %s authentication failed: %s", client_address_.c_str(), sasl_method_.c_str(),
             failure->reason.c_str());
    return error_reply(line(sasl_failure_reply(*failure)));
  }
  auto& credentials = std::get<SaslCredentials>(step);
  phase_ = Phase::kWaiting;
  auth_ticket_ = server_.auth().verify({"smtp", credentials.user, credentials.password, client_address_},
                                       [this](const AuthReply& answer) { auth_answer(answer); });
}

void Session::auth_answer(const AuthReply& answer) {
  if (phase_ != Phase::kWaiting) return;
  phase_ = Phase::kCommand;
  if (answer.status == kAuthOk) {
    sasl_username_ = answer.user;
    log_info("unknown[%s]: sasl_method=%s, sasl_username=%s", client_address_.c_str(), sasl_method_.c_str(),
             sasl_username_.c_str());
    reply(line("235 2.7.0 Authentication successful"));
  } else if (answer.status == kAuthTemp) {
    log_warn("unknown[%s]: SASL %s authentication failed: %s", client_address_.c_str(), sasl_method_.c_str(),
             answer.reason.c_str());
    error_reply(line("454 4.7.0 Temporary authentication failure"));
  } else {
    log_warn("unknown[%s]: SASL %s authentication failed: %s", client_address_.c_str(), sasl_method_.c_str(),
             answer.reason.c_str());
    error_reply(line("535 5.7.8 Error: authentication failed: authentication failure"));
  }
  process_input();
  if (peer_gone_ && phase_ != Phase::kGone) retire();
}

}  // namespace postern
