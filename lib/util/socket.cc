// UNIX-domain and TCP sockets, descriptor passing and blocking frame I/O.
#include "util/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <thread>

#include "util/error.h"
#include "util/strings.h"

namespace postern {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::strerror(err); }

// Waits until fd is ready for events or the deadline passes.
Result<void> wait_ready(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(std::string("timed out ") + what);
    struct pollfd pfd {fd, events, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n > 0) return {};
    if (n < 0 && errno != EINTR) return fail(std::string("poll: ") + errno_text(errno));
  }
}

std::string io_error(const char* what, int err) {
  if (err == EPIPE || err == ECONNRESET) return std::string(what) + ": peer closed the connection";
  return std::string(what) + ": " + errno_text(err);
}

Result<void> send_all(int sock, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(sock, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto r = wait_ready(sock, POLLOUT, deadline, "writing a frame"); !r) return r;
    } else if (errno != EINTR) {
      return fail(io_error("write", errno));
    }
  }
  return {};
}

// Reads exactly out.size() bytes; `started` says whether the frame already had bytes,
// which turns an end of file from a closed connection into a truncated frame.
Result<void> recv_exact(int sock, std::span<char> out, bool started, Clock::time_point deadline) {
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::recv(sock, out.data() + got, out.size() - got, MSG_DONTWAIT);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0) {
      if (!started && got == 0) return fail("connection closed by peer");
      return fail("connection closed in the middle of a frame");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto r = wait_ready(sock, POLLIN, deadline, "reading a frame"); !r) return r;
    } else if (errno != EINTR) {
      return fail(io_error("read", errno));
    }
  }
  return {};
}

Result<struct sockaddr_un> unix_address(const std::string& path) {
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path))
    return fail(path + ": socket path empty or longer than " + std::to_string(sizeof(sun.sun_path) - 1) + " bytes");
  std::memcpy(sun.sun_path, path.data(), path.size());
  return sun;
}

// Starts a non-blocking connect; EINPROGRESS and EAGAIN (a full backlog) are not failures.
int start_connect(int fd, const struct sockaddr_un& sun) {
  int rc = ::connect(fd, reinterpret_cast<const struct sockaddr*>(&sun), sizeof(sun));
  return rc == 0 ? 0 : errno;
}

UniqueFd new_socket(int family) {
  return UniqueFd(check_sys(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
}

// True when something accepts connections at the socket path.
bool someone_listens(const struct sockaddr_un& sun) {
  UniqueFd probe = new_socket(AF_UNIX);
  int err = start_connect(probe.get(), sun);
  return err == 0 || err == EAGAIN || err == EINPROGRESS;
}

// Restores the umask when bind is done, whatever happens.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

 private:
  mode_t old_;
};

}  // namespace

Result<UniqueFd> listen_unix(const std::string& path, mode_t mode, int backlog) {
  auto sun = unix_address(path);
  if (!sun) return sun.failure();
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(path + ": exists and is not a socket");
    if (someone_listens(*sun)) return fail(path + ": a server already listens there");
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) return fail(path + ": unlink: " + errno_text(errno));
  } else if (errno != ENOENT) {
    return fail(path + ": " + errno_text(errno));
  }
  UniqueFd fd = new_socket(AF_UNIX);
  {
    UmaskGuard guard(~mode & 0777);
    if (::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&*sun), sizeof(*sun)) < 0)
      return fail(path + ": bind: " + errno_text(errno));
  }
  if (::chmod(path.c_str(), mode) < 0) return fail(path + ": chmod: " + errno_text(errno));
  if (::listen(fd.get(), backlog) < 0) return fail(path + ": listen: " + errno_text(errno));
  return fd;
}

Result<InetEndpoint> parse_inet_endpoint(std::string_view spec) {
  InetEndpoint endpoint;
  std::string_view port;
  if (!spec.empty() && spec.front() == '[') {
    auto close = spec.find(']');
    if (close == std::string_view::npos || close + 1 >= spec.size() || spec[close + 1] != ':')
      return fail("'" + std::string(spec) + "': expected [address]:port");
    endpoint.host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
    struct in6_addr addr {};
    if (::inet_pton(AF_INET6, endpoint.host.c_str(), &addr) != 1)
      return fail("'" + std::string(spec) + "': not an IPv6 address in brackets");
  } else if (auto colon = spec.rfind(':'); colon != std::string_view::npos) {
    if (spec.find(':') != colon) return fail("'" + std::string(spec) + "': an IPv6 address needs [brackets]");
    endpoint.host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
    if (endpoint.host.empty()) return fail("'" + std::string(spec) + "': empty host");
  } else {
    port = spec;
  }
  if (port.empty()) return fail("'" + std::string(spec) + "': no port");
  if (auto number = parse_int(port)) {
    if (*number < 0 || *number > 65535) return fail("'" + std::string(spec) + "': port out of range");
  } else {
    for (char c : port)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
        return fail("'" + std::string(spec) + "': bad port '" + std::string(port) + "'");
  }
  endpoint.port = port;
  return endpoint;
}

