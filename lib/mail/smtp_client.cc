// The SMTP client's protocol pieces (see smtp_client.h).
#include "mail/smtp_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr size_t kMaxReplyLines = 1000;
constexpr size_t kMaxLineLength = 2048;

bool is_enhanced_code(std::string_view word, char first) {
  // class.subject.detail: one digit, then one to three digits, twice.
  if (word.size() < 5 || word[0] != first || word[1] != '.') return false;
  size_t dots = 0, run = 0;
  for (size_t i = 2; i < word.size(); ++i) {
    if (word[i] == '.') {
      if (run == 0 || run > 3) return false;
      ++dots;
      run = 0;
    } else if (word[i] >= '0' && word[i] <= '9') {
      ++run;
    } else {
      return false;
    }
  }
  return dots == 1 && run >= 1 && run <= 3;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::chrono::steady_clock::time_point deadline_after(SmtpTimeout timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

// Waits for events on fd until deadline; false on timeout.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the following call report the error
  }
}

}  // namespace

std::string SmtpReply::text() const {
  std::string out = std::to_string(code);
  for (const std::string& line : lines) out += " " + line;
  return out;
}

std::string SmtpReply::dsn() const {
  if (!enhanced.empty()) return enhanced;
  return std::string(1, static_cast<char>('0' + code / 100)) + ".0.0";
}

Result<SmtpReply> parse_reply(const std::vector<std::string>& lines) {
  SmtpReply reply;
  if (lines.empty()) return fail("empty reply");
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    bool digits = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                  std::isdigit(static_cast<unsigned char>(line[1])) && std::isdigit(static_cast<unsigned char>(line[2]));
    char sep = line.size() > 3 ? line[3] : ' ';
    bool last = i + 1 == lines.size();
    if (!digits || (sep != ' ' && sep != '-') || (sep == '-') == last || line[0] < '2' || line[0] > '5')
      return fail("malformed reply line \"" + line.substr(0, 100) + "\"");
    int code = std::stoi(line.substr(0, 3));
    if (i > 0 && code != reply.code) return fail("reply codes differ between lines");
    reply.code = code;
    std::string text = line.size() > 4 ? line.substr(4) : "";
    if (i == 0) {
      std::string word = text.substr(0, text.find(' '));
      if (is_enhanced_code(word, line[0])) reply.enhanced = word;
    }
    reply.lines.push_back(text);
  }
  return reply;
}

