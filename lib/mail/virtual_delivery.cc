// Delivery to virtual mailboxes (see virtual_delivery.h).
#include "mail/virtual_delivery.h"

#include <sys/stat.h>

#include "mail/address.h"
#include "mail/address_keys.h"
#include "util/error.h"
#include "util/strings.h"

namespace postern {
namespace {

VirtualLookup refused(std::string_view status, std::string dsn, std::string text) {
  VirtualLookup r;
  r.status = std::string(status);
  r.dsn = std::move(dsn);
  r.text = std::move(text);
  return r;
}

// A mailbox path from a table: relative, no "..", no empty name.
bool safe_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  for (const std::string& part : split(path, "/"))
    if (part == "..") return false;
  return true;
}

// An id from a uid or gid table: a whole number.
std::optional<int64_t> parse_id(const std::string& text) { return parse_int(trim(text)); }

}  // namespace

struct VirtualMailboxes::Impl {
  TableList mailboxes, uids, gids, limits;
  std::string base;
  std::string delimiters;
  int64_t minimum_uid;
  uint64_t size_limit;
  MaildirQuota default_quota;
  bool overquota_bounce, extension_folders;

  explicit Impl(const Config& config)
      : mailboxes(tables_of(config, "virtual_mailbox_maps")),
        uids(tables_of(config, "virtual_uid_maps")),
        gids(tables_of(config, "virtual_gid_maps")),
        limits(tables_of(config, "virtual_mailbox_limit_maps")),
        base(config.str("virtual_mailbox_base")),
        delimiters(config.str("recipient_delimiter")),
        minimum_uid(config.integer("virtual_minimum_uid")),
        size_limit(uint64_t(std::max<int64_t>(0, config.bytes("virtual_mailbox_limit")))),
        overquota_bounce(config.boolean("virtual_overquota_bounce")),
        extension_folders(config.boolean("virtual_extension_folders")) {
    auto quota = parse_maildir_quota(config.str("virtual_mailbox_quota"));
    if (!quota) {
      throw config.error_in("virtual_mailbox_quota", quota.error());
    }
    default_quota = *quota;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
  }

  // The first key of the address that tables answers, with the key that matched.
  LookupResult lookup(TableList& tables, std::string_view address, std::string* matched = nullptr) {
    for (const std::string& key : address_keys(address, {delimiters, false, true})) {
      LookupResult r = tables.lookup(key);
      if (r.status == LookupStatus::kNotFound) continue;
      if (matched) *matched = key;
      return r;
    }
    return LookupResult::not_found();
  }

  // The owner id from a uid/gid table, or a deferral.
  std::optional<VirtualLookup> owner(TableList& tables, const char* param, std::string_view address, int64_t& id) {
    if (tables.empty()) return refused(kDeliveryDefer, "4.3.0", std::string(param) + " is empty");
    LookupResult r = lookup(tables, address);
    if (r.is_temp_fail())
      return refused(kDeliveryDefer, "4.3.0", std::string(param) + " lookup failed: " + r.error);
    std::optional<int64_t> parsed = r.is_found() ? parse_id(r.value) : std::nullopt;
    if (!parsed) {
      return refused(kDeliveryDefer, "4.3.0",
                     r.is_found() ? std::string(param) + ": bad id \"" + r.value + "\" for " + std::string(address)
                                  : std::string(param) + ": no entry for " + std::string(address));
    }
    id = *parsed;
    return std::nullopt;
  }

  // ".name" for user+name@domain when the mailbox entry was found without the extension.
  std::string folder_of(std::string_view address, const std::string& matched) const {
    std::vector<std::string> plain = address_keys(address, {delimiters, false, false});
    if (plain.size() < 2 || matched == plain[0]) return "";
    Address parts = split_address(address);
    std::string name = parts.local.substr(plain[1].rfind('@') + 1);
    if (name.empty() || name.find_first_of("/.") != std::string::npos) return "";
    return "." + name;
  }
};

