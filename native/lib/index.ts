/**
 * `@gcs-bridge/native`: a small non-blocking socket engine for AF_VSOCK
 * (Linux), AF_HYPERV (Windows) and AF_UNIX (Linux, the same code path, so the
 * engine is tested end to end without a VM), driven by libuv `uv_poll` on the
 * event loop of the calling environment (main thread or worker).
 *
 * The C++ side only moves bytes and reports readiness; this module holds the
 * policy: the write high-water mark and `drain`, the single error channel,
 * asynchronous delivery of failures found synchronously, and connect's
 * cancel.
 *
 * Keep-alive policy (as `net`): a listener that is accepting, a socket that
 * is reading, connecting, or has bytes queued keeps the event loop alive; a
 * paused listener or an idle socket (reading stopped, queue empty) does not.
 * Nothing is closed for you: `close()` releases the descriptor.
 *
 * @module
 */
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

/** An endpoint of a socket, in the family the engine speaks. */
export type SocketAddress =
  | { readonly family: "unix"; readonly path: string }
  | { readonly family: "vsock"; readonly cid: number; readonly port: number }
  | { readonly family: "hyperv"; readonly vmId: string; readonly serviceId: string }

/** The families of {@link SocketAddress}. */
export type Family = SocketAddress["family"]

/**
 * A failure reported by the operating system or the engine, shaped like
 * Node's system errors: `code` is the errno name (`ECONNRESET`, `ENOENT`,
 * `EAFNOSUPPORT`, `EINVAL` for a bad address, …), `syscall` what failed
 * (`socket`, `bind`, `listen`, `accept`, `connect`, `read`, `write`,
 * `shutdown`, …), `errno` the negative libuv code, as in Node.
 */
export interface NativeError extends Error {
  readonly code: string
  readonly syscall: string
  readonly errno: number
}

/** A listening socket. */
export interface NativeListener {
  /** The descriptor (a SOCKET on Windows); -1 once closed. */
  readonly fd: number
  /** The bound address (getsockname), e.g. the port the kernel picked for `VMADDR_PORT_ANY`. Throws a {@link NativeError} once closed. */
  address(): SocketAddress
  /**
   * Registers the connection callback (replacing any earlier one) and starts
   * accepting. `peer` is the accepted socket's remote address: the CID and
   * port for vsock, the VM and service ids for Hyper-V, the (usually empty)
   * path for Unix. An error (`EMFILE`, …) pauses the listener; `resume()`
   * accepts again.
   */
  onConnection(
    cb: (err: NativeError | null, socket: NativeSocket | null, peer: SocketAddress | null) => void
  ): void
  /** Stops polling for connections (they wait in the backlog); the listener then does not keep the loop alive. */
  pause(): void
  /** Polls for connections again. */
  resume(): void
  /** Closes the socket; idempotent, safe from inside callbacks; no callback runs afterwards. */
  close(): void
}

/** A connected stream socket. */
export interface NativeSocket {
  /** The descriptor (a SOCKET on Windows); -1 once closed. */
  readonly fd: number
  /** The remote address, captured at accept / connect. */
  readonly peer: SocketAddress | null
  /** The peer process's uid (SO_PEERCRED) on AF_UNIX (Linux); null for other families. */
  readonly peerUid: number | null
  /**
   * Queued bytes above which `write` returns false (default
   * {@link DefaultHighWaterMark}); may be changed at any time.
   */
  highWaterMark: number
  /** The local address (getsockname). Throws a {@link NativeError} once closed. */
  address(): SocketAddress
  /**
   * Registers the one callback for inbound bytes and failures (replacing any
   * earlier one). Chunks are at most {@link ReadSize} bytes; `chunk` null
   * with no error is the peer's EOF (after which no data follows). The first
   * failure of the socket, reading or writing, arrives here once as `err`; an
   * error that happened before a callback was registered is delivered
   * (asynchronously) on registration.
   */
  onData(cb: (err: NativeError | null, chunk: Buffer | null) => void): void
  /** Starts reading (requires `onData`). */
  readStart(): void
  /** Stops reading: the socket is no longer polled for reads, so the kernel buffer fills and the peer is held back (backpressure). */
  readStop(): void
  /**
   * Sends what the kernel takes at once and queues a copy of the rest (so the
   * caller may reuse the buffer). Returns false when the queued bytes exceed
   * `highWaterMark`; `onDrain` then signals when the queue has emptied. A
   * failure of the connection is reported through `onData` (and makes this
   * return false). Throws a {@link NativeError} after `close()` (`EBADF`)
   * or `shutdown()` (`EPIPE`).
   */
  write(chunk: Uint8Array): boolean
  /** As `write`, for several chunks sent with one gather syscall where possible. */
  writev(chunks: ReadonlyArray<Uint8Array>): boolean
  /** Registers the drain callback: the queue emptied after a write returned false. */
  onDrain(cb: () => void): void
  /** Bytes queued in the engine, not yet taken by the kernel. */
  readonly writeQueueSize: number
  /**
   * Half-closes (SHUT_WR) once the queue is flushed; `cb` gets the outcome
   * (or the write failure that prevented it). Reading goes on. Throws a
   * {@link NativeError} (`EBADF`) after `close()`.
   */
  shutdown(cb: (err: NativeError | null) => void): void
  /** Closes both directions; idempotent, safe mid-operation and from inside callbacks; pending callbacks (data, drain, shutdown) are not called. */
  close(): void
}

