// A connected stream socket, kept close to raw readiness: one read per
// wake-up while reading is started, a write queue flushed on writability,
// and a non-blocking connect completed by writability.
//
// Everything the loop finds is reported through one JavaScript callback,
// (event, error, chunks), in the order the engine saw it. The first failure
// stops the socket in both directions: the queue is dropped, polling stops,
// and kError is reported once. Policy (high-water marks, when to pause, when
// to half-close, error fan-out) belongs to the caller.
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
#include "pump.h"

namespace gcs {

class Socket : public Handle {
 public:
  static constexpr const char* kResourceName = "GcsNativeSocket";

  enum Event {
    kData = 0,     // chunks: the Buffers one read filled
    kEnd = 1,      // the peer's EOF; no more data follows
    kError = 2,    // error; the socket is failed in both directions
    kDrain = 3,    // the write queue emptied
    kConnect = 4,  // connect finished (error or null)
    kPiped = 5,    // pipeFrom: the descriptor's end, everything before it sent
    kProgress = 6, // a pump moved more: kProgressBytes, or less when its source went quiet (read `piped`)
  };

  // How far a busy pump goes between two kProgress: a long relay is seen
  // moving (a byte counter) at a JavaScript call per MiB at most, and a
  // quiet one as soon as its source pauses.
  static constexpr uint64_t kProgressBytes = 1 << 20;

  // Wraps an accepted connection; empty with an exception pending on failure.
  static Napi::Value Accepted(Module* module, Napi::Env env, Sock sock, Family family);

  // Starts a non-blocking connect, completed by kConnect; throws when it fails at once.
  static Napi::Value Connect(Module* module, Napi::Env env, const Endpoint& endpoint);

  Napi::Value SetCallback(const Napi::CallbackInfo& info);
  // readStart() / readStop()
  template <bool kOn>
  Napi::Value SetReading(const Napi::CallbackInfo& info) {
    reading_ = kOn;
    Update();
    return info.Env().Undefined();
  }
  // write(chunks): sends what the kernel takes now and queues a copy of the
  // rest; returns the queued byte count. A failure found here is thrown (and
  // fails the socket). shutdown() half-closes now; EBUSY while bytes are queued.
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value Queued(const Napi::CallbackInfo& info);
  // pipeTo(fd): from now on what the peer sends goes into a duplicate of
  // `fd` through a Pump, with no kData; kEnd once all before the EOF is
  // written. Reading is still started and stopped by readStart/readStop.
  Napi::Value PipeTo(const Napi::CallbackInfo& info) { return StartPump(info, Pump::kIntoDescriptor); }
  // pipeFrom(fd): sends what a duplicate of `fd` holds until its end, then
  // kPiped (no half-close: that is shutdown()'s); write() is refused meanwhile.
  Napi::Value PipeFrom(const Napi::CallbackInfo& info) { return StartPump(info, Pump::kFromDescriptor); }
  Napi::Value Piped(const Napi::CallbackInfo& info);
  Napi::Value Peer(const Napi::CallbackInfo& info);
  Napi::Value PeerUid(const Napi::CallbackInfo& info);

 private:
  // A copy of bytes the kernel has not taken yet: the queue stays valid
  // whatever JavaScript does with its buffers (detaching them included).
  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t size;
    size_t offset;
  };

  Socket(Module* module, Napi::Env env, Sock sock, Family family);

  void OnPoll(int status, int events) override;
  void ReleaseReferences() override;
  void Closing() override;

  void Update();
  void FinishConnect(int err);
  void CapturePeer();
  int Flush();
  void Read();
  Napi::Value StartPump(const Napi::CallbackInfo& info, Pump::Direction direction);
  // A pump runs, out of the socket into its descriptor / into the socket from it.
  bool PumpingOut() const { return pumping_ && pump_->direction() == Pump::kIntoDescriptor; }
  bool PumpingIn() const { return pumping_ && pump_->direction() == Pump::kFromDescriptor; }
  // Runs the pump until a side would block; waits on the descriptor's poll
  // when the descriptor is the side that blocks.
  void RunPump();
  void WaitForDescriptor(int events);
  static void OnDescriptor(uv_poll_t* poll, int status, int events);
  void PumpFailed(int err, Pump::Side side);
  void PumpEnded();
  // kProgress when the pump has moved kProgressBytes since the last, or
  // anything at all when the source has gone `quiet`; false when the
  // callback closed or failed the socket meanwhile.
  bool ReportProgress(bool quiet);
  // Closes the descriptor's poll and the pump's descriptors (its count stays).
  void StopPump();
  // Stops the socket for good and reports kError (syscall names the side).
  void Fail(int err, const char* syscall);
  void Emit(Event event, napi_value error, napi_value chunk);

  Family family_;
  std::string target_;  // what connect() dialled, for error messages
  bool connecting_ = false;
  bool reading_ = false;
  bool ended_ = false;
  bool shutdown_ = false;
  int failed_ = 0;
  std::deque<Chunk> queue_;
  size_t queued_ = 0;
  sockaddr_storage peer_{};
  socklen_t peerLength_ = 0;
  int64_t peerUid_ = -1;  // unknown
  std::unique_ptr<Pump> pump_;
  bool pumping_ = false;    // from pipeTo/pipeFrom until its end or a failure
  bool pumpWaits_ = false;  // for the descriptor: the socket's side of the pump is not polled
  uint64_t reported_ = 0;   // what the last kProgress covered
  // Polls the pump's descriptor while it is the side that blocks; holds a
  // share of the handle until its close callback.
  uv_poll_t* descriptorPoll_ = nullptr;
  Napi::FunctionReference callback_;
};

// A listening socket: accepts connections while started and not paused, and
// hands each to JavaScript as a Socket.
class Listener : public Handle {
 public:
  static constexpr const char* kResourceName = "GcsNativeListener";

  // Opens, binds and listens; returns the JavaScript object, or throws a
  // system error (with the failing syscall) and returns undefined.
  static Napi::Value Open(Module* module, Napi::Env env, const Endpoint& endpoint, int backlog);

  // start(callback): registers the connection callback and starts accepting.
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);

 private:
  Listener(Module* module, Napi::Env env, Sock sock, Family family);

  void OnPoll(int status, int events) override;
  void ReleaseReferences() override { callback_.Reset(); }
  void Update() { Watch(accepting_ ? UV_READABLE : 0); }
  void Stop(int err);

  Family family_;
  bool accepting_ = false;
  Napi::FunctionReference callback_;
};

}  // namespace gcs

#endif  // GCS_NATIVE_SOCKET_H_
