// One SMTP session of smtpd: the command state machine of RFC 5321 with the
// extensions smtpd offers, on a libevent bufferevent.  The server (server.h) owns
// every session; a session asks it to retire itself when it is done.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "committer.h"
#include "mail/auth_client.h"
#include "mail/cleanup.h"
#include "mail/sasl.h"
#include "mail/smtpd_policy.h"
#include "mail/smtp_command.h"
#include "mail/smtp_data.h"
#include "util/event.h"
#include "util/fd.h"
#include "util/network.h"

struct bufferevent;

namespace postern {

class Config;
class SmtpServer;

enum class TlsLevel { kNone, kMay, kEncrypt };

// What smtpd reads from the configuration once, at start.
struct SmtpdSettings {
  std::string myhostname;
  std::string banner;
  std::string mail_name;
  uint64_t message_size_limit = 0;
  int64_t recipient_limit = 1000;
  int64_t hard_error_limit = 20;
  int64_t soft_error_limit = 10;
  int64_t junk_command_limit = 100;
  size_t line_length_limit = 2048;
  std::chrono::milliseconds timeout{300000};
  std::chrono::milliseconds error_sleep{1000};
  bool disable_vrfy = true;
  bool helo_required = false;
  bool smtputf8 = true;
  BareNewline bare_newline = BareNewline::kAccept;
  // Clients whose bare LF is accepted even with reject (networks only; see main.cc).
  std::vector<IpNetwork> bare_newline_exclusions;
  TlsLevel tls_level = TlsLevel::kNone;
  bool wrapper_mode = false;  // smtpd_tls_wrappermode: TLS from the first byte (port 465)
  bool sasl_enable = false;
  bool tls_auth_only = false;

  static SmtpdSettings from(const Config& config);
};

class Session {
 public:
  Session(SmtpServer& server, uint64_t id, UniqueFd fd, std::string client_address);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();  // sends the greeting
  // The refusal sent instead of a greeting (connection limits); the session then ends.
  void refuse(const std::string& reply);
  void committed(const GroupCommitter::Result& result);
  const std::string& client_address() const { return client_address_; }

 private:
  enum class Phase { kCommand, kData, kBdat, kAuth, kWaiting, kClosing, kGone };
  struct BufferDeleter {
    void operator()(bufferevent* bev) const;
  };
  static void on_read(bufferevent* bev, void* arg);
  static void on_write(bufferevent* bev, void* arg);
  static void on_event(bufferevent* bev, short what, void* arg);

  void process_input();
  bool read_command_line();
  bool read_data();
  bool read_bdat();
  void command(std::string_view line);
  void ehlo(std::string_view args, bool extended);
  void mail(std::string_view args);
  void rcpt(std::string_view args);
  void data(std::string_view args);
  void bdat(std::string_view args);
  void vrfy(std::string_view args);
  void junk();
  void starttls(std::string_view args);
  void start_tls();  // wraps the connection; the handshake runs before anything else is read
  void tls_established();
  bool auth_offered() const;
  void auth(std::string_view args);
  void auth_step(SaslStep step);
  void auth_answer(const AuthReply& answer);
  void attach(bufferevent* bev);  // callbacks, timeouts and watermark on a (new) bufferevent

  // The IncomingMessage for DATA or the first BDAT; the refusal reply if it failed.
  std::string begin_message();
  static std::string refusal_reply(const std::string& reason, bool temp);
  SmtpExtensions offered() const;
  void content(std::string_view text);
  void end_of_message();
  void reset_transaction();
  std::string received_field(const std::string& queue_id) const;
  std::string protocol() const;
  // Asks the restriction engine; on a reject or defer logs it and returns the reply.
  std::string restricted(SmtpdStage stage, const std::string& sender, const std::string& recipient = {});

  void reply(const std::string& text);  // one whole reply (one or more lines)
  void error_reply(const std::string& text);  // counts toward the error limits
  void close_after(const std::string& text);  // the last reply, then hang up
  void lost(const char* why);
  void retire();
  void resume_after_pause();

  SmtpServer& server_;
  const SmtpdSettings& settings_;
  uint64_t id_;
  std::string client_address_;
  std::unique_ptr<bufferevent, BufferDeleter> bev_;
  Timer pause_;  // smtpd_error_sleep_time after soft errors
  Phase phase_ = Phase::kCommand;
  std::string last_command_ = "CONNECT";

  // The session.
  std::string helo_name_;
  bool extended_ = false;
  bool tls_active_ = false;
  bool tls_handshaking_ = false;
  std::string tls_description_;  // "TLSv1.3 with cipher ... (256/256 bits)"
  std::unique_ptr<SaslExchange> sasl_;
  AuthTicket auth_ticket_;
  std::string sasl_method_;
  std::string sasl_username_;  // after a successful AUTH
  int64_t errors_ = 0;
  int64_t junk_ = 0;
  int64_t commands_ = 0;
  bool discarding_long_line_ = false;
  bool unauth_pipelining_ = false;  // spoke ahead without knowing that PIPELINING is offered
  bool peer_gone_ = false;  // EOF or a socket error: nothing more can be sent
  bool paused_ = false;     // after a soft error: replies are held until pause_ fires
  std::string held_;

  // The transaction.
  std::optional<std::string> sender_;  // internal form; set by MAIL
  MailParameters mail_params_;
  std::vector<CleanupRecipient> recipients_;
  std::unique_ptr<IncomingMessage> message_;
  std::string message_error_;  // the refusal to send at the end of the content
  bool message_error_temp_ = false;
  std::string queue_id_;
  std::unique_ptr<DataDecoder> data_decoder_;
  std::unique_ptr<ChunkDecoder> chunk_decoder_;
  bool used_bdat_ = false;
  uint64_t bdat_left_ = 0;
  uint64_t bdat_size_ = 0;
  bool bdat_last_ = false;
  bool bdat_discard_ = false;  // a chunk read only to stay in step; its reply is bdat_reply_
  std::string bdat_reply_;
};

}  // namespace postern
