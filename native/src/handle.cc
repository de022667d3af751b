#include "handle.h"

#include <cstring>

#include "address.h"
#include "module.h"

namespace gcs {

namespace {

// The libuv name of an error code; "UNKNOWN" for codes libuv does not know.
std::string ErrorCode(int uvCode) {
  char name[64];
  uv_err_name_r(uvCode, name, sizeof(name));
  // libuv spells codes it does not know as a sentence; keep `code` a token.
  if (std::strncmp(name, "Unknown", 7) == 0) return "UNKNOWN";
  return name;
}

}  // namespace

Napi::Error SystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail) {
  char text[256];
  uv_strerror_r(uvCode, text, sizeof(text));
  std::string code = ErrorCode(uvCode);
  std::string message = std::string(syscall) + " " + code + ": " + text;
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.Set("errno", Napi::Number::New(env, uvCode));
  return error;
}

void ThrowSystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail) {
  SystemError(env, uvCode, syscall, detail).ThrowAsJavaScriptException();
}

void ReportPendingException(Napi::Env env) {
  if (!env.IsExceptionPending()) return;
  Napi::Error error = env.GetAndClearPendingException();
  // Fails quietly when the environment is shutting down and can no longer run
  // JavaScript, which is the only sensible outcome then.
  napi_fatal_exception(env, error.Value());
}

Handle::Handle(Module* module, Napi::Env env, Sock sock) : module_(module), env_(env), sock_(sock) {
  poll_.data = this;
}

Handle::~Handle() = default;

void Handle::Attach(Napi::Object object, const char* resourceName) {
  owners_++;
  self_ = Napi::Persistent(object);
  async_ = std::make_unique<Napi::AsyncContext>(env_, resourceName, object);
}

int Handle::Init() {
  int err = uv_poll_init_socket(module_->loop(), &poll_, sock_);
  if (err != 0) return err;
  polled_ = true;
  owners_++;
  module_->Register(this);
  return 0;
}

void Handle::Watch(int events) {
  if (closed_ || !polled_ || events == events_) return;
  // uv_poll_start/stop only fail for invalid arguments, which these are not.
  if (events == 0) {
    uv_poll_stop(&poll_);
  } else {
    uv_poll_start(&poll_, events, PollCallback);
  }
  events_ = events;
}

void Handle::Close() {
  if (closed_) return;
  closed_ = true;
  events_ = 0;
  Closing();
  if (!polled_) {
    sys::Close(sock_);
    sock_ = kInvalidSock;
    ReleaseAll();
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), CloseCallback);
#ifndef _WIN32
  // uv_close has already taken the descriptor out of epoll, so it can be
  // closed now: the peer sees the close at once and the address (a vsock
  // port, say) is free again before this function returns.
  sys::Close(sock_);
  sock_ = kInvalidSock;
#endif
}

void Handle::CloseCallback(uv_handle_t* handle) {
  Handle* self = static_cast<Handle*>(handle->data);
#ifdef _WIN32
  // On Windows the poll may still have an AFD request on the socket until
  // this point; closing it only now never races that request.
  sys::Close(self->sock_);
  self->sock_ = kInvalidSock;
#endif
  self->polled_ = false;
  self->module_->Forget(self);
  {
    Napi::HandleScope scope(self->env_);
    self->ReleaseAll();
  }
  self->Release();
}

void Handle::ReleaseAll() {
  if (released_) return;
  released_ = true;
  ReleaseReferences();
  async_.reset();
  self_.Reset();
}

void Handle::DetachObject() {
  Close();
  Release();
}

void Handle::Abandon() {
  Close();
  if (owners_ == 0) delete this;
}

void Handle::Release() {
  if (--owners_ == 0) delete this;
}

void Handle::PollCallback(uv_poll_t* poll, int status, int events) {
  Handle* self = static_cast<Handle*>(poll->data);
  if (self->closed_) return;
  // libuv stops a poll that reports an error; forget the armed events so
  // the next Watch() starts it again.
  if (status < 0) self->events_ = 0;
  Napi::HandleScope scope(self->env_);
  self->OnPoll(status, events);
}

Napi::Value Handle::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), closed_ ? -1 : sys::Number(sock_));
}

Napi::Value Handle::LocalAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_storage address{};
  socklen_t length = 0;
  int err = closed_ ? UV_EBADF : sys::LocalAddress(sock_, &address, &length);
  if (err != 0) {
    ThrowSystemError(env, err, "getsockname", closed_ ? "handle is closed" : "");
    return env.Undefined();
  }
  return Describe(env, address, length);
}

Napi::Value Handle::CloseMethod(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void Handle::Invoke(const Napi::FunctionReference& callback, std::initializer_list<napi_value> args) {
  if (closed_ || callback.IsEmpty()) return;
  callback.MakeCallback(self_.Value(), args, *async_);
  ReportPendingException(env_);
}

}  // namespace gcs
