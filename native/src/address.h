// Socket addresses: the JavaScript SocketAddress shapes, their validation,
// and their OS encodings (sockaddr_un, sockaddr_vm, SOCKADDR_HV).
#ifndef GCS_NATIVE_ADDRESS_H_
#define GCS_NATIVE_ADDRESS_H_

#include <napi.h>

#include <cstdint>
#include <functional>
#include <string>

#include "sys.h"

namespace gcs {

// Address family and protocol numbers of Hyper-V sockets (GCS-PROTOCOL §13.3).
// mingw-w64 ships hvsocket.h but not AF_HYPERV, and older Windows SDKs lack
// both, so the engine carries its own definitions.
constexpr int kAfHyperV = 34;
constexpr int kHvProtocolRaw = 1;

// AF_VSOCK on Linux (§13.4), exported to JavaScript as a constant.
constexpr int kAfVsock = 40;

// SOCKADDR_HV as Windows lays it out (§13.3): 36 bytes, GUIDs in Windows
// memory layout. Named apart from the SDK's SOCKADDR_HV so both can coexist.
struct SockaddrHv {
  uint16_t family;
  uint16_t reserved;
  uint8_t vmId[16];
  uint8_t serviceId[16];
};
static_assert(sizeof(SockaddrHv) == 36, "SOCKADDR_HV is 36 bytes");

enum class Family { Unix, Vsock, HyperV };

// A validated SocketAddress.
struct Endpoint {
  Family family = Family::Unix;
  std::string path;                 // unix
  uint32_t cid = 0;                 // vsock
  uint32_t port = 0;                // vsock
  uint8_t vmId[16] = {};            // hyperv, Windows GUID layout
  uint8_t serviceId[16] = {};       // hyperv, Windows GUID layout
};

// An address in the form bind/connect take.
struct OsAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Reads a JavaScript SocketAddress. Returns 0, or UV_EINVAL with *why saying
// what is wrong. If reading a property threw, a JavaScript exception is
// pending and the caller must return at once.
int ReadEndpoint(Napi::Value value, Endpoint* out, std::string* why);

// Reads the name of a family ("unix", "vsock", "hyperv").
bool ReadFamily(const std::string& name, Family* out);

// Encodes for bind/connect. Returns 0, UV_EAFNOSUPPORT when this platform has
// no such family, or UV_ENAMETOOLONG / UV_EINVAL with *why. Hyper-V
// addresses encode on every platform (the layout is fixed), so they can be
// checked anywhere.
int Encode(const Endpoint& endpoint, OsAddress* out, std::string* why);

// Opens a socket of `family`: 0, or an error (EAFNOSUPPORT unless this build
// has the family: unix and vsock on Linux, hyperv on Windows).
int OpenSocket(Family family, Sock* sock);

// Checks and encodes `endpoint`, opens a socket for it (OpenSocket) and runs
// `setup` (bind and listen, or connect), which returns 0 or an error and
// names the *syscall that failed. *detail describes the address. On failure
// the socket is closed, a system error thrown (naming the syscall: "socket",
// `use` for a bad address, or setup's) and kInvalidSock returned.
Sock OpenFor(Napi::Env env, const Endpoint& endpoint, const char* use, std::string* detail,
             const std::function<int(Sock, const OsAddress&, const char**)>& setup);

// The JavaScript SocketAddress of an OS address; null for families the
// engine does not speak.
Napi::Value Describe(Napi::Env env, const sockaddr_storage& address, socklen_t length);

}  // namespace gcs

#endif  // GCS_NATIVE_ADDRESS_H_
