/**
 * One stdio relay channel of a process (GCS-PROTOCOL §11.3-11.6): a listener
 * bound on its own port before ExecuteProcess is sent, accepting exactly one
 * connection in the background, and the byte stream or sink over it.
 *
 * Readers and writers wait for the guest to connect. The guest may never do
 * so (stdio denied by policy), so closing the channel releases every waiter
 * with a `TransportError` (`Closed`) instead of leaving it hanging.
 */
import type { Address, Connection, TransportService } from "@gcs-bridge/transport"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import type { Duration } from "effect"
import { Chunk, Deferred, Effect, Exit, ExecutionStrategy, MetricLabel, Scope, Sink, Stream } from "effect"
import * as Metrics from "../Metrics.js"

/** Which standard stream a channel carries. */
export type StdioName = "stdin" | "stdout" | "stderr"

/** A stdio channel bound on `port`. */
export interface StdioChannel {
  readonly name: StdioName
  readonly port: number
  /** Completes with the guest's connection, or fails once the channel is closed first (or the accept fails). */
  readonly connection: Deferred.Deferred<Connection, TransportError>
  /** Closes the listener, the connection and the accept; idempotent. */
  readonly close: Effect.Effect<void>
}

const labels: Record<StdioName, ReadonlyArray<MetricLabel.MetricLabel>> = {
  stdin: [MetricLabel.make("stream", "stdin")],
  stdout: [MetricLabel.make("stream", "stdout")],
  stderr: [MetricLabel.make("stream", "stderr")]
}

/**
 * Binds the listener for `port` (so the guest can dial as soon as it reads
 * the exec request) and starts accepting in the background. The channel is
 * closed when `scope` closes.
 */
export const open = (
  transport: TransportService,
  address: Address,
  name: StdioName,
  port: number,
  acceptTimeout: Duration.DurationInput | undefined,
  scope: Scope.Scope
): Effect.Effect<StdioChannel, TransportError> =>
  Effect.gen(function* () {
    const channelScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const listenerScope = yield* Scope.fork(channelScope, ExecutionStrategy.sequential)
    const listener = yield* Effect.onError(
      Scope.extend(transport.listen(address, port, { backlog: 1 }), listenerScope),
      (cause) => Scope.close(channelScope, Exit.failCause(cause))
    )
    const connection = yield* Deferred.make<Connection, TransportError>()
    const closedError = new TransportError({
      reason: "Closed",
      address: formatAddress(address),
      port,
      message: `${name} was closed before the guest connected it`
    })

    const accept = listener.accept(acceptTimeout === undefined ? undefined : { timeout: acceptTimeout }).pipe(
      Scope.extend(channelScope),
      Effect.exit,
      Effect.flatMap((exit) => Deferred.done(connection, exit)),
      // Exactly one connection per channel: stop listening once it has arrived.
      // Uninterruptible: a scope close interrupted half way is marked closed
      // yet never runs its remaining finalizers, which would leak the socket.
      Effect.zipRight(Effect.uninterruptible(Scope.close(listenerScope, Exit.void)))
    )
    yield* Effect.forkIn(accept, channelScope)

    const close = Effect.zipRight(
      Deferred.fail(connection, closedError),
      Scope.close(channelScope, Exit.void)
    )
    // The releasing fail runs before the scope interrupts the accept, so no waiter is left behind.
    yield* Scope.addFinalizer(scope, close)
    return { name, port, connection, close }
  })

/**
 * The bytes the guest writes on `channel`, with backpressure. The connection
 * is closed as soon as the stream ends or its consumer stops: the Linux GCS
 * reports a container process's exit only after the host has closed its end
 * (§14.4a). No channel: an empty stream.
 */
export const readable = (channel: StdioChannel | undefined): Stream.Stream<Uint8Array, TransportError> => {
  if (channel === undefined) return Stream.empty
  const tags = labels[channel.name]
  return Stream.unwrap(
    Effect.map(Deferred.await(channel.connection), (connection) =>
      connection.stream.pipe(
        Stream.mapChunks((chunk) => {
          let bytes = 0
          for (const part of chunk) bytes += part.length
          Metrics.stdioBytes.unsafeUpdate(bytes, tags)
          return chunk
        }),
        Stream.ensuring(connection.close)
      )
    )
  )
}

/**
 * A sink writing into `channel` once the guest has connected; it does not
 * half-close at the end (that is `closeStdin`). No channel: a sink that fails
 * with `TransportError` (`Closed`) on its first input.
 */
export const writable = (
  channel: StdioChannel | undefined,
  missing: TransportError
): Sink.Sink<void, Uint8Array, never, TransportError> => {
  if (channel === undefined) return Sink.forEachChunk(() => Effect.fail(missing))
  const tags = labels[channel.name]
  return Sink.unwrap(
    Effect.map(Deferred.await(channel.connection), (connection) =>
      Sink.forEachChunk((chunk: Chunk.Chunk<Uint8Array>) => {
        const parts = Chunk.toReadonlyArray(chunk)
        let bytes = 0
        for (const part of parts) bytes += part.length
        return Effect.tap(connection.writeAll(parts), () => Metrics.stdioBytes.unsafeUpdate(bytes, tags))
      })
    )
  )
}

/** Half-closes `channel` once the guest has connected it. */
export const endWrite = (channel: StdioChannel): Effect.Effect<void, TransportError> =>
  Effect.flatMap(Deferred.await(channel.connection), (connection) => connection.endWrite)
