/**
 * Unix and hybrid vsock over Node's `net`. A socket is kept paused except
 * while the Connection asks for bytes (pause/resume), so Node's own readable
 * buffer, which stops the libuv read at its high-water mark, is the only
 * buffering below the Connection's read-ahead.
 */
import * as net from "node:net"
import { setImmediate } from "node:timers"
import { Duration, Effect } from "effect"
import type { Scope } from "effect"
import type { HybridAddress, UnixAddress } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { Connection } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import type { Target } from "./errors.js"
import { describe, transportError } from "./errors.js"
import { hybridHandshake } from "./hybrid.js"
import { inChildScope } from "./scope.js"
import { ListenerCore } from "./listener.js"
import type { RawError, RawSocket } from "./rawSocket.js"
import { toRawError } from "./rawSocket.js"
import {
  checkSocketPathLength,
  claimSocketFile,
  portSocketPath,
  prepareSocketFile,
  removeSocketFile
} from "./socketFile.js"

/** Accept backlog when the caller gives none (go-winio uses 16; stdio listeners need 1). */
export const DefaultBacklog = 16

/** Deadline of a hybrid connect (dial + CONNECT/OK) when the caller gives none. */
export const DefaultHybridConnectTimeout = Duration.seconds(10)

/** Adapts a `net.Socket` (paused from here on) to the RawSocket shape. */
export const fromNetSocket = (socket: net.Socket): RawSocket => {
  let dataCb: (chunk: Uint8Array | null) => void = () => {}
  let errorCb: ((error: RawError) => void) | undefined
  let drainCb: () => void = () => {}
  let pendingError: RawError | undefined
  let ended = false
  let closed = false
  socket.pause()
  socket.on("data", (chunk: Buffer) => dataCb(chunk))
  socket.on("end", () => {
    ended = true
    dataCb(null)
  })
  socket.on("drain", () => drainCb())
  const raise = (error: RawError) => {
    if (closed || pendingError !== undefined) return
    pendingError = error
    errorCb?.(error)
  }
  socket.on("error", (cause) => raise(toRawError(cause)))
  socket.on("close", () => {
    // A close that was neither our own, nor after EOF, nor after an error: the peer reset us.
    if (!ended) raise({ code: "ECONNRESET", syscall: "read", message: "connection reset by peer" })
  })
  return {
    onData: (cb) => {
      dataCb = cb
    },
    onError: (cb) => {
      errorCb = cb
      const error = pendingError
      if (error !== undefined) setImmediate(() => (closed || errorCb !== cb ? undefined : cb(error)))
    },
    onDrain: (cb) => {
      drainCb = cb
    },
    readStart: () => {
      socket.resume()
    },
    readStop: () => {
      socket.pause()
    },
    write: (chunk) => socket.write(chunk),
    writev: (chunks) => {
      // Corked writes reach libuv as one writev.
      socket.cork()
      let ok = true
      for (const chunk of chunks) ok = socket.write(chunk)
      socket.uncork()
      // Node arms 'drain' exactly when a write returns false, so its answer is the one to pass on.
      return ok
    },
    shutdown: (cb) => {
      if (socket.destroyed) return cb({ code: "EPIPE", syscall: "shutdown", message: "socket is closed" })
      socket.end((cause?: unknown) => {
        if (!closed) cb(cause === undefined || cause === null ? null : toRawError(cause, "shutdown"))
      })
    },
    close: () => {
      if (closed) return
      closed = true
      socket.destroy()
    }
  }
}

const target = (address: UnixAddress | HybridAddress, port: number): Target => ({
  address: formatAddress(address),
  port
})

