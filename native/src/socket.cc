#include "socket.h"

#include <algorithm>
#include <new>
#include <utility>
#include <vector>

#include "module.h"

namespace gcs {

namespace {

// Queue entries gathered into one send.
constexpr size_t kFlushBatch = 64;

// Largest single buffer handed to the kernel: uv_buf_t's length is 32 bits
// on Windows, and gigabyte pieces cost nothing measurable anywhere.
constexpr size_t kMaxView = size_t{1} << 30;

// Appends `length` bytes at `base` as views of at most kMaxView bytes.
void AppendViews(std::vector<uv_buf_t>* views, char* base, size_t length) {
  while (length > 0) {
    size_t piece = std::min(length, kMaxView);
    views->push_back(uv_buf_init(base, static_cast<unsigned int>(piece)));
    base += piece;
    length -= piece;
  }
}

// Sends `views` until the kernel stops taking bytes (EAGAIN is not an
// error); *sent counts what went.
int SendViews(Sock sock, uv_buf_t* views, size_t count, size_t* sent) {
  *sent = 0;
  for (size_t index = 0; index < count;) {
    const size_t batch = std::min(count - index, sys::MaxSendBuffers());
    size_t bytes = 0;
    size_t n = 0;
    for (size_t i = index; i < index + batch; i++) bytes += views[i].len;
    int err = sys::SendV(sock, &views[index], batch, &n);
    if (err != 0) return err == UV_EAGAIN ? 0 : err;
    *sent += n;
    if (n < bytes) return 0;
    index += batch;
  }
  return 0;
}

}  // namespace

Socket::Socket(Module* module, Napi::Env env, Sock sock, Family family)
    : Handle(module, env, sock), family_(family) {}

Napi::Value Socket::Accepted(Module* module, Napi::Env env, Sock sock, Family family) {
  Socket* socket = new Socket(module, env, sock, family);
  socket->CapturePeer();
  return module->Wrap(module->socketClass(), socket, "accepted socket");
}

Napi::Value Socket::Connect(Module* module, Napi::Env env, const Endpoint& endpoint) {
  std::string detail;
  Sock sock = OpenFor(env, endpoint, "connect", &detail, [](Sock s, const OsAddress& to, const char** syscall) {
    *syscall = "connect";
    int err = sys::Connect(s, to.get(), to.length);
    return err == sys::kInProgress ? 0 : err;
  });
  if (sock == kInvalidSock) return env.Undefined();
  Socket* socket = new Socket(module, env, sock, endpoint.family);
  socket->connecting_ = true;
  socket->target_ = detail;
  Napi::Value object = module->Wrap(module->socketClass(), socket, detail);
  if (object.IsEmpty()) return env.Undefined();
  // Even a connect that finished at once is reported from the loop, so the
  // caller always gets its callback asynchronously.
  socket->Update();
  return object;
}

Napi::Value Socket::SetCallback(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setCallback(callback) needs a function").ThrowAsJavaScriptException();
  } else if (!closed()) {
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  }
  return info.Env().Undefined();
}

void Socket::Update() {
  // Not polling for reads while stopped is the backpressure: the kernel
  // buffer fills and the peer's writes block.
  int events = (reading_ && !ended_ && !(PumpingOut() && pumpWaits_) ? UV_READABLE : 0) |
               (!queue_.empty() || (PumpingIn() && !pumpWaits_) ? UV_WRITABLE : 0);
  Watch(failed_ != 0 ? 0 : connecting_ ? UV_WRITABLE : events);
}

