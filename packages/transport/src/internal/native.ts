/**
 * vsock, Hyper-V, unix and hybrid sockets through `@gcs-bridge/native` (optional, loaded on first use), which
 * polls for reads only between readStart and readStop, so the Connection's pull drives the kernel reads.
 * Peer checks: a vsock peer must come from the address's CID (unless `vsock://any`), a Hyper-V peer from the
 * address's VM id, and an AF_UNIX peer must run under our uid or root (SO_PEERCRED).
 */
import { type Duration, Effect, type Scope } from "effect"
import type * as Native from "@gcs-bridge/native"
import { type Address, formatAddress, type MemoryAddress } from "../Address.js"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { dial } from "./connection.js"
import { vsockServiceId } from "./guid.js"
import { DefaultBacklog, makeListener, ourUid, peerRefusal } from "./listener.js"
import {
  describe,
  osError,
  type RawEvents,
  type RawSocket,
  toRawError,
  transportError,
  unsupported
} from "./rawSocket.js"
import { checkSocketPathLength, listenOnSocketFile, socketPath } from "./socketFile.js"

/** The part of `@gcs-bridge/native` this engine uses (a parameter, so tests can observe it). */
export type NativeModule = Pick<
  typeof Native,
  "listen" | "connect" | "supports" | "constants" | "SocketEvent"
>

/** Policy knobs of the native engine. */
export interface NativeEngineOptions {
  /** The uid an AF_UNIX peer must have (root is always accepted); default: this process's uid. */
  readonly uid?: number
}

/** Queued bytes above which a write waits for the engine's drain. */
const HighWaterMark = 64 * 1024
/** Pause after a transient accept failure before the engine accepts again. */
const AcceptRetryMillis = 100
/** accept(2) failures that concern one connection, not the listener. */
const transientAcceptErrors = new Set(
  "ECONNABORTED EMFILE ENFILE ENOBUFS ENOMEM EAGAIN EWOULDBLOCK EINTR EPROTO EPERM ETIMEDOUT".split(" ")
)

// A class, not an object of closures: its methods are shared by every connection instead of made per socket.
class NativeRawSocket implements RawSocket {
  constructor(
    private readonly native: NativeModule,
    private readonly socket: Native.NativeSocket
  ) {}
  bind(events: RawEvents) {
    const { data, end, error, drain, piped, progress } = this.native.SocketEvent
    this.socket.setCallback((event, err, chunks) => {
      if (event === data) events.data(chunks!)
      else if (event === end) events.end()
      else if (event === error) events.error(toRawError(err))
      else if (event === drain) events.drain()
      else if (event === piped) events.piped?.()
      else if (event === progress) events.progress?.()
    })
  }
  readStart() {
    this.socket.readStart()
  }
  readStop() {
    this.socket.readStop()
  }
  write(chunks: ReadonlyArray<Uint8Array>) {
    return this.socket.write(chunks) <= HighWaterMark
  }
  get queued() {
    return this.socket.queued
  }
  pipeTo(fd: number) {
    this.socket.pipeTo(fd)
  }
  pipeFrom(fd: number) {
    this.socket.pipeFrom(fd)
  }
  get piped() {
    return this.socket.piped
  }
  // The addon half-closes only an empty queue: nothing is left to flush.
  shutdown(flushed: () => void) {
    this.socket.shutdown()
    flushed()
  }
  close() {
    this.socket.close()
  }
  handoff() {
    return this.socket.fd >= 0 ? this.socket.fd : undefined
  }
}

const peerIdentity = (socket: Native.NativeSocket, port: number): PeerIdentity => {
  const peer = socket.peer
  if (peer?.family === "vsock") return { family: "vsock", cid: peer.cid, port }
  if (peer?.family === "hyperv") return { family: "hvsock", vmId: peer.vmId.toLowerCase(), port }
  return socket.peerUid === null ? { family: "unix", port } : { family: "unix", port, uid: socket.peerUid }
}

