// The untyped half of the IPC codec: attribute framing, integers, lists, frame
// headers and the handshake check.  The typed half is in codec.h.
#include "util/codec.h"

#include <cstring>
#include <limits>

#include "util/log.h"

namespace postern {
namespace codec_detail {

namespace {

uint32_t get_u32(std::string_view bytes) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}

}  // namespace

void put_length(std::string& out, size_t length) {
  // Our own limits keep every length far below this; reaching it is a bug.
  if (length > std::numeric_limits<uint32_t>::max()) log_panic("codec: value of %zu bytes", length);
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((length >> shift) & 0xff);
}

void put_attribute(std::string& out, char tag, std::string_view name, std::string_view value) {
  out += tag;
  out += static_cast<char>(name.size());
  out += name;
  put_length(out, value.size());
  out += value;
}

std::string int_value(int64_t value) {
  std::string out;
  auto bits = static_cast<uint64_t>(value);
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((bits >> shift) & 0xff);
  return out;
}

Result<int64_t> read_int(std::string_view value) {
  if (value.size() != 8) return fail("integer of " + std::to_string(value.size()) + " bytes, expected 8");
  uint64_t bits = 0;
  for (char c : value) bits = (bits << 8) | static_cast<unsigned char>(c);
  return static_cast<int64_t>(bits);
}

Result<bool> read_bool(std::string_view value) {
  if (value.size() != 1 || (value[0] != 0 && value[0] != 1)) return fail("boolean is not a single 0 or 1 byte");
  return value[0] == 1;
}

Result<std::vector<std::string_view>> read_items(std::string_view value, const CodecLimits& limits) {
  std::vector<std::string_view> items;
  while (!value.empty()) {
    if (items.size() >= limits.max_items)
      return fail("list has more than " + std::to_string(limits.max_items) + " items");
    if (value.size() < 4) return fail("list item length cut short");
    uint32_t length = get_u32(value);
    value.remove_prefix(4);
    if (length > value.size()) return fail("list item length " + std::to_string(length) + " past the end");
    items.push_back(value.substr(0, length));
    value.remove_prefix(length);
  }
  return items;
}

std::string printable(std::string_view text) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

Result<bool> AttributeReader::next(Attribute& attribute) {
  if (rest_.empty()) return false;
  if (rest_.size() < 2) return fail("attribute header cut short");
  attribute.tag = rest_[0];
  size_t name_length = static_cast<unsigned char>(rest_[1]);
  rest_.remove_prefix(2);
  if (name_length == 0) return fail("attribute with an empty name");
  if (name_length > limits_.max_name)
    return fail("attribute name of " + std::to_string(name_length) + " bytes, limit " +
                std::to_string(limits_.max_name));
  if (rest_.size() < name_length + 4) return fail("attribute cut short");
  attribute.name = rest_.substr(0, name_length);
  if (!valid_name(attribute.name)) return fail("bad attribute name '" + printable(attribute.name) + "'");
  rest_.remove_prefix(name_length);
  uint32_t value_length = get_u32(rest_);
  rest_.remove_prefix(4);
  if (value_length > limits_.max_value)
    return fail("attribute '" + std::string(attribute.name) + "' value of " + std::to_string(value_length) +
                " bytes, limit " + std::to_string(limits_.max_value));
  if (value_length > rest_.size())
    return fail("attribute '" + std::string(attribute.name) + "' value length past the end");
  attribute.value = rest_.substr(0, value_length);
  rest_.remove_prefix(value_length);
  return true;
}

}  // namespace codec_detail

Result<std::string> peek_type(std::string_view payload, const CodecLimits& limits) {
  codec_detail::AttributeReader reader(payload, limits);
  codec_detail::Attribute first;
  auto more = reader.next(first);
  if (!more) return more.failure();
  if (!*more || first.name != "type" || first.tag != codec_detail::kTagString)
    return fail("message does not start with its type");
  return std::string(first.value);
}

Result<size_t> frame_length(std::string_view header, const CodecLimits& limits) {
  if (header.size() < kFrameHeaderSize) return fail("frame header cut short");
  size_t length = codec_detail::get_u32(header);
  if (length > limits.max_frame)
    return fail("frame of " + std::to_string(length) + " bytes, limit " + std::to_string(limits.max_frame));
  return length;
}

Result<std::string> make_frame(std::string_view payload, const CodecLimits& limits) {
  if (payload.size() > limits.max_frame)
    return fail("message of " + std::to_string(payload.size()) + " bytes, limit " +
                std::to_string(limits.max_frame));
  std::string frame;
  frame.reserve(kFrameHeaderSize + payload.size());
  codec_detail::put_length(frame, payload.size());
  frame += payload;
  return frame;
}

Result<std::string_view> frame_payload(std::string_view frame, const CodecLimits& limits) {
  auto length = frame_length(frame, limits);
  if (!length) return length.failure();
  frame.remove_prefix(kFrameHeaderSize);
  if (frame.size() != *length)
    return fail("frame announces " + std::to_string(*length) + " bytes, holds " + std::to_string(frame.size()));
  return frame;
}

Hello make_hello(std::string_view service) {
  Hello hello;
  hello.protocol = kProtocolName;
  hello.version = kProtocolVersion;
  hello.minor_version = kProtocolMinorVersion;
  hello.service = service;
  return hello;
}

Result<void> check_hello(const Hello& hello, std::string_view expected_service) {
  using codec_detail::printable;
  if (hello.protocol != kProtocolName)
    return fail("peer speaks protocol '" + printable(hello.protocol) + "', not '" + std::string(kProtocolName) + "'");
  if (hello.version != kProtocolVersion)
    return fail("peer speaks protocol version " + std::to_string(hello.version) + "." +
                std::to_string(hello.minor_version) + ", we speak " + std::to_string(kProtocolVersion) + "." +
                std::to_string(kProtocolMinorVersion));
  if (!expected_service.empty() && hello.service != expected_service)
    return fail("connected to service '" + printable(hello.service) + "', expected '" +
                std::string(expected_service) + "'");
  return {};
}

}  // namespace postern