Napi::Value Socket::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) {
    Napi::TypeError::New(env, "write(chunks) needs an array of Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Collect the arrays first and take their data pointers only afterwards:
  // reading an element may run JavaScript (a getter, a proxy), which must
  // not be able to invalidate a pointer already taken.
  Napi::Array array = info[0].As<Napi::Array>();
  const uint32_t count = array.Length();
  std::vector<Napi::Uint8Array> items;
  // The length is the caller's to choose (a sparse array can claim billions):
  // grow with the elements actually read, never up front.
  items.reserve(std::min<uint32_t>(count, 64));
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value item = array.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "write(chunks) needs an array of Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    items.push_back(item.As<Napi::Uint8Array>());
  }
  int err = closed() ? UV_EBADF : shutdown_ ? UV_EPIPE : failed_ != 0 ? failed_ : PumpingIn() ? UV_EBUSY : 0;
  if (err != 0) {
    ThrowSystemError(env, err, "write",
                     closed()     ? "socket is closed"
                     : shutdown_  ? "write after shutdown"
                     : err == UV_EBUSY ? "input is piped from a descriptor"
                                  : "");
    return env.Undefined();
  }

  std::vector<uv_buf_t> views;
  views.reserve(items.size());
  for (Napi::Uint8Array& item : items) {
    AppendViews(&views, reinterpret_cast<char*>(item.Data()), item.ByteLength());
  }

  // Nothing queued: offer the bytes to the kernel straight from the
  // caller's buffers, gathered into as few sends as possible.
  size_t sent = 0;
  if (queue_.empty() && !connecting_) err = SendViews(sock(), views.data(), views.size(), &sent);
  size_t rest = 0;
  for (const uv_buf_t& view : views) rest += view.len;
  rest -= sent;
  char* copy = nullptr;
  if (err == 0 && rest > 0) {
    copy = new (std::nothrow) char[rest];
    // Some bytes may have gone out already, so the stream is now broken.
    if (copy == nullptr) err = UV_ENOMEM;
  }
  if (err != 0) {
    failed_ = err;
    queue_.clear();
    queued_ = 0;
    Update();
    ThrowSystemError(env, err, "write");
    return env.Undefined();
  }
  if (copy != nullptr) {
    size_t at = 0;
    for (const uv_buf_t& view : views) {
      size_t skip = std::min<size_t>(sent, view.len);
      sent -= skip;
      std::copy(view.base + skip, view.base + view.len, copy + at);
      at += view.len - skip;
    }
    queue_.push_back(Chunk{std::unique_ptr<char[]>(copy), rest, 0});
    queued_ += rest;
  }
  Update();
  return Napi::Number::New(env, static_cast<double>(queued_));
}

Napi::Value Socket::Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool busy = connecting_ || !queue_.empty() || PumpingIn();
  int err = closed() ? UV_EBADF : failed_ != 0 ? failed_ : busy ? UV_EBUSY : 0;
  if (err == 0 && !shutdown_) err = sys::ShutdownSend(sock());
  if (err != 0) {
    ThrowSystemError(env, err, "shutdown",
                     closed() ? "socket is closed" : err == UV_EBUSY ? "bytes are still queued" : "");
    return env.Undefined();
  }
  shutdown_ = true;
  return env.Undefined();
}

Napi::Value Socket::Queued(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), closed() ? 0 : static_cast<double>(queued_));
}

Napi::Value Socket::Peer(const Napi::CallbackInfo& info) {
  if (peerLength_ == 0) return info.Env().Null();
  return Describe(info.Env(), peer_, peerLength_);
}

Napi::Value Socket::PeerUid(const Napi::CallbackInfo& info) {
  if (peerUid_ < 0) return info.Env().Null();
  return Napi::Number::New(info.Env(), static_cast<double>(peerUid_));
}

void Socket::OnPoll(int status, int events) {
  if (status < 0) {
    // The socket has an error pending (EPOLLERR: a failed connect, a reset
    // from the peer); libuv says only UV_EBADF, SO_ERROR says what it was.
    int err = sys::PendingError(sock());
    if (err == 0) err = status;
    if (connecting_) return FinishConnect(err);
    return Fail(err, !queue_.empty() || PumpingIn() ? "write" : "read");
  }
  if (connecting_) {
    if ((events & UV_WRITABLE) != 0) FinishConnect(sys::PendingError(sock()));
    return;
  }
  if ((events & UV_WRITABLE) != 0 && !queue_.empty()) {
    int err = Flush();
    if (err != 0) return Fail(err, "write");
    if (queue_.empty()) {
      Update();
      Emit(kDrain, nullptr, nullptr);
      if (closed() || failed_ != 0) return;
    }
  }
  if ((events & UV_WRITABLE) != 0 && PumpingIn()) {
    RunPump();
    if (closed() || failed_ != 0) return;
  }
  if ((events & UV_READABLE) != 0) Read();
}

void Socket::FinishConnect(int err) {
  connecting_ = false;
  if (err == 0) {
    CapturePeer();
  } else {
    // A socket whose connect failed is only good for closing.
    failed_ = err;
    queue_.clear();
    queued_ = 0;
  }
  Update();
  Napi::Env env = this->env();
  Emit(kConnect, err == 0 ? nullptr : static_cast<napi_value>(SystemError(env, err, "connect", target_).Value()),
       nullptr);
}

