// One socket watched by a uv_poll_t on the event loop of the environment
// that created it: the life cycle listeners and sockets share.
//
// Lifetime. A Handle is owned by two parties: its JavaScript object (until
// that object is finalized) and its libuv poll handle (until libuv's close
// callback). It is freed when both have let go, so neither a late close
// callback nor a late finalizer can touch freed memory. Close() only stops
// I/O and closes the socket; the JavaScript references (callbacks, the
// object itself, the async context) are released in the close callback, so
// closing from inside a callback never pulls anything out from under the
// call that is running.
#ifndef GCS_NATIVE_HANDLE_H_
#define GCS_NATIVE_HANDLE_H_

#include <napi.h>
#include <uv.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "sys.h"

namespace gcs {

class Module;

// Errors handed to JavaScript are Errors with Node's system error fields
// {code, syscall, errno (the negative libuv code)}, so callers branch on
// `code` and never parse messages; `detail` (the address involved, why an
// argument is invalid) is appended to the message.
Napi::Error SystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail = "");
void ThrowSystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail = "");

// Hands an exception left by a JavaScript callback to Node's uncaught
// exception machinery, as for a `net` callback; the engine carries on.
void ReportPendingException(Napi::Env env);

class Handle {
 public:
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  // The object's constructor: it owns a share, is kept alive until the handle
  // closes, and is the resource of the async context callbacks run in.
  void Attach(Napi::Object object, const char* resourceName);

  int Init();  // registers the socket with the loop: 0 or a libuv error

  // Stops polling and closes the socket; idempotent, safe from inside any
  // callback of this handle; no callback runs after it.
  void Close();

  void DetachObject();  // the JavaScript object was finalized
  void Abandon();       // no object was ever attached (construction failed)

  bool closed() const { return closed_; }
  Sock sock() const { return sock_; }
  Napi::Env env() const { return env_; }

  // fd (-1 once closed), address() (getsockname), close().
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value CloseMethod(const Napi::CallbackInfo& info);

 protected:
  Handle(Module* module, Napi::Env env, Sock sock);
  virtual ~Handle();

  // UV_READABLE | UV_WRITABLE; 0 stops polling, and a handle that is not
  // polled does not keep the loop alive.
  void Watch(int events);

  // Calls back through MakeCallback in this handle's async context (so
  // async_hooks, AsyncLocalStorage and microtasks behave as for Node's own
  // handles); what it throws is uncaught. Nothing once closed.
  void Invoke(const Napi::FunctionReference& callback, std::initializer_list<napi_value> args);

  // Readiness, or a poll error as a negative status (libuv has then stopped
  // the poll; Watch re-arms it). Runs in a HandleScope.
  virtual void OnPoll(int status, int events) = 0;
  // Drops the subclass's JavaScript references, once.
  virtual void ReleaseReferences() {}
  // Close() has begun: the subclass stops and closes what it owns besides
  // the socket (a libuv handle of its own holds a share until it closes).
  virtual void Closing() {}

  // A share for a libuv handle the subclass owns; Release() when it closed.
  void Hold() { owners_++; }
  void Release();

  Module* module_;

 private:
  static void PollCallback(uv_poll_t* poll, int status, int events);
  static void CloseCallback(uv_handle_t* handle);
  void ReleaseAll();

  Napi::Env env_;
  Sock sock_;
  uv_poll_t poll_{};
  bool polled_ = false;
  bool closed_ = false;
  bool released_ = false;
  int events_ = 0;
  int owners_ = 0;
  Napi::ObjectReference self_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

// The handle being wrapped (module.cc); null when JavaScript calls a constructor.
Handle* TakeConstructing(Napi::Env env);

// The JavaScript face of a handle of type T: created only by the engine, it
// forwards each method to T and lets go of its share when finalized.
template <typename T>
class HandleObject : public Napi::ObjectWrap<HandleObject<T>> {
 public:
  explicit HandleObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HandleObject<T>>(info) {
    handle_ = static_cast<T*>(TakeConstructing(info.Env()));
    if (handle_ == nullptr) {
      Napi::TypeError::New(info.Env(), "native handles are created by listen() and connect()")
          .ThrowAsJavaScriptException();
      return;
    }
    handle_->Attach(info.This().template As<Napi::Object>(), T::kResourceName);
  }
  ~HandleObject() override {
    if (handle_ != nullptr) handle_->DetachObject();
  }

  template <auto Method>
  Napi::Value Call(const Napi::CallbackInfo& info) {
    return (handle_->*Method)(info);
  }

 private:
  T* handle_ = nullptr;
};

}  // namespace gcs

#endif  // GCS_NATIVE_HANDLE_H_
