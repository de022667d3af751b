#include "sys.h"

#include <cstddef>

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace gcs {
namespace sys {

namespace {

#ifdef _WIN32

int ErrorNumber() { return WSAGetLastError(); }
bool ConnectPending(int code) { return code == WSAEWOULDBLOCK || code == WSAEINPROGRESS; }
int LastError() { return uv_translate_sys_error(ErrorNumber()); }
constexpr int kShutdownSend = SD_SEND;

// Accepted sockets inherit the listener's mode on Windows, but being explicit
// keeps the rule in one place: non-blocking, never inherited.
int Prepare(SOCKET s) {
  u_long nonBlocking = 1;
  if (ioctlsocket(s, FIONBIO, &nonBlocking) != 0) return LastError();
  if (!SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0)) {
    return uv_translate_sys_error(static_cast<int>(GetLastError()));
  }
  return 0;
}

#else  // POSIX

int ErrorNumber() { return errno; }
// An interrupted non-blocking connect carries on in the background, as one
// that is in progress does: both complete through writability.
bool ConnectPending(int code) { return code == EINPROGRESS || code == EINTR; }
int LastError() { return uv_translate_sys_error(ErrorNumber()); }
constexpr int kShutdownSend = SHUT_WR;

#if defined(SOCK_NONBLOCK) && defined(__linux__)
// Linux sets both flags as it creates the socket: nothing is left to prepare.
constexpr int kCreateFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
int Prepare(int) { return 0; }
#else
constexpr int kCreateFlags = 0;
int Prepare(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) return LastError();
  flags = fcntl(fd, F_GETFD);
  if (flags == -1 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1) return LastError();
#ifdef SO_NOSIGPIPE
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)) != 0) return LastError();
#endif
  return 0;
}
#endif

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

#endif

// Hands out a new socket once it is non-blocking and not inheritable, or closes it.
int Adopt(Sock s, Sock* out) {
  int err = Prepare(s);
  if (err != 0) {
    Close(s);
    return err;
  }
  *out = s;
  return 0;
}

}  // namespace

#ifdef _WIN32

