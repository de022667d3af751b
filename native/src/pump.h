// Moves bytes between a socket and another descriptor inside the kernel:
// splice(2) from the source into a pipe of the pump's own, then from that
// pipe into the destination, so no byte is copied to user space or handed
// to JavaScript. Either way round: out of the socket into the descriptor
// (a relay's output), or out of the descriptor into the socket (its input).
// A side that refuses splice (a file opened with O_APPEND, some character
// devices) is served with read/write through one buffer instead. Linux
// only: Open reports UV_ENOSYS elsewhere.
//
// The pump never waits: each call moves what it can and says which side
// would block. Readiness of either side is the Socket's business.
#ifndef GCS_NATIVE_PUMP_H_
#define GCS_NATIVE_PUMP_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "sys.h"

namespace gcs {

class Pump {
 public:
  enum Direction { kIntoDescriptor, kFromDescriptor };
  enum Outcome {
    kSourceDry,     // the source holds nothing more for now
    kDestFull,      // the destination takes nothing more for now
    kSourceEnded,   // the source's end, and everything before it was written
  };
  // Which end failed: the socket, or the caller's descriptor.
  enum Side { kSocketSide, kDescriptorSide };

  // A pump between `socket` and a duplicate of `fd` (the caller keeps its
  // own): 0 or a libuv error (UV_EBADF, UV_EMFILE, UV_ENOSYS).
  static int Open(Sock socket, int fd, Direction direction, std::unique_ptr<Pump>* out);

  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;
  ~Pump();

  // Moves from the source until a side would block or the source ended:
  // 0 or a libuv error, *side saying which end failed.
  int Run(Outcome* outcome, Side* side);
  // Writes what is held into the destination: 0 once nothing is held,
  // UV_EAGAIN when the destination is full, or an error (*side).
  int Drain(Side* side);
  // Releases the descriptors; what is held is dropped.
  void Close();

  int descriptor() const { return descriptor_; }
  Direction direction() const { return direction_; }
  bool sourceEnded() const { return sourceEnded_; }
  uint64_t moved() const { return moved_; }

 private:
  Pump(Direction direction, int socket, int descriptor, int readEnd, int writeEnd);
  int Fill(Side* side);
  Side SourceSide() const { return direction_ == kIntoDescriptor ? kSocketSide : kDescriptorSide; }
  Side DestSide() const { return direction_ == kIntoDescriptor ? kDescriptorSide : kSocketSide; }

  Direction direction_;
  int descriptor_;  // the duplicate, owned
  int from_;
  int to_;
  int readEnd_;
  int writeEnd_;
  size_t held_ = 0;  // in the pipe
  uint64_t moved_ = 0;
  bool sourceEnded_ = false;
  // Copy mode (a side refused splice): bytes read and not yet written.
  std::unique_ptr<char[]> copy_;
  size_t copyStart_ = 0;
  size_t copyEnd_ = 0;
};

}  // namespace gcs

#endif  // GCS_NATIVE_PUMP_H_
