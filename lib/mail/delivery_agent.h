// What every delivery agent (local, smtp, virtual) does around its own work on a
// DeliveryRequest (lib/mail/delivery_protocol.h): open the queue file the request
// names, answer all recipients at once when it cannot, and mark the delivered
// recipients done before the reply.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mail/config.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "util/result.h"

namespace postern {

// The file "active/ID" of the request, open for marking.  A queue_path that is
// not active/ID with the request's own ID, or a file that cannot be read, is a
// failure with the reason (already logged).
Result<QueueFile> open_request_file(const Config& config, const DeliveryRequest& request);

// One result for every recipient of the request: a deferral of the whole message.
DeliveryReply defer_all(const DeliveryRequest& request, const std::string& text);

// Marks the recipients at these record offsets done; with sync the last mark is
// fdatasynced (docs/queue.md: deliveries that cannot be recognised again).
void mark_delivered(const QueueFile& file, const std::vector<int64_t>& offsets, bool sync);

}  // namespace postern
