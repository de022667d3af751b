#include "listener.h"

#include <string>

#include "errors.h"
#include "module.h"
#include "socket.h"

namespace gcs {

namespace {

// Connections accepted per readiness event before other handles get a turn.
constexpr int kAcceptsPerWakeup = 32;

}  // namespace

Listener::Listener(Module* module, Napi::Env env, Sock sock, Family family)
    : Handle(module, env, sock), family_(family) {}

Napi::Value Listener::Open(Module* module, Napi::Env env, const Endpoint& endpoint, int backlog) {
  const std::string where = Describe(endpoint);
  if (!FamilyBuiltIn(endpoint.family)) {
    ThrowSystemError(env, UV_EAFNOSUPPORT, "socket", where);
    return env.Undefined();
  }
  OsAddress address;
  std::string why;
  int err = Encode(endpoint, &address, &why);
  if (err != 0) {
    ThrowSystemError(env, err, "bind", why.empty() ? where : why + ", " + where);
    return env.Undefined();
  }
  Sock sock;
  err = sys::Open(OsFamily(endpoint.family), OsProtocol(endpoint.family), &sock);
  if (err != 0) {
    ThrowSystemError(env, err, "socket", where);
    return env.Undefined();
  }
  const char* syscall = "bind";
  err = sys::Bind(sock, address.get(), address.length);
  if (err == 0) {
    syscall = "listen";
    err = sys::Listen(sock, backlog);
  }
  if (err != 0) {
    sys::Close(sock);
    ThrowSystemError(env, err, syscall, where);
    return env.Undefined();
  }
  Listener* listener = new Listener(module, env, sock, endpoint.family);
  Napi::Object object = module->NewListenerObject(listener);
  if (object.IsEmpty()) {
    listener->Abandon();
    return env.Undefined();
  }
  err = listener->Init();
  if (err != 0) {
    listener->Close();
    ThrowSystemError(env, err, "uv_poll_init", where);
    return env.Undefined();
  }
  return object;
}

void Listener::Start(Napi::Function callback) {
  if (closed()) return;
  callback_ = Napi::Persistent(callback);
  accepting_ = true;
  Update();
}

void Listener::Pause() {
  accepting_ = false;
  Update();
}

void Listener::Resume() {
  if (callback_.IsEmpty()) return;
  accepting_ = true;
  Update();
}

void Listener::Update() { Watch(accepting_ ? UV_READABLE : 0); }

Napi::Value Listener::LocalAddress(Napi::Env env) {
  if (closed()) {
    ThrowSystemError(env, UV_EBADF, "getsockname", "listener is closed");
    return env.Undefined();
  }
  sockaddr_storage address{};
  socklen_t length = 0;
  int err = sys::LocalAddress(sock(), &address, &length);
  if (err != 0) {
    ThrowSystemError(env, err, "getsockname");
    return env.Undefined();
  }
  return Describe(env, address, length);
}

void Listener::OnPoll(int status, int) {
  Napi::Env env = this->env();
  if (status < 0) {
    // A broken poll would report the same failure on every turn: stop, say
    // why, and leave resuming to the owner.
    int err = sys::PendingError(sock());
    if (err == 0) err = status;
    accepting_ = false;
    Update();
    Invoke(callback_, {SystemError(env, err, "accept").Value(), env.Null(), env.Null()});
    return;
  }
  for (int i = 0; i < kAcceptsPerWakeup && accepting_ && !closed(); i++) {
    Sock client;
    sockaddr_storage peer{};
    socklen_t length = 0;
    int err = sys::Accept(sock(), &client, &peer, &length);
    if (err == UV_EAGAIN) return;
    // The connection died while queued: there is nobody to hand over.
    if (err == UV_ECONNABORTED || err == UV_EPROTO) continue;
    if (err != 0) {
      // Out of descriptors or memory: polling on would spin on the same
      // error, so pause and let the owner decide when to resume.
      accepting_ = false;
      Update();
      Invoke(callback_, {SystemError(env, err, "accept").Value(), env.Null(), env.Null()});
      return;
    }
    Napi::HandleScope scope(env);
    Napi::Value socket = Socket::Accepted(module_, env, client, family_, peer, length);
    if (socket.IsEmpty() || !socket.IsObject()) {
      // The socket could not be set up (and is closed); report it and go on.
      if (env.IsExceptionPending()) {
        Napi::Error error = env.GetAndClearPendingException();
        Invoke(callback_, {error.Value(), env.Null(), env.Null()});
      }
      continue;
    }
    Invoke(callback_, {env.Null(), socket, Describe(env, peer, length)});
  }
}

void Listener::ReleaseReferences() { callback_.Reset(); }

// ---------------------------------------------------------------------------

Napi::Function ListenerObject::Define(Napi::Env env) {
  return DefineClass(env, "NativeListener",
                     {
                         InstanceAccessor<&ListenerObject::Fd>("fd"),
                         InstanceMethod<&ListenerObject::Address>("address"),
                         InstanceMethod<&ListenerObject::Start>("start"),
                         InstanceMethod<&ListenerObject::Pause>("pause"),
                         InstanceMethod<&ListenerObject::Resume>("resume"),
                         InstanceMethod<&ListenerObject::Close>("close"),
                     });
}

ListenerObject::ListenerObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ListenerObject>(info) {
  Handle* handle = Module::Of(info.Env())->TakeConstructing();
  if (handle == nullptr) {
    Napi::TypeError::New(info.Env(), "NativeListener is created by listen()").ThrowAsJavaScriptException();
    return;
  }
  listener_ = static_cast<Listener*>(handle);
  listener_->Attach(info.This().As<Napi::Object>(), "GcsNativeListener");
}

ListenerObject::~ListenerObject() {
  if (listener_ != nullptr) listener_->DetachObject();
}

Napi::Value ListenerObject::Fd(const Napi::CallbackInfo& info) {
  if (listener_->closed()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), sys::Number(listener_->sock()));
}

Napi::Value ListenerObject::Address(const Napi::CallbackInfo& info) { return listener_->LocalAddress(info.Env()); }

Napi::Value ListenerObject::Start(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "start(callback) needs a function").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  listener_->Start(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value ListenerObject::Pause(const Napi::CallbackInfo& info) {
  listener_->Pause();
  return info.Env().Undefined();
}

Napi::Value ListenerObject::Resume(const Napi::CallbackInfo& info) {
  listener_->Resume();
  return info.Env().Undefined();
}

Napi::Value ListenerObject::Close(const Napi::CallbackInfo& info) {
  listener_->Close();
  return info.Env().Undefined();
}

}  // namespace gcs
