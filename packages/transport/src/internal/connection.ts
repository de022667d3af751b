/**
 * The one Connection implementation, over any RawSocket.
 *
 * Reading: a consumer pull takes whatever is queued and re-arms the socket, so
 * at most `readAhead` bytes plus one engine read are held per connection; once
 * the queue reaches `readAhead` the socket is stopped until the next pull.
 * Wakers only signal: the bytes are taken by the pulling fiber itself, so an
 * interrupted pull never loses data.
 *
 * Writing: the engine queues; a write that leaves the queue above its
 * high-water mark waits for the drain signal.
 */
import { Chunk, Deferred, Effect, Exit, FiberId, Option, Sink, Stream } from "effect"
import type { Scope } from "effect"
import type { Connection, PeerIdentity } from "../Connection.js"
import type { TransportError } from "../TransportError.js"
import type { Target } from "./errors.js"
import { transportError } from "./errors.js"
import type { RawError, RawSocket } from "./rawSocket.js"
import { toRawError } from "./rawSocket.js"

/** Bytes read ahead of the consumer before the socket is paused. */
export const DefaultReadAhead = 256 * 1024

/** How to build a Connection around a RawSocket. */
export interface MakeConnectionOptions {
  readonly raw: RawSocket
  readonly target: Target
  readonly description: string
  readonly peer: PeerIdentity
  /** Bytes already read from the socket (e.g. after a handshake), delivered first. */
  readonly initial?: ReadonlyArray<Uint8Array>
  readonly readAhead?: number
}

class ConnectionState {
  private queue: Array<Uint8Array> = []
  private queued = 0
  private reading = false
  private eof = false
  private closed = false
  private consumed = false
  private readFailure: TransportError | undefined
  private writeFailure: TransportError | undefined
  private writeEnded = false
  private needDrain = false
  private readWaiter: (() => void) | undefined
  private readonly drainWaiters = new Set<() => void>()
  private readonly shutdownDone: Deferred.Deferred<void, TransportError> = Deferred.unsafeMake(FiberId.none)
  private shutdownStarted = false
  private readonly readAhead: number

  constructor(private readonly options: MakeConnectionOptions) {
    this.readAhead = options.readAhead ?? DefaultReadAhead
    for (const chunk of options.initial ?? []) {
      if (chunk.length > 0) {
        this.queue.push(chunk)
        this.queued += chunk.length
      }
    }
    const raw = options.raw
    raw.onData((chunk) => this.onData(chunk))
    raw.onError((error) => this.onError(error))
    raw.onDrain(() => this.onDrain())
  }

  private get raw(): RawSocket {
    return this.options.raw
  }

  private closedError(what: string): TransportError {
    return transportError(
      "Closed",
      this.options.target,
      `${what} on a closed connection (${this.options.description})`
    )
  }

  private onData(chunk: Uint8Array | null): void {
    if (this.closed) return
    if (chunk === null) {
      this.eof = true
      this.reading = false
    } else if (chunk.length > 0) {
      this.queue.push(chunk)
      this.queued += chunk.length
      if (this.reading && this.queued >= this.readAhead) {
        this.reading = false
        this.raw.readStop()
      }
    }
    this.wakeReader()
  }

  private onError(error: RawError): void {
    if (this.closed) return
    const where = this.options.description
    this.readFailure ??= transportError("Read", this.options.target, `${where}: ${error.message}`, error)
    this.writeFailure ??= transportError("Write", this.options.target, `${where}: ${error.message}`, error)
    this.reading = false
    Deferred.unsafeDone(this.shutdownDone, Exit.fail(this.writeFailure))
    this.wakeReader()
    this.wakeWriters()
  }

  private onDrain(): void {
    this.needDrain = false
    this.wakeWriters()
  }

  private wakeReader(): void {
    const waiter = this.readWaiter
    if (waiter !== undefined) {
      this.readWaiter = undefined
      waiter()
    }
  }

  private wakeWriters(): void {
    for (const waiter of [...this.drainWaiters]) waiter()
  }

  private startReading(): void {
    if (!this.reading && !this.closed && !this.eof && this.readFailure === undefined) {
      this.reading = true
      this.raw.readStart()
    }
  }

  /** What a pull yields right now, or undefined when it has to wait. */
  private take(): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<TransportError>> | undefined {
    if (this.closed) return Effect.fail(Option.some(this.closedError("read")))
    if (this.queue.length > 0) {
      const chunks = Chunk.unsafeFromArray(this.queue)
      this.queue = []
      this.queued = 0
      // Read ahead while the consumer works on what it just took.
      this.startReading()
      return Effect.succeed(chunks)
    }
    if (this.readFailure !== undefined) return Effect.fail(Option.some(this.readFailure))
    if (this.eof) return Effect.fail(Option.none())
    return undefined
  }

