/**
 * The in-memory network: a registry of listeners per layer instance and
 * socket pairs whose two directions are bounded byte queues. A write that
 * leaves the queue at or above its capacity returns false and the writer's
 * drain fires once the reader has taken the queue below half of it, exactly
 * like a kernel socket buffer, so backpressure is real in tests too. Bytes are
 * copied on write (the writer may reuse its buffer) and delivered on a later
 * macrotask (never re-entrantly).
 */
import { setImmediate } from "node:timers"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { MemoryAddress } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { Connection } from "../Connection.js"
import type { Listener } from "../Listener.js"
import type { TransportError } from "../TransportError.js"
import { makeConnection } from "./connection.js"
import { describe, transportError } from "./errors.js"
import { ListenerCore } from "./listener.js"
import type { RawError, RawSocket } from "./rawSocket.js"
import { RawFailure } from "./rawSocket.js"

/** Bytes a direction holds before its writer is told to wait. */
export const MemoryPipeCapacity = 256 * 1024

class Direction {
  chunks: Array<Uint8Array> = []
  bytes = 0
  /** The writer half-closed or closed: EOF after the queued bytes. */
  ended = false
  /** The reader closed: writes fail. */
  readerGone = false
}

class MemoryEndpoint implements RawSocket {
  peer!: MemoryEndpoint
  private dataCb: (chunk: Uint8Array | null) => void = () => {}
  private errorCb: (error: RawError) => void = () => {}
  private drainCb: () => void = () => {}
  private reading = false
  private closed = false
  private eofDelivered = false
  private flushScheduled = false
  private wantDrain = false
  private failed = false

  constructor(
    readonly inbound: Direction,
    readonly outbound: Direction,
    private readonly capacity: number
  ) {}

  onData(cb: (chunk: Uint8Array | null) => void): void {
    this.dataCb = cb
  }
  onError(cb: (error: RawError) => void): void {
    this.errorCb = cb
  }
  onDrain(cb: () => void): void {
    this.drainCb = cb
  }

  readStart(): void {
    this.reading = true
    this.scheduleFlush()
  }
  readStop(): void {
    this.reading = false
  }

  scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flush()
    })
  }

  private flush(): void {
    const inbound = this.inbound
    let took = false
    while (this.reading && !this.closed && inbound.chunks.length > 0) {
      const chunk = inbound.chunks.shift()!
      inbound.bytes -= chunk.length
      took = true
      this.dataCb(chunk)
    }
    if (this.reading && !this.closed && inbound.chunks.length === 0 && inbound.ended && !this.eofDelivered) {
      this.eofDelivered = true
      this.dataCb(null)
    }
    if (took) this.peer.spaceFreed()
  }

  /** The reader of our outbound direction took bytes. */
  spaceFreed(): void {
    if (this.wantDrain && !this.closed && this.outbound.bytes <= this.capacity / 2) {
      this.wantDrain = false
      setImmediate(() => {
        if (!this.closed) this.drainCb()
      })
    }
  }

  private failLater(error: RawError): void {
    if (this.failed) return
    this.failed = true
    setImmediate(() => {
      if (!this.closed) this.errorCb(error)
    })
  }

  write(chunk: Uint8Array): boolean {
    return this.writev([chunk])
  }

  writev(chunks: ReadonlyArray<Uint8Array>): boolean {
    if (this.closed) throw new RawFailure({ code: "EBADF", syscall: "write", message: "socket is closed" })
    const outbound = this.outbound
    if (outbound.readerGone) {
      this.failLater({ code: "EPIPE", syscall: "write", message: "the peer closed the connection" })
      return true
    }
    if (outbound.ended)
      throw new RawFailure({ code: "EPIPE", syscall: "write", message: "write after shutdown" })
    for (const chunk of chunks) {
      outbound.chunks.push(new Uint8Array(chunk))
      outbound.bytes += chunk.length
    }
    this.peer.scheduleFlush()
    if (outbound.bytes < this.capacity) return true
    this.wantDrain = true
    return false
  }

  shutdown(cb: (error: RawError | null) => void): void {
    this.outbound.ended = true
    this.peer.scheduleFlush()
    setImmediate(() => {
      if (!this.closed) cb(null)
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.inbound.readerGone = true
    this.inbound.chunks = []
    this.inbound.bytes = 0
    this.outbound.ended = true
    this.peer.scheduleFlush()
    // A peer blocked on a full queue towards us would otherwise wait forever.
    this.peer.peerClosed()
  }

  private peerClosed(): void {
    if (this.wantDrain)
      this.failLater({ code: "EPIPE", syscall: "write", message: "the peer closed the connection" })
  }
}

/** Two connected endpoints. */
export const memoryPair = (capacity: number = MemoryPipeCapacity): readonly [RawSocket, RawSocket] => {
  const aToB = new Direction()
  const bToA = new Direction()
  const a = new MemoryEndpoint(bToA, aToB, capacity)
  const b = new MemoryEndpoint(aToB, bToA, capacity)
  a.peer = b
  b.peer = a
  return [a, b]
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
    return Effect.flatMap(Effect.runtime<never>(), (runtime) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          if (this.listeners.has(key)) {
            return Effect.fail(
              transportError("Listen", target, `${describe(target)} is already listening`, {
                code: "EADDRINUSE",
                syscall: "listen",
                message: "address in use"
              })
            )
          }
          const core = new ListenerCore({
            address,
            port,
            target,
            verify: () => undefined,
            maxPending: backlog ?? DefaultBacklog,
            runtime
          })
          this.listeners.set(key, core)
          return Effect.succeed(core)
        }),
        (core) =>
          Effect.sync(() => {
            if (this.listeners.get(key) === core) this.listeners.delete(key)
            core.close()
          })
      ).pipe(Effect.map((core) => core.toListener()))
    )
  }

  connect(address: MemoryAddress, port: number): Effect.Effect<Connection, TransportError, Scope.Scope> {
    const target = { address: formatAddress(address), port }
    return Effect.uninterruptible(
      Effect.suspend(() => {
        const core = this.listeners.get(`${address.name}:${port}`)
        if (core === undefined || !core.hasRoom()) {
          return Effect.fail(
            transportError(
              "Connect",
              target,
              core === undefined
                ? `nothing listens on ${describe(target)}`
                : `${describe(target)} has too many connections waiting for accept`,
              {
                code: "ECONNREFUSED",
                syscall: "connect",
                message: "connection refused"
              }
            )
          )
        }
        const [client, server] = memoryPair()
        core.offer({ raw: server, peer: { family: "memory", port } })
        return makeConnection({
          raw: client,
          target,
          description: describe(target),
          peer: { family: "memory", port }
        })
      })
    )
  }
}
