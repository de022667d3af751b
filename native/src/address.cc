#include "address.h"

#include <cmath>
#include <cstddef>
#include <cstring>

#ifndef _WIN32
#include <sys/un.h>
#endif
#ifdef __linux__
#include <linux/vm_sockets.h>
#endif

#include "handle.h"

namespace gcs {

#ifdef __linux__
static_assert(AF_VSOCK == kAfVsock, "AF_VSOCK is 40 on Linux");
#endif
static_assert(offsetof(SockaddrHv, vmId) == 4, "SOCKADDR_HV.VmId is at offset 4");
static_assert(offsetof(SockaddrHv, serviceId) == 20, "SOCKADDR_HV.ServiceId is at offset 20");

namespace {

// An empty property value means a getter threw and an exception is pending.
int ReadUint32(Napi::Object object, const char* key, uint32_t* out, std::string* why) {
  Napi::Value value = object.Get(key);
  if (value.IsEmpty()) return UV_EINVAL;
  double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(number >= 0 && number <= 4294967295.0) || std::floor(number) != number) {
    *why = std::string(key) + " must be an integer from 0 to 4294967295";
    return UV_EINVAL;
  }
  *out = static_cast<uint32_t>(number);
  return 0;
}

int ReadString(Napi::Object object, const char* key, std::string* out, std::string* why) {
  Napi::Value value = object.Get(key);
  if (value.IsEmpty()) return UV_EINVAL;
  if (!value.IsString()) {
    *why = std::string(key) + " must be a string";
    return UV_EINVAL;
  }
  *out = value.As<Napi::String>().Utf8Value();
  return 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The memory byte of each text byte: Data1..Data3 are little-endian numbers
// written big-endian, Data4 is a byte array written in order.
constexpr int kOrder[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};

// GUID text (any case) to the Windows memory layout.
bool ParseGuid(const std::string& text, uint8_t out[16]) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
    return false;
  }
  size_t at = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) at++;
    int high = HexValue(text[at]);
    int low = HexValue(text[at + 1]);
    if (high < 0 || low < 0) return false;
    out[kOrder[i]] = static_cast<uint8_t>(high << 4 | low);
    at += 2;
  }
  return true;
}

int ReadGuid(Napi::Object object, const char* key, uint8_t out[16], std::string* why) {
  std::string text;
  int err = ReadString(object, key, &text, why);
  if (err != 0) return err;
  if (!ParseGuid(text, out)) {
    *why = std::string(key) + " must be a GUID like 00000000-facb-11e6-bd58-64006a7986d3";
    return UV_EINVAL;
  }
  return 0;
}

std::string FormatGuid(const uint8_t bytes[16]) {
  static const char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    uint8_t byte = bytes[kOrder[i]];
    text.push_back(kHex[byte >> 4]);
    text.push_back(kHex[byte & 0xF]);
  }
  return text;
}

// A short text form for error messages: "unix:/run/x.sock", "vsock:3:1024",
// "hyperv:<vm>/<service>".
std::string Describe(const Endpoint& endpoint) {
  switch (endpoint.family) {
    case Family::Unix:
      return "unix:" + endpoint.path;
    case Family::Vsock:
      return "vsock:" + std::to_string(endpoint.cid) + ":" + std::to_string(endpoint.port);
    case Family::HyperV:
      return "hyperv:" + FormatGuid(endpoint.vmId) + "/" + FormatGuid(endpoint.serviceId);
  }
  return "?";
}

}  // namespace

bool ReadFamily(const std::string& name, Family* out) {
  static const char* const kNames[] = {"unix", "vsock", "hyperv"};
  for (int i = 0; i < 3; i++) {
    if (name == kNames[i]) {
      *out = static_cast<Family>(i);
      return true;
    }
  }
  return false;
}

int ReadEndpoint(Napi::Value value, Endpoint* out, std::string* why) {
  if (!value.IsObject()) {
    *why = "address must be an object with a family";
    return UV_EINVAL;
  }
  Napi::Object object = value.As<Napi::Object>();
  std::string family;
  int err = ReadString(object, "family", &family, why);
  if (err != 0) return err;
  if (!ReadFamily(family, &out->family)) {
    *why = "family must be \"unix\", \"vsock\" or \"hyperv\"";
    return UV_EINVAL;
  }
  switch (out->family) {
    case Family::Unix:
      err = ReadString(object, "path", &out->path, why);
      if (err != 0) return err;
      if (out->path.empty()) {
        *why = "path must not be empty";
        return UV_EINVAL;
      }
      // A NUL would silently cut the path short (or name an abstract socket).
      if (out->path.find('\0') != std::string::npos) {
        *why = "path must not contain NUL characters";
        return UV_EINVAL;
      }
      return 0;
    case Family::Vsock:
      err = ReadUint32(object, "cid", &out->cid, why);
      if (err != 0) return err;
      return ReadUint32(object, "port", &out->port, why);
    case Family::HyperV:
      err = ReadGuid(object, "vmId", out->vmId, why);
      if (err != 0) return err;
      return ReadGuid(object, "serviceId", out->serviceId, why);
  }
  return UV_EINVAL;
}

