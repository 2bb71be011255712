// The auth service's protocol (auth/, socket private/auth): a client asks whether a
// user's password is right and the service answers ok, fail or temp.  One
// connection may carry many requests at once (smtpd multiplexes its sessions);
// replies come back in any order, matched by id, because a failure is answered
// only after auth_failure_delay while a success is answered at once.
//
//   server -> client   Hello (service "auth")
//   client -> server   AuthRequest ...        (any number, without waiting)
//   server -> client   AuthReply ...          (one per request)
//
// A client uses lib/mail/auth_client.h rather than this header directly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include "util/codec.h"

namespace postern {

// The longest user name and password the service accepts.
inline constexpr size_t kAuthMaxField = 1024;
// Frames are small: a request is a few fields of at most kAuthMaxField bytes.
inline constexpr CodecLimits kAuthCodecLimits{16384, 64, 4096, 16};

struct AuthRequest {
  int64_t id = 0;              // chosen by the client, echoed in the reply
  std::string service;         // the protocol the user logs in with: "smtp", "imap", "pop3"
  std::string user;
  std::string password;
  std::string client_address;  // for the log: "192.0.2.1" or "unknown"

  static constexpr std::string_view kType = "auth-request";
  static constexpr auto kFields = std::make_tuple(
      field("id", &AuthRequest::id), field("service", &AuthRequest::service), field("user", &AuthRequest::user),
      field("password", &AuthRequest::password), field("client_address", &AuthRequest::client_address));
};

inline constexpr std::string_view kAuthOk = "ok";      // the password is right
inline constexpr std::string_view kAuthFail = "fail";  // wrong password, unknown user, locked or refused entry
inline constexpr std::string_view kAuthTemp = "temp";  // cannot tell now (a table is down): try later, 4xx

struct AuthReply {
  int64_t id = 0;
  std::string status;  // kAuthOk, kAuthFail or kAuthTemp
  std::string user;    // on ok: the canonical name (as the table or passwd spells it)
  std::string reason;  // for the client's log and reply; never says whether the user exists

  static constexpr std::string_view kType = "auth-reply";
  static constexpr auto kFields = std::make_tuple(field("id", &AuthReply::id), field("status", &AuthReply::status),
                                                  field("user", &AuthReply::user),
                                                  field("reason", &AuthReply::reason));
};

// The service's socket under queue_directory.
inline std::string auth_socket_path(const std::string& queue_directory) {
  return queue_directory + "/private/auth";
}

}  // namespace postern
