// TLS contexts from main.cf (see tls_config.h).
#include "mail/tls_config.h"

#include <chrono>
#include <string>

#include "mail/params.h"
#include "util/error.h"

namespace postern {
namespace {

// A parameter of the family, when Postern has it.
bool has(std::string_view name) { return find_param(name) != nullptr; }

void set_if_known(const Config& config, const std::string& name, std::string& field) {
  if (has(name)) field = config.str(name);
}

void set_common(const Config& config, const std::string& prefix, bool mandatory, std::string& protocols,
                std::string& grade, TlsCipherLists& lists, std::string& exclude) {
  set_if_known(config, prefix + (mandatory ? "mandatory_protocols" : "protocols"), protocols);
  set_if_known(config, prefix + (mandatory ? "mandatory_ciphers" : "ciphers"), grade);
  set_if_known(config, prefix + "exclude_ciphers", exclude);
  lists.high = config.str("tls_high_cipherlist");
  lists.medium = config.str("tls_medium_cipherlist");
  lists.null = config.str("tls_null_cipherlist");
}

// Adds where the parameter an error names was set: "main.cf:12: name = value: what".
template <typename Make>
SslCtxPtr located(const Config& config, Make&& make) {
  try {
    return make();
  } catch (const ConfigError& e) {
    std::string parameter = e.file().substr(0, e.file().find(" = "));
    const Config::Entry* where = config.entry(parameter);
    if (!where) throw;
    throw ConfigError(where->file, where->line, e.what());
  }
}

}  // namespace

TlsServerSettings tls_server_settings(const Config& config, std::string_view prefix_view, bool mandatory) {
  const std::string prefix(prefix_view);
  TlsServerSettings s;
  s.parameter_prefix = prefix;
  set_if_known(config, prefix + "cert_file", s.cert_file);
  set_if_known(config, prefix + "key_file", s.key_file);
  if (has(prefix + "chain_files")) s.chain_files = config.list(prefix + "chain_files");
  set_common(config, prefix, mandatory, s.protocols, s.cipher_grade, s.cipher_lists, s.exclude_ciphers);
  s.eecdh_curves = config.str("tls_eecdh_auto_curves");
  if (has(prefix + "session_cache_timeout"))
    s.session_timeout = std::chrono::seconds(config.seconds(prefix + "session_cache_timeout"));
  s.session_context = prefix;
  if (has(prefix + "ask_ccert")) s.ask_client_cert = config.boolean(prefix + "ask_ccert");
  set_if_known(config, prefix + "CAfile", s.ca_file);
  set_if_known(config, prefix + "CApath", s.ca_path);
  return s;
}

TlsClientSettings tls_client_settings(const Config& config, std::string_view prefix_view, TlsVerify verify,
                                      bool mandatory) {
  const std::string prefix(prefix_view);
  TlsClientSettings s;
  s.parameter_prefix = prefix;
  s.verify = verify;
  set_if_known(config, prefix + "CAfile", s.ca_file);
  set_if_known(config, prefix + "CApath", s.ca_path);
  set_if_known(config, prefix + "cert_file", s.cert_file);
  set_if_known(config, prefix + "key_file", s.key_file);
  set_common(config, prefix, mandatory, s.protocols, s.cipher_grade, s.cipher_lists, s.exclude_ciphers);
  return s;
}

SslCtxPtr make_server_context(const Config& config, std::string_view prefix, bool mandatory) {
  return located(config, [&] { return make_server_context(tls_server_settings(config, prefix, mandatory)); });
}

SslCtxPtr make_client_context(const Config& config, std::string_view prefix, TlsVerify verify, bool mandatory) {
  return located(config,
                 [&] { return make_client_context(tls_client_settings(config, prefix, verify, mandatory)); });
}

}  // namespace postern
