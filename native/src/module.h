// The addon's per-environment state and its JavaScript entry points. One
// Module exists per Node environment that loads the addon (the main thread
// and every worker), so handles always run on the loop of the environment
// that created them (napi_get_uv_event_loop, never uv_default_loop).
#ifndef GCS_NATIVE_MODULE_H_
#define GCS_NATIVE_MODULE_H_

#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_set>

namespace gcs {

class Handle;

class Module : public Napi::Addon<Module> {
 public:
  // Bytes asked for per read: what a `data` callback receives at most.
  static constexpr size_t kReadSize = 64 * 1024;

  Module(Napi::Env env, Napi::Object exports);
  ~Module();

  static Module* Of(Napi::Env env) { return env.GetInstanceData<Module>(); }

  uv_loop_t* loop() const { return loop_; }

  // Scratch space for reads, copied out before any JavaScript runs.
  char* readBuffer() { return readBuffer_.get(); }

  // Live polled handles, for teardown and openHandles().
  void Register(Handle* handle);
  void Forget(Handle* handle);

  // Wraps a new handle in an object of `cls` and registers it with the loop;
  // an empty value (exception pending, handle closed) on failure. The handle
  // reaches the constructor through TakeConstructing, not as an argument, so
  // JavaScript can never construct one around a pointer of its choosing.
  Napi::Value Wrap(const Napi::FunctionReference& cls, Handle* handle, const std::string& where);
  const Napi::FunctionReference& listenerClass() const { return listenerClass_; }
  const Napi::FunctionReference& socketClass() const { return socketClass_; }

  Handle* TakeConstructing() {
    Handle* handle = constructing_;
    constructing_ = nullptr;
    return handle;
  }

 private:
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Supports(const Napi::CallbackInfo& info);
  Napi::Value OpenHandles(const Napi::CallbackInfo& info);
  Napi::Value EncodeAddress(const Napi::CallbackInfo& info);

  // Environment teardown (worker or process exit): close every handle, and
  // Node waits until libuv has closed them.
  static void OnTeardown(napi_async_cleanup_hook_handle hook, void* data);
  void FinishTeardownIfDone();

  uv_loop_t* loop_ = nullptr;
  std::unique_ptr<char[]> readBuffer_;
  std::unordered_set<Handle*> handles_;
  napi_async_cleanup_hook_handle teardownHook_ = nullptr;
  bool tearingDown_ = false;
  Handle* constructing_ = nullptr;
  Napi::FunctionReference listenerClass_;
  Napi::FunctionReference socketClass_;
};

}  // namespace gcs

#endif  // GCS_NATIVE_MODULE_H_
