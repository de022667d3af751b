/**
 * A stdio relay channel (GCS-PROTOCOL §11.3-11.6): listener bound before ExecuteProcess, one connection accepted
 * in the background. A guest may never connect (policy): closing the scope fails waiters with `Closed`.
 */
import type { Address, Connection } from "@gcs-bridge/transport"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Cause, Deferred, Duration, Effect, Exit, Latch, Metric, Scope, Sink, Stream } from "effect"
import * as Metrics from "../Metrics.js"
import type { ConnectionState } from "./guestConnection.js"

/** The standard stream a channel carries. */
export type StdioName = "stdin" | "stdout" | "stderr"

/** A stdio channel bound on `port`. */
export interface StdioChannel {
  readonly name: StdioName
  readonly port: number
  /** The guest's connection; fails when the accept fails or the process's scope closes first. */
  readonly connection: Deferred.Deferred<Connection, TransportError>
}

// The series of `Metric.withAttributes(stdioBytes, { stream })` as metrics of their own: withAttributes would
// build a context and the series key on every chunk.
const bytes = (stream: StdioName) =>
  Metric.counter(Metrics.stdioBytes.id, {
    description: Metrics.stdioBytes.description ?? "",
    incremental: true,
    attributes: { stream }
  })
const bytesOf = { stdin: bytes("stdin"), stdout: bytes("stdout"), stderr: bytes("stderr") }

const sizeOf = (parts: ReadonlyArray<Uint8Array>) => parts.reduce((n, part) => n + part.length, 0)

/** Binds `port` (a new one by default) before the exec request goes out, and accepts in the background; the
 * connection lives in the scope. */
export const open = Effect.fnUntraced(function* (
  state: ConnectionState,
  name: StdioName,
  port = state.allocatePort()
) {
  const { address, stdioAcceptTimeout: timeout } = state
  const scope = yield* Effect.scope
  const listenerScope = yield* Scope.fork(scope)
  const listener = yield* Scope.provide(state.transport.listen(address, port, { backlog: 1 }), listenerScope)
  const connection = Deferred.makeUnsafe<Connection, TransportError>()
  const message = `${name} was closed before the guest connected it`
  const lost = () => new TransportError({ reason: "Closed", address: formatAddress(address), port, message })
  yield* listener.accept(timeout === undefined ? undefined : { timeout }).pipe(
    Scope.provide(scope),
    Effect.exit,
    Effect.flatMap((exit) => Deferred.done(connection, exit)),
    Effect.onInterrupt(() => Deferred.fail(connection, lost())),
    Effect.ensuring(Scope.close(listenerScope, Exit.void)),
    Effect.forkIn(scope)
  )
  return { name, port, connection } satisfies StdioChannel
})

/** Runs an effect once the process has exited (at once if it has). */
export type WhenExited = (effect: Effect.Effect<void>) => Effect.Effect<void>

/** Ends a read waiting on `channel`: closes the guest's connection, or fails the one it never made. */
const stopReading = (channel: StdioChannel, address: Address): Effect.Effect<void> =>
  Effect.suspend(() => {
    const message = `${channel.name} (port ${channel.port}) was given up: nothing came for copyAfterExitTimeout after the exit`
    const gaveUp = new TransportError({
      reason: "Closed",
      address: formatAddress(address),
      port: channel.port,
      message
    })
    return Effect.flatMap(Deferred.fail(channel.connection, gaveUp), (failed) =>
      failed ? Effect.void : closeChannel(channel)
    )
  })

const closeChannel = (channel: StdioChannel): Effect.Effect<void> =>
  Effect.ignore(Effect.flatMap(Deferred.await(channel.connection), (connection) => connection.close))

/**
 * The guest's bytes with backpressure, closed at the end (§14.4a) or `limit` after the exit (Go's
 * `CopyAfterExitTimeout`), also when the guest never connected (a restored stream it does not re-dial).
 *
 * The bound: the stream ends once its pulls waited `limit` in all after the exit, so a silent guest cannot hold
 * the reader and a slow consumer loses nothing. No pull is raced (a race forks two fibers per pull, which an idle
 * reader held: 3.4 KiB). The process tells of its exit; from then a fiber of the stream counts the time a pull
 * waits and, at `limit`, ends the waiting pull by closing the connection, a failure turned into the end. Counting
 * the bytes and closing the connection happen in the same step, one stream stage per reader.
 */
