#include "worker/metric_mapping.h"

#include "worker/op.h"
#include "worker/worker.h"

#include "common/protocol/binary_format.h"

namespace rend::worker {

using proto::Command;
namespace bin = proto::bin;

MetricCommand metric_command_for(Command command) {
  switch (command) {
    case Command::kGet: return MetricCommand::kGet;
    case Command::kGets: return MetricCommand::kGets;
    case Command::kGat: return MetricCommand::kGat;
    case Command::kGats: return MetricCommand::kGats;
    case Command::kGetE: return MetricCommand::kGetE;
    case Command::kSet: return MetricCommand::kSet;
    case Command::kAdd: return MetricCommand::kAdd;
    case Command::kReplace: return MetricCommand::kReplace;
    case Command::kAppend: return MetricCommand::kAppend;
    case Command::kPrepend: return MetricCommand::kPrepend;
    case Command::kCas: return MetricCommand::kCas;
    case Command::kDelete: return MetricCommand::kDelete;
    case Command::kIncr: return MetricCommand::kIncr;
    case Command::kDecr: return MetricCommand::kDecr;
    case Command::kTouch: return MetricCommand::kTouch;
    case Command::kFlushAll: return MetricCommand::kFlushAll;
    case Command::kStats: return MetricCommand::kStats;
    case Command::kVersion: return MetricCommand::kVersion;
    case Command::kNoop: return MetricCommand::kNoop;
    case Command::kMetaGet: return MetricCommand::kMetaGet;
    case Command::kMetaSet: return MetricCommand::kMetaSet;
    case Command::kMetaDelete: return MetricCommand::kMetaDelete;
    case Command::kMetaArithmetic: return MetricCommand::kMetaArithmetic;
    case Command::kMetaDebug: return MetricCommand::kMetaDebug;
    default: return MetricCommand::kOther;
  }
}

MetricCommand metric_command_for_opcode(uint8_t opcode) {
  switch (bin::loud_opcode(opcode)) {
    case bin::kGet:
    case bin::kGetK: return MetricCommand::kGet;
    case bin::kGat:
    case bin::kGatK: return MetricCommand::kGat;
    case bin::kGetE: return MetricCommand::kGetE;
    case bin::kSet: return MetricCommand::kSet;
    case bin::kAdd: return MetricCommand::kAdd;
    case bin::kReplace: return MetricCommand::kReplace;
    case bin::kAppend: return MetricCommand::kAppend;
    case bin::kPrepend: return MetricCommand::kPrepend;
    case bin::kDelete: return MetricCommand::kDelete;
    case bin::kIncrement: return MetricCommand::kIncr;
    case bin::kDecrement: return MetricCommand::kDecr;
    case bin::kTouch: return MetricCommand::kTouch;
    case bin::kFlush: return MetricCommand::kFlushAll;
    case bin::kStat: return MetricCommand::kStats;
    case bin::kVersion: return MetricCommand::kVersion;
    case bin::kNoop: return MetricCommand::kNoop;
    default: return MetricCommand::kOther;
  }
}

Result meta_result(proto::Command command, std::string_view code) {
  if (code == "EN" || code == "NF") return Result::kMiss;
  if (code == "NS") return Result::kNotStored;
  if (code == "EX") return Result::kExists;
  if (code == "HD" || code == "VA" || code == "ME") {
    return command == Command::kMetaSet ? Result::kStored : Result::kHit;
  }
  return Result::kError;
}

Result result_for(MetricCommand command, uint16_t status) {
  const bool storage = command == MetricCommand::kSet || command == MetricCommand::kAdd ||
                       command == MetricCommand::kReplace || command == MetricCommand::kAppend ||
                       command == MetricCommand::kPrepend || command == MetricCommand::kCas;
  const bool lookup =
      command == MetricCommand::kGet || command == MetricCommand::kGets || command == MetricCommand::kGat ||
      command == MetricCommand::kGats || command == MetricCommand::kGetE || command == MetricCommand::kDelete ||
      command == MetricCommand::kTouch || command == MetricCommand::kIncr || command == MetricCommand::kDecr;
  switch (status) {
    case bin::kSuccess: return storage ? Result::kStored : lookup ? Result::kHit : Result::kOk;
    case bin::kKeyNotFound:
      if (command == MetricCommand::kCas) return Result::kMiss;
      return storage ? Result::kNotStored : Result::kMiss;
    case bin::kKeyExists: return command == MetricCommand::kAdd ? Result::kNotStored : Result::kExists;
    case bin::kNotStored: return Result::kNotStored;
    default: return Result::kError;
  }
}

void track_request(Worker& worker, Op& op, const proto::Request& r) {
  op.track(worker.config().metrics_enabled ? &worker.stats().requests : nullptr, metric_command_for(r.command));
}

}  // namespace rend::worker