void Socket::CapturePeer() {
  socklen_t length = 0;
  if (sys::PeerAddress(sock(), &peer_, &length) == 0) peerLength_ = length;
  if (family_ == Family::Unix) sys::PeerUid(sock(), &peerUid_);
}

int Socket::Flush() {
  std::vector<uv_buf_t> views;
  while (!queue_.empty()) {
    views.clear();
    size_t bytes = 0;
    for (auto it = queue_.begin(); it != queue_.end() && views.size() < kFlushBatch; ++it) {
      AppendViews(&views, it->data.get() + it->offset, it->size - it->offset);
      bytes += it->size - it->offset;
    }
    size_t sent = 0;
    int err = SendViews(sock(), views.data(), views.size(), &sent);
    if (err != 0) return err;
    queued_ -= sent;
    for (size_t left = sent; left > 0;) {
      Chunk& front = queue_.front();
      size_t remaining = front.size - front.offset;
      if (left >= remaining) {
        left -= remaining;
        queue_.pop_front();
      } else {
        front.offset += left;
        left = 0;
      }
    }
    if (sent < bytes) return 0;
  }
  return 0;
}

void Socket::Read() {
  if (!reading_ || ended_ || failed_ != 0 || closed()) return;
  if (PumpingOut()) return RunPump();
  Napi::Env env = this->env();
  Napi::HandleScope scope(env);
  uv_buf_t views[Module::kReadBuffers];
  size_t got = 0;
  // One read per wake-up takes all the kernel holds (see Module::kReadSize);
  // the loop polls again if more arrives meanwhile.
  int err = module_->ReadViews(env, views) ? sys::RecvV(sock(), views, Module::kReadBuffers, &got) : UV_ENOMEM;
  if (err == UV_EAGAIN) return;
  Napi::Value chunks = err == 0 && got > 0 ? module_->TakeRead(env, got) : Napi::Value();
  // No memory for a Buffer: bytes that were read are lost, the stream is broken.
  if (env.IsExceptionPending()) env.GetAndClearPendingException(), err = UV_ENOMEM;
  if (err != 0) return Fail(err, "read");
  if (got == 0) {
    ended_ = true;
    Update();
    return Emit(kEnd, nullptr, nullptr);
  }
  Emit(kData, nullptr, chunks);
}

Napi::Value Socket::StartPump(const Napi::CallbackInfo& info, Pump::Direction direction) {
  Napi::Env env = info.Env();
  const char* name = direction == Pump::kIntoDescriptor ? "pipeTo" : "pipeFrom";
  Napi::Value fd = info[0];
  if (!fd.IsNumber() || fd.As<Napi::Number>().DoubleValue() < 0 ||
      fd.As<Napi::Number>().DoubleValue() != fd.As<Napi::Number>().Int32Value()) {
    Napi::TypeError::New(env, std::string(name) + "(fd) needs a file descriptor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // One pump at a time; a finished one may be followed by another (one file after another into the socket).
  const bool busy = pumping_ || (direction == Pump::kIntoDescriptor ? ended_ : shutdown_ || !queue_.empty());
  int err = closed() ? UV_EBADF : failed_ != 0 ? failed_ : connecting_ || busy ? UV_EBUSY : 0;
  if (err == 0) err = Pump::Open(sock(), fd.As<Napi::Number>().Int32Value(), direction, &pump_);
  if (err != 0) {
    const char* detail = closed() ? "socket is closed" : err == UV_EBUSY ? "already piped, ended or writing" : "";
    ThrowSystemError(env, err, name, detail);
    return env.Undefined();
  }
  pumping_ = true;
  reported_ = 0;
  // Into the socket: its writability starts the pump, from the loop.
  Update();
  return env.Undefined();
}

Napi::Value Socket::Piped(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pump_ == nullptr ? 0 : pump_->moved()));
}

void Socket::StopPump() {
  pumping_ = false;
  pumpWaits_ = false;
  // The poll goes before the descriptor it watches is closed: libuv forgets
  // a descriptor by number, which a later open may already have reused.
  if (descriptorPoll_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(descriptorPoll_), [](uv_handle_t* handle) {
      Socket* self = static_cast<Socket*>(handle->data);
      delete reinterpret_cast<uv_poll_t*>(handle);
      self->Release();
    });
    descriptorPoll_ = nullptr;
  }
  if (pump_ != nullptr) pump_->Close();
}