export const readable = (
  channel: StdioChannel | undefined,
  whenExited: WhenExited,
  limit: Duration.Duration,
  address: Address
): Stream.Stream<Uint8Array, TransportError> => {
  if (channel === undefined) return Stream.empty
  const input = Stream.unwrap(
    Effect.map(Deferred.await(channel.connection), (connection) => connection.stream)
  )
  return Stream.transformPull(input, (pull, scope) =>
    Effect.flatMap(Effect.context<never>(), (context) =>
      Effect.clockWith((clock) => {
        const counter = bytesOf[channel.name]
        let pulling = false
        let expired = false
        // Made at the exit: before it a pull only sets `pulling`.
        let latches: { readonly waiting: Latch.Latch; readonly idle: Latch.Latch } | undefined
        const setPulling = (on: boolean) => {
          pulling = on
          if (latches === undefined) return
          const [opened, closed] = on ? [latches.waiting, latches.idle] : [latches.idle, latches.waiting]
          closed.closeUnsafe()
          opened.openUnsafe()
        }
        let left = Duration.toMillis(limit)
        const countdown = (waiting: Latch.Latch, idle: Latch.Latch): Effect.Effect<void> =>
          left <= 0
            ? Effect.andThen(
                Effect.sync(() => void (expired = true)),
                stopReading(channel, address)
              )
            : Effect.andThen(
                waiting.await,
                Effect.suspend(() => {
                  const start = clock.currentTimeMillisUnsafe()
                  return Effect.flatMap(Effect.timeoutOption(idle.await, left), () => {
                    left -= clock.currentTimeMillisUnsafe() - start
                    return countdown(waiting, idle)
                  })
                })
              )
        const counting = Effect.suspend(() => {
          latches = { waiting: Latch.makeUnsafe(false), idle: Latch.makeUnsafe(true) }
          setPulling(pulling)
          return countdown(latches.waiting, latches.idle)
        })
        const bounded = Effect.suspend(() => {
          setPulling(true)
          return Effect.matchCauseEffect(pull, {
            onSuccess: (chunk) => {
              setPulling(false)
              // Counted here, without a Metric.update effect per chunk.
              counter.updateUnsafe(sizeOf(chunk), context)
              return Effect.succeed(chunk)
            },
            onFailure: (cause) => (setPulling(false), expired ? Cause.done() : Effect.failCause(cause))
          })
        })
        const closeAtEnd = Scope.addFinalizer(
          scope,
          Effect.suspend(() =>
            Deferred.isDoneUnsafe(channel.connection) ? closeChannel(channel) : Effect.void
          )
        )
        return Effect.andThen(
          closeAtEnd,
          Effect.as(whenExited(Effect.asVoid(Effect.forkIn(counting, scope))), bounded)
        )
      })
    )
  )
}

/** `readable`'s bytes written into the descriptor `fd` (the caller's, left open) by the connection's `pipeTo`: in
 * the kernel where the engine can. Counted as they move; ended `limit` after the exit like `readable`. */
export const pipeInto = <A, E>(
  channel: StdioChannel | undefined,
  exited: Deferred.Deferred<A, E>,
  limit: Duration.Duration,
  fd: number
): Effect.Effect<number, TransportError> =>
  channel === undefined
    ? Effect.succeed(0)
    : Effect.gen(function* () {
        const connection = yield* Deferred.await(channel.connection)
        const count = yield* counting(channel.name)
        // Nothing waits for this relay but the relay itself: the time after the exit runs from the exit on.
        const stop = Effect.andThen(Effect.exit(Deferred.await(exited)), Effect.sleep(limit))
        const moved = yield* Effect.ensuring(
          connection.pipeTo(fd, { stop, onProgress: count }),
          connection.close
        )
        count(moved)
        return moved
      })

/** Counts a relay's running total into the stream's byte counter as it grows, once per byte. */
const counting = (name: StdioName) =>
  Effect.map(Effect.context<never>(), (context) => {
    let counted = 0
    return (moved: number) => {
      bytesOf[name].updateUnsafe(moved - counted, context)
      counted = moved
    }
  })

/** What the descriptor `fd` holds up to its end, sent into `channel` by the connection's `pipeFrom` (in the kernel
 * where the engine can), counted as it goes; no channel: fails with `missing`. */
export const pipeFrom = (
  channel: StdioChannel | undefined,
  fd: number,
  missing: () => TransportError
): Effect.Effect<number, TransportError> =>
  channel === undefined
    ? Effect.fail(missing())
    : Effect.gen(function* () {
        const connection = yield* Deferred.await(channel.connection)
        const count = yield* counting(channel.name)
        const moved = yield* connection.pipeFrom(fd, { onProgress: count })
        count(moved)
        return moved
      })

/** Writes into `channel` once connected, without half-closing; no channel: fails with `missing` on input. */
export const writable = (
  channel: StdioChannel | undefined,
  missing: () => TransportError
): Sink.Sink<void, Uint8Array, never, TransportError> =>
  channel === undefined
    ? Sink.forEachArray(() => Effect.fail(missing()))
    : Sink.unwrap(
        Effect.gen(function* () {
          const connection = yield* Deferred.await(channel.connection)
          const context = yield* Effect.context<never>()
          const counter = bytesOf[channel.name]
          // Counted once written, without a Metric.update effect per chunk.
          return Sink.forEachArray((parts: ReadonlyArray<Uint8Array>) =>
            Effect.map(connection.writeAll(parts), () => counter.updateUnsafe(sizeOf(parts), context))
          )
        })
      )

/** Half-closes `channel` once the guest has connected it. */
export const endWrite = (channel: StdioChannel): Effect.Effect<void, TransportError> =>
  Effect.flatMap(Deferred.await(channel.connection), (connection) => connection.endWrite)
