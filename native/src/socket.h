// A connected stream socket: reads in chunks of Module::kReadSize while
// reading is started, a write queue flushed on writability, half-close once
// the queue is empty, and a non-blocking connect completed by writability.
//
// Everything is reported through one JavaScript callback,
// (event, error, chunk), so that the ordering of data, end, errors and drain
// is exactly the order in which the engine saw them. Policy (high-water
// marks, when to pause, error fan-out) is the TypeScript wrapper's.
#ifndef GCS_NATIVE_SOCKET_H_
#define GCS_NATIVE_SOCKET_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "address.h"
#include "handle.h"

namespace gcs {

class Socket : public Handle {
 public:
  enum Event {
    kData = 0,        // chunk
    kEnd = 1,         // the peer's EOF; no more data follows
    kReadError = 2,   // error; reading stops
    kDrain = 3,       // the write queue emptied
    kWriteError = 4,  // error; queued bytes are dropped, writes are over
    kShutdown = 5,    // a deferred half-close happened (error or null)
    kConnect = 6,     // connect finished (error or null)
  };

  // Wraps an accepted connection. Returns the JavaScript object, or an empty
  // value with an exception pending (the socket is then closed).
  static Napi::Value Accepted(Module* module, Napi::Env env, Sock sock, Family family,
                              const sockaddr_storage& peer, socklen_t peerLength);

  // Starts a non-blocking connect; completion arrives as kConnect. Throws a
  // system error (and returns undefined) when it fails at once.
  static Napi::Value Connect(Module* module, Napi::Env env, const Endpoint& endpoint);

  void SetCallback(Napi::Function callback);
  void ReadStart();
  void ReadStop();
  // Sends what the kernel takes now and queues a copy of the rest. Returns
  // the queued byte count, or an Error (the write failed; it is also the
  // socket's write error from now on). Throws when writing is no longer
  // allowed (closed, shut down).
  Napi::Value Write(Napi::Env env, Napi::Value chunks);
  // Half-closes now (true), once the queue is flushed (false, then
  // kShutdown), or returns the Error that prevents it.
  Napi::Value Shutdown(Napi::Env env);
  size_t queued() const { return queued_; }
  Napi::Value Peer(Napi::Env env) const;
  Napi::Value PeerUid(Napi::Env env) const;
  Napi::Value LocalAddress(Napi::Env env);

 private:
  // A copy of bytes the kernel has not taken yet. Copying (rather than
  // holding the caller's buffer) keeps the queue valid whatever JavaScript
  // does with its buffers afterwards, detaching or transferring them included.
  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t size;
    size_t offset;
  };

  Socket(Module* module, Napi::Env env, Sock sock, Family family);

  void OnPoll(int status, int events) override;
  void ReleaseReferences() override;

  void Update();
  void FinishConnect(int status);
  void CapturePeer();
  void Flush();
  void Read();
  void FailWrites(int err);
  void FailRead(int err);
  void MaybeShutdown();
  void Emit(Event event, napi_value error, napi_value chunk);

  Family family_;
  std::string target_;  // what connect() dialled, for error messages
  bool connecting_ = false;
  bool reading_ = false;
  bool ended_ = false;
  bool readFailed_ = false;
  bool shutdownRequested_ = false;
  bool shutdownDone_ = false;
  int writeError_ = 0;
  std::deque<Chunk> queue_;
  size_t queued_ = 0;
  sockaddr_storage peer_{};
  socklen_t peerLength_ = 0;
  bool hasPeerUid_ = false;
  int64_t peerUid_ = 0;
  Napi::FunctionReference callback_;
};

// The JavaScript face of a Socket; created only by the engine.
class SocketObject : public Napi::ObjectWrap<SocketObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SocketObject(const Napi::CallbackInfo& info);
  ~SocketObject() override;

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Peer(const Napi::CallbackInfo& info);
  Napi::Value PeerUid(const Napi::CallbackInfo& info);
  Napi::Value Queued(const Napi::CallbackInfo& info);
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value SetCallback(const Napi::CallbackInfo& info);
  Napi::Value ReadStart(const Napi::CallbackInfo& info);
  Napi::Value ReadStop(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  Socket* socket_ = nullptr;
};

}  // namespace gcs

#endif  // GCS_NATIVE_SOCKET_H_
