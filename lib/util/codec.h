// The one typed codec for every request and reply Postern processes exchange over
// UNIX sockets.  A message is a plain struct that lists its fields once; encode and
// decode both come from that list, so the two sides cannot drift apart:
//
//   struct Recipient {
//     std::string address; int64_t offset = 0;
//     static constexpr auto kFields = std::make_tuple(field("address", &Recipient::address),
//                                                     field("offset", &Recipient::offset));
//   };
//   struct DeliveryRequest {
//     std::string queue_id; std::vector<Recipient> recipients; bool flush = false;
//     static constexpr std::string_view kType = "delivery-request";
//     static constexpr auto kFields = std::make_tuple(
//         field("queue_id", &DeliveryRequest::queue_id),
//         field("recipients", &DeliveryRequest::recipients),
//         field("flush", &DeliveryRequest::flush));
//   };
//
// Field types: std::string, bool, integers up to 64 bits (unsigned only up to 32),
// std::vector<std::string>, a nested struct with kFields, and std::vector of those.
//
// Wire format (all lengths are unsigned big-endian):
//   frame     = length:4 payload                 length = bytes of payload
//   payload   = *attribute                       the first one is always "type"
//   attribute = tag:1 name-length:1 name value-length:4 value
//   tag 's'   string      value = the bytes
//   tag 'i'   integer     value = 8 bytes, two's complement
//   tag 'b'   boolean     value = 1 byte, 0 or 1
//   tag 'S'   string list value = *(length:4 bytes)
//   tag 'r'   record      value = a payload of the nested struct's attributes (no "type")
//   tag 'R'   record list value = *(length:4 record)
// Names are 1*(ALPHA / DIGIT / "_" / "-" / ".").
//
// Decoding is strict about what it knows and lenient about what it does not: an
// attribute with an unknown name is skipped (so a newer peer may add fields), a
// missing one keeps the struct's default; a known attribute with the wrong tag, a
// repeated attribute, a length past the end, a name or value over the limits, a
// frame over the frame limit, a list over the item limit, or a message of another
// type is an error value.
// Nothing is allocated before its size has been checked against the limits.
//
// A connection opens with the server sending a Hello; the client checks it with
// check_hello() before its first request.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "util/result.h"

namespace postern {

struct CodecLimits {
  size_t max_frame = 1 << 20;  // payload bytes in one frame
  size_t max_name = 64;        // bytes in one attribute name
  size_t max_value = 1 << 20;  // bytes in one attribute value
  size_t max_items = 100000;   // entries in one list
};

inline constexpr size_t kFrameHeaderSize = 4;

// One entry of a struct's kFields: the attribute name and the member it fills.
template <typename S, typename T>
struct Field {
  std::string_view name;
  T S::*member;
};

template <typename S, typename T>
constexpr Field<S, T> field(std::string_view name, T S::*member) {
  return {name, member};
}

template <typename T>
concept Record = std::default_initializable<T> && requires { T::kFields; };

template <typename T>
concept Message = Record<T> && requires {
  { T::kType } -> std::convertible_to<std::string_view>;
};

namespace codec_detail {

inline constexpr char kTagString = 's';
inline constexpr char kTagInt = 'i';
inline constexpr char kTagBool = 'b';
inline constexpr char kTagStringList = 'S';
inline constexpr char kTagRecord = 'r';
inline constexpr char kTagRecordList = 'R';

template <typename T>
struct VectorOf {
  static constexpr bool value = false;
};
template <typename T>
struct VectorOf<std::vector<T>> {
  static constexpr bool value = true;
  using Element = T;
};

template <typename T>
concept Integer = std::integral<T> && !std::same_as<T, bool> &&
                  (std::signed_integral<T> || sizeof(T) < sizeof(int64_t));

template <typename T>
constexpr char tag_of() {
  if constexpr (std::same_as<T, std::string>) return kTagString;
  else if constexpr (std::same_as<T, bool>) return kTagBool;
  else if constexpr (Integer<T>) return kTagInt;
  else if constexpr (std::same_as<T, std::vector<std::string>>) return kTagStringList;
  else if constexpr (Record<T>) return kTagRecord;
  else if constexpr (VectorOf<T>::value) {
    static_assert(Record<typename VectorOf<T>::Element>, "unsupported codec field type");
    return kTagRecordList;
  } else {
    static_assert(!sizeof(T), "unsupported codec field type");
  }
}

constexpr bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// A field list is usable when every name is valid and no name repeats.
template <Record R>
constexpr bool valid_field_list() {
  return std::apply(
      [](const auto&... f) {
        std::array<std::string_view, sizeof...(f)> names{f.name...};
        for (size_t i = 0; i < names.size(); ++i) {
          if (!valid_name(names[i]) || names[i].size() > CodecLimits{}.max_name) return false;
          for (size_t j = i + 1; j < names.size(); ++j)
            if (names[i] == names[j]) return false;
        }
        return true;
      },
      R::kFields);
}

template <Message M>
constexpr bool valid_message() {
  bool has_type_field = std::apply([](const auto&... f) { return ((f.name == "type") || ...); }, M::kFields);
  return valid_name(M::kType) && !has_type_field && valid_field_list<M>();
}

// The untyped layer, in codec.cc.
void put_length(std::string& out, size_t length);
void put_attribute(std::string& out, char tag, std::string_view name, std::string_view value);
std::string int_value(int64_t value);
Result<int64_t> read_int(std::string_view value);
Result<bool> read_bool(std::string_view value);
// The items of a string list or record list value.
Result<std::vector<std::string_view>> read_items(std::string_view value, const CodecLimits& limits);
// Text from the wire made safe and short for an error message.
std::string printable(std::string_view text);

struct Attribute {
  char tag = 0;
  std::string_view name;
  std::string_view value;
};

// Walks the attributes of a payload, checking every length against the limits.
class AttributeReader {
 public:
  AttributeReader(std::string_view payload, const CodecLimits& limits) : rest_(payload), limits_(limits) {}
  // False at the end of the payload; a failure when the next attribute is malformed.
  Result<bool> next(Attribute& attribute);

