#include "pump.h"

#include <initializer_list>

#ifdef __linux__
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

// One splice, retried on EINTR: bytes moved, or a negative libuv error.
ssize_t SpliceOnce(int from, int to, size_t length) {
  ssize_t n;
  do {
    n = splice(from, nullptr, to, nullptr, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? LastError() : n;
}

}  // namespace

int Pump::Open(int fd, std::unique_ptr<Pump>* out) {
  int dest = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dest < 0) return LastError();
  int ends[2];
  if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) {
    int err = LastError();
    close(dest);
    return err;
  }
  // Best effort: a smaller pipe only means more wake-ups.
  fcntl(ends[1], F_SETPIPE_SZ, kPipeSize);
  out->reset(new Pump(dest, ends[0], ends[1]));
  return 0;
}

int Pump::Run(Sock source, Outcome* outcome, const char** syscall) {
  for (;;) {
    if (held_ == 0 && !sourceEnded_) {
      // The pipe is empty here, so EAGAIN can only mean the socket is dry.
      ssize_t n = SpliceOnce(source, writeEnd_, kSpliceMax);
      if (n == UV_EAGAIN) {
        *outcome = kSourceDry;
        return 0;
      }
      // The socket's failure: a read, as for a socket that is not piped.
      if (n < 0) {
        *syscall = "read";
        return static_cast<int>(n);
      }
      if (n == 0) sourceEnded_ = true;
      held_ += static_cast<size_t>(n);
    }
    int err = Drain(syscall);
    if (err == UV_EAGAIN) {
      *outcome = kDestFull;
      return 0;
    }
    if (err != 0) return err;
    if (sourceEnded_) {
      *outcome = kSourceEnded;
      return 0;
    }
  }
}

int Pump::Drain(const char** syscall) {
  while (held_ > 0) {
    size_t written = 0;
    int err = 0;
    if (copy_ == nullptr) {
      ssize_t n = SpliceOnce(readEnd_, dest_, held_);
      // Refused by the destination: copy through user space from now on.
      if (n == UV_EINVAL) {
        copy_.reset(new char[kCopySize]);
        continue;
      }
      if (n < 0) {
        *syscall = "splice";
        err = static_cast<int>(n);
      } else {
        written = static_cast<size_t>(n);
      }
    } else {
      err = CopyOut(&written, syscall);
    }
    if (err != 0) return err;
    held_ -= written;
    moved_ += written;
  }
  return 0;
}

int Pump::CopyOut(size_t* written, const char** syscall) {
  if (copyStart_ == copyEnd_) {
    ssize_t n;
    do {
      n = read(readEnd_, copy_.get(), held_ < kCopySize ? held_ : kCopySize);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      *syscall = "splice";
      return n < 0 ? LastError() : UV_EIO;
    }
    copyStart_ = 0;
    copyEnd_ = static_cast<size_t>(n);
  }
  ssize_t n;
  do {
    n = write(dest_, copy_.get() + copyStart_, copyEnd_ - copyStart_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    *syscall = "write";
    return LastError();
  }
  copyStart_ += static_cast<size_t>(n);
  *written = static_cast<size_t>(n);
  return 0;
}

void Pump::Close() {
  for (int* fd : {&dest_, &readEnd_, &writeEnd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  held_ = 0;
  copy_.reset();
}

#else  // no splice

int Pump::Open(int, std::unique_ptr<Pump>*) { return UV_ENOSYS; }
int Pump::Run(Sock, Outcome*, const char** syscall) {
  *syscall = "splice";
  return UV_ENOSYS;
}
int Pump::Drain(const char** syscall) {
  *syscall = "splice";
  return UV_ENOSYS;
}
int Pump::CopyOut(size_t*, const char** syscall) {
  *syscall = "write";
  return UV_ENOSYS;
}
void Pump::Close() {}

#endif

Pump::~Pump() { Close(); }

}  // namespace gcs