/** Listens on `<path>_<port>` through `net.Server`. */
export const listenNode = (
  address: UnixAddress | HybridAddress,
  port: number,
  backlog: number | undefined
): Effect.Effect<Listener, TransportError, Scope.Scope> => {
  const where = target(address, port)
  const path = portSocketPath(address.path, port)
  return Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    yield* prepareSocketFile(path, where)
    const { core } = yield* Effect.acquireRelease(
      Effect.async<{ server: net.Server; core: ListenerCore }, TransportError>((resume) => {
        const core = new ListenerCore({
          address,
          port,
          target: where,
          verify: () => undefined,
          maxPending: backlog ?? DefaultBacklog,
          runtime
        })
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true })
        server.on("connection", (socket) =>
          core.offer({ raw: fromNetSocket(socket), peer: { family: "unix", port } })
        )
        const onListenError = (cause: Error) => {
          server.close()
          const raw = toRawError(cause, "listen")
          resume(
            Effect.fail(transportError("Listen", where, `cannot listen on ${path}: ${raw.message}`, raw))
          )
        }
        server.once("error", onListenError)
        server.listen({ path, backlog: backlog ?? DefaultBacklog }, () => {
          server.off("error", onListenError)
          server.on("error", (cause) =>
            core.fail(
              transportError("Accept", where, `${path}: ${cause.message}`, toRawError(cause, "accept"))
            )
          )
          resume(Effect.succeed({ server, core }))
        })
      }),
      ({ server, core }) =>
        Effect.sync(() => {
          core.close()
          server.close()
        })
    )
    const identity = yield* claimSocketFile(path, where)
    yield* Effect.addFinalizer(() => removeSocketFile(identity))
    return core.toListener()
  })
}

/** Fails with a Connect error unless `socket` connects; the socket belongs to the caller's scope. */
const awaitConnect = (socket: net.Socket, where: Target, path: string): Effect.Effect<void, TransportError> =>
  Effect.async<void, TransportError>((resume) => {
    const onConnect = () => {
      socket.off("error", onError)
      resume(Effect.void)
    }
    const onError = (cause: Error) => {
      socket.off("connect", onConnect)
      const raw = toRawError(cause, "connect")
      resume(Effect.fail(transportError("Connect", where, `cannot connect to ${path}: ${raw.message}`, raw)))
    }
    socket.once("connect", onConnect)
    socket.once("error", onError)
    return Effect.sync(() => {
      socket.off("connect", onConnect)
      socket.off("error", onError)
    })
  })

const connectTimeout = (where: Target, duration: Duration.DurationInput) =>
  transportError(
    "ConnectTimeout",
    where,
    `connecting to ${describe(where)} took longer than ${Duration.format(duration)}`,
    {
      code: "ETIMEDOUT",
      syscall: "connect",
      message: "connect timed out"
    }
  )

/**
 * unix: connects to `<path>_<port>`; hybrid: dials `<path>` and runs the
 * CONNECT/OK handshake, within `timeout` (default 10 s for hybrid, none for unix).
 */
export const connectNode = (
  address: UnixAddress | HybridAddress,
  port: number,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<Connection, TransportError, Scope.Scope> => {
  const where = target(address, port)
  const hybrid = address._tag === "HybridAddress"
  const path = hybrid ? address.path : portSocketPath(address.path, port)
  const deadline = timeout ?? (hybrid ? DefaultHybridConnectTimeout : undefined)
  const open = Effect.gen(function* () {
    yield* checkSocketPathLength(path, where, "Connect")
    const { socket, raw } = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const socket = net.createConnection({ path, allowHalfOpen: true })
        return { socket, raw: fromNetSocket(socket) }
      }),
      ({ raw }) => Effect.sync(() => raw.close())
    )
    yield* awaitConnect(socket, where, path)
    const leftover = hybrid ? (yield* hybridHandshake(raw, port, where)).leftover : []
    return yield* makeConnection({
      raw,
      target: where,
      description: describe(where),
      peer: { family: "unix", port },
      initial: leftover
    })
  })
  return inChildScope(
    deadline === undefined
      ? open
      : Effect.timeoutFail(open, { duration: deadline, onTimeout: () => connectTimeout(where, deadline) })
  )
}
