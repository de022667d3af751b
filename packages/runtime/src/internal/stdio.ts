/**
 * One stdio relay channel of a process (GCS-PROTOCOL §11.3-11.6): a listener bound on its own port before
 * ExecuteProcess is sent, accepting exactly one connection in the background, and the byte stream or sink
 * over it.
 *
 * Readers and writers wait for the guest to connect. The guest may never do so (stdio denied by policy), so
 * closing the process's scope releases every waiter with a `TransportError` (`Closed`) instead of leaving it
 * hanging.
 */
import type { Address, Connection, TransportService } from "@gcs-bridge/transport"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Metric, Scope, Sink, Stream } from "effect"
import type { Duration } from "effect"
import * as Metrics from "../Metrics.js"

/** Which standard stream a channel carries. */
export type StdioName = "stdin" | "stdout" | "stderr"

/** A stdio channel bound on `port`. */
export interface StdioChannel {
  readonly name: StdioName
  readonly port: number
  /** The guest's connection; fails when the accept fails or the process's scope closes first. */
  readonly connection: Deferred.Deferred<Connection, TransportError>
}

const bytes = {
  stdin: Metric.withAttributes(Metrics.stdioBytes, { stream: "stdin" }),
  stdout: Metric.withAttributes(Metrics.stdioBytes, { stream: "stdout" }),
  stderr: Metric.withAttributes(Metrics.stdioBytes, { stream: "stderr" })
}

const sizeOf = (parts: ReadonlyArray<Uint8Array>) => parts.reduce((n, part) => n + part.length, 0)

/**
 * Binds the listener for `port` (so the guest can dial as soon as it reads the exec request) and accepts in a
 * fiber of the current scope. The listener closes as soon as the guest is in; the connection lives as long as
 * the scope.
 */
export const open = Effect.fnUntraced(function* (
  transport: TransportService,
  address: Address,
  name: StdioName,
  port: number,
  acceptTimeout: Duration.Input | undefined
) {
  const scope = yield* Effect.scope
  const listenerScope = yield* Scope.fork(scope)
  const listener = yield* Scope.provide(transport.listen(address, port, { backlog: 1 }), listenerScope)
  const connection = Deferred.makeUnsafe<Connection, TransportError>()
  const closed = new TransportError({
    reason: "Closed",
    address: formatAddress(address),
    port,
    message: `${name} was closed before the guest connected it`
  })
  yield* listener.accept(acceptTimeout === undefined ? undefined : { timeout: acceptTimeout }).pipe(
    Scope.provide(scope),
    Effect.exit,
    Effect.flatMap((exit) => Deferred.done(connection, exit)),
    Effect.onInterrupt(() => Deferred.fail(connection, closed)),
    Effect.ensuring(Scope.close(listenerScope, Exit.void)),
    Effect.forkIn(scope)
  )
  const channel: StdioChannel = { name, port, connection }
  return channel
})

/**
 * The bytes the guest writes on `channel`, with backpressure. The connection is closed as soon as the stream
 * ends or its consumer stops: the Linux GCS reports a container process's exit only after the host has closed
 * its end (§14.4a). No channel: an empty stream.
 */
export const readable = (channel: StdioChannel | undefined): Stream.Stream<Uint8Array, TransportError> =>
  channel === undefined
    ? Stream.empty
    : Stream.unwrap(
        Effect.gen(function* () {
          const connection = yield* Deferred.await(channel.connection)
          const context = yield* Effect.context<never>()
          return connection.stream.pipe(
            Stream.mapArray((chunk) => {
              bytes[channel.name].updateUnsafe(sizeOf(chunk), context)
              return chunk
            }),
            Stream.ensuring(connection.close)
          )
        })
      )

/**
 * A sink writing into `channel` once the guest has connected; it does not half-close at the end (that is
 * `closeStdin`). No channel: a sink that fails with `missing` on its first input.
 */
export const writable = (
  channel: StdioChannel | undefined,
  missing: TransportError
): Sink.Sink<void, Uint8Array, never, TransportError> =>
  channel === undefined
    ? Sink.forEachArray(() => Effect.fail(missing))
    : Sink.unwrap(
        Effect.map(Deferred.await(channel.connection), (connection) =>
          Sink.forEachArray((parts: ReadonlyArray<Uint8Array>) =>
            Effect.andThen(connection.writeAll(parts), Metric.update(bytes[channel.name], sizeOf(parts)))
          )
        )
      )

/** Half-closes `channel` once the guest has connected it. */
export const endWrite = (channel: StdioChannel): Effect.Effect<void, TransportError> =>
  Effect.flatMap(Deferred.await(channel.connection), (connection) => connection.endWrite)