 private:
  std::string_view rest_;
  const CodecLimits& limits_;
};

template <Record R>
std::string encode_record(const R& record);

template <typename T>
void put_field(std::string& out, std::string_view name, const T& value) {
  constexpr char tag = tag_of<T>();
  if constexpr (tag == kTagString) {
    put_attribute(out, tag, name, value);
  } else if constexpr (tag == kTagBool) {
    put_attribute(out, tag, name, value ? std::string_view("\1", 1) : std::string_view("\0", 1));
  } else if constexpr (tag == kTagInt) {
    put_attribute(out, tag, name, int_value(static_cast<int64_t>(value)));
  } else if constexpr (tag == kTagRecord) {
    put_attribute(out, tag, name, encode_record(value));
  } else {
    std::string items;
    for (const auto& item : value) {
      if constexpr (tag == kTagStringList) {
        put_length(items, item.size());
        items += item;
      } else {
        std::string encoded = encode_record(item);
        put_length(items, encoded.size());
        items += encoded;
      }
    }
    put_attribute(out, tag, name, items);
  }
}

template <Record R>
std::string encode_record(const R& record) {
  static_assert(valid_field_list<R>(), "field names must be unique and valid");
  std::string out;
  std::apply([&](const auto&... f) { (put_field(out, f.name, record.*(f.member)), ...); }, R::kFields);
  return out;
}

template <Record R>
Result<void> decode_record(std::string_view payload, R& record, const CodecLimits& limits, bool top_level);

template <typename T>
Result<void> decode_value(std::string_view value, T& out, const CodecLimits& limits) {
  constexpr char tag = tag_of<T>();
  if constexpr (tag == kTagString) {
    out.assign(value);
  } else if constexpr (tag == kTagBool) {
    auto b = read_bool(value);
    if (!b) return b.failure();
    out = *b;
  } else if constexpr (tag == kTagInt) {
    auto n = read_int(value);
    if (!n) return n.failure();
    if (!std::in_range<T>(*n)) return fail("value " + std::to_string(*n) + " out of range");
    out = static_cast<T>(*n);
  } else if constexpr (tag == kTagRecord) {
    return decode_record(value, out, limits, false);
  } else {
    auto items = read_items(value, limits);
    if (!items) return items.failure();
    out.clear();
    for (size_t i = 0; i < items->size(); ++i) {
      if constexpr (tag == kTagStringList) {
        out.emplace_back((*items)[i]);
      } else {
        typename T::value_type item{};
        auto r = decode_record((*items)[i], item, limits, false);
        if (!r) return fail("item " + std::to_string(i) + ": " + r.error());
        out.push_back(std::move(item));
      }
    }
  }
  return {};
}

// Decodes attribute into the field it names, if any; sets known when it named one.
template <Record R, size_t... I>
Result<void> decode_attribute(const Attribute& attribute, R& record, std::array<bool, sizeof...(I)>& seen,
                              const CodecLimits& limits, bool& known, std::index_sequence<I...>) {
  Result<void> result;
  auto try_field = [&](const auto& f, bool& was_seen) {
    if (f.name != attribute.name) return false;
    known = true;
    using T = std::remove_cvref_t<decltype(record.*(f.member))>;
    if (was_seen) {
      result = fail("attribute '" + std::string(f.name) + "' appears twice");
    } else if (attribute.tag != tag_of<T>()) {
      result = fail("attribute '" + std::string(f.name) + "' has type '" + printable({&attribute.tag, 1}) +
                    "', expected '" + std::string(1, tag_of<T>()) + "'");
    } else {
      was_seen = true;
      auto r = decode_value(attribute.value, record.*(f.member), limits);
      if (!r) result = fail("attribute '" + std::string(f.name) + "': " + r.error());
    }
    return true;
  };
  (try_field(std::get<I>(R::kFields), seen[I]) || ...);
  return result;
}

template <Record R>
Result<void> decode_record(std::string_view payload, R& record, const CodecLimits& limits, bool top_level) {
  constexpr size_t kCount = std::tuple_size_v<std::remove_cvref_t<decltype(R::kFields)>>;
  std::array<bool, kCount> seen{};
  AttributeReader reader(payload, limits);
  Attribute attribute;
  bool first = true;
  for (;;) {
    auto more = reader.next(attribute);
    if (!more) return more.failure();
    if (!*more) return {};
    // The type of a top-level message was checked by the caller; it must not repeat.
    if (top_level && std::exchange(first, false)) continue;
    if (top_level && attribute.name == "type") return fail("attribute 'type' appears twice");
    bool known = false;
    auto r = decode_attribute(attribute, record, seen, limits, known, std::make_index_sequence<kCount>{});
    if (!r) return r;
  }
}

}  // namespace codec_detail

// The payload of a message: its type, then its fields in declaration order.
template <Message M>
std::string encode(const M& message) {
  static_assert(codec_detail::valid_message<M>(), "a message needs a valid kType and no field named 'type'");
  std::string out;
  codec_detail::put_attribute(out, codec_detail::kTagString, "type", M::kType);
  out += codec_detail::encode_record(message);
  return out;
}

// The type of a payload (its first attribute), for a receiver that dispatches.
Result<std::string> peek_type(std::string_view payload, const CodecLimits& limits = {});

template <Message M>
Result<M> decode(std::string_view payload, const CodecLimits& limits = {}) {
  static_assert(codec_detail::valid_message<M>(), "a message needs a valid kType and no field named 'type'");
  auto type = peek_type(payload, limits);
  if (!type) return type.failure();
  if (*type != M::kType)
    return fail("expected a '" + std::string(M::kType) + "' message, got '" + codec_detail::printable(*type) + "'");
  M message{};
  auto r = codec_detail::decode_record(payload, message, limits, true);
  if (!r) return fail(std::string(M::kType) + ": " + r.error());
  return message;
}

// The length a frame header announces, or a failure when it is over limits.max_frame.
Result<size_t> frame_length(std::string_view header, const CodecLimits& limits = {});
// Header plus payload; a failure when the payload is over limits.max_frame.
Result<std::string> make_frame(std::string_view payload, const CodecLimits& limits = {});
// The payload of exactly one whole frame (header included in frame).
Result<std::string_view> frame_payload(std::string_view frame, const CodecLimits& limits = {});

template <Message M>
Result<std::string> encode_frame(const M& message, const CodecLimits& limits = {}) {
  return make_frame(encode(message), limits);
}

template <Message M>
Result<M> decode_frame(std::string_view frame, const CodecLimits& limits = {}) {
  auto payload = frame_payload(frame, limits);
  if (!payload) return payload.failure();
  return decode<M>(*payload, limits);
}

// The handshake: a server sends Hello as soon as a connection opens; the client
// reads it and calls check_hello() before it sends anything.  The version changes
// when peers can no longer understand each other; minor_version grows when
// attributes are added, which older peers skip.
inline constexpr std::string_view kProtocolName = "postern";
inline constexpr int32_t kProtocolVersion = 1;
inline constexpr int32_t kProtocolMinorVersion = 0;

struct Hello {
  std::string protocol;
  int32_t version = 0;
  int32_t minor_version = 0;
  std::string service;  // the server's service name: "qmgr", "bounce", ...

  static constexpr std::string_view kType = "hello";
  static constexpr auto kFields = std::make_tuple(
      field("protocol", &Hello::protocol), field("version", &Hello::version),
      field("minor_version", &Hello::minor_version), field("service", &Hello::service));
};

Hello make_hello(std::string_view service);
// Succeeds when the peer speaks our protocol and major version and, unless
// expected_service is empty, is the service the client meant to reach.
Result<void> check_hello(const Hello& hello, std::string_view expected_service);

}  // namespace postern
