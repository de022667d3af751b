// Moves a socket's inbound bytes into another descriptor inside the kernel:
// splice(2) from the socket into a pipe of the pump's own, then from that
// pipe into the destination, so no byte is copied to user space or handed
// to JavaScript. A destination that refuses splice (a file opened with
// O_APPEND, some character devices) is written with read/write instead.
// Linux only: Open reports UV_ENOSYS elsewhere.
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
  enum Outcome {
    kSourceDry,     // the socket holds nothing more for now
    kDestFull,      // the destination takes nothing more for now
    kSourceEnded,   // the peer's EOF, and everything before it was written
  };

  // A pump into a duplicate of `fd` (the caller keeps its own): 0 or a
  // libuv error (UV_EBADF, UV_EMFILE, UV_ENOSYS without splice).
  static int Open(int fd, std::unique_ptr<Pump>* out);

  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;
  ~Pump();

  // Moves from `source` until a side would block or the source ended:
  // 0 or a libuv error, with the failing call in *syscall: "read" for the
  // socket, "splice" or "write" for the destination.
  int Run(Sock source, Outcome* outcome, const char** syscall);
  // Writes what is held into the destination: 0 once nothing is held,
  // UV_EAGAIN when the destination is full, or an error (*syscall).
  int Drain(const char** syscall);
  // Releases the descriptors; what is held is dropped.
  void Close();

  int dest() const { return dest_; }
  bool sourceEnded() const { return sourceEnded_; }
  uint64_t moved() const { return moved_; }

 private:
  Pump(int dest, int readEnd, int writeEnd) : dest_(dest), readEnd_(readEnd), writeEnd_(writeEnd) {}
  int CopyOut(size_t* written, const char** syscall);

  int dest_;
  int readEnd_;
  int writeEnd_;
  size_t held_ = 0;  // read from the source, not yet written (pipe + copy buffer)
  uint64_t moved_ = 0;
  bool sourceEnded_ = false;
  // Copy mode (the destination refused splice): bytes taken out of the pipe
  // and not yet written.
  std::unique_ptr<char[]> copy_;
  size_t copyStart_ = 0;
  size_t copyEnd_ = 0;
};

}  // namespace gcs

#endif  // GCS_NATIVE_PUMP_H_