/** Default {@link NativeSocket.highWaterMark}: 64 KiB. */
export const DefaultHighWaterMark = 64 * 1024

/** The most bytes one `onData` chunk carries: 64 KiB. */
export const ReadSize = 64 * 1024

/** Address-family constants (GCS-PROTOCOL §13.3, §13.4). */
export const constants = {
  AF_VSOCK: 40,
  AF_HYPERV: 34,
  VMADDR_CID_ANY: 0xffffffff,
  VMADDR_CID_HYPERVISOR: 0,
  VMADDR_CID_LOCAL: 1,
  VMADDR_CID_HOST: 2,
  VMADDR_PORT_ANY: 0xffffffff
} as const

// ---------------------------------------------------------------------------
// The compiled binding (src/*.cc); these shapes are internal.

interface RawListener {
  readonly fd: number
  address(): SocketAddress
  start(cb: (err: NativeError | null, socket: RawSocket | null, peer: SocketAddress | null) => void): void
  pause(): void
  resume(): void
  close(): void
}

interface RawSocket {
  readonly fd: number
  readonly peer: SocketAddress | null
  readonly peerUid: number | null
  readonly queued: number
  address(): SocketAddress
  setCallback(cb: (event: number, err: NativeError | null, chunk: Buffer | null) => void): void
  readStart(): void
  readStop(): void
  write(chunks: ReadonlyArray<Uint8Array>): number | NativeError
  shutdown(): boolean | NativeError
  close(): void
}

interface Binding {
  listen(address: SocketAddress, backlog: number | undefined): RawListener
  connect(address: SocketAddress): RawSocket
  supports(family: string): boolean
  openHandles(): number
  encodeAddress(address: SocketAddress): Buffer
  readonly events: {
    readonly data: number
    readonly end: number
    readonly readError: number
    readonly drain: number
    readonly writeError: number
    readonly shutdown: number
    readonly connect: number
  }
  readonly constants: { readonly AF_VSOCK: number; readonly AF_HYPERV: number; readonly readSize: number }
}

const require = createRequire(import.meta.url)
const nodeGypBuild = require("node-gyp-build") as (dir: string) => unknown

// lib/index.ts (tests) and dist/index.js (built) both sit one level below the
// package root, where node-gyp-build finds build/ or prebuilds/.
// GCS_NATIVE_DIR points at another build of the addon (scripts/asan.sh uses
// it for the AddressSanitizer build).
const bindingDir = process.env.GCS_NATIVE_DIR ?? fileURLToPath(new URL("..", import.meta.url))
const binding = nodeGypBuild(bindingDir) as Binding
const events = binding.events

/** Whether `value` is an error raised by the engine. */
export const isNativeError = (value: unknown): value is NativeError =>
  value instanceof Error &&
  typeof (value as { code?: unknown }).code === "string" &&
  typeof (value as { syscall?: unknown }).syscall === "string" &&
  typeof (value as { errno?: unknown }).errno === "number"