namespace {

bool FamilyBuiltIn(Family family) {
#if defined(_WIN32)
  return family == Family::HyperV;
#elif defined(__linux__)
  return family != Family::HyperV;
#else
  return family == Family::Unix;
#endif
}

}  // namespace

int Encode(const Endpoint& endpoint, OsAddress* out, std::string* why) {
  switch (endpoint.family) {
    case Family::Unix: {
#ifdef _WIN32
      (void)why;
      return UV_EAFNOSUPPORT;
#else
      sockaddr_un un{};
      if (endpoint.path.size() >= sizeof(un.sun_path)) {
        *why = "a unix socket path holds at most " + std::to_string(sizeof(un.sun_path) - 1) + " bytes";
        return UV_ENAMETOOLONG;
      }
      un.sun_family = AF_UNIX;
      std::memcpy(un.sun_path, endpoint.path.data(), endpoint.path.size());
      std::memcpy(&out->storage, &un, sizeof(un));
      out->length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + endpoint.path.size() + 1);
      return 0;
#endif
    }
    case Family::Vsock: {
#ifdef __linux__
      sockaddr_vm vm{};
      vm.svm_family = AF_VSOCK;
      vm.svm_port = endpoint.port;
      vm.svm_cid = endpoint.cid;
      std::memcpy(&out->storage, &vm, sizeof(vm));
      out->length = sizeof(vm);
      return 0;
#else
      return UV_EAFNOSUPPORT;
#endif
    }
    case Family::HyperV: {
      SockaddrHv hv{};
      hv.family = static_cast<uint16_t>(kAfHyperV);
      std::memcpy(hv.vmId, endpoint.vmId, sizeof(hv.vmId));
      std::memcpy(hv.serviceId, endpoint.serviceId, sizeof(hv.serviceId));
      std::memcpy(&out->storage, &hv, sizeof(hv));
      out->length = sizeof(hv);
      return 0;
    }
  }
  return UV_EINVAL;
}

Napi::Value Describe(Napi::Env env, const sockaddr_storage& address, socklen_t length) {
  const size_t size = static_cast<size_t>(length);
  Napi::Object result = Napi::Object::New(env);
#ifndef _WIN32
  if (address.ss_family == AF_UNIX) {
    const sockaddr_un* un = reinterpret_cast<const sockaddr_un*>(&address);
    const size_t offset = offsetof(sockaddr_un, sun_path);
    size_t available = size > offset ? size - offset : 0;
    if (available > sizeof(un->sun_path)) available = sizeof(un->sun_path);
    // A pathname ends at its NUL; an abstract name (leading NUL) is all of
    // the bytes; an unnamed peer has none.
    size_t pathLength = available;
    if (available > 0 && un->sun_path[0] != '\0') pathLength = strnlen(un->sun_path, available);
    result.Set("family", "unix");
    result.Set("path", Napi::String::New(env, un->sun_path, pathLength));
    return result;
  }
#endif
#ifdef __linux__
  if (address.ss_family == AF_VSOCK && size >= sizeof(sockaddr_vm)) {
    const sockaddr_vm* vm = reinterpret_cast<const sockaddr_vm*>(&address);
    result.Set("family", "vsock");
    result.Set("cid", Napi::Number::New(env, vm->svm_cid));
    result.Set("port", Napi::Number::New(env, vm->svm_port));
    return result;
  }
#endif
#ifdef _WIN32
  if (address.ss_family == kAfHyperV && size >= sizeof(SockaddrHv)) {
    SockaddrHv hv;
    std::memcpy(&hv, &address, sizeof(hv));
    result.Set("family", "hyperv");
    result.Set("vmId", FormatGuid(hv.vmId));
    result.Set("serviceId", FormatGuid(hv.serviceId));
    return result;
  }
#endif
  (void)size;
  return env.Null();
}

Sock OpenFor(Napi::Env env, const Endpoint& endpoint, const char* use, std::string* detail,
             const std::function<int(Sock, const OsAddress&, const char**)>& setup) {
  *detail = Describe(endpoint);
  const char* syscall = "socket";
  OsAddress address;
  std::string why;
  Sock sock = kInvalidSock;
  int err = UV_EAFNOSUPPORT;
  if (FamilyBuiltIn(endpoint.family) && (err = Encode(endpoint, &address, &why)) != 0) {
    syscall = use;
    if (!why.empty()) *detail = why + ", " + *detail;
  }
  if (err == 0) err = OpenSocket(endpoint.family, &sock);
  if (err == 0 && (err = setup(sock, address, &syscall)) != 0) sys::Close(sock);
  if (err == 0) return sock;
  ThrowSystemError(env, err, syscall, *detail);
  return kInvalidSock;
}

int OpenSocket(Family family, Sock* sock) {
  if (!FamilyBuiltIn(family)) return UV_EAFNOSUPPORT;
  if (family == Family::HyperV) return sys::Open(kAfHyperV, kHvProtocolRaw, sock);
  return sys::Open(family == Family::Vsock ? kAfVsock : AF_UNIX, 0, sock);
}

}  // namespace gcs