EhloExtensions parse_ehlo(const SmtpReply& reply) {
  EhloExtensions ext;
  for (size_t i = 0; i < reply.lines.size(); ++i) {
    std::vector<std::string> words;
    std::string_view rest = reply.lines[i];
    while (!(rest = trim(rest)).empty()) {
      size_t end = rest.find_first_of(" \t");
      words.emplace_back(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    if (words.empty()) continue;
    if (i == 0) {
      ext.greeting_name = lowercase(words[0]);
      continue;
    }
    std::string keyword = upper(words[0]);
    if (keyword == "PIPELINING") ext.pipelining = true;
    else if (keyword == "8BITMIME") ext.eightbitmime = true;
    else if (keyword == "SMTPUTF8") ext.smtputf8 = true;
    else if (keyword == "DSN") ext.dsn = true;
    else if (keyword == "STARTTLS") ext.starttls = true;
    else if (keyword == "SIZE") ext.size = words.size() > 1 ? std::strtoull(words[1].c_str(), nullptr, 10) : 0;
    else if (keyword == "AUTH" || keyword.starts_with("AUTH="))
      for (size_t w = keyword == "AUTH" ? 1 : 0; w < words.size(); ++w)
        ext.auth.push_back(upper(w == 0 ? words[0].substr(5) : words[w]));
  }
  return ext;
}

std::string xtext_encode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string mail_from_command(std::string_view sender, const MailFromOptions& options,
                              const EhloExtensions& server) {
  std::string cmd = "MAIL FROM:<" + std::string(sender) + ">";
  if (server.size) cmd += " SIZE=" + std::to_string(options.size);
  if (options.eightbit && server.eightbitmime) cmd += " BODY=8BITMIME";
  if (options.smtputf8 && server.smtputf8) cmd += " SMTPUTF8";
  if (server.dsn) {
    if (options.ret == DsnRet::kFull) cmd += " RET=FULL";
    if (options.ret == DsnRet::kHeaders) cmd += " RET=HDRS";
    if (!options.envid.empty()) cmd += " ENVID=" + xtext_encode(options.envid);
  }
  return cmd + "\r\n";
}

std::string rcpt_to_command(std::string_view recipient, uint8_t notify, std::string_view orcpt,
                            const EhloExtensions& server) {
  std::string cmd = "RCPT TO:<" + std::string(recipient) + ">";
  if (server.dsn) {
    if (notify & kNotifyNever) {
      cmd += " NOTIFY=NEVER";
    } else if (notify & kNotifyMask) {
      std::vector<std::string> kinds;
      if (notify & kNotifySuccess) kinds.push_back("SUCCESS");
      if (notify & kNotifyFailure) kinds.push_back("FAILURE");
      if (notify & kNotifyDelay) kinds.push_back("DELAY");
      cmd += " NOTIFY=" + join(kinds, ",");
    }
    if (!orcpt.empty()) {
      size_t semi = orcpt.find(';');
      if (semi != std::string_view::npos)
        cmd += " ORCPT=" + std::string(orcpt.substr(0, semi + 1)) + xtext_encode(orcpt.substr(semi + 1));
    }
  }
  return cmd + "\r\n";
}

std::string data_content(std::string_view message) {
  std::string out;
  out.reserve(message.size() + message.size() / 32 + 8);
  bool line_start = true;
  for (size_t i = 0; i < message.size(); ++i) {
    char c = message[i];
    if (line_start && c == '.') out += '.';
    if (c == '\n') {
      if (out.empty() || out.back() != '\r') out += '\r';
      out += '\n';
      line_start = true;
      continue;
    }
    if (c == '\r' && i + 1 < message.size() && message[i + 1] == '\n') {
      out += '\r';
      continue;  // the '\n' that follows ends the line
    }
    out += c;
    line_start = false;
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

std::string remote_said(std::string_view host, std::string_view address, const SmtpReply& reply,
                        std::string_view command) {
  return "host " + std::string(host) + "[" + std::string(address) + "] said: " + reply.text() + " (in reply to " +
         std::string(command) + " command)";
}

Result<SmtpConnection> SmtpConnection::connect(const std::string& address, uint16_t port, SmtpTimeout timeout) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    return fail("not an IP address: " + address);
  }
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return fail(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) < 0) {
    if (errno != EINPROGRESS) return fail(std::string("connect: ") + std::strerror(errno));
    if (!wait_fd(fd.get(), POLLOUT, deadline_after(timeout))) return fail("connect: timed out");
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return fail(std::string("connect: ") + std::strerror(error));
  }
  return SmtpConnection(std::move(fd));
}

Result<void> SmtpConnection::send(std::string_view data) {
  if (tls_) return tls_->write(data, timeout_);
  auto deadline = deadline_after(timeout_);
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd_.get(), POLLOUT, deadline)) return fail("timeout while sending");
    } else {
      return fail(std::string("lost connection while sending: ") + std::strerror(errno));
    }
  }
  return {};
}

Result<std::string> SmtpConnection::read_line() {
  auto deadline = deadline_after(timeout_);
  for (;;) {
    size_t eol = buffer_.find('\n');
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buffer_.size() > kMaxLineLength) return fail("reply line too long");
    char chunk[4096];
    size_t got = 0;
    if (tls_) {
      auto left = std::chrono::duration_cast<SmtpTimeout>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return fail("timeout while reading a reply");
      auto n = tls_->read(chunk, sizeof chunk, left);
      if (!n) return n.failure();
      got = *n;
    } else {
      ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_fd(fd_.get(), POLLIN, deadline)) return fail("timeout while reading a reply");
        continue;
      }
      if (n < 0) return fail(std::string("lost connection: ") + std::strerror(errno));
      got = static_cast<size_t>(n);
    }
    if (got == 0) return fail("lost connection");
    buffer_.append(chunk, got);
  }
}

Result<SmtpReply> SmtpConnection::read_reply() {
  std::vector<std::string> lines;
  for (;;) {
    auto line = read_line();
    if (!line) return line.failure();
    lines.push_back(*line);
    if (line->size() < 4 || (*line)[3] != '-') break;
    if (lines.size() >= kMaxReplyLines) return fail("reply has too many lines");
  }
  return parse_reply(lines);
}

Result<SmtpReply> SmtpConnection::command(std::string_view line) {
  auto sent = send(line);
  if (!sent) return sent.failure();
  return read_reply();
}

Result<void> SmtpConnection::start_tls(SslPtr ssl) {
  if (!buffer_.empty()) return fail("the server sent data before the TLS handshake");
  auto stream = TlsStream::connect(std::move(fd_), std::move(ssl), timeout_);
  if (!stream) return stream.failure();
  tls_.emplace(std::move(*stream));
  return {};
}

bool SmtpConnection::peer_closed() {
  if (!buffer_.empty()) return true;
  int fd = tls_ ? tls_->fd() : fd_.get();
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

}  // namespace postern
