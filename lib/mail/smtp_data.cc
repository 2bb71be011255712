// DATA and BDAT content decoding (smtp_data.h).
#include "mail/smtp_data.h"

#include <utility>

namespace postern {

namespace {
// A line without its end is passed on in pieces of about this size, so a client
// that never sends a line end cannot make the server buffer it.
constexpr size_t kPieceSize = 4096;
}  // namespace

DataDecoder::DataDecoder(BareNewline bare_newline, Output out) : policy_(bare_newline), out_(std::move(out)) {}

void DataDecoder::emit_line_start(std::string_view text) {
  if (!mid_line_ && !text.empty() && text.front() == '.') text.remove_prefix(1);  // dot-unstuffing
  if (!text.empty()) out_(text);
}

void DataDecoder::flush_partial() {
  // The last byte stays: it may be the CR of a CRLF whose LF has not arrived.
  if (line_.size() <= kPieceSize) return;
  std::string_view all(line_);
  emit_line_start(all.substr(0, all.size() - 1));
  line_.erase(0, line_.size() - 1);
  mid_line_ = true;
}

size_t DataDecoder::feed(std::string_view input) {
  size_t pos = 0;
  while (pos < input.size() && !done_ && !rejected_) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) {
      line_.append(input.substr(pos));
      pos = input.size();
      flush_partial();
      break;
    }
    line_.append(input.substr(pos, nl - pos));
    pos = nl + 1;
    bool crlf = !line_.empty() && line_.back() == '\r';
    if (crlf) line_.pop_back();
    if (!crlf) {
      bare_newline_seen_ = true;
      if (policy_ == BareNewline::kReject) {
        rejected_ = true;
        line_.clear();
        break;
      }
    }
    if (crlf && prev_crlf_ && !mid_line_ && line_ == ".") {
      done_ = true;
    } else {
      emit_line_start(line_);
      out_("\n");
    }
    prev_crlf_ = crlf;
    mid_line_ = false;
    line_.clear();
  }
  return pos;
}

void ChunkDecoder::feed(std::string_view input) {
  if (input.empty()) return;
  if (held_cr_) {
    held_cr_ = false;
    if (input.front() != '\n') out_("\r");
  }
  size_t start = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] != '\r') continue;
    if (i + 1 == input.size()) {
      out_(input.substr(start, i - start));
      held_cr_ = true;
      return;
    }
    if (input[i + 1] == '\n') {
      out_(input.substr(start, i - start));
      start = i + 1;  // the LF stays
    }
  }
  out_(input.substr(start));
}

void ChunkDecoder::finish() {
  if (held_cr_) out_("\r");
  held_cr_ = false;
}

}  // namespace postern
