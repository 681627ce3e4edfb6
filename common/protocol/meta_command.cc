#include "common/protocol/meta_command.h"

#include <array>

#include "common/protocol/text_parser.h"

namespace rend::proto {
namespace {

constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// A TTL token (N, R, T): memcached's safe_strtol on what follows the letter, negative values
// expiring at once.
bool ttl_token(std::string_view token, uint32_t& out) {
  int32_t v = 0;
  if (!parse_i32(token.substr(1), v)) return false;
  out = v < 0 ? kExpireImmediately : static_cast<uint32_t>(v);
  return true;
}

bool mode_valid(Command command, char mode) {
  if (mode == 0) return true;
  if (command == Command::kMetaSet) return std::string_view("EAPRS").find(mode) != std::string_view::npos;
  if (command == Command::kMetaArithmetic) return std::string_view("I+D-").find(mode) != std::string_view::npos;
  return true;
}

// One flag token (memcached's _meta_flag_preparse, case by case). Returns false for a flag it
// does not know, which stops the parse at once; a bad argument sets `error` and goes on, as
// memcached reports the last such problem.
bool parse_flag(std::string_view key, std::string_view token, MetaOptions& o, std::string_view& error, bool& bad) {
  constexpr std::string_view kBadToken = "CLIENT_ERROR bad token in command line format";
  switch (token[0]) {
    case 'b':
      o.base64 = true;
      if (!key.empty() && !base64_decode(key)) bad = true, error = "CLIENT_ERROR error decoding key";
      break;
    case 'N':
      o.vivify = true;
      if (!ttl_token(token, o.vivify_exptime)) bad = true, error = kBadToken;
      break;
    case 'T':
      if (!ttl_token(token, o.exptime)) {
        bad = true, error = kBadToken;
      } else {
        o.new_ttl = true;
      }
      break;
    case 'R':
      o.recache = true;
      if (!ttl_token(token, o.recache_exptime)) bad = true, error = kBadToken;
      break;
    case 'l': o.return_last_access = true; break;
    case 'O': o.opaque = token; break;
    case 'P':
    case 'L': break;  // hints for a proxy, ignored
    case 'k': o.return_key = true; break;
    case 's': o.return_size = true; break;
    case 't': o.return_ttl = true; break;
    case 'c': o.return_cas = true; break;
    case 'f': o.return_flags = true; break;
    case 'v': o.return_value = true; break;
    case 'h': o.return_hit = true; break;
    case 'u': o.no_update = true; break;
    case 'q': o.quiet = true; break;
    case 'F':
      // memcached sets no message of its own here: the command's default stands.
      if (!parse_u32_truncating(token.substr(1), o.client_flags)) bad = true;
      o.has_flags = true;
      break;
    case 'C':
      if (!parse_u64(token.substr(1), o.cas)) {
        bad = true, error = kBadToken;
      } else {
        o.has_cas = true;
      }
      break;
    case 'M':
      if (token.size() != 2) {
        bad = true, error = "CLIENT_ERROR incorrect length for M token";
      } else {
        o.mode = token[1];
      }
      break;
    case 'J':
      if (!parse_u64(token.substr(1), o.initial)) bad = true, error = "CLIENT_ERROR invalid numeric initial value";
      o.has_initial = true;
      break;
    case 'D':
      if (!parse_u64(token.substr(1), o.delta)) bad = true, error = "CLIENT_ERROR invalid numeric delta value";
      o.has_delta = true;
      break;
    case 'I': o.invalidate = true; break;
    default: return false;
  }
  return true;
}

}  // namespace

bool parse_meta_options(Command command, std::string_view key, std::string_view flags, MetaOptions& out,
                        std::string_view& error) {
  out = MetaOptions{};
  error = "CLIENT_ERROR bad command line format";
  std::array<bool, 128> seen{};
  bool bad = false;
  bool stop = false;
  for_each_meta_flag(flags, [&](std::string_view token) {
    if (stop) return;
    const auto c = static_cast<unsigned char>(token[0]);
    if (c >= 127 || seen[c]) {
      error = "CLIENT_ERROR duplicate flag";
      bad = stop = true;
      return;
    }
    seen[c] = true;
    if (!parse_flag(key, token, out, error, bad)) {
      error = "CLIENT_ERROR invalid flag";
      bad = stop = true;
    }
  });
  const bool md_or_ma = command == Command::kMetaDelete || command == Command::kMetaArithmetic;
  if (bad) {
    // memcached's md and ma report every flag problem the same way.
    if (md_or_ma) error = "CLIENT_ERROR invalid or duplicate flag";
    return false;
  }
  // memcached checks the opaque's length as it writes the reply's flags: ms and md have not run
  // yet then, mg and ma have (their reply is replaced by the error, apply_meta). An invalid ms
  // mode is reported before it.
  if (out.opaque.size() > kMetaMaxOpaque) {
    error = "CLIENT_ERROR opaque token too long";
    if (command == Command::kMetaGet || command == Command::kMetaArithmetic) {
      out.opaque_too_long = true;
    } else {
      bad = true;
    }
  }
  if (!mode_valid(command, out.mode)) {
    error = command == Command::kMetaSet ? "CLIENT_ERROR invalid mode for ms M token"
                                         : "CLIENT_ERROR invalid mode for ma M token";
    return false;
  }
  return !bad;
}

std::optional<std::string> meta_key(std::string_view token, bool base64) {
  if (!base64) return std::string(token);
  return base64_decode(token);
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += kBase64Alphabet[(v >> 6) & 63];
    out += kBase64Alphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// memcached's decoder skips bytes outside the alphabet, needs a multiple of four of the rest, and
// stops after the first padded block. An empty result is a failure (it returns the length).
std::optional<std::string> base64_decode(std::string_view text) {
  std::array<int, 256> value{};
  value.fill(-1);
  for (size_t i = 0; i < kBase64Alphabet.size(); ++i)
    value[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int>(i);
  value['='] = 0;
  size_t count = 0;
  for (char c : text) count += value[static_cast<uint8_t>(c)] >= 0 ? 1 : 0;
  if (count == 0 || count % 4 != 0) return std::nullopt;
  std::string out;
  std::array<int, 4> block{};
  size_t n = 0;
  int pad = 0;
  for (char c : text) {
    const int v = value[static_cast<uint8_t>(c)];
    if (v < 0) continue;
    if (c == '=') ++pad;
    block[n++] = v;
    if (n < 4) continue;
    out += static_cast<char>((block[0] << 2) | (block[1] >> 4));
    out += static_cast<char>(((block[1] & 15) << 4) | (block[2] >> 2));
    out += static_cast<char>(((block[2] & 3) << 6) | block[3]);
    n = 0;
    if (pad > 0) {
      if (pad > 2) return std::nullopt;
      out.resize(out.size() - static_cast<size_t>(pad));
      break;
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string meta_flags_without(std::string_view flags, std::string_view drop) {
  std::string out;
  out.reserve(flags.size());
  for_each_meta_flag(flags, [&](std::string_view token) {
    if (drop.find(token[0]) != std::string_view::npos) return;
    if (!out.empty()) out += ' ';
    out.append(token);
  });
  return out;
}

}  // namespace rend::proto
