// A listening socket: accepts connections while started and not paused, and
// hands each to JavaScript as a Socket with its peer's address.
#ifndef GCS_NATIVE_LISTENER_H_
#define GCS_NATIVE_LISTENER_H_

#include <napi.h>

#include "address.h"
#include "handle.h"

namespace gcs {

class Listener : public Handle {
 public:
  // Opens, binds and listens; returns the JavaScript object, or throws a
  // system error (with the failing syscall) and returns undefined.
  static Napi::Value Open(Module* module, Napi::Env env, const Endpoint& endpoint, int backlog);

  // Registers the connection callback and starts accepting.
  void Start(Napi::Function callback);
  void Pause();
  void Resume();
  Napi::Value LocalAddress(Napi::Env env);

 private:
  Listener(Module* module, Napi::Env env, Sock sock, Family family);

  void OnPoll(int status, int events) override;
  void ReleaseReferences() override;
  void Update();

  Family family_;
  bool accepting_ = false;
  Napi::FunctionReference callback_;
};

// The JavaScript face of a Listener; created only by Listener::Open.
class ListenerObject : public Napi::ObjectWrap<ListenerObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ListenerObject(const Napi::CallbackInfo& info);
  ~ListenerObject() override;

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  Listener* listener_ = nullptr;
};

}  // namespace gcs

#endif  // GCS_NATIVE_LISTENER_H_
