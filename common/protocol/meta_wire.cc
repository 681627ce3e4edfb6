#include "common/protocol/meta_wire.h"

namespace rend::proto {

char meta_letter(Command command) {
  switch (command) {
    case Command::kMetaGet: return 'g';
    case Command::kMetaSet: return 's';
    case Command::kMetaDelete: return 'd';
    case Command::kMetaArithmetic: return 'a';
    case Command::kMetaDebug: return 'e';
    default: return '?';
  }
}

Command meta_command_of(char letter) {
  switch (letter) {
    case 'g': return Command::kMetaGet;
    case 's': return Command::kMetaSet;
    case 'd': return Command::kMetaDelete;
    case 'a': return Command::kMetaArithmetic;
    case 'e': return Command::kMetaDebug;
    default: return Command::kUnknown;
  }
}

void append_meta_l2_request(std::string& out, Command command, std::string_view key, std::string_view flags,
                            std::string_view data, bool track_races) {
  std::string value;
  value.reserve(2 + flags.size() + data.size());
  value += meta_letter(command);
  value.append(flags);
  value += '\n';
  value.append(data);
  bin::append_packet(out, bin::kRequestMagic, bin::kMeta, 0, 0, 0, {}, key, value,
                     track_races ? bin::kDataTypeTrackRaces : 0);
}

}  // namespace rend::proto
