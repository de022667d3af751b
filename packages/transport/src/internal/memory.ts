/**
 * The in-memory network: listeners per layer instance, connections over Node's bounded `duplexPair` (real
 * backpressure in tests too) adapted like a `net` socket; closing one end ends the other's stream and fails
 * its writes, as a socket would.
 */
import { type Duplex, duplexPair } from "node:stream"
import { Effect, type Scope } from "effect"
import { formatAddress, type MemoryAddress } from "../Address.js"
import type { Connection } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import { type ListenerCore, makeListener } from "./listener.js"
import { fromNetSocket } from "./node.js"
import { describe, type RawSocket, transportError } from "./rawSocket.js"

/** Bytes each side of a direction holds before its writer is told to wait. */
const MemoryPipeCapacity = 256 * 1024

const hangUp = (self: Duplex, other: Duplex) =>
  self.once("close", () => {
    if (other.destroyed) return
    const broken = () =>
      Object.assign(new Error("the peer closed the connection"), { code: "EPIPE", syscall: "write" })
    other._write = (_chunk, _encoding, callback) => callback(broken())
    // The closed end read everything it was sent, so the peer's last write was delivered, as into a kernel
    // socket's buffer: completed here, since duplexPair completes a write when the reader next asks for more,
    // which a closed end never does (a reader that closes inside its data callback would fail the peer).
    if (self.readableLength === 0) self._read(0)
    other.push(null)
    // A write still waiting for the closed end to read it never completes.
    if (other.writableLength > 0) other.destroy(broken())
  })

/** Two connected endpoints. */
export const memoryPair = (): readonly [RawSocket, RawSocket] => {
  const [a, b] = duplexPair({ highWaterMark: MemoryPipeCapacity, allowHalfOpen: true })
  // As a kernel socket's: the half-close is done once the bytes sit in the peer's buffer, not once it read them.
  a._final = (done) => (b.push(null), done())
  b._final = (done) => (a.push(null), done())
  hangUp(a, b)
  hangUp(b, a)
  return [fromNetSocket(a), fromNetSocket(b)]
}

/** Default accept backlog of memory listeners. */
const DefaultBacklog = 128

/** One in-memory network: listeners by `name:port`. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, ListenerCore>()

  listen(
    address: MemoryAddress,
    port: number,
    backlog: number | undefined
  ): Effect.Effect<Listener, TransportError, Scope.Scope> {
    const key = `${address.name}:${port}`
    const target = { address: formatAddress(address), port }
    const listeners = this.listeners
    return Effect.uninterruptible(
      Effect.gen(function* () {
        if (listeners.has(key)) {
          const why = `${describe(target)} is already listening`
          return yield* Effect.fail(transportError("Listen", target, why, "EADDRINUSE", "listen"))
        }
        const core = yield* makeListener({ address, port, target, maxPending: backlog ?? DefaultBacklog })
        listeners.set(key, core)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => listeners.get(key) === core && listeners.delete(key))
        )
        return core.listener
      })
    )
  }

  connect(address: MemoryAddress, port: number): Effect.Effect<Connection, TransportError, Scope.Scope> {
    const target = { address: formatAddress(address), port }
    return Effect.uninterruptible(
      Effect.suspend(() => {
        const core = this.listeners.get(`${address.name}:${port}`)
        if (core === undefined || !core.hasRoom()) {
          const why =
            core === undefined
              ? `nothing listens on ${describe(target)}`
              : `${describe(target)} has too many connections waiting for accept`
          return Effect.fail(transportError("Connect", target, why, "ECONNREFUSED", "connect"))
        }
        const [client, server] = memoryPair()
        core.offer({ raw: server, peer: { family: "memory", port } })
        return makeConnection(client, target, { family: "memory", port })
      })
    )
  }
}
