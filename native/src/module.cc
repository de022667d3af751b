#include "module.h"

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include <node_version.h>

#include "address.h"
#include "errors.h"
#include "handle.h"
#include "listener.h"
#include "socket.h"
#include "sys.h"

namespace gcs {

namespace {

// Node's own default for net.Server.
constexpr int kDefaultBacklog = 511;

}  // namespace

Module::Module(Napi::Env env, Napi::Object exports) : readBuffer_(new char[kReadSize]) {
  if (napi_get_uv_event_loop(env, &loop_) != napi_ok || loop_ == nullptr) {
    Napi::Error::New(env, "gcs-bridge native: no event loop for this environment").ThrowAsJavaScriptException();
    return;
  }
#ifdef _WIN32
  // libuv has initialised Winsock already; this takes the addon's own
  // reference so the addon never depends on that.
  WSADATA wsa;
  WSAStartup(MAKEWORD(2, 2), &wsa);
#endif
  napi_add_async_cleanup_hook(env, OnTeardown, this, &teardownHook_);

  listenerClass_ = Napi::Persistent(ListenerObject::Define(env));
  socketClass_ = Napi::Persistent(SocketObject::Define(env));

  Napi::Object events = Napi::Object::New(env);
  events.Set("data", static_cast<double>(Socket::kData));
  events.Set("end", static_cast<double>(Socket::kEnd));
  events.Set("readError", static_cast<double>(Socket::kReadError));
  events.Set("drain", static_cast<double>(Socket::kDrain));
  events.Set("writeError", static_cast<double>(Socket::kWriteError));
  events.Set("shutdown", static_cast<double>(Socket::kShutdown));
  events.Set("connect", static_cast<double>(Socket::kConnect));

  Napi::Object constants = Napi::Object::New(env);
  constants.Set("AF_VSOCK", static_cast<double>(kAfVsock));
  constants.Set("AF_HYPERV", static_cast<double>(kAfHyperV));
  constants.Set("HV_PROTOCOL_RAW", static_cast<double>(kHvProtocolRaw));
  constants.Set("readSize", static_cast<double>(kReadSize));
  // The version of the headers this binary was compiled against, so a test can
  // prove the build used the headers of the Node that loads it.
  constants.Set("builtForNode", NODE_VERSION_STRING);

  DefineAddon(exports, {
                           InstanceMethod<&Module::Listen>("listen"),
                           InstanceMethod<&Module::Connect>("connect"),
                           InstanceMethod<&Module::Supports>("supports"),
                           InstanceMethod<&Module::OpenHandles>("openHandles"),
                           InstanceMethod<&Module::EncodeAddress>("encodeAddress"),
                           InstanceValue("events", events),
                           InstanceValue("constants", constants),
                       });
}

Module::~Module() {
  if (teardownHook_ != nullptr) napi_remove_async_cleanup_hook(teardownHook_);
#ifdef _WIN32
  WSACleanup();
#endif
}

Napi::Object Module::Construct(const Napi::FunctionReference& cls, Handle* handle) {
  constructing_ = handle;
  Napi::Object object = cls.New({});
  constructing_ = nullptr;
  return object;
}

void Module::Register(Handle* handle) { handles_.insert(handle); }

void Module::Forget(Handle* handle) {
  handles_.erase(handle);
  FinishTeardownIfDone();
}

void Module::OnTeardown(napi_async_cleanup_hook_handle, void* data) {
  Module* self = static_cast<Module*>(data);
  self->tearingDown_ = true;
  // Closing runs no JavaScript; the copy is because close callbacks (later)
  // remove handles from the set.
  std::vector<Handle*> live(self->handles_.begin(), self->handles_.end());
  for (Handle* handle : live) handle->Close();
  self->FinishTeardownIfDone();
}

void Module::FinishTeardownIfDone() {
  if (!tearingDown_ || !handles_.empty() || teardownHook_ == nullptr) return;
  napi_async_cleanup_hook_handle hook = teardownHook_;
  teardownHook_ = nullptr;
  napi_remove_async_cleanup_hook(hook);
}

Napi::Value Module::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint endpoint;
  std::string why;
  int err = ReadEndpoint(info[0], &endpoint, &why);
  if (env.IsExceptionPending()) return env.Undefined();
  if (err != 0) {
    ThrowSystemError(env, err, "listen", why);
    return env.Undefined();
  }
  int backlog = kDefaultBacklog;
  if (!info[1].IsUndefined()) {
    double value = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    if (!(value >= 0 && value <= INT_MAX) || std::floor(value) != value) {
      ThrowSystemError(env, UV_EINVAL, "listen", "backlog must be an integer from 0 to 2147483647");
      return env.Undefined();
    }
    backlog = static_cast<int>(value);
  }
  return Listener::Open(this, env, endpoint, backlog);
}

Napi::Value Module::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint endpoint;
  std::string why;
  int err = ReadEndpoint(info[0], &endpoint, &why);
  if (env.IsExceptionPending()) return env.Undefined();
  if (err != 0) {
    ThrowSystemError(env, err, "connect", why);
    return env.Undefined();
  }
  return Socket::Connect(this, env, endpoint);
}

Napi::Value Module::Supports(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Family family;
  if (!info[0].IsString() || !ReadFamily(info[0].As<Napi::String>().Utf8Value(), &family)) {
    return Napi::Boolean::New(env, false);
  }
  if (!FamilyBuiltIn(family)) return Napi::Boolean::New(env, false);
  // The family exists in this build; whether the running kernel has it (a
  // vsock transport, Hyper-V sockets) only a socket can tell.
  Sock probe;
  if (sys::Open(OsFamily(family), OsProtocol(family), &probe) != 0) return Napi::Boolean::New(env, false);
  sys::Close(probe);
  return Napi::Boolean::New(env, true);
}

Napi::Value Module::OpenHandles(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(handles_.size()));
}

Napi::Value Module::EncodeAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint endpoint;
  std::string why;
  int err = ReadEndpoint(info[0], &endpoint, &why);
  if (env.IsExceptionPending()) return env.Undefined();
  OsAddress address;
  if (err == 0) err = Encode(endpoint, &address, &why);
  if (err != 0) {
    ThrowSystemError(env, err, "address", why);
    return env.Undefined();
  }
  return Napi::Buffer<char>::Copy(env, reinterpret_cast<const char*>(&address.storage), address.length);
}

}  // namespace gcs

// NODE_API_ADDON pastes its argument into identifiers, so it needs a plain name.
using GcsNativeModule = gcs::Module;
NODE_API_ADDON(GcsNativeModule)
