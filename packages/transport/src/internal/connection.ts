/**
 * The one Connection implementation, over any RawSocket: the only place that
 * holds a socket's state machine.
 *
 * Reading: inbound chunks go to a Queue; a consumer pull takes all of it and
 * re-arms the socket, so at most `readAhead` bytes plus one engine read are
 * held; once the queue reaches `readAhead` the socket is stopped until the
 * next pull.
 *
 * Writing: the engine queues; a write that leaves it above its high-water
 * mark waits on a latch the drain opens. The half-close is issued once the
 * engine's queue is flushed. The first failure fails reads and writes alike.
 */
import { Cause, Deferred, Effect, Exit, Latch, Queue, Sink, Stream } from "effect"
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

/**
 * A Connection over `options.raw`, which it owns from now on: closed when the
 * current scope closes.
 */
export const makeConnection = (
  options: MakeConnectionOptions
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(open(options), (state) => Effect.sync(state.close)),
    (state) => state.connection
  )

const open = Effect.fnUntraced(function* (options: MakeConnectionOptions) {
  const { raw, target, description } = options
  const readAhead = options.readAhead ?? DefaultReadAhead
  const inbox = yield* Queue.make<Uint8Array, TransportError | Cause.Done>()
  const drained = yield* Latch.make(true)
  const halfClosed = yield* Deferred.make<void, TransportError>()
  let buffered = 0
  let reading = false
  let ended = false
  let closed = false
  let consumed = false
  let writeEnded = false
  let shutdownIssued = false
  let readFailure: TransportError | undefined
  let writeFailure: TransportError | undefined

  const closedError = (what: string) =>
    transportError("Closed", target, `${what} on a closed connection (${description})`)

  const stopReading = () => {
    if (!reading) return
    reading = false
    raw.readStop()
  }
  const startReading = () => {
    if (reading || closed || ended || readFailure !== undefined || buffered >= readAhead) return
    reading = true
    raw.readStart()
  }
  const fail = (error: RawError) => {
    if (closed || writeFailure !== undefined) return
    reading = false
    readFailure = transportError("Read", target, `${description}: ${error.message}`, error)
    writeFailure = transportError("Write", target, `${description}: ${error.message}`, error)
    Queue.failCauseUnsafe(inbox, Cause.fail(readFailure))
    Deferred.doneUnsafe(halfClosed, Exit.fail(writeFailure))
    drained.openUnsafe()
  }
  const shutdownWhenFlushed = () => {
    if (!writeEnded || shutdownIssued || closed || writeFailure !== undefined || raw.queued > 0) return
    shutdownIssued = true
    try {
      raw.shutdown()
      Deferred.doneUnsafe(halfClosed, Exit.void)
    } catch (cause) {
      fail(toRawError(cause, "shutdown"))
    }
  }

  raw.bind({
    data: (chunk) => {
      if (closed || chunk.length === 0) return
      Queue.offerUnsafe(inbox, chunk)
      buffered += chunk.length
      if (buffered >= readAhead) stopReading()
    },
    end: () => {
      ended = true
      reading = false
      Queue.endUnsafe(inbox)
    },
    error: fail,
    drain: () => {
      drained.openUnsafe()
      shutdownWhenFlushed()
    }
  })
  for (const chunk of options.initial ?? []) {
    Queue.offerUnsafe(inbox, chunk)
    buffered += chunk.length
  }

  const pull = Effect.suspend(() => {
    if (closed) return Effect.fail(closedError("read"))
    startReading()
    return Effect.map(Queue.takeAll(inbox), (chunks) => {
      for (const chunk of chunks) buffered -= chunk.length
      // Read ahead while the consumer works on what it just took.
      startReading()
      return chunks
    })
  })

  const claim = Effect.acquireRelease(
    Effect.suspend(() => {
      if (!consumed) {
        consumed = true
        return Effect.void
      }
      return Effect.fail(
        transportError(
          "Read",
          target,
          `${description}: the stream already has a consumer (a Connection's stream is single-consumer)`
        )
      )
    }),
    () =>
      Effect.sync(() => {
        consumed = false
        stopReading()
      })
  )

  const blocked = (): TransportError | undefined =>
    closed
      ? closedError("write")
      : (writeFailure ??
        (writeEnded
          ? transportError("Write", target, `${description}: write after endWrite`, {
              code: "EPIPE",
              syscall: "write",
              message: "write after end"
            })
          : undefined))

  const afterDrain = Effect.andThen(
    drained.await,
    Effect.suspend(() => {
      const error = closed ? closedError("write") : writeFailure
      return error === undefined ? Effect.void : Effect.fail(error)
    })
  )

  const writeAll = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
    Effect.suspend(() => {
      const error = blocked()
      if (error !== undefined) return Effect.fail(error)
      const nonEmpty =
        chunks.length === 1 && chunks[0]!.length > 0 ? chunks : chunks.filter((c) => c.length > 0)
      if (nonEmpty.length === 0) return Effect.void
      try {
        if (raw.write(nonEmpty)) return Effect.void
      } catch (cause) {
        fail(toRawError(cause, "write"))
        return Effect.fail(writeFailure!)
      }
      drained.closeUnsafe()
      return afterDrain
    })

  const endWrite = Effect.suspend(() => {
    if (!writeEnded) {
      const error = blocked()
      if (error !== undefined) return Effect.fail(error)
      writeEnded = true
      shutdownWhenFlushed()
    }
    return Deferred.await(halfClosed)
  })

  const close = () => {
    if (closed) return
    closed = true
    reading = false
    raw.close()
    // A pending read and a half-close still in flight end with `Closed`.
    Queue.failCauseUnsafe(inbox, Cause.fail(closedError("read")))
    if (writeEnded) Deferred.doneUnsafe(halfClosed, Exit.fail(closedError("endWrite")))
    drained.openUnsafe()
  }

  const connection: Connection = {
    description,
    peer: options.peer,
    stream: Stream.unwrap(Effect.as(claim, Stream.fromPull(Effect.succeed(pull)))),
    write: (chunk) => writeAll([chunk]),
    writeAll,
    sink: Sink.forEachArray(writeAll),
    endWrite,
    close: Effect.sync(close)
  }
  return { connection, close }
})