  readonly pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<TransportError>> = Effect.suspend(
    () =>
      this.take() ??
      Effect.async<Chunk.Chunk<Uint8Array>, Option.Option<TransportError>>((resume) => {
        const waiter = () => resume(this.pull)
        this.readWaiter = waiter
        this.startReading()
        return Effect.sync(() => {
          if (this.readWaiter === waiter) this.readWaiter = undefined
        })
      })
  )

  readonly claim: Effect.Effect<void, TransportError, Scope.Scope> = Effect.acquireRelease(
    Effect.suspend(() => {
      if (this.consumed) {
        return Effect.fail(
          transportError(
            "Read",
            this.options.target,
            `${this.options.description}: the stream already has a consumer (a Connection's stream is single-consumer)`
          )
        )
      }
      this.consumed = true
      return Effect.void
    }),
    () =>
      Effect.sync(() => {
        this.consumed = false
        if (this.reading) {
          this.reading = false
          this.raw.readStop()
        }
      })
  )

  private writeBlocked(): TransportError | undefined {
    if (this.closed) return this.closedError("write")
    if (this.writeFailure !== undefined) return this.writeFailure
    if (this.writeEnded) {
      return transportError(
        "Write",
        this.options.target,
        `${this.options.description}: write after endWrite`,
        { code: "EPIPE", syscall: "write", message: "write after end" }
      )
    }
    return undefined
  }

  private readonly awaitDrain: Effect.Effect<void, TransportError> = Effect.async<void, TransportError>(
    (resume) => {
      const settle = (): boolean => {
        const blocked = this.closed ? this.closedError("write") : this.writeFailure
        if (blocked !== undefined) resume(Effect.fail(blocked))
        else if (!this.needDrain) resume(Effect.void)
        else return false
        return true
      }
      if (settle()) return
      const waiter = () => {
        if (settle()) this.drainWaiters.delete(waiter)
      }
      this.drainWaiters.add(waiter)
      return Effect.sync(() => {
        this.drainWaiters.delete(waiter)
      })
    }
  )

  private send(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> {
    return Effect.suspend(() => {
      const blocked = this.writeBlocked()
      if (blocked !== undefined) return Effect.fail(blocked)
      const nonEmpty = chunks.filter((c) => c.length > 0)
      if (nonEmpty.length === 0) return Effect.void
      let belowHighWater: boolean
      try {
        belowHighWater = nonEmpty.length === 1 ? this.raw.write(nonEmpty[0]!) : this.raw.writev(nonEmpty)
      } catch (cause) {
        const error = toRawError(cause, "write")
        this.onError(error)
        return Effect.fail(this.writeFailure!)
      }
      if (belowHighWater) return Effect.void
      this.needDrain = true
      return this.awaitDrain
    })
  }

  readonly write = (chunk: Uint8Array): Effect.Effect<void, TransportError> => this.send([chunk])

  readonly writeAll = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
    this.send(chunks)

  readonly endWrite: Effect.Effect<void, TransportError> = Effect.suspend(() => {
    if (!this.shutdownStarted) {
      const blocked = this.writeBlocked()
      if (blocked !== undefined) return Effect.fail(blocked)
      this.shutdownStarted = true
      this.writeEnded = true
      this.raw.shutdown((error) => {
        Deferred.unsafeDone(
          this.shutdownDone,
          error === null
            ? Exit.void
            : Exit.fail(
                transportError(
                  "Write",
                  this.options.target,
                  `${this.options.description}: ${error.message}`,
                  error
                )
              )
        )
      })
    }
    return Deferred.await(this.shutdownDone)
  })

  readonly close: Effect.Effect<void> = Effect.sync(() => this.closeNow())

  closeNow(): void {
    if (this.closed) return
    this.closed = true
    this.queue = []
    this.queued = 0
    this.reading = false
    this.raw.close()
    // Building an error is not free (Schema class, stack): only for a half-close still in flight.
    if (this.shutdownStarted) Deferred.unsafeDone(this.shutdownDone, Exit.fail(this.closedError("endWrite")))
    this.wakeReader()
    this.wakeWriters()
  }
}

/**
 * A Connection over `options.raw`, closed when the current scope closes. Takes
 * ownership of the socket (and closes it on scope exit).
 */
export const makeConnection = (
  options: MakeConnectionOptions
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new ConnectionState(options)),
      (state) => state.close
    ),
    (state): Connection => ({
      description: options.description,
      peer: options.peer,
      stream: Stream.unwrapScoped(Effect.as(state.claim, Stream.repeatEffectChunkOption(state.pull))),
      write: state.write,
      writeAll: state.writeAll,
      sink: Sink.forEachChunk((chunks: Chunk.Chunk<Uint8Array>) =>
        state.writeAll(Chunk.toReadonlyArray(chunks))
      ),
      endWrite: state.endWrite,
      close: state.close
    })
  )