int Open(int family, int protocol, Sock* out) {
  SOCKET s = WSASocketW(family, SOCK_STREAM, protocol, nullptr, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  return s == INVALID_SOCKET ? LastError() : Adopt(s, out);
}

int Accept(Sock s, Sock* out, sockaddr_storage* peer, socklen_t* length) {
  *length = sizeof(*peer);
  SOCKET c = accept(s, reinterpret_cast<sockaddr*>(peer), length);
  return c == INVALID_SOCKET ? LastError() : Adopt(c, out);
}

// uv_buf_t is laid out as WSABUF on Windows (libuv relies on that too).
static_assert(sizeof(uv_buf_t) == sizeof(WSABUF), "uv_buf_t must match WSABUF");
static_assert(offsetof(uv_buf_t, base) == offsetof(WSABUF, buf), "uv_buf_t must match WSABUF");

int RecvV(Sock s, uv_buf_t* buffers, size_t count, size_t* got) {
  DWORD bytes = 0;
  DWORD flags = 0;
  WSABUF* wsa = reinterpret_cast<WSABUF*>(buffers);
  if (WSARecv(s, wsa, static_cast<DWORD>(count), &bytes, &flags, nullptr, nullptr) != 0) return LastError();
  *got = bytes;
  return 0;
}

int SendV(Sock s, const uv_buf_t* buffers, size_t count, size_t* sent) {
  DWORD bytes = 0;
  WSABUF* wsa = reinterpret_cast<WSABUF*>(const_cast<uv_buf_t*>(buffers));
  if (WSASend(s, wsa, static_cast<DWORD>(count), &bytes, 0, nullptr, nullptr) != 0) return LastError();
  *sent = bytes;
  return 0;
}

size_t MaxSendBuffers() { return 1024; }

void Close(Sock s) { closesocket(s); }

int PeerUid(Sock, int64_t*) { return UV_ENOTSUP; }

#else  // POSIX

int Open(int family, int protocol, Sock* out) {
  int fd = socket(family, SOCK_STREAM | kCreateFlags, protocol);
  return fd < 0 ? LastError() : Adopt(fd, out);
}

int Accept(Sock s, Sock* out, sockaddr_storage* peer, socklen_t* length) {
  int fd;
  do {
    *length = sizeof(*peer);
#if defined(SOCK_NONBLOCK) && defined(__linux__)
    fd = accept4(s, reinterpret_cast<sockaddr*>(peer), length, kCreateFlags);
#else
    fd = accept(s, reinterpret_cast<sockaddr*>(peer), length);
#endif
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? LastError() : Adopt(fd, out);
}

// libuv documents uv_buf_t as ABI-compatible with struct iovec on Unix.
static_assert(sizeof(uv_buf_t) == sizeof(iovec), "uv_buf_t must match iovec");
static_assert(offsetof(uv_buf_t, base) == offsetof(iovec, iov_base), "uv_buf_t must match iovec");
static_assert(offsetof(uv_buf_t, len) == offsetof(iovec, iov_len), "uv_buf_t must match iovec");

int RecvV(Sock s, uv_buf_t* buffers, size_t count, size_t* got) {
  ssize_t n;
  do {
    n = readv(s, reinterpret_cast<iovec*>(buffers), static_cast<int>(count));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return LastError();
  *got = static_cast<size_t>(n);
  return 0;
}

int SendV(Sock s, const uv_buf_t* buffers, size_t count, size_t* sent) {
  msghdr message{};
  message.msg_iov = reinterpret_cast<iovec*>(const_cast<uv_buf_t*>(buffers));
  message.msg_iovlen = count;
  ssize_t n;
  do {
    n = sendmsg(s, &message, kSendFlags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return LastError();
  *sent = static_cast<size_t>(n);
  return 0;
}

size_t MaxSendBuffers() {
#ifdef IOV_MAX
  return IOV_MAX;
#else
  return 1024;
#endif
}

void Close(Sock s) {
  // The descriptor is released even when close() reports EINTR on Linux; a
  // retry could close a descriptor another thread has just been given.
  close(s);
}

int PeerUid(Sock s, int64_t* uid) {
#if defined(SO_PEERCRED) && defined(__linux__)
  ucred credentials{};
  socklen_t length = sizeof(credentials);
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return LastError();
  *uid = static_cast<int64_t>(credentials.uid);
  return 0;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
  uid_t effective;
  gid_t group;
  if (getpeereid(s, &effective, &group) != 0) return LastError();
  *uid = static_cast<int64_t>(effective);
  return 0;
#else
  (void)s;
  (void)uid;
  return UV_ENOTSUP;
#endif
}

#endif

// The calls that read the same on both platforms.

int Connect(Sock s, const sockaddr* addr, socklen_t length) {
  if (connect(s, addr, length) == 0) return 0;
  int code = ErrorNumber();
  return ConnectPending(code) ? kInProgress : uv_translate_sys_error(code);
}

int PendingError(Sock s) {
  int code = 0;
  socklen_t length = sizeof(code);
  if (getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&code), &length) != 0) return LastError();
  return code == 0 ? 0 : uv_translate_sys_error(code);
}

int Bind(Sock s, const sockaddr* addr, socklen_t length) {
  return bind(s, addr, length) == 0 ? 0 : LastError();
}

int Listen(Sock s, int backlog) { return listen(s, backlog) == 0 ? 0 : LastError(); }

int ShutdownSend(Sock s) { return shutdown(s, kShutdownSend) == 0 ? 0 : LastError(); }

int LocalAddress(Sock s, sockaddr_storage* out, socklen_t* length) {
  *length = sizeof(*out);
  return getsockname(s, reinterpret_cast<sockaddr*>(out), length) == 0 ? 0 : LastError();
}

int PeerAddress(Sock s, sockaddr_storage* out, socklen_t* length) {
  *length = sizeof(*out);
  return getpeername(s, reinterpret_cast<sockaddr*>(out), length) == 0 ? 0 : LastError();
}

double Number(Sock s) { return static_cast<double>(s); }

}  // namespace sys
}  // namespace gcs
