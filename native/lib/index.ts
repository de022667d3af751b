/**
 * `@gcs-bridge/native`: a small non-blocking socket engine for AF_VSOCK
 * (Linux), AF_HYPERV (Windows) and AF_UNIX (Linux, the same code path, so the
 * engine is tested end to end without a VM), driven by libuv `uv_poll` on the
 * event loop of the calling environment (main thread or worker).
 *
 * The engine stays close to raw readiness: it moves bytes and reports what
 * the loop saw, in order, through one callback per socket. Policy — a
 * high-water mark, when to half-close, fanning one failure out to readers and
 * writers — belongs to the caller (`@gcs-bridge/transport`'s Connection).
 *
 * Keep-alive policy (as `net`): a listener that is accepting, a socket that
 * is reading, connecting, or has bytes queued keeps the event loop alive; a
 * paused listener or an idle socket does not. Nothing is closed for you:
 * `close()` releases the descriptor.
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
  /** The bound address (getsockname), e.g. the port the kernel picked for `VMADDR_PORT_ANY`. Throws `EBADF` once closed. */
  address(): SocketAddress
  /**
   * Registers the connection callback (replacing any earlier one) and starts
   * accepting. `peer` is the accepted socket's remote address. An accept
   * error (`EMFILE`, …) pauses the listener, since polling on would spin on
   * it; `resume()` accepts again.
   */
  start(cb: (err: NativeError | null, socket: NativeSocket | null, peer: SocketAddress | null) => void): void
  /** Stops polling for connections (they wait in the backlog); the listener then does not keep the loop alive. */
  pause(): void
  /** Polls for connections again. */
  resume(): void
  /** Closes the socket; idempotent, safe from inside callbacks; no callback runs afterwards. */
  close(): void
}

/** What a socket's callback reports: the values of {@link SocketEvent}. */
export type SocketEvent = (typeof SocketEvent)[keyof typeof SocketEvent]

/** A connected stream socket. */
export interface NativeSocket {
  /** The descriptor (a SOCKET on Windows); -1 once closed. */
  readonly fd: number
  /** The remote address, captured at accept / connect. */
  readonly peer: SocketAddress | null
  /** The peer process's uid (SO_PEERCRED) on AF_UNIX; null for other families. */
  readonly peerUid: number | null
  /** Bytes queued in the engine, not yet taken by the kernel. */
  readonly queued: number
  /** The local address (getsockname). Throws `EBADF` once closed. */
  address(): SocketAddress
  /**
   * Registers the one callback (replacing any earlier one): `data` with the
   * bytes of one read (one per wake-up, up to 256 KiB) as chunks of at most
   * {@link ReadSize} bytes, in order (Buffers; a rest of at most 4 KiB is a
   * Uint8Array view of a shared slab); `end` (the peer's EOF), `error` (the
   * first failure, once: the socket is then stopped in both directions and
   * its queue dropped), `drain` (the queue emptied), `connect` (error or null),
   * `piped` (`pipeFrom` reached its descriptor's end and sent everything),
   * `progress` (a pump has moved more since the last: a MiB while busy, or
   * whatever came when its source goes quiet; read `piped`).
   */
  setCallback(
    cb: (event: SocketEvent, err: NativeError | null, chunks: ReadonlyArray<Uint8Array> | null) => void
  ): void
  /** Starts reading. */
  readStart(): void
  /** Stops reading: the socket is no longer polled for reads, so the kernel buffer fills and the peer is held back. */
  readStop(): void
  /**
   * Sends what the kernel takes at once (one gather syscall where possible)
   * and queues a copy of the rest, so the caller may reuse its buffers.
   * Returns the bytes now queued. Throws a {@link NativeError}: the failure
   * of the connection found by this call (it is not reported through the
   * callback), `EPIPE` after `shutdown()`, `EBADF` after `close()`; a
   * `TypeError` for chunks that are not Uint8Arrays.
   */
  write(chunks: ReadonlyArray<Uint8Array>): number
  /**
   * Linux: from now on moves what the peer sends into `fd` inside the kernel
   * (splice through a pipe of the socket's own; read/write for a destination
   * that refuses splice), with no `data` events and no bytes in JavaScript.
   * `fd` is duplicated: the caller keeps and closes its own. `readStart` /
   * `readStop` still start and stop it; while `fd` is full (a pipe whose
   * reader is slow) the socket is not read, so the peer is held back. `end`
   * comes once everything before the peer's EOF is in `fd`; a failure is
   * `error`: `syscall` `read` for the socket's, `splice` for the
   * destination's (whatever call found it). Throws
   * `ENOSYS` where there is no splice, `EBADF` for a bad `fd` or a closed
   * socket, `EBUSY` while a pump runs or once ended, `EINVAL` for a blocking
   * socket (it would block the loop; a blocking character device, a
   * terminal say, is opened anew, non-blocking).
   */
  pipeTo(fd: number): void
  /**
   * Linux: sends what `fd` (a FIFO, pipe, file; duplicated, the caller keeps
   * its own) holds until its end, inside the kernel, then reports `piped`.
   * An empty FIFO or pipe is polled for input; a FIFO with no writer reads
   * as ended. No half-close (that is `shutdown()`'s). `write` and `shutdown`
   * throw `EBUSY` meanwhile. Failures: `error` with `syscall` `write` for
   * the socket's, `splice` for the descriptor's. Throws like `pipeTo`, and
   * `EBUSY` while bytes are queued or after `shutdown()`.
   */
  pipeFrom(fd: number): void
  /** Bytes {@link NativeSocket.pipeTo} / {@link NativeSocket.pipeFrom} have moved. */
  readonly piped: number
  /** Half-closes (SHUT_WR) now; reading goes on. Throws `EBUSY` while bytes are queued (wait for `drain`), `EBADF` after `close()`. */
  shutdown(): void
  /** Closes both directions; idempotent, safe mid-operation and from inside callbacks; no callback runs afterwards. */
  close(): void
}