/** The engine address a listener binds / `connect` dials, or EAFNOSUPPORT for a family the platform lacks. */
const engineAddress = (
  native: NativeModule,
  address: Exclude<Address, MemoryAddress>,
  port: number,
  phase: "Listen" | "Connect"
): Effect.Effect<Native.SocketAddress, TransportError> => {
  const engine: Native.SocketAddress =
    address._tag === "VsockAddress"
      ? // The host binds CID any; which VM may connect is checked per peer.
        { family: "vsock", cid: address.cid === "any" ? native.constants.VMADDR_CID_ANY : address.cid, port }
      : address._tag === "HvsockAddress"
        ? { family: "hyperv", vmId: address.vmId, serviceId: vsockServiceId(port) }
        : { family: "unix", path: socketPath(address, port, phase) }
  if (native.supports(engine.family)) return Effect.succeed(engine)
  const family = { vsock: "AF_VSOCK", hyperv: "AF_HYPERV", unix: "AF_UNIX" }[engine.family]
  const why = `the native engine on ${process.platform} does not support ${family} sockets`
  return Effect.fail(unsupported(phase, { address: formatAddress(address), port }, why))
}

/** Listens through the native engine. */
export const listenNative = (
  native: NativeModule,
  address: Exclude<Address, MemoryAddress>,
  port: number,
  backlog = DefaultBacklog,
  options: NativeEngineOptions = {}
): Effect.Effect<Listener, TransportError, Scope.Scope> => {
  const where = { address: formatAddress(address), port }
  const uid = options.uid ?? ourUid()
  return Effect.flatMap(engineAddress(native, address, port, "Listen"), (bind) => {
    const open = (bind: Native.SocketAddress) =>
      Effect.gen(function* () {
        // The engine pauses itself after an accept error, and the queue may pause it:
        // it runs again only when neither holds it back.
        let queueFull = false
        let retry: ReturnType<typeof setTimeout> | undefined
        const engine: { current?: Native.NativeListener } = {}
        const core = yield* makeListener({
          address,
          port,
          target: where,
          verify: (peer) => peerRefusal(address, peer, uid),
          maxPending: backlog,
          pauseSource: () => {
            queueFull = true
            engine.current?.pause()
          },
          resumeSource: () => {
            queueFull = false
            if (retry === undefined) engine.current?.resume()
          }
        })
        const listener = yield* Effect.acquireRelease(
          Effect.try({
            try: () => native.listen(bind, backlog),
            catch: (cause) => osError("Listen", where, `cannot listen on ${describe(where)}`, cause, "listen")
          }),
          (listener) => Effect.sync(() => (clearTimeout(retry), listener.close()))
        )
        engine.current = listener
        listener.start((err, socket) => {
          if (socket !== null) {
            return core.offer({ raw: new NativeRawSocket(native, socket), peer: peerIdentity(socket, port) })
          }
          const error = osError("Accept", where, describe(where), err, "accept")
          if (!transientAcceptErrors.has(error.code!)) return core.fail(error)
          // Out of descriptors or memory: retrying at once would spin.
          core.warn(`${error.message}; accepting again in ${AcceptRetryMillis} ms`)
          retry ??= setTimeout(() => {
            retry = undefined
            if (!queueFull) listener.resume()
          }, AcceptRetryMillis)
        })
        return core.listener
      })
    return bind.family === "unix"
      ? listenOnSocketFile(bind.path, where, (path) => open({ family: "unix", path }))
      : open(bind)
  })
}

/** Connects through the native engine. */
export const connectNative = (
  native: NativeModule,
  address: Exclude<Address, MemoryAddress>,
  port: number,
  timeout: Duration.Input | undefined
): Effect.Effect<Connection, TransportError, Scope.Scope> => {
  const where = { address: formatAddress(address), port }
  if (address._tag === "VsockAddress" && address.cid === "any") {
    const why = "vsock://any is a listening address; connect needs the CID of a VM"
    return Effect.fail(transportError("Connect", where, why, "EINVAL", "connect"))
  }
  return Effect.flatMap(engineAddress(native, address, port, "Connect"), (to) =>
    dial(address, port, timeout, (where) =>
      Effect.gen(function* () {
        if (to.family === "unix") yield* checkSocketPathLength(to.path, where, "Connect")
        // What the engine hands over belongs to this (child) scope from the moment it exists.
        let connected: Native.NativeSocket | undefined
        yield* Effect.addFinalizer(() => Effect.sync(() => connected?.close()))
        const socket = yield* Effect.callback<Native.NativeSocket, TransportError>((resume) => {
          const request = native.connect(to, (err, socket) => {
            if (socket !== null) return resume(Effect.succeed((connected = socket)))
            const what = `cannot connect to ${describe(where)}`
            resume(Effect.fail(osError("Connect", where, what, err, "connect")))
          })
          return Effect.sync(() => request.cancel())
        })
        return [new NativeRawSocket(native, socket), peerIdentity(socket, port)] as const
      })
    )
  )
}
