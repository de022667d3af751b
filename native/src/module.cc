#include "module.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <node_version.h>

#include "address.h"
#include "handle.h"
#include "socket.h"
#include "sys.h"

namespace gcs {

namespace {

// Node's own default for net.Server.
constexpr int kDefaultBacklog = 511;

// Reads a SocketAddress argument; false with an exception pending (a system
// error naming `syscall`, or whatever a getter threw) when it is not one.
bool ReadArgument(Napi::Env env, Napi::Value value, const char* syscall, Endpoint* endpoint) {
  std::string why;
  int err = ReadEndpoint(value, endpoint, &why);
  if (err != 0 && !env.IsExceptionPending()) ThrowSystemError(env, err, syscall, why);
  return err == 0;
}

}  // namespace

Module::Module(Napi::Env env, Napi::Object exports) {
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

  using L = HandleObject<Listener>;
  listenerClass_ = Napi::Persistent(L::DefineClass(env, "NativeListener",
                                                   {
                                                       L::InstanceAccessor<&L::Call<&Listener::Fd>>("fd"),
                                                       L::InstanceMethod<&L::Call<&Listener::LocalAddress>>("address"),
                                                       L::InstanceMethod<&L::Call<&Listener::Start>>("start"),
                                                       L::InstanceMethod<&L::Call<&Listener::Pause>>("pause"),
                                                       L::InstanceMethod<&L::Call<&Listener::Resume>>("resume"),
                                                       L::InstanceMethod<&L::Call<&Listener::CloseMethod>>("close"),
                                                   }));
  using S = HandleObject<Socket>;
  socketClass_ = Napi::Persistent(S::DefineClass(env, "NativeSocket",
                                                 {
                                                     S::InstanceAccessor<&S::Call<&Socket::Fd>>("fd"),
                                                     S::InstanceAccessor<&S::Call<&Socket::Peer>>("peer"),
                                                     S::InstanceAccessor<&S::Call<&Socket::PeerUid>>("peerUid"),
                                                     S::InstanceAccessor<&S::Call<&Socket::Queued>>("queued"),
                                                     S::InstanceAccessor<&S::Call<&Socket::Piped>>("piped"),
                                                     S::InstanceMethod<&S::Call<&Socket::PipeTo>>("pipeTo"),
                                                     S::InstanceMethod<&S::Call<&Socket::PipeFrom>>("pipeFrom"),
                                                     S::InstanceMethod<&S::Call<&Socket::LocalAddress>>("address"),
                                                     S::InstanceMethod<&S::Call<&Socket::SetCallback>>("setCallback"),
                                                     S::InstanceMethod<&S::Call<&Socket::SetReading<true>>>("readStart"),
                                                     S::InstanceMethod<&S::Call<&Socket::SetReading<false>>>("readStop"),
                                                     S::InstanceMethod<&S::Call<&Socket::Write>>("write"),
                                                     S::InstanceMethod<&S::Call<&Socket::Shutdown>>("shutdown"),
                                                     S::InstanceMethod<&S::Call<&Socket::CloseMethod>>("close"),
                                                 }));

  Napi::Object events = Napi::Object::New(env);
  const char* const eventNames[] = {"data", "end", "error", "drain", "connect", "piped", "progress"};  // Socket::Event
  for (int event = Socket::kData; event <= Socket::kProgress; event++) events.Set(eventNames[event], event);

  Napi::Object constants = Napi::Object::New(env);
  constants.Set("AF_VSOCK", static_cast<double>(kAfVsock));
  constants.Set("AF_HYPERV", static_cast<double>(kAfHyperV));
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

Napi::Value Module::Wrap(const Napi::FunctionReference& cls, Handle* handle, const std::string& where) {
  constructing_ = handle;
  Napi::Object object = cls.New({});
  constructing_ = nullptr;
  if (object.IsEmpty()) {
    handle->Abandon();
    return Napi::Value();
  }
  int err = handle->Init();
  if (err != 0) {
    handle->Close();
    ThrowSystemError(object.Env(), err, "uv_poll_init", where);
    return Napi::Value();
  }
  return object;
}

Handle* TakeConstructing(Napi::Env env) { return Module::Of(env)->TakeConstructing(); }

bool Module::ReadViews(Napi::Env env, uv_buf_t* views) {
  for (size_t i = 0; i < kReadBuffers; i++) {
    if (readData_[i] == nullptr) {
      Napi::Buffer<char> buffer = Napi::Buffer<char>::New(env, kReadSize);
      if (buffer.IsEmpty()) return false;
      readBuffers_[i] = Napi::Persistent(buffer);
      readData_[i] = buffer.Data();
    }
    views[i] = uv_buf_init(readData_[i], static_cast<unsigned int>(kReadSize));
  }
  return true;
}

Napi::Value Module::TakeRead(Napi::Env env, size_t length) {
  Napi::Array chunks = Napi::Array::New(env, (length + kReadSize - 1) / kReadSize);
  for (size_t i = 0; length > 0; i++) {
    if (length >= kReadSize) {
      // Full: handed over as it is, and the next read gets a new one.
      chunks[i] = readBuffers_[i].Value();
      readBuffers_[i].Reset();
      readData_[i] = nullptr;
      length -= kReadSize;
    } else {
      // Partial: copied to its exact size, so a short read pins no mostly
      // empty 64 KiB, and the Buffer is kept for the next read.
      Napi::Value copy = length <= kSlabCopyLimit ? CopyToSlab(env, readData_[i], length)
                                                   : Napi::Buffer<char>::Copy(env, readData_[i], length);
      if (copy.IsEmpty()) return Napi::Value();
      chunks[i] = copy;
      length = 0;
    }
  }
  return chunks;
}

Napi::Value Module::CopyToSlab(Napi::Env env, const char* data, size_t length) {
  if (slabUsed_ + length > kSlabSize) {
    Napi::ArrayBuffer fresh = Napi::ArrayBuffer::New(env, kSlabSize);
    if (fresh.IsEmpty()) return Napi::Value();
    slab_ = Napi::Persistent(fresh);
    slabUsed_ = 0;
  }
  Napi::ArrayBuffer slab = slab_.Value();
  std::memcpy(static_cast<char*>(slab.Data()) + slabUsed_, data, length);
  Napi::Uint8Array view = Napi::Uint8Array::New(env, length, slab, slabUsed_);
  if (view.IsEmpty()) return Napi::Value();
  // Eight-byte steps keep every view aligned for readers of wider words.
  slabUsed_ += (length + 7) & ~static_cast<size_t>(7);
  return view;
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
  if (!ReadArgument(env, info[0], "listen", &endpoint)) return env.Undefined();
  double backlog = info[1].IsUndefined() ? kDefaultBacklog : info[1].IsNumber() ? info[1].As<Napi::Number>() : -1;
  if (!(backlog >= 0 && backlog <= INT_MAX) || std::floor(backlog) != backlog) {
    ThrowSystemError(env, UV_EINVAL, "listen", "backlog must be an integer from 0 to 2147483647");
    return env.Undefined();
  }
  return Listener::Open(this, env, endpoint, static_cast<int>(backlog));
}

Napi::Value Module::Connect(const Napi::CallbackInfo& info) {
  Endpoint endpoint;
  if (!ReadArgument(info.Env(), info[0], "connect", &endpoint)) return info.Env().Undefined();
  return Socket::Connect(this, info.Env(), endpoint);
}

Napi::Value Module::Supports(const Napi::CallbackInfo& info) {
  // Whether the running kernel has the family (a vsock transport, Hyper-V
  // sockets) only a socket can tell.
  Family family;
  Sock probe = kInvalidSock;
  bool supported = info[0].IsString() && ReadFamily(info[0].As<Napi::String>().Utf8Value(), &family) &&
                   OpenSocket(family, &probe) == 0;
  if (supported) sys::Close(probe);
  return Napi::Boolean::New(info.Env(), supported);
}

Napi::Value Module::OpenHandles(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(handles_.size()));
}

Napi::Value Module::EncodeAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint endpoint;
  if (!ReadArgument(env, info[0], "address", &endpoint)) return env.Undefined();
  OsAddress address;
  std::string why;
  int err = Encode(endpoint, &address, &why);
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