/** The compiled binding (src/*.cc). */
interface Binding {
  listen(address: SocketAddress, backlog: number | undefined): NativeListener
  connect(address: SocketAddress): NativeSocket
  supports(family: string): boolean
  openHandles(): number
  encodeAddress(address: SocketAddress): Buffer
  readonly events: {
    readonly data: 0
    readonly end: 1
    readonly error: 2
    readonly drain: 3
    readonly connect: 4
    readonly piped: 5
    readonly progress: 6
  }
  readonly constants: {
    readonly AF_VSOCK: number
    readonly AF_HYPERV: number
    readonly readSize: number
    readonly builtForNode: string
  }
}

const require = createRequire(import.meta.url)
// lib/index.ts (tests) and dist/index.js (built) both sit one level below the
// package root, where node-gyp-build finds build/ or prebuilds/.
// GCS_NATIVE_DIR points at another build (scripts/asan.sh's AddressSanitizer build).
const binding = (require("node-gyp-build") as (dir: string) => Binding)(
  process.env.GCS_NATIVE_DIR ?? fileURLToPath(new URL("..", import.meta.url))
)

/** The events a socket's callback reports, by name. */
export const SocketEvent = binding.events

/** The most bytes one Buffer of a `data` event holds: 64 KiB. */
export const ReadSize = binding.constants.readSize

/** Address-family constants (GCS-PROTOCOL §13.3, §13.4), and the Node version whose headers the addon was built against. */
export const constants = {
  AF_VSOCK: binding.constants.AF_VSOCK,
  AF_HYPERV: binding.constants.AF_HYPERV,
  VMADDR_CID_ANY: 0xffffffff,
  VMADDR_CID_HYPERVISOR: 0,
  VMADDR_CID_LOCAL: 1,
  VMADDR_CID_HOST: 2,
  VMADDR_PORT_ANY: 0xffffffff,
  builtForNode: binding.constants.builtForNode
} as const

/** Whether `value` is an error raised by the engine. */
export const isNativeError = (value: unknown): value is NativeError =>
  value instanceof Error &&
  typeof (value as { code?: unknown }).code === "string" &&
  typeof (value as { syscall?: unknown }).syscall === "string" &&
  typeof (value as { errno?: unknown }).errno === "number"

/**
 * Opens a socket bound to `address` and listening with `backlog` (default
 * 511). Unix paths must not exist yet (remove stale ones first); vsock takes
 * `VMADDR_CID_ANY` / `VMADDR_PORT_ANY`. Throws a {@link NativeError}:
 * `EINVAL` for a malformed address, `EAFNOSUPPORT` for a family this
 * platform or kernel lacks, `EADDRINUSE`, `ENAMETOOLONG`, `EACCES`, ….
 */
export const listen = (address: SocketAddress, backlog?: number): NativeListener =>
  binding.listen(address, backlog)

/**
 * Connects to `address` without blocking. `cb` runs exactly once, always
 * asynchronously, with the connected socket or a {@link NativeError}
 * (`ENOENT`, `ECONNREFUSED`, `EAGAIN` for a full Unix backlog, `EINVAL`,
 * `EAFNOSUPPORT`, …) — unless `cancel()` came first, after which it never
 * runs and the half-open socket is closed. The socket's callback is the
 * caller's to set afterwards.
 */
export const connect = (
  address: SocketAddress,
  cb: (err: NativeError | null, socket: NativeSocket | null) => void
): { cancel(): void } => {
  let pending = true
  let socket: NativeSocket | undefined
  // The first outcome wins: a failure or a cancel closes the socket, and only a cancel goes unreported.
  const settle = (err: NativeError | null, report = true) => {
    if (!pending) return
    pending = false
    if (err !== null || !report) socket?.close()
    if (report) cb(err, err === null ? socket! : null)
  }
  try {
    socket = binding.connect(address)
    socket.setCallback((event, err) => event === SocketEvent.connect && settle(err))
  } catch (cause) {
    if (!isNativeError(cause)) throw cause
    process.nextTick(() => settle(cause))
  }
  return { cancel: () => settle(null, false) }
}

/**
 * Whether sockets of `family` can be opened here: the platform has them in
 * this build (unix and vsock on Linux, hyperv on Windows) and the kernel
 * accepts one (e.g. a vsock transport is loaded).
 */
export const supports = (family: Family): boolean => binding.supports(family)

/**
 * Listeners and sockets of this environment whose libuv handle has not
 * finished closing. A handle leaves the count in the loop's close phase after
 * `close()`, so a leak test awaits one macrotask (e.g. `setImmediate`) after
 * closing before it expects 0.
 */
export const openHandles = (): number => binding.openHandles()

/**
 * The bytes the engine hands to bind/connect for `address` (sockaddr_un,
 * sockaddr_vm, SOCKADDR_HV). Hyper-V addresses encode on every platform;
 * the others only where the family exists. Throws a {@link NativeError}
 * (`EINVAL`, `ENAMETOOLONG`, `EAFNOSUPPORT`).
 */
export const encodeAddress = (address: SocketAddress): Uint8Array => binding.encodeAddress(address)