VirtualMailboxes::VirtualMailboxes(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
VirtualMailboxes::~VirtualMailboxes() = default;

VirtualLookup VirtualMailboxes::find(std::string_view recipient) {
  Impl& m = *impl_;
  std::string matched;
  LookupResult box = m.lookup(m.mailboxes, recipient, &matched);
  if (box.is_temp_fail())
    return refused(kDeliveryDefer, "4.3.0", "virtual_mailbox_maps lookup failed: " + box.error);
  if (!box.is_found()) return refused(kDeliveryBounce, "5.1.1", "user unknown in virtual mailbox table");
  std::string value(trim(box.value));
  if (!safe_relative_path(value))
    return refused(kDeliveryDefer, "4.3.0", "virtual_mailbox_maps: unsafe mailbox path \"" + value + "\"");
  if (m.base.empty()) return refused(kDeliveryDefer, "4.3.0", "virtual_mailbox_base is empty");

  VirtualLookup out;
  VirtualMailbox& mailbox = out.mailbox;
  mailbox.maildir = value.back() == '/';
  while (!value.empty() && value.back() == '/') value.pop_back();
  mailbox.path = m.base + "/" + value;

  int64_t uid = 0, gid = 0;
  if (auto refusal = m.owner(m.uids, "virtual_uid_maps", recipient, uid)) return *refusal;
  if (auto refusal = m.owner(m.gids, "virtual_gid_maps", recipient, gid)) return *refusal;
  if (uid < m.minimum_uid || uid <= 0)
    return refused(kDeliveryDefer, "4.3.0",
                   format("uid %lld is below virtual_minimum_uid %lld", (long long)uid, (long long)m.minimum_uid));
  if (gid < 0) return refused(kDeliveryDefer, "4.3.0", format("bad gid %lld", (long long)gid));
  mailbox.uid = uid_t(uid);
  mailbox.gid = gid_t(gid);

  mailbox.quota = m.default_quota;
  if (!m.limits.empty()) {
    LookupResult limit = m.lookup(m.limits, recipient);
    if (limit.is_temp_fail())
      return refused(kDeliveryDefer, "4.3.0", "virtual_mailbox_limit_maps lookup failed: " + limit.error);
    if (limit.is_found()) {
      auto quota = parse_maildir_quota(limit.value);
      if (!quota) return refused(kDeliveryDefer, "4.3.0", "virtual_mailbox_limit_maps: " + quota.error());
      mailbox.quota = *quota;
    }
  }
  if (m.extension_folders && mailbox.maildir) mailbox.folder = m.folder_of(recipient, matched);
  return out;
}

MailboxResult VirtualMailboxes::write(const VirtualMailbox& mailbox, const DeliveryContent& content,
                                      MaildirOptions options) const {
  const Impl& m = *impl_;
  if (!mailbox.maildir) {
    // Missing folders below the base are made as for a Maildir (mode 0700), as Postfix's virtual does.
    for (size_t slash = mailbox.path.find('/', m.base.size() + 1); slash != std::string::npos;
         slash = mailbox.path.find('/', slash + 1))
      ::mkdir(mailbox.path.substr(0, slash).c_str(), 0700);  // an error shows when the mbox is opened
    MboxOptions mbox;
    mbox.size_limit = m.size_limit;
    return deliver_to_mbox(mailbox.path, content, mbox);
  }
  options.size_limit = m.size_limit;
  struct stat st;
  uint64_t size = maildir_message_size(content);
  if (!mailbox.quota.unlimited()) {
    // A Maildir not made yet holds nothing; deliver_to_maildir creates it.
    bool exists = ::stat(mailbox.path.c_str(), &st) == 0;
    Result<MaildirUsage> usage = exists ? maildir_usage(mailbox.path, mailbox.quota, true, size) : Result<MaildirUsage>(MaildirUsage{});
    if (!usage) return mailbox_error(EIO, usage.error());
    if (!fits_quota(*usage, mailbox.quota, size)) {
      MailboxResult over;
      over.status = m.overquota_bounce ? DeliveryStatus::kPermanent : DeliveryStatus::kTemporary;
      over.dsn = m.overquota_bounce ? "5.2.2" : "4.2.2";
      over.text = "mailbox full: quota " + format_maildir_quota(mailbox.quota) + " exceeded";
      return over;
    }
  }
  std::string target = mailbox.path;
  if (!mailbox.folder.empty() && ::stat((mailbox.path + "/" + mailbox.folder).c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode))
    target += "/" + mailbox.folder;
  MailboxResult result = deliver_to_maildir(target, content, options);
  if (result.ok() && !result.already_delivered && !mailbox.quota.unlimited()) {
    auto recorded = record_maildir_usage(mailbox.path, int64_t(size), 1);
    if (!recorded) log_warn("%s", recorded.error().c_str());  // the next stale check rebuilds it
  }
  return result;
}

QuotaCheck VirtualMailboxes::check_quota(std::string_view recipient, uint64_t size) {
  VirtualLookup found = find(recipient);
  if (!found.ok() || !found.mailbox.maildir || found.mailbox.quota.unlimited()) return QuotaCheck::kUnknown;
  auto usage = maildir_usage(found.mailbox.path, found.mailbox.quota, false);
  if (!usage) return QuotaCheck::kUnknown;
  // "Any message" is the smallest there is: one byte.
  return fits_quota(*usage, found.mailbox.quota, std::max<uint64_t>(size, 1)) ? QuotaCheck::kFits : QuotaCheck::kOver;
}

}  // namespace postern
