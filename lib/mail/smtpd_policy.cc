// smtpd's restriction engine (see smtpd_policy.h). Interim: refuses everything until
// the restriction lists are implemented.
#include "mail/smtpd_policy.h"

namespace postern {

struct SmtpdPolicy::Impl {};

SmtpdPolicy::SmtpdPolicy(const Config&) : impl_(std::make_unique<Impl>()) {}
SmtpdPolicy::~SmtpdPolicy() = default;

PolicyVerdict SmtpdPolicy::check(SmtpdStage, const SmtpdSession&) const {
  PolicyVerdict verdict;
  verdict.kind = PolicyVerdict::Kind::kDefer;
  verdict.code = 451;
  verdict.dsn = "4.3.0";
  verdict.text = "Restrictions not implemented yet";
  verdict.log = verdict.text;
  return verdict;
}

}  // namespace postern
