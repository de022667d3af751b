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

#include "sys.h"

namespace gcs {

class Module;

class Handle {
 public:
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  // Called by the JavaScript object's constructor: the object now owns a
  // share, is kept alive until the handle closes, and is the resource of the
  // async context callbacks run in.
  void Attach(Napi::Object object, const char* resourceName);

  // Registers the socket with the loop. Returns 0 or a libuv error (then the
  // caller closes the handle).
  int Init();

  // Stops polling and closes the socket; idempotent; no callback runs after
  // it. Safe from inside any callback of this handle.
  void Close();

  // The JavaScript object was finalized.
  void DetachObject();

  // Frees a handle no object was ever attached to (construction failed).
  void Abandon();

  bool closed() const { return closed_; }
  Sock sock() const { return sock_; }
  Napi::Env env() const { return env_; }

 protected:
  Handle(Module* module, Napi::Env env, Sock sock);
  virtual ~Handle();

  // Sets the readiness to wait for (UV_READABLE | UV_WRITABLE). 0 stops
  // polling, and a handle that is not polled does not keep the loop alive.
  void Watch(int events);

  // Calls a JavaScript callback through MakeCallback in this handle's async
  // context (so async_hooks, AsyncLocalStorage and the microtask queue behave
  // as for Node's own handles). An exception it throws is reported as
  // uncaught. Does nothing once the handle is closed.
  void Invoke(const Napi::FunctionReference& callback, std::initializer_list<napi_value> args);

  // Readiness, or a poll error as a negative status (libuv then has stopped
  // the poll; the subclass re-arms with Watch). Runs in a HandleScope.
  virtual void OnPoll(int status, int events) = 0;

  // Releases the subclass's JavaScript references; runs once, when the
  // handle's JavaScript side is let go.
  virtual void ReleaseReferences() {}

  Module* module_;

 private:
  static void PollCallback(uv_poll_t* poll, int status, int events);
  static void CloseCallback(uv_handle_t* handle);
  void ReleaseAll();
  void Release();

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

}  // namespace gcs

#endif  // GCS_NATIVE_HANDLE_H_