class Socket implements NativeSocket {
  highWaterMark = DefaultHighWaterMark
  readonly peer: SocketAddress | null
  readonly peerUid: number | null
  readonly #raw: RawSocket
  #onData: ((err: NativeError | null, chunk: Buffer | null) => void) | undefined
  #onDrain: (() => void) | undefined
  #closed = false
  #needDrain = false
  #error: NativeError | undefined
  #errorDelivered = false
  #shutdown: "open" | "pending" | "done" = "open"
  #shutdownResult: NativeError | null = null
  #shutdownWaiters: Array<(err: NativeError | null) => void> = []

  constructor(raw: RawSocket) {
    this.#raw = raw
    this.peer = raw.peer
    this.peerUid = raw.peerUid
    raw.setCallback((event, err, chunk) => this.#onEvent(event, err, chunk))
  }

  get fd(): number {
    return this.#raw.fd
  }

  get writeQueueSize(): number {
    return this.#closed ? 0 : this.#raw.queued
  }

  address(): SocketAddress {
    return this.#raw.address()
  }

  onData(cb: (err: NativeError | null, chunk: Buffer | null) => void): void {
    this.#onData = cb
    if (this.#error !== undefined && !this.#errorDelivered) process.nextTick(() => this.#deliverError())
  }

  readStart(): void {
    if (this.#closed) return
    if (this.#onData === undefined) throw new TypeError("readStart() needs an onData callback first")
    this.#raw.readStart()
  }

  readStop(): void {
    if (!this.#closed) this.#raw.readStop()
  }

  write(chunk: Uint8Array): boolean {
    return this.writev([chunk])
  }

  writev(chunks: ReadonlyArray<Uint8Array>): boolean {
    const queued = this.#raw.write(chunks)
    if (typeof queued !== "number") {
      // Found inside this call, reported like one found by the loop: through
      // the error channel, never synchronously.
      this.#fail(queued)
      process.nextTick(() => this.#deliverError())
      return false
    }
    if (queued > this.highWaterMark) {
      this.#needDrain = true
      return false
    }
    return true
  }

  onDrain(cb: () => void): void {
    this.#onDrain = cb
  }

  shutdown(cb: (err: NativeError | null) => void): void {
    if (!this.#closed && this.#shutdown === "done") {
      const result = this.#shutdownResult
      process.nextTick(() => {
        if (!this.#closed) cb(result)
      })
      return
    }
    if (!this.#closed && this.#shutdown === "pending") {
      this.#shutdownWaiters.push(cb)
      return
    }
    // The first request; on a closed socket the engine throws EBADF here,
    // before any state changes.
    const result = this.#raw.shutdown()
    this.#shutdown = "pending"
    this.#shutdownWaiters.push(cb)
    if (result === false) return
    process.nextTick(() => this.#finishShutdown(result === true ? null : result))
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#onData = undefined
    this.#onDrain = undefined
    this.#shutdownWaiters = []
    this.#raw.close()
  }

  #onEvent(event: number, err: NativeError | null, chunk: Buffer | null): void {
    if (this.#closed) return
    switch (event) {
      case events.data:
      case events.end:
        this.#onData?.(null, chunk)
        return
      case events.readError:
        if (err !== null) this.#fail(err)
        this.#deliverError()
        return
      case events.writeError:
        if (err !== null) this.#fail(err)
        this.#deliverError()
        this.#finishShutdown(err)
        return
      case events.drain:
        if (this.#needDrain) {
          this.#needDrain = false
          this.#onDrain?.()
        }
        return
      case events.shutdown:
        this.#finishShutdown(err)
        return
    }
  }

  #fail(err: NativeError): void {
    if (this.#error === undefined) this.#error = err
  }

  #deliverError(): void {
    const err = this.#error
    const cb = this.#onData
    if (this.#closed || this.#errorDelivered || err === undefined || cb === undefined) return
    this.#errorDelivered = true
    cb(err, null)
  }

  #finishShutdown(err: NativeError | null): void {
    if (this.#shutdown !== "pending") return
    this.#shutdown = "done"
    this.#shutdownResult = err
    const waiters = this.#shutdownWaiters
    this.#shutdownWaiters = []
    for (const waiter of waiters) {
      if (this.#closed) return
      waiter(err)
    }
  }
}

class Listener implements NativeListener {
  readonly #raw: RawListener
  #onConnection:
    ((err: NativeError | null, socket: NativeSocket | null, peer: SocketAddress | null) => void) | undefined
  #started = false
  #closed = false

  constructor(raw: RawListener) {
    this.#raw = raw
  }

  get fd(): number {
    return this.#raw.fd
  }

  address(): SocketAddress {
    return this.#raw.address()
  }

  onConnection(
    cb: (err: NativeError | null, socket: NativeSocket | null, peer: SocketAddress | null) => void
  ): void {
    this.#onConnection = cb
    if (this.#started || this.#closed) return
    this.#started = true
    this.#raw.start((err, raw, peer) => {
      if (err !== null || raw === null) {
        this.#onConnection?.(err, null, null)
        return
      }
      const socket = new Socket(raw)
      const handler = this.#onConnection
      if (handler === undefined) {
        socket.close()
        return
      }
      handler(null, socket, peer)
    })
  }

  pause(): void {
    if (!this.#closed) this.#raw.pause()
  }

  resume(): void {
    if (!this.#closed) this.#raw.resume()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#onConnection = undefined
    this.#raw.close()
  }
}

/**
 * Opens a socket bound to `address` and listening with `backlog` (default
 * 511). Unix paths must not exist yet (remove stale ones first); vsock takes
 * `VMADDR_CID_ANY` / `VMADDR_PORT_ANY`. Throws a {@link NativeError}:
 * `EINVAL` for a malformed address, `EAFNOSUPPORT` for a family this
 * platform or kernel lacks, `EADDRINUSE`, `ENAMETOOLONG`, `EACCES`, ….
 */
export function listen(address: SocketAddress, backlog?: number): NativeListener {
  return new Listener(binding.listen(address, backlog))
}

/**
 * Connects to `address` without blocking. `cb` runs exactly once, always
 * asynchronously, with the connected socket or a {@link NativeError}
 * (`ENOENT`, `ECONNREFUSED`, `EAGAIN` for a full Unix backlog, `EINVAL`,
 * `EAFNOSUPPORT`, …) — unless `cancel()` came first, after which it never
 * runs and the half-open socket is closed.
 */
export function connect(
  address: SocketAddress,
  cb: (err: NativeError | null, socket: NativeSocket | null) => void
): { cancel(): void } {
  let state: "pending" | "done" | "cancelled" = "pending"
  let raw: RawSocket
  try {
    raw = binding.connect(address)
  } catch (cause) {
    if (!isNativeError(cause)) throw cause
    process.nextTick(() => {
      if (state !== "pending") return
      state = "done"
      cb(cause, null)
    })
    return {
      cancel: () => {
        if (state === "pending") state = "cancelled"
      }
    }
  }
  raw.setCallback((event, err) => {
    if (event !== events.connect || state !== "pending") return
    state = "done"
    if (err !== null) {
      raw.close()
      cb(err, null)
      return
    }
    cb(null, new Socket(raw))
  })
  return {
    cancel: () => {
      if (state !== "pending") return
      state = "cancelled"
      raw.close()
    }
  }
}

/**
 * Whether sockets of `family` can be opened here: the platform has them in
 * this build (unix and vsock on Linux, hyperv on Windows) and the kernel
 * accepts one (e.g. a vsock transport is loaded).
 */
export function supports(family: Family): boolean {
  return binding.supports(family)
}

/**
 * Listeners and sockets of this environment whose libuv handle has not
 * finished closing. A handle leaves the count in the loop's close phase after
 * `close()`, so a leak test awaits one macrotask (e.g. `setImmediate`) after
 * closing before it expects 0.
 */
export function openHandles(): number {
  return binding.openHandles()
}

/**
 * The bytes the engine hands to bind/connect for `address` (sockaddr_un,
 * sockaddr_vm, SOCKADDR_HV). Hyper-V addresses encode on every platform;
 * the others only where the family exists. Throws a {@link NativeError}
 * (`EINVAL`, `ENAMETOOLONG`, `EAFNOSUPPORT`).
 */
export function encodeAddress(address: SocketAddress): Uint8Array {
  return binding.encodeAddress(address)
}
