#include <string>

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
  std::string detail;
  Sock sock = OpenFor(env, endpoint, "bind", &detail, [backlog](Sock s, const OsAddress& to, const char** syscall) {
    *syscall = "bind";
    int err = sys::Bind(s, to.get(), to.length);
    if (err != 0) return err;
    *syscall = "listen";
    return sys::Listen(s, backlog);
  });
  if (sock == kInvalidSock) return env.Undefined();
  Napi::Value object = module->Wrap(module->listenerClass(), new Listener(module, env, sock, endpoint.family), detail);
  return object.IsEmpty() ? env.Undefined() : object;
}

Napi::Value Listener::Start(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "start(callback) needs a function").ThrowAsJavaScriptException();
  } else if (!closed()) {
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    accepting_ = true;
    Update();
  }
  return info.Env().Undefined();
}

Napi::Value Listener::Pause(const Napi::CallbackInfo& info) {
  accepting_ = false;
  Update();
  return info.Env().Undefined();
}

Napi::Value Listener::Resume(const Napi::CallbackInfo& info) {
  accepting_ = !callback_.IsEmpty();
  Update();
  return info.Env().Undefined();
}

// Polling on would report the same failure on every turn (a broken poll, out
// of descriptors or memory): stop, say why, and leave resuming to the owner.
void Listener::Stop(int err) {
  accepting_ = false;
  Update();
  Invoke(callback_, {SystemError(env(), err, "accept").Value(), env().Null(), env().Null()});
}

void Listener::OnPoll(int status, int) {
  Napi::Env env = this->env();
  if (status < 0) {
    int err = sys::PendingError(sock());
    Stop(err == 0 ? status : err);
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
    if (err != 0) return Stop(err);
    Napi::HandleScope scope(env);
    Napi::Value socket = Socket::Accepted(module_, env, client, family_);
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

}  // namespace gcs
