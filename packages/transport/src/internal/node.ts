/**
 * Unix and hybrid vsock over Node's `net`. A socket stays paused except while the Connection asks for bytes,
 * so Node's readable buffer (which stops libuv at its high-water mark) is all that sits below the read-ahead.
 */
import * as net from "node:net"
import type { Duplex } from "node:stream"
import { once } from "node:events"
import { setImmediate } from "node:timers"
import { type Duration, Effect, type Scope } from "effect"
import { formatAddress, type HybridAddress, type UnixAddress } from "../Address.js"
import type { Connection } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { dial } from "./connection.js"
import { DefaultBacklog, makeListener } from "./listener.js"
import { osError, type RawError, type RawEvents, type RawSocket, toRawError } from "./rawSocket.js"
import { checkSocketPathLength, listenOnSocketFile, socketPath } from "./socketFile.js"

/** Adapts a `net.Socket` (paused from here on) to the RawSocket shape. */
export const fromNetSocket = (socket: Duplex): RawSocket => {
  let events: RawEvents | undefined
  let pending: RawError | undefined
  let failed = false
  let ended = false
  let closed = false
  socket.pause()
  socket.on("data", (chunk: Buffer) => events?.data([chunk]))
  socket.on("end", () => {
    ended = true
    events?.end()
  })
  socket.on("drain", () => events?.drain())
  const raise = (error: RawError) => {
    if (closed || failed) return
    failed = true
    if (events === undefined) pending = error
    else events.error(error)
  }
  socket.on("error", (cause) => raise(toRawError(cause)))
  // A close that was neither our own, nor after EOF, nor after an error: the peer reset us.
  const reset = { code: "ECONNRESET", syscall: "read", message: "connection reset by peer" }
  socket.on("close", () => ended || raise(reset))
  return {
    bind: (handlers) => {
      events = handlers
      const error = pending
      pending = undefined
      if (error !== undefined) setImmediate(() => closed || events !== handlers || handlers.error(error))
    },
    readStart: () => socket.resume(),
    readStop: () => socket.pause(),
    write: (chunks) => {
      // Corked writes reach libuv as one writev; Node arms 'drain' exactly when a write returns false.
      if (chunks.length === 1) return socket.write(chunks[0]!)
      socket.cork()
      let ok = true
      for (const chunk of chunks) ok = socket.write(chunk)
      socket.uncork()
      return ok
    },
    // Node queues the FIN behind the bytes itself.
    queued: 0,
    shutdown: (flushed) => {
      if (socket.destroyed)
        throw Object.assign(new Error("socket is closed"), { code: "EPIPE", syscall: "shutdown" })
      // 'finish': the bytes queued in the stream have been handed on, so a close after it loses none.
      socket.end(flushed)
    },
    close: () => {
      closed = true
      socket.destroy()
    },
    handoff: () => (socket instanceof net.Socket && !socket.destroyed ? socket : undefined)
  }
}

/** Listens on `<path>_<port>` through `net.Server`. */
export const listenNode = (
  address: UnixAddress | HybridAddress,
  port: number,
  backlog = DefaultBacklog
): Effect.Effect<Listener, TransportError, Scope.Scope> => {
  const where = { address: formatAddress(address), port }
  const path = socketPath(address, port, "Listen")
  const open = (bindPath: string) =>
    Effect.gen(function* () {
      const core = yield* makeListener({ address, port, target: where, maxPending: backlog })
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      server.on("connection", (socket) =>
        core.offer({ raw: fromNetSocket(socket), peer: { family: "unix", port } })
      )
      yield* Effect.tryPromise({
        try: (signal) => once(server.listen({ path: bindPath, backlog }), "listening", { signal }),
        catch: (cause) => osError("Listen", where, `cannot listen on ${path}`, cause, "listen")
      })
      server.on("error", (cause) => core.fail(osError("Accept", where, path, cause, "accept")))
      return core.listener
    })
  return listenOnSocketFile(path, where, open)
}

/** unix: connects to `<path>_<port>`; hybrid: dials `<path>` for the CONNECT/OK handshake. */
export const connectNode = (
  address: UnixAddress | HybridAddress,
  port: number,
  timeout: Duration.Input | undefined
): Effect.Effect<Connection, TransportError, Scope.Scope> =>
  dial(address, port, timeout, (where) =>
    Effect.gen(function* () {
      const path = socketPath(address, port, "Connect")
      yield* checkSocketPathLength(path, where, "Connect")
      const socket = net.createConnection({ path, allowHalfOpen: true })
      const raw = fromNetSocket(socket)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.close()))
      yield* Effect.tryPromise({
        try: (signal) => once(socket, "connect", { signal }),
        catch: (cause) => osError("Connect", where, `cannot connect to ${path}`, cause, "connect")
      })
      return [raw, { family: "unix", port }] as const
    })
  )
