// TLS contexts from main.cf, for every program that speaks TLS: the server side
// from a family of Postfix parameters named by a prefix ("smtpd_tls_": cert_file,
// key_file, chain_files, protocols, ciphers, exclude_ciphers, ask_ccert, CAfile,
// CApath, session_cache_timeout, and the mandatory_ variants), the client side
// from "smtp_tls_", and the shared tls_*_cipherlist and tls_eecdh_auto_curves.
// A parameter a family does not have keeps lib/util/tls.h's default.
//
// Errors are ConfigErrors that say where the bad value was set:
//   "main.cf:12: smtpd_tls_key_file = /etc/x.key: the private key does not match ..."
#pragma once

#include <string_view>

#include "mail/config.h"
#include "util/tls.h"

namespace postern {

// mandatory selects prefix + "mandatory_protocols" and "mandatory_ciphers", as
// Postfix does where TLS is required (security level encrypt and above).
TlsServerSettings tls_server_settings(const Config& config, std::string_view prefix, bool mandatory);
TlsClientSettings tls_client_settings(const Config& config, std::string_view prefix, TlsVerify verify,
                                      bool mandatory);

SslCtxPtr make_server_context(const Config& config, std::string_view prefix, bool mandatory);
SslCtxPtr make_client_context(const Config& config, std::string_view prefix, TlsVerify verify, bool mandatory);

}  // namespace postern
