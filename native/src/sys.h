// The operating-system socket calls the engine needs, one function per call,
// so that listener.cc and socket.cc read the same on Linux and Windows.
// Every function returns 0 or a negative libuv error code (UV_EAGAIN, ...),
// already translated from errno / WSAGetLastError().
#ifndef GCS_NATIVE_SYS_H_
#define GCS_NATIVE_SYS_H_

#include <uv.h>

#include <cstddef>
#include <cstdint>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <sys/socket.h>
#endif

namespace gcs {

// A socket as libuv polls it: an int on POSIX, a SOCKET on Windows.
using Sock = uv_os_sock_t;

#ifdef _WIN32
constexpr Sock kInvalidSock = INVALID_SOCKET;
#else
constexpr Sock kInvalidSock = -1;
#endif

namespace sys {

// Creates a stream socket of the given OS address family and protocol:
// non-blocking, not inherited by child processes.
int Open(int family, int protocol, Sock* out);

int Bind(Sock s, const sockaddr* addr, socklen_t length);
int Listen(Sock s, int backlog);

// Accepts one pending connection (non-blocking, not inheritable) and its
// peer address. UV_EAGAIN when none is pending.
int Accept(Sock s, Sock* out, sockaddr_storage* peer, socklen_t* length);

// What Connect returns for a connect that carries on in the background
// (libuv has no UV_EINPROGRESS): positive, so it is never an error code.
constexpr int kInProgress = 1;

// Starts a non-blocking connect: 0 when it completed at once, kInProgress
// when completion is signalled by writability, or an error.
int Connect(Sock s, const sockaddr* addr, socklen_t length);

// The socket's pending error (SO_ERROR), which reading clears: the outcome of
// a connect signalled by writability, or what a poll error (which libuv
// reports only as UV_EBADF) really was.
int PendingError(Sock s);

// Scatters one read over `count` buffers (readv / WSARecv).
int RecvV(Sock s, uv_buf_t* buffers, size_t count, size_t* got);

// Gathers `count` buffers into one send (sendmsg / WSASend). A short send is
// not an error: *sent says how much left.
int SendV(Sock s, const uv_buf_t* buffers, size_t count, size_t* sent);

size_t MaxSendBuffers();  // the largest `count` SendV takes
int ShutdownSend(Sock s);
void Close(Sock s);

int LocalAddress(Sock s, sockaddr_storage* out, socklen_t* length);
int PeerAddress(Sock s, sockaddr_storage* out, socklen_t* length);

// The uid of the process on the other end of a Unix socket; UV_ENOTSUP where
// the platform has no peer credentials.
int PeerUid(Sock s, int64_t* uid);

double Number(Sock s);  // as JavaScript sees it

}  // namespace sys
}  // namespace gcs

#endif  // GCS_NATIVE_SYS_H_
