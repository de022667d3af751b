/**
 * vsock, Hyper-V sockets, unix and hybrid through the native engine
 * (`@gcs-bridge/native`). The engine polls a socket for reads only between
 * readStart and readStop, so the Connection's pull drives the kernel reads.
 *
 * Peer checks: a vsock peer must come from the address's CID (unless
 * `vsock://any`), a Hyper-V peer from the address's VM id, and an AF_UNIX peer
 * must run under our uid or root (SO_PEERCRED).
 */
import { Duration, Effect } from "effect"
import type { Scope } from "effect"
import type * as Native from "@gcs-bridge/native"
import type { Address } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import type { Target } from "./errors.js"
import { describe, transportError } from "./errors.js"
import { vsockServiceId } from "./guid.js"
import { hybridHandshake } from "./hybrid.js"
import { ListenerCore } from "./listener.js"
import type { RawError, RawSocket } from "./rawSocket.js"
import { toRawError } from "./rawSocket.js"
import { ourUid, peerRefusal } from "./peer.js"
import { inChildScope } from "./scope.js"
import {
  checkSocketPathLength,
  claimSocketFile,
  portSocketPath,
  prepareSocketFile,
  removeSocketFile
} from "./socketFile.js"

/** The part of `@gcs-bridge/native` this engine uses (a parameter, so tests can observe it). */
export type NativeModule = Pick<typeof Native, "listen" | "connect" | "supports" | "constants">

/** Policy knobs of the native engine. */
export interface NativeEngineOptions {
  /** The uid an AF_UNIX peer must have (root is always accepted); default: this process's uid. */
  readonly uid?: number
}

/** Accept backlog when the caller gives none (go-winio uses 16). */
const DefaultBacklog = 16

/** Deadline of a hybrid connect (dial + CONNECT/OK) when the caller gives none. */
const DefaultHybridConnectTimeout = Duration.seconds(10)

/** Pause after a transient accept failure before the engine accepts again. */
const AcceptRetryMillis = 100

/** accept(2) failures that concern one connection, not the listener. */
const transientAcceptErrors = new Set([
  "ECONNABORTED",
  "EMFILE",
  "ENFILE",
  "ENOBUFS",
  "ENOMEM",
  "EAGAIN",
  "EWOULDBLOCK",
  "EINTR",
  "EPROTO",
  "EPERM",
  "ETIMEDOUT"
])

/** Adapts a native socket to the RawSocket shape. */
export const fromNativeSocket = (socket: Native.NativeSocket): RawSocket => {
  let dataCb: (chunk: Uint8Array | null) => void = () => {}
  let errorCb: (error: RawError) => void = () => {}
  let drainCb: () => void = () => {}
  socket.onData((err, chunk) => (err !== null ? errorCb(toRawError(err, "read")) : dataCb(chunk)))
  socket.onDrain(() => drainCb())
  return {
    onData: (cb) => {
      dataCb = cb
    },
    onError: (cb) => {
      errorCb = cb
    },
    onDrain: (cb) => {
      drainCb = cb
    },
    readStart: () => socket.readStart(),
    readStop: () => socket.readStop(),
    write: (chunk) => socket.write(chunk),
    writev: (chunks) => socket.writev(chunks),
    shutdown: (cb) => socket.shutdown((err) => cb(err === null ? null : toRawError(err, "shutdown"))),
    close: () => socket.close()
  }
}

type Family = "vsock" | "hyperv" | "unix"

const familyOf = (address: Address): Family | undefined => {
  switch (address._tag) {
    case "VsockAddress":
      return "vsock"
    case "HvsockAddress":
      return "hyperv"
    case "UnixAddress":
    case "HybridAddress":
      return "unix"
    case "MemoryAddress":
      return undefined
  }
}