Result<std::vector<UniqueFd>> listen_inet(std::string_view spec, int backlog) {
  auto endpoint = parse_inet_endpoint(spec);
  if (!endpoint) return endpoint.failure();
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  struct addrinfo* found = nullptr;
  const char* host = endpoint->host.empty() ? nullptr : endpoint->host.c_str();
  if (int rc = ::getaddrinfo(host, endpoint->port.c_str(), &hints, &found); rc != 0)
    return fail("'" + std::string(spec) + "': " + ::gai_strerror(rc));
  std::unique_ptr<struct addrinfo, decltype(&::freeaddrinfo)> owner(found, ::freeaddrinfo);

  std::vector<UniqueFd> listeners;
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    // A wildcard listener skips a family this host does not have.
    if (!fd.valid() && host == nullptr && errno == EAFNOSUPPORT) continue;
    if (!fd.valid()) return fail("'" + std::string(spec) + "': socket: " + errno_text(errno));
    int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0) {
      if (host == nullptr && errno == EADDRNOTAVAIL) continue;
      return fail("'" + std::string(spec) + "': bind: " + errno_text(errno));
    }
    if (::listen(fd.get(), backlog) < 0) return fail("'" + std::string(spec) + "': listen: " + errno_text(errno));
    listeners.push_back(std::move(fd));
  }
  if (listeners.empty()) return fail("'" + std::string(spec) + "': no address to listen on");
  return listeners;
}

uint16_t local_port(int fd) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  check_sys(::getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len), "getsockname");
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

Result<UniqueFd> accept_connection(int listen_fd) {
  int fd = retry_eintr([&] { return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC); });
  if (fd < 0) return fail(errno == EAGAIN ? std::string("no connection pending") : "accept: " + errno_text(errno));
  return UniqueFd(fd);
}

Result<UniqueFd> connect_unix(const std::string& path, Timeout timeout) {
  auto sun = unix_address(path);
  if (!sun) return sun.failure();
  auto deadline = Clock::now() + timeout;
  UniqueFd fd = new_socket(AF_UNIX);
  for (;;) {
    int err = start_connect(fd.get(), *sun);
    if (err == 0) break;
    if (err == EINPROGRESS || err == EINTR) {
      if (auto r = wait_ready(fd.get(), POLLOUT, deadline, "connecting"); !r) return fail(path + ": " + r.error());
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return fail(path + ": connect: " + errno_text(err));
      break;
    }
    if (err != EAGAIN) return fail(path + ": connect: " + errno_text(err));
    // The server's backlog is full: UNIX sockets do not queue the attempt, so try again shortly.
    if (Clock::now() >= deadline) return fail(path + ": timed out connecting (server busy)");
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(10), deadline - Clock::now()));
  }
  set_nonblocking(fd.get(), false);
  return fd;
}

std::pair<UniqueFd, UniqueFd> make_socketpair() {
  int fds[2];
  check_sys(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void set_nonblocking(int fd, bool on) {
  int flags = check_sys(::fcntl(fd, F_GETFL), "fcntl F_GETFL");
  int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags) check_sys(::fcntl(fd, F_SETFL, wanted), "fcntl F_SETFL");
}

Result<void> send_fds(int sock, std::span<const int> fds, Timeout timeout) {
  if (fds.empty() || fds.size() > kMaxPassedFds)
    return fail("cannot pass " + std::to_string(fds.size()) + " descriptors (1 to " +
                std::to_string(kMaxPassedFds) + ")");
  char marker = 'F';
  struct iovec iov {&marker, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());

  auto deadline = Clock::now() + timeout;
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) return {};
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto r = wait_ready(sock, POLLOUT, deadline, "passing descriptors"); !r) return r;
    } else if (n < 0 && errno != EINTR) {
      return fail(io_error("passing descriptors", errno));
    }
  }
}

Result<std::vector<UniqueFd>> recv_fds(int sock, size_t expected, Timeout timeout) {
  if (expected == 0 || expected > kMaxPassedFds)
    return fail("cannot receive " + std::to_string(expected) + " descriptors");
  char marker = 0;
  struct iovec iov {&marker, 1};
  // Room for one more than the maximum, so that a sender passing too many is
  // seen as such rather than only as a truncation.
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxPassedFds + 1))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);

  auto deadline = Clock::now() + timeout;
  ssize_t n;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto r = wait_ready(sock, POLLIN, deadline, "receiving descriptors"); !r) return r.failure();
    } else if (errno != EINTR) {
      return fail(io_error("receiving descriptors", errno));
    }
  }
  // Own every descriptor that arrived before judging the message, so a failure closes them all.
  std::vector<UniqueFd> received;
  for (auto* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (n == 0) return fail("connection closed by peer");
  if (msg.msg_flags & MSG_CTRUNC) return fail("descriptors truncated: too many passed");
  if (marker != 'F') return fail("expected passed descriptors, got other data");
  if (received.size() != expected)
    return fail("received " + std::to_string(received.size()) + " descriptors, expected " + std::to_string(expected));
  return received;
}

Result<void> write_frame(int sock, std::string_view payload, Timeout timeout, const CodecLimits& limits) {
  auto frame = make_frame(payload, limits);
  if (!frame) return frame.failure();
  return send_all(sock, *frame, Clock::now() + timeout);
}

Result<std::string> read_frame(int sock, Timeout timeout, const CodecLimits& limits) {
  auto deadline = Clock::now() + timeout;
  char header[kFrameHeaderSize];
  if (auto r = recv_exact(sock, header, false, deadline); !r) return r.failure();
  auto length = frame_length({header, sizeof(header)}, limits);
  if (!length) return length.failure();
  std::string payload(*length, '\0');
  if (auto r = recv_exact(sock, payload, true, deadline); !r) return r.failure();
  return payload;
}

Result<Hello> read_hello(int sock, std::string_view expected_service, Timeout timeout) {
  auto hello = read_message<Hello>(sock, timeout);
  if (!hello) return fail("handshake: " + hello.error());
  if (auto r = check_hello(*hello, expected_service); !r) return fail("handshake: " + r.error());
  return hello;
}

}  // namespace postern
