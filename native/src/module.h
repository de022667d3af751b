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
  Module(Napi::Env env, Napi::Object exports);
  ~Module();

  static Module* Of(Napi::Env env) { return env.GetInstanceData<Module>(); }

  uv_loop_t* loop() const { return loop_; }

  // A read fills up to kReadBuffers Node Buffers of kReadSize bytes in one
  // readv: 256 KiB, all an AF_UNIX or vsock socket holds (208 / 256 KiB), so
  // a wake-up needs one read and one callback. Measured per GiB: one 256 KiB
  // Buffer is served by a fresh mmap (glibc's threshold is 128 KiB), 5-10x the
  // page faults; our own malloc'd memory as external Buffers drew 10x the
  // mark-compact GCs; 32 KiB Buffers or 2 per read cost more CPU.
  static constexpr size_t kReadSize = 64 * 1024;
  static constexpr size_t kReadBuffers = 4;

  // Points `views` at the Buffers the next read fills, creating those that
  // are missing; false with an exception pending when out of memory.
  bool ReadViews(Napi::Env env, uv_buf_t* views);
  // The first `length` bytes the read put there, as an array of chunks:
  // full Buffers as they are, a short rest as a view of the shared slab.
  Napi::Value TakeRead(Napi::Env env, size_t length);

  // A short rest of a read (an answer, a line) is copied into a shared slab
  // and handed over as a Uint8Array view of it: a Buffer of its own costs a
  // malloc, a backing store for V8 to track and a prototype change, more than
  // the read. A slab region is never reused, so a view stays valid while held;
  // a held view keeps its whole slab, hence Node's own pool sizes (8 KiB, at
  // most half of it per piece), which bound what a kept line can pin.
  static constexpr size_t kSlabSize = 8 * 1024;
  static constexpr size_t kSlabCopyLimit = kSlabSize / 2;

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
  Napi::Reference<Napi::Buffer<char>> readBuffers_[kReadBuffers];
  char* readData_[kReadBuffers] = {};
  Napi::Reference<Napi::ArrayBuffer> slab_;
  size_t slabUsed_ = kSlabSize;

  // `length` bytes of `data` as a view of the slab (a new slab when it is full).
  Napi::Value CopyToSlab(Napi::Env env, const char* data, size_t length);
  std::unordered_set<Handle*> handles_;
  napi_async_cleanup_hook_handle teardownHook_ = nullptr;
  bool tearingDown_ = false;
  Handle* constructing_ = nullptr;
  Napi::FunctionReference listenerClass_;
  Napi::FunctionReference socketClass_;
};

}  // namespace gcs

#endif  // GCS_NATIVE_MODULE_H_
