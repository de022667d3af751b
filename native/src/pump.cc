#include "pump.h"

#include <initializer_list>

#ifdef __linux__
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#endif

namespace gcs {

#ifdef __linux__

namespace {

// The pipe between the two splices: 1 MiB (the default pipe-max-size an
// unprivileged process may ask for), so one wake-up moves as much as an
// AF_UNIX or vsock socket can hold; the kernel's 64 KiB when refused.
constexpr int kPipeSize = 1 << 20;
// The most one splice is asked to move.
constexpr size_t kSpliceMax = size_t{1} << 20;
// The buffer of copy mode.
constexpr size_t kCopySize = 64 * 1024;

int LastError() { return uv_translate_sys_error(errno); }

// One call retried on EINTR: bytes moved, or a negative libuv error.
template <typename Call>
ssize_t Retry(Call call) {
  ssize_t n;
  do {
    n = call();
  } while (n < 0 && errno == EINTR);
  return n < 0 ? LastError() : n;
}

ssize_t SpliceOnce(int from, int to, size_t length) {
  return Retry([&] { return splice(from, nullptr, to, nullptr, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK); });
}

// A descriptor of the pump's own for `fd` that never blocks the loop: a
// duplicate, unless `fd` is a blocking socket or character device (a
// terminal, say), which SPLICE_F_NONBLOCK does not cover and whose flags are
// shared with every duplicate. A character device is opened anew, non-blocking;
// a blocking socket is refused (UV_EINVAL: the caller copies it another way).
int OwnDescriptor(int fd, int* out) {
  struct stat st;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fstat(fd, &st) != 0) return LastError();
  const bool mayBlock = (S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)) && (flags & O_NONBLOCK) == 0;
  if (mayBlock && S_ISSOCK(st.st_mode)) return UV_EINVAL;
  if (mayBlock) {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    *out = open(path, (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    return *out < 0 ? UV_EINVAL : 0;
  }
  *out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return *out < 0 ? LastError() : 0;
}

}  // namespace

Pump::Pump(Direction direction, int socket, int descriptor, int readEnd, int writeEnd)
    : direction_(direction),
      descriptor_(descriptor),
      from_(direction == kIntoDescriptor ? socket : descriptor),
      to_(direction == kIntoDescriptor ? descriptor : socket),
      readEnd_(readEnd),
      writeEnd_(writeEnd) {}

int Pump::Open(Sock socket, int fd, Direction direction, std::unique_ptr<Pump>* out) {
  int descriptor = -1;
  int err = OwnDescriptor(fd, &descriptor);
  if (err != 0) return err;
  int ends[2];
  if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) {
    err = LastError();
    close(descriptor);
    return err;
  }
  // Best effort: a smaller pipe only means more wake-ups.
  fcntl(ends[1], F_SETPIPE_SZ, kPipeSize);
  out->reset(new Pump(direction, socket, descriptor, ends[0], ends[1]));
  return 0;
}

int Pump::Run(Outcome* outcome, Side* side) {
  for (;;) {
    int err = Drain(side);
    if (err == UV_EAGAIN) {
      *outcome = kDestFull;
      return 0;
    }
    if (err != 0) return err;
    if (sourceEnded_) {
      *outcome = kSourceEnded;
      return 0;
    }
    err = Fill(side);
    if (err == UV_EAGAIN) {
      *outcome = kSourceDry;
      return 0;
    }
    if (err != 0) return err;
  }
}

// Takes what the source holds into the pipe (into the copy buffer in copy
// mode); called only when nothing is held, so EAGAIN means the source is dry.
int Pump::Fill(Side* side) {
  ssize_t n = copy_ == nullptr ? SpliceOnce(from_, writeEnd_, kSpliceMax)
                               : Retry([&] { return read(from_, copy_.get(), kCopySize); });
  // The source refuses splice: read it from now on.
  if (n == UV_EINVAL && copy_ == nullptr) {
    copy_.reset(new char[kCopySize]);
    return Fill(side);
  }
  if (n < 0) {
    *side = SourceSide();
    return static_cast<int>(n);
  }
  if (n == 0) sourceEnded_ = true;
  if (copy_ == nullptr) {
    held_ += static_cast<size_t>(n);
  } else {
    copyStart_ = 0;
    copyEnd_ = static_cast<size_t>(n);
  }
  return 0;
}

int Pump::Drain(Side* side) {
  while (held_ > 0 || copyStart_ < copyEnd_) {
    ssize_t n;
    if (copyStart_ < copyEnd_) {
      n = Retry([&] { return write(to_, copy_.get() + copyStart_, copyEnd_ - copyStart_); });
      if (n >= 0) copyStart_ += static_cast<size_t>(n);
    } else if (copy_ == nullptr) {
      n = SpliceOnce(readEnd_, to_, held_);
      // The destination refuses splice: copy through user space from now on.
      if (n == UV_EINVAL) {
        copy_.reset(new char[kCopySize]);
        continue;
      }
      if (n >= 0) held_ -= static_cast<size_t>(n);
    } else {
      // Copy mode with bytes still in the pipe: they come out first.
      n = Retry([&] { return read(readEnd_, copy_.get(), held_ < kCopySize ? held_ : kCopySize); });
      if (n <= 0) {
        *side = DestSide();
        return n < 0 ? static_cast<int>(n) : UV_EIO;
      }
      held_ -= static_cast<size_t>(n);
      copyStart_ = 0;
      copyEnd_ = static_cast<size_t>(n);
      continue;
    }
    if (n < 0) {
      *side = DestSide();
      return static_cast<int>(n);
    }
    moved_ += static_cast<uint64_t>(n);
  }
  return 0;
}

void Pump::Close() {
  for (int* fd : {&descriptor_, &readEnd_, &writeEnd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  from_ = to_ = -1;
  held_ = 0;
  copyStart_ = copyEnd_ = 0;
}

#else  // no splice

Pump::Pump(Direction direction, int, int descriptor, int readEnd, int writeEnd)
    : direction_(direction), descriptor_(descriptor), from_(-1), to_(-1), readEnd_(readEnd), writeEnd_(writeEnd) {}
int Pump::Open(Sock, int, Direction, std::unique_ptr<Pump>*) { return UV_ENOSYS; }
int Pump::Run(Outcome*, Side* side) {
  *side = kDescriptorSide;
  return UV_ENOSYS;
}
int Pump::Fill(Side* side) {
  *side = kDescriptorSide;
  return UV_ENOSYS;
}
int Pump::Drain(Side* side) {
  *side = kDescriptorSide;
  return UV_ENOSYS;
}
void Pump::Close() {}

#endif

Pump::~Pump() { Close(); }

}  // namespace gcs
