#include "socket.h"

#include <algorithm>
#include <new>
#include <utility>
#include <vector>

#include "errors.h"
#include "module.h"

namespace gcs {

namespace {

// Reads per readiness event before other handles get a turn.
constexpr int kReadsPerWakeup = 16;

// Queue entries gathered into one send.
constexpr size_t kFlushBatch = 64;

// Largest single buffer handed to the kernel: uv_buf_t's length is 32 bits
// on Windows, and gigabyte pieces cost nothing measurable anywhere.
constexpr size_t kMaxView = size_t{1} << 30;

uv_buf_t View(char* base, size_t length) {
  uv_buf_t view;
  view.base = base;
  view.len = static_cast<decltype(view.len)>(length);
  return view;
}

// Appends `length` bytes at `base` as views of at most kMaxView bytes.
void AppendViews(std::vector<uv_buf_t>* views, char* base, size_t length) {
  while (length > 0) {
    size_t piece = std::min(length, kMaxView);
    views->push_back(View(base, piece));
    base += piece;
    length -= piece;
  }
}

}  // namespace

Socket::Socket(Module* module, Napi::Env env, Sock sock, Family family)
    : Handle(module, env, sock), family_(family) {}

Napi::Value Socket::Accepted(Module* module, Napi::Env env, Sock sock, Family family,
                             const sockaddr_storage& peer, socklen_t peerLength) {
  Socket* socket = new Socket(module, env, sock, family);
  socket->peer_ = peer;
  socket->peerLength_ = peerLength;
  if (family == Family::Unix) {
    int64_t uid = 0;
    if (sys::PeerUid(sock, &uid) == 0) {
      socket->hasPeerUid_ = true;
      socket->peerUid_ = uid;
    }
  }
  Napi::Object object = module->NewSocketObject(socket);
  if (object.IsEmpty()) {
    socket->Abandon();
    return Napi::Value();
  }
  int err = socket->Init();
  if (err != 0) {
    socket->Close();
    SystemError(env, err, "uv_poll_init").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return object;
}

Napi::Value Socket::Connect(Module* module, Napi::Env env, const Endpoint& endpoint) {
  const std::string where = Describe(endpoint);
  if (!FamilyBuiltIn(endpoint.family)) {
    ThrowSystemError(env, UV_EAFNOSUPPORT, "socket", where);
    return env.Undefined();
  }
  OsAddress address;
  std::string why;
  int err = Encode(endpoint, &address, &why);
  if (err != 0) {
    ThrowSystemError(env, err, "connect", why.empty() ? where : why + ", " + where);
    return env.Undefined();
  }
  Sock sock;
  err = sys::Open(OsFamily(endpoint.family), OsProtocol(endpoint.family), &sock);
  if (err != 0) {
    ThrowSystemError(env, err, "socket", where);
    return env.Undefined();
  }
  err = sys::Connect(sock, address.get(), address.length);
  if (err != 0 && err != sys::kInProgress) {
    sys::Close(sock);
    ThrowSystemError(env, err, "connect", where);
    return env.Undefined();
  }
  Socket* socket = new Socket(module, env, sock, endpoint.family);
  socket->connecting_ = true;
  socket->target_ = where;
  Napi::Object object = module->NewSocketObject(socket);
  if (object.IsEmpty()) {
    socket->Abandon();
    return env.Undefined();
  }
  err = socket->Init();
  if (err != 0) {
    socket->Close();
    ThrowSystemError(env, err, "uv_poll_init", where);
    return env.Undefined();
  }
  // Even a connect that finished at once is reported from the loop, so the
  // caller always gets its callback asynchronously.
  socket->Update();
  return object;
}

void Socket::SetCallback(Napi::Function callback) {
  if (closed()) return;
  callback_ = Napi::Persistent(callback);
}

void Socket::ReadStart() {
  reading_ = true;
  Update();
}

void Socket::ReadStop() {
  reading_ = false;
  Update();
}

void Socket::Update() {
  int events = 0;
  if (connecting_) {
    events = UV_WRITABLE;
  } else {
    // Not polling for reads while stopped is the backpressure: the kernel
    // buffer fills and the peer's writes block.
    if (reading_ && !ended_ && !readFailed_) events |= UV_READABLE;
    if (!queue_.empty()) events |= UV_WRITABLE;
  }
  Watch(events);
}

Napi::Value Socket::Write(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) {
    Napi::TypeError::New(env, "write(chunks) needs an array of Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Collect the arrays first and take their data pointers only afterwards:
  // reading an element may run JavaScript (a getter, a proxy), which must
  // not be able to invalidate a pointer already taken.
  Napi::Array array = value.As<Napi::Array>();
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
  if (closed()) {
    ThrowSystemError(env, UV_EBADF, "write", "socket is closed");
    return env.Undefined();
  }
  if (shutdownRequested_) {
    ThrowSystemError(env, UV_EPIPE, "write", "write after shutdown");
    return env.Undefined();
  }
  if (writeError_ != 0) return SystemError(env, writeError_, "write").Value();

  std::vector<uv_buf_t> views;
  views.reserve(items.size());
  for (Napi::Uint8Array& item : items) {
    AppendViews(&views, reinterpret_cast<char*>(item.Data()), item.ByteLength());
  }

  size_t index = 0;
  if (queue_.empty() && !connecting_) {
    // Nothing queued: offer the bytes to the kernel straight from the
    // caller's buffers, gathered into as few sends as possible.
    const size_t maxBatch = sys::MaxSendBuffers();
    while (index < views.size()) {
      const size_t batch = std::min(views.size() - index, maxBatch);
      size_t batchBytes = 0;
      for (size_t i = index; i < index + batch; i++) batchBytes += views[i].len;
      size_t sent = 0;
      int err = sys::SendV(sock(), &views[index], batch, &sent);
      if (err == UV_EAGAIN) break;
      if (err != 0) {
        writeError_ = err;
        Update();
        return SystemError(env, err, "write").Value();
      }
      for (size_t left = sent; left > 0;) {
        if (left >= views[index].len) {
          left -= views[index].len;
          index++;
        } else {
          views[index].base += left;
          views[index].len -= static_cast<decltype(views[index].len)>(left);
          left = 0;
        }
      }
      if (sent < batchBytes) break;
    }
  }

  size_t rest = 0;
  for (size_t i = index; i < views.size(); i++) rest += views[i].len;
  if (rest > 0) {
    char* copy = new (std::nothrow) char[rest];
    if (copy == nullptr) {
      // Some bytes may have gone out already, so the stream is now broken.
      writeError_ = UV_ENOMEM;
      Update();
      return SystemError(env, UV_ENOMEM, "write").Value();
    }
    size_t at = 0;
    for (size_t i = index; i < views.size(); i++) {
      std::copy(views[i].base, views[i].base + views[i].len, copy + at);
      at += views[i].len;
    }
    queue_.push_back(Chunk{std::unique_ptr<char[]>(copy), rest, 0});
    queued_ += rest;
  }
  Update();
  return Napi::Number::New(env, static_cast<double>(queued_));
}

Napi::Value Socket::Shutdown(Napi::Env env) {
  if (closed()) {
    ThrowSystemError(env, UV_EBADF, "shutdown", "socket is closed");
    return env.Undefined();
  }
  if (shutdownRequested_) return Napi::Boolean::New(env, shutdownDone_);
  shutdownRequested_ = true;
  if (writeError_ != 0) return SystemError(env, writeError_, "write").Value();
  if (connecting_ || !queue_.empty()) return Napi::Boolean::New(env, false);
  shutdownDone_ = true;
  int err = sys::ShutdownSend(sock());
  if (err != 0) return SystemError(env, err, "shutdown").Value();
  return Napi::Boolean::New(env, true);
}

Napi::Value Socket::Peer(Napi::Env env) const {
  if (peerLength_ == 0) return env.Null();
  return Describe(env, peer_, peerLength_);
}

Napi::Value Socket::PeerUid(Napi::Env env) const {
  if (!hasPeerUid_) return env.Null();
  return Napi::Number::New(env, static_cast<double>(peerUid_));
}

Napi::Value Socket::LocalAddress(Napi::Env env) {
  if (closed()) {
    ThrowSystemError(env, UV_EBADF, "getsockname", "socket is closed");
    return env.Undefined();
  }
  sockaddr_storage address{};
  socklen_t length = 0;
  int err = sys::LocalAddress(sock(), &address, &length);
  if (err != 0) {
    ThrowSystemError(env, err, "getsockname");
    return env.Undefined();
  }
  return Describe(env, address, length);
}

void Socket::OnPoll(int status, int events) {
  if (status < 0) {
    // The socket has an error pending (EPOLLERR: a failed connect, a reset
    // from the peer); libuv says only UV_EBADF, SO_ERROR says what it was.
    int err = sys::PendingError(sock());
    if (err == 0) err = status;
    if (connecting_) {
      FinishConnect(err);
      return;
    }
    if (!queue_.empty()) FailWrites(err);
    if (closed()) return;
    if (reading_ && !ended_ && !readFailed_) {
      FailRead(err);
    } else {
      Update();
    }
    return;
  }
  if (connecting_) {
    if ((events & UV_WRITABLE) != 0) FinishConnect(0);
    return;
  }
  if ((events & UV_WRITABLE) != 0 && !queue_.empty()) {
    Flush();
    if (closed()) return;
    if (queue_.empty() && writeError_ == 0) {
      Update();
      Emit(kDrain, nullptr, nullptr);
      if (closed()) return;
      MaybeShutdown();
      if (closed()) return;
    }
  }
  if ((events & UV_READABLE) != 0) Read();
}

void Socket::FinishConnect(int status) {
  int err = status < 0 ? status : sys::PendingError(sock());
  connecting_ = false;
  if (err == 0) {
    CapturePeer();
  } else {
    // A socket whose connect failed is only good for closing.
    readFailed_ = true;
    writeError_ = err;
    queue_.clear();
    queued_ = 0;
  }
  Update();
  Napi::Env env = this->env();
  napi_value error = err == 0 ? nullptr : static_cast<napi_value>(SystemError(env, err, "connect", target_).Value());
  Emit(kConnect, error, nullptr);
  if (err == 0 && !closed()) MaybeShutdown();
}

void Socket::CapturePeer() {
  socklen_t length = 0;
  if (sys::PeerAddress(sock(), &peer_, &length) == 0) peerLength_ = length;
  if (family_ == Family::Unix) {
    int64_t uid = 0;
    if (sys::PeerUid(sock(), &uid) == 0) {
      hasPeerUid_ = true;
      peerUid_ = uid;
    }
  }
}

void Socket::Flush() {
  uv_buf_t views[kFlushBatch];
  while (!queue_.empty()) {
    size_t count = 0;
    size_t bytes = 0;
    for (auto it = queue_.begin(); it != queue_.end() && count < kFlushBatch; ++it) {
      size_t length = it->size - it->offset;
      bool capped = length > kMaxView;
      if (capped) length = kMaxView;
      views[count++] = View(it->data.get() + it->offset, length);
      bytes += length;
      if (capped) break;
    }
    size_t sent = 0;
    int err = sys::SendV(sock(), views, count, &sent);
    if (err == UV_EAGAIN) return;
    if (err != 0) {
      FailWrites(err);
      return;
    }
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
    if (sent < bytes) return;
  }
}

void Socket::Read() {
  Napi::Env env = this->env();
  char* buffer = module_->readBuffer();
  for (int i = 0; i < kReadsPerWakeup && reading_ && !ended_ && !readFailed_ && !closed(); i++) {
    size_t got = 0;
    int err = sys::Recv(sock(), buffer, Module::kReadSize, &got);
    if (err == UV_EAGAIN) return;
    if (err != 0) {
      FailRead(err);
      return;
    }
    if (got == 0) {
      ended_ = true;
      Update();
      Emit(kEnd, nullptr, nullptr);
      return;
    }
    Napi::HandleScope scope(env);
    Emit(kData, nullptr, Napi::Buffer<char>::Copy(env, buffer, got));
    // A short read means the kernel buffer is empty: skip the EAGAIN round.
    if (got < Module::kReadSize) return;
  }
}

void Socket::FailWrites(int err) {
  writeError_ = err;
  queue_.clear();
  queued_ = 0;
  Update();
  Emit(kWriteError, SystemError(env(), err, "write").Value(), nullptr);
}

void Socket::FailRead(int err) {
  readFailed_ = true;
  Update();
  Emit(kReadError, SystemError(env(), err, "read").Value(), nullptr);
}

void Socket::MaybeShutdown() {
  if (!shutdownRequested_ || shutdownDone_ || connecting_ || writeError_ != 0 || !queue_.empty() || closed()) {
    return;
  }
  shutdownDone_ = true;
  int err = sys::ShutdownSend(sock());
  napi_value error = err == 0 ? nullptr : static_cast<napi_value>(SystemError(env(), err, "shutdown").Value());
  Emit(kShutdown, error, nullptr);
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

// ---------------------------------------------------------------------------

Napi::Function SocketObject::Define(Napi::Env env) {
  return DefineClass(env, "NativeSocket",
                     {
                         InstanceAccessor<&SocketObject::Fd>("fd"),
                         InstanceAccessor<&SocketObject::Peer>("peer"),
                         InstanceAccessor<&SocketObject::PeerUid>("peerUid"),
                         InstanceAccessor<&SocketObject::Queued>("queued"),
                         InstanceMethod<&SocketObject::Address>("address"),
                         InstanceMethod<&SocketObject::SetCallback>("setCallback"),
                         InstanceMethod<&SocketObject::ReadStart>("readStart"),
                         InstanceMethod<&SocketObject::ReadStop>("readStop"),
                         InstanceMethod<&SocketObject::Write>("write"),
                         InstanceMethod<&SocketObject::Shutdown>("shutdown"),
                         InstanceMethod<&SocketObject::Close>("close"),
                     });
}

SocketObject::SocketObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketObject>(info) {
  Handle* handle = Module::Of(info.Env())->TakeConstructing();
  if (handle == nullptr) {
    Napi::TypeError::New(info.Env(), "NativeSocket is created by connect() or a listener")
        .ThrowAsJavaScriptException();
    return;
  }
  socket_ = static_cast<Socket*>(handle);
  socket_->Attach(info.This().As<Napi::Object>(), "GcsNativeSocket");
}

SocketObject::~SocketObject() {
  if (socket_ != nullptr) socket_->DetachObject();
}

Napi::Value SocketObject::Fd(const Napi::CallbackInfo& info) {
  if (socket_->closed()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), sys::Number(socket_->sock()));
}

Napi::Value SocketObject::Peer(const Napi::CallbackInfo& info) { return socket_->Peer(info.Env()); }

Napi::Value SocketObject::PeerUid(const Napi::CallbackInfo& info) { return socket_->PeerUid(info.Env()); }

Napi::Value SocketObject::Queued(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(socket_->queued()));
}

Napi::Value SocketObject::Address(const Napi::CallbackInfo& info) { return socket_->LocalAddress(info.Env()); }

Napi::Value SocketObject::SetCallback(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setCallback(callback) needs a function").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  socket_->SetCallback(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value SocketObject::ReadStart(const Napi::CallbackInfo& info) {
  socket_->ReadStart();
  return info.Env().Undefined();
}

Napi::Value SocketObject::ReadStop(const Napi::CallbackInfo& info) {
  socket_->ReadStop();
  return info.Env().Undefined();
}

Napi::Value SocketObject::Write(const Napi::CallbackInfo& info) { return socket_->Write(info.Env(), info[0]); }

Napi::Value SocketObject::Shutdown(const Napi::CallbackInfo& info) { return socket_->Shutdown(info.Env()); }

Napi::Value SocketObject::Close(const Napi::CallbackInfo& info) {
  socket_->Close();
  return info.Env().Undefined();
}

}  // namespace gcs
