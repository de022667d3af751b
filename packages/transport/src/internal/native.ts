/**
 * vsock, Hyper-V sockets, unix and hybrid through the native engine
 * (`@gcs-bridge/native`, an optional dependency loaded on first use). The
 * engine polls a socket for reads only between readStart and readStop, so
 * the Connection's pull drives the kernel reads.
 *
 * Peer checks: a vsock peer must come from the address's CID (unless
 * `vsock://any`), a Hyper-V peer from the address's VM id, and an AF_UNIX peer
 * must run under our uid or root (SO_PEERCRED).
 */
import { Effect } from "effect"
import type { Duration, Scope } from "effect"
import type * as Native from "@gcs-bridge/native"
import type { Address, MemoryAddress } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { DefaultBacklog, dialWithin, handOver } from "./dial.js"
import type { Target } from "./errors.js"
import { describe, transportError, unsupported } from "./errors.js"
import { vsockServiceId } from "./guid.js"
import { makeListener } from "./listener.js"
import { ourUid, peerRefusal } from "./peer.js"
import type { RawSocket } from "./rawSocket.js"
import { toRawError } from "./rawSocket.js"
import { checkSocketPathLength, listenOnSocketFile, portSocketPath } from "./socketFile.js"

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

/** Adapts a native socket to the RawSocket shape. */
export const fromNativeSocket = (native: NativeModule, socket: Native.NativeSocket): RawSocket => ({
  bind: (events) =>
    socket.setCallback((event, err, chunk) => {
      if (event === native.SocketEvent.data) events.data(chunk!)
      else if (event === native.SocketEvent.end) events.end()
      else if (event === native.SocketEvent.error) events.error(toRawError(err))
      else if (event === native.SocketEvent.drain) events.drain()
    }),
  readStart: () => socket.readStart(),
  readStop: () => socket.readStop(),
  write: (chunks) => socket.write(chunks) <= HighWaterMark,
  get queued() {
    return socket.queued
  },
  shutdown: () => socket.shutdown(),
  close: () => socket.close()
})

/** The engine address for vsock port `port` of `address`: what a listener binds, or what `connect` dials. */
const engineAddress = (
  native: NativeModule,
  address: Exclude<Address, MemoryAddress>,
  port: number,
  side: "listen" | "connect"
): Native.SocketAddress => {
  switch (address._tag) {
    case "VsockAddress":
      // The host binds CID any; which VM may connect is checked per peer.
      return {
        family: "vsock",
        cid: address.cid === "any" ? native.constants.VMADDR_CID_ANY : address.cid,
        port
      }
    case "HvsockAddress":
      return { family: "hyperv", vmId: address.vmId, serviceId: vsockServiceId(port) }
    case "UnixAddress":
    case "HybridAddress":
      return {
        family: "unix",
        path:
          side === "connect" && address._tag === "HybridAddress"
            ? address.path
            : portSocketPath(address.path, port)
      }
  }
}

const peerIdentity = (socket: Native.NativeSocket, port: number): PeerIdentity => {
  const peer = socket.peer
  if (peer?.family === "vsock") return { family: "vsock", cid: peer.cid, port }
  if (peer?.family === "hyperv") return { family: "hvsock", vmId: peer.vmId.toLowerCase(), port }
  return socket.peerUid === null ? { family: "unix", port } : { family: "unix", port, uid: socket.peerUid }
}

/** The engine address, or EAFNOSUPPORT for a family this platform or kernel lacks. */
const supported = (
  native: NativeModule,
  phase: "Listen" | "Connect",
  where: Target,
  engine: Native.SocketAddress
) =>
  native.supports(engine.family)
    ? Effect.succeed(engine)
    : Effect.fail(
        unsupported(
          phase,
          where,
          `the native engine on ${process.platform} does not support ${{ vsock: "AF_VSOCK", hyperv: "AF_HYPERV", unix: "AF_UNIX" }[engine.family]} sockets`
        )
      )

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
  return Effect.flatMap(
    supported(native, "Listen", where, engineAddress(native, address, port, "listen")),
    (bind) => {
      const open = Effect.gen(function* () {
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
            catch: (cause) => {
              const raw = toRawError(cause, "listen")
              return transportError(
                "Listen",
                where,
                `cannot listen on ${describe(where)}: ${raw.message}`,
                raw
              )
            }
          }),
          (listener) => Effect.sync(() => (clearTimeout(retry), listener.close()))
        )
        engine.current = listener
        listener.start((err, socket) => {
          if (socket !== null) {
            return core.offer({ raw: fromNativeSocket(native, socket), peer: peerIdentity(socket, port) })
          }
          const raw = toRawError(err, "accept")
          const error = transportError("Accept", where, `${describe(where)}: ${raw.message}`, raw)
          if (!transientAcceptErrors.has(raw.code)) return core.fail(error)
          // Out of descriptors or memory: retrying at once would spin.
          core.warn(`${error.message}; accepting again in ${AcceptRetryMillis} ms`)
          retry ??= setTimeout(() => {
            retry = undefined
            if (!queueFull) listener.resume()
          }, AcceptRetryMillis)
        })
        return core.listener
      })
      return bind.family === "unix" ? listenOnSocketFile(bind.path, where, open) : open
    }
  )
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
    return Effect.fail(
      transportError("Connect", where, why, { code: "EINVAL", syscall: "connect", message: why })
    )
  }
  const hybrid = address._tag === "HybridAddress"
  return Effect.flatMap(
    supported(native, "Connect", where, engineAddress(native, address, port, "connect")),
    (dial) =>
      dialWithin(
        where,
        hybrid,
        timeout,
        Effect.gen(function* () {
          if (dial.family === "unix") yield* checkSocketPathLength(dial.path, where, "Connect")
          // What the engine hands over belongs to this (child) scope from the moment it exists.
          let connected: Native.NativeSocket | undefined
          yield* Effect.addFinalizer(() => Effect.sync(() => connected?.close()))
          const socket = yield* Effect.callback<Native.NativeSocket, TransportError>((resume) => {
            const request = native.connect(dial, (err, socket) => {
              if (socket !== null) return resume(Effect.succeed((connected = socket)))
              const raw = toRawError(err, "connect")
              resume(
                Effect.fail(
                  transportError(
                    "Connect",
                    where,
                    `cannot connect to ${describe(where)}: ${raw.message}`,
                    raw
                  )
                )
              )
            })
            return Effect.sync(() => request.cancel())
          })
          return yield* handOver(fromNativeSocket(native, socket), hybrid, where, peerIdentity(socket, port))
        })
      )
  )
}
