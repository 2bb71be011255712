// Sockets for Postern's processes: UNIX-domain listeners and clients for the
// services master runs, TCP listeners that master opens for inet services,
// descriptor passing with SCM_RIGHTS, and blocking frame I/O with a deadline for
// simple clients (daemons use FramedConnection in event.h instead).
//
// What can go wrong at run time (a service that is down, a peer that vanished, a
// port in use) comes back as a failed Result; only resource exhaustion in
// make_socketpair and set_nonblocking throws SystemError.  Writes use MSG_NOSIGNAL,
// so a vanished peer is an error value, never SIGPIPE.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/codec.h"
#include "util/fd.h"
#include "util/result.h"

namespace postern {

using Timeout = std::chrono::milliseconds;

// Listening sockets are non-blocking and close-on-exec: every child that shares
// one must not hang in accept() when another child took the connection.

// Binds a stream socket at path with the given permissions.  A stale socket left
// by a dead server is removed; a socket someone still listens on, or any other
// kind of file, is left alone and reported.  Changes the umask for the duration
// of bind(2) so the socket never exists with wider permissions.
Result<UniqueFd> listen_unix(const std::string& path, mode_t mode, int backlog = 128);

// An inet listener address as master.cf writes it: "host:port", "[v6addr]:port",
// or just "port" for every local address.  The port may be a number or a service
// name from /etc/services ("smtp").
struct InetEndpoint {
  std::string host;  // empty: every address, IPv4 and IPv6
  std::string port;
};
Result<InetEndpoint> parse_inet_endpoint(std::string_view spec);
// One listener per address the endpoint names, with SO_REUSEADDR (and IPV6_V6ONLY,
// so IPv4 and IPv6 wildcards can both be bound).
Result<std::vector<UniqueFd>> listen_inet(std::string_view spec, int backlog = 128);
// The port a TCP socket is bound to (for listeners bound to port 0).
uint16_t local_port(int fd);

// A connection from a listener, close-on-exec; a failure when none is pending.
Result<UniqueFd> accept_connection(int listen_fd);

// Connects to a UNIX-domain stream socket, waiting at most timeout for a server
// whose backlog is full.  The socket is returned in blocking mode.
Result<UniqueFd> connect_unix(const std::string& path, Timeout timeout);

// A connected pair of close-on-exec stream sockets.
std::pair<UniqueFd, UniqueFd> make_socketpair();
void set_nonblocking(int fd, bool on = true);

// Descriptor passing.  send_fds sends one marker byte carrying the descriptors;
// recv_fds reads that byte and returns exactly `expected` descriptors, or closes
// whatever arrived and fails (too many, too few, or truncated by the kernel).  On
// a connection that also carries frames, the receiver must call recv_fds at the
// point in the stream where the sender called send_fds.
inline constexpr size_t kMaxPassedFds = 16;
Result<void> send_fds(int sock, std::span<const int> fds, Timeout timeout);
Result<std::vector<UniqueFd>> recv_fds(int sock, size_t expected, Timeout timeout);

// Whole frames (codec.h), within one deadline for the whole frame.  Work on
// blocking and non-blocking sockets alike.
Result<void> write_frame(int sock, std::string_view payload, Timeout timeout, const CodecLimits& limits = {});
Result<std::string> read_frame(int sock, Timeout timeout, const CodecLimits& limits = {});

template <Message M>
Result<void> write_message(int sock, const M& message, Timeout timeout, const CodecLimits& limits = {}) {
  return write_frame(sock, encode(message), timeout, limits);
}

template <Message M>
Result<M> read_message(int sock, Timeout timeout, const CodecLimits& limits = {}) {
  auto payload = read_frame(sock, timeout, limits);
  if (!payload) return payload.failure();
  return decode<M>(*payload, limits);
}

// The client side of the handshake: reads the server's Hello and checks it.
Result<Hello> read_hello(int sock, std::string_view expected_service, Timeout timeout);

}  // namespace postern