void Socket::RunPump() {
  Pump::Outcome outcome = Pump::kSourceDry;
  Pump::Side side = Pump::kSocketSide;
  int err = pump_->Run(&outcome, &side);
  if (err != 0) return PumpFailed(err, side);
  const bool out = PumpingOut();
  if (outcome == Pump::kSourceEnded) return PumpEnded();
  // The source went quiet: what it sent so far is heard now, not a MiB later.
  if (!ReportProgress(outcome == Pump::kSourceDry)) return;
  // The socket's side waits on the socket's own poll; the descriptor's on a
  // poll of its own, while the socket's stops (for a full descriptor, the
  // peer is then held back by the socket's buffer).
  if (out && outcome == Pump::kDestFull) return WaitForDescriptor(UV_WRITABLE);
  if (!out && outcome == Pump::kSourceDry) return WaitForDescriptor(UV_READABLE);
}

void Socket::WaitForDescriptor(int events) {
  pumpWaits_ = true;
  Update();
  if (descriptorPoll_ == nullptr) {
    descriptorPoll_ = new uv_poll_t();
    descriptorPoll_->data = this;
    int err = uv_poll_init(module_->loop(), descriptorPoll_, pump_->descriptor());
    if (err != 0) {
      delete descriptorPoll_;
      descriptorPoll_ = nullptr;
      return PumpFailed(err, Pump::kDescriptorSide);
    }
    Hold();
  }
  uv_poll_start(descriptorPoll_, events, OnDescriptor);
}

void Socket::OnDescriptor(uv_poll_t* poll, int status, int) {
  Socket* self = static_cast<Socket*>(poll->data);
  if (self->closed() || !self->pumping_) return;
  Napi::HandleScope scope(self->env());
  const bool out = self->PumpingOut();
  // An error on a pipe's write end: its reader has gone.
  if (status < 0) return self->PumpFailed(out ? UV_EPIPE : status, Pump::kDescriptorSide);
  if (out) {
    Pump::Side side = Pump::kDescriptorSide;
    int err = self->pump_->Drain(&side);
    if (err != 0 && err != UV_EAGAIN) return self->PumpFailed(err, side);
    if (!self->pump_->sourceEnded() && !self->ReportProgress(false)) return;
    if (err == UV_EAGAIN) return;
  }
  uv_poll_stop(poll);
  self->pumpWaits_ = false;
  if (out && self->pump_->sourceEnded()) return self->PumpEnded();
  self->Update();
  if (!out) self->RunPump();
}

void Socket::PumpFailed(int err, Pump::Side side) {
  // The descriptor's failures are `splice` whatever call found them; the
  // socket's are named as for a socket that is not piped.
  const bool out = PumpingOut();
  Fail(err, side == Pump::kDescriptorSide ? "splice" : out ? "read" : "write");
}

bool Socket::ReportProgress(bool quiet) {
  const uint64_t unreported = pump_->moved() - reported_;
  if (unreported == 0 || (unreported < kProgressBytes && !quiet)) return true;
  reported_ = pump_->moved();
  Emit(kProgress, nullptr, nullptr);
  return !closed() && pumping_;
}

void Socket::PumpEnded() {
  const bool out = PumpingOut();
  if (out) ended_ = true;
  // The descriptor is the caller's alone again: a FIFO's reader sees its
  // EOF as soon as the caller closes its own descriptor.
  StopPump();
  Update();
  Emit(out ? kEnd : kPiped, nullptr, nullptr);
}

void Socket::Closing() { StopPump(); }

void Socket::Fail(int err, const char* syscall) {
  failed_ = err;
  StopPump();
  queue_.clear();
  queued_ = 0;
  Update();
  Emit(kError, SystemError(env(), err, syscall).Value(), nullptr);
}

void Socket::Emit(Event event, napi_value error, napi_value chunk) {
  Napi::Env env = this->env();
  Invoke(callback_, {Napi::Number::New(env, static_cast<double>(event)), error == nullptr ? env.Null() : error,
                     chunk == nullptr ? env.Null() : chunk});
}

void Socket::ReleaseReferences() {
  callback_.Reset();
  queue_.clear();
  queued_ = 0;
}

}  // namespace gcs