/** The engine address a listener binds for vsock port `port`. */
const bindAddress = (
  native: NativeModule,
  address: Address,
  port: number
): Native.SocketAddress | undefined => {
  switch (address._tag) {
    case "VsockAddress":
      // The host binds CID any; which VM may connect is checked per peer.
      return { family: "vsock", cid: native.constants.VMADDR_CID_ANY, port }
    case "HvsockAddress":
      return { family: "hyperv", vmId: address.vmId, serviceId: vsockServiceId(port) }
    case "UnixAddress":
    case "HybridAddress":
      return { family: "unix", path: portSocketPath(address.path, port) }
    case "MemoryAddress":
      return undefined
  }
}

const peerIdentity = (
  socket: Native.NativeSocket,
  peer: Native.SocketAddress | null,
  port: number
): PeerIdentity => {
  const address = peer ?? socket.peer
  if (address?.family === "vsock") return { family: "vsock", cid: address.cid, port }
  if (address?.family === "hyperv") return { family: "hvsock", vmId: address.vmId.toLowerCase(), port }
  return socket.peerUid === null ? { family: "unix", port } : { family: "unix", port, uid: socket.peerUid }
}

const unsupportedFamily = (phase: "Listen" | "Connect", where: Target, family: Family) =>
  Effect.fail(
    transportError(
      phase,
      where,
      `the native engine on ${process.platform} does not support ${family === "hyperv" ? "AF_HYPERV" : family === "vsock" ? "AF_VSOCK" : "AF_UNIX"} sockets`,
      { code: "EAFNOSUPPORT", syscall: "socket", message: "address family not supported" }
    )
  )

/** Listens through the native engine (not for memory addresses). */
export const listenNative = (
  native: NativeModule,
  address: Address,
  port: number,
  backlog: number | undefined,
  options: NativeEngineOptions = {}
): Effect.Effect<Listener, TransportError, Scope.Scope> => {
  const where: Target = { address: formatAddress(address), port }
  const family = familyOf(address)
  const bind = bindAddress(native, address, port)
  if (family === undefined || bind === undefined) return Effect.die(new Error("listenNative: memory address"))
  if (!native.supports(family)) return unsupportedFamily("Listen", where, family)
  const uid = options.uid ?? ourUid()
  return Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    if (bind.family === "unix") yield* prepareSocketFile(bind.path, where)
    const core = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const listener = native.listen(bind, backlog ?? DefaultBacklog)
          // The engine pauses itself after an accept error; the queue may pause it too.
          // It runs again only when neither holds it back.
          let queueFull = false
          let retry: ReturnType<typeof setTimeout> | undefined
          const core: ListenerCore = new ListenerCore({
            address,
            port,
            target: where,
            verify: (peer) => peerRefusal(address, peer, uid),
            maxPending: backlog ?? DefaultBacklog,
            pauseSource: () => {
              queueFull = true
              listener.pause()
            },
            resumeSource: () => {
              queueFull = false
              if (retry === undefined) listener.resume()
            },
            runtime
          })
          listener.onConnection((err, socket, peer) => {
            if (err !== null) {
              const raw = toRawError(err, "accept")
              const error = transportError("Accept", where, `${describe(where)}: ${raw.message}`, raw)
              if (!transientAcceptErrors.has(raw.code)) return core.fail(error)
              core.warn(`${error.message}; accepting again in ${AcceptRetryMillis} ms`)
              // Out of descriptors or memory: retrying at once would spin.
              retry ??= setTimeout(() => {
                retry = undefined
                if (!queueFull) listener.resume()
              }, AcceptRetryMillis)
              return
            }
            if (socket === null) return
            core.offer({ raw: fromNativeSocket(socket), peer: peerIdentity(socket, peer, port) })
          })
          const stop = () => {
            if (retry !== undefined) clearTimeout(retry)
            retry = undefined
            core.close()
            listener.close()
          }
          return { core, stop }
        },
        catch: (cause) => {
          const raw = toRawError(cause, "listen")
          return transportError("Listen", where, `cannot listen on ${describe(where)}: ${raw.message}`, raw)
        }
      }),
      ({ stop }) => Effect.sync(stop)
    ).pipe(Effect.map(({ core }) => core))
    if (bind.family === "unix") {
      const identity = yield* claimSocketFile(bind.path, where)
      yield* Effect.addFinalizer(() => removeSocketFile(identity))
    }
    return core.toListener()
  })
}

const connectTimeout = (where: Target, duration: Duration.DurationInput) =>
  transportError(
    "ConnectTimeout",
    where,
    `connecting to ${describe(where)} took longer than ${Duration.format(duration)}`,
    { code: "ETIMEDOUT", syscall: "connect", message: "connect timed out" }
  )

/** The engine address `connect` dials for vsock port `port`. */
const dialAddress = (address: Address, port: number): Native.SocketAddress | string => {
  switch (address._tag) {
    case "VsockAddress":
      return address.cid === "any"
        ? "vsock://any is a listening address; connect needs the CID of a VM"
        : { family: "vsock", cid: address.cid, port }
    case "HvsockAddress":
      return { family: "hyperv", vmId: address.vmId, serviceId: vsockServiceId(port) }
    case "UnixAddress":
      return { family: "unix", path: portSocketPath(address.path, port) }
    case "HybridAddress":
      return { family: "unix", path: address.path }
    case "MemoryAddress":
      return "memory addresses are not served by the native engine"
  }
}

/** Connects through the native engine (not for memory addresses). */
export const connectNative = (
  native: NativeModule,
  address: Address,
  port: number,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<Connection, TransportError, Scope.Scope> => {
  const where: Target = { address: formatAddress(address), port }
  const dial = dialAddress(address, port)
  if (typeof dial === "string") {
    return Effect.fail(
      transportError("Connect", where, dial, {
        code: "EINVAL",
        syscall: "connect",
        message: "invalid address"
      })
    )
  }
  if (!native.supports(dial.family)) return unsupportedFamily("Connect", where, dial.family)
  const hybrid = address._tag === "HybridAddress"
  const deadline = timeout ?? (hybrid ? DefaultHybridConnectTimeout : undefined)
  const open = Effect.gen(function* () {
    if (dial.family === "unix") yield* checkSocketPathLength(dial.path, where, "Connect")
    // Whatever the engine hands over belongs to this (child) scope from the
    // moment it exists, so a deadline or an interrupt cannot leak it.
    const pending: { socket?: Native.NativeSocket | undefined; cancel?: (() => void) | undefined } = {}
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        pending.cancel?.()
        pending.socket?.close()
      })
    )
    const socket = yield* Effect.async<Native.NativeSocket, TransportError>((resume) => {
      try {
        const request = native.connect(dial, (err, socket) => {
          pending.cancel = undefined
          if (err !== null || socket === null) {
            const raw = toRawError(err ?? new Error("connect failed"), "connect")
            resume(
              Effect.fail(
                transportError("Connect", where, `cannot connect to ${describe(where)}: ${raw.message}`, raw)
              )
            )
          } else {
            pending.socket = socket
            resume(Effect.succeed(socket))
          }
        })
        if (pending.socket === undefined) pending.cancel = () => request.cancel()
      } catch (cause) {
        const raw = toRawError(cause, "connect")
        resume(
          Effect.fail(
            transportError("Connect", where, `cannot connect to ${describe(where)}: ${raw.message}`, raw)
          )
        )
      }
    })
    const raw = fromNativeSocket(socket)
    const leftover = hybrid ? (yield* hybridHandshake(raw, port, where)).leftover : []
    const peer: PeerIdentity =
      dial.family === "vsock"
        ? { family: "vsock", cid: dial.cid, port }
        : dial.family === "hyperv"
          ? { family: "hvsock", vmId: dial.vmId, port }
          : socket.peerUid === null
            ? { family: "unix", port }
            : { family: "unix", port, uid: socket.peerUid }
    return yield* makeConnection({
      raw,
      target: where,
      description: describe(where),
      peer,
      initial: leftover
    })
  })
  return inChildScope(
    deadline === undefined
      ? open
      : Effect.timeoutFail(open, { duration: deadline, onTimeout: () => connectTimeout(where, deadline) })
  )
}
