/**
 * A Transport decorator for leak tests: it counts listeners and connections
 * that are open right now, whichever way they get closed (their scope or an
 * explicit `close`).
 */
import type { Connection, Listener, TransportService } from "@gcs-bridge/transport"
import { Effect } from "effect"

/** Live resource counts of a counting transport. */
export interface Counts {
  listeners: number
  connections: number
  /** Every listen so far, in order, with its port. */
  readonly ports: Array<number>
}

/**
 * Wraps `inner` so that every listener and connection it hands out is counted
 * in `counts` until it is closed.
 */
export const counting = (inner: TransportService, counts: Counts): TransportService => {
  const wrap = (connection: Connection) =>
    Effect.gen(function* () {
      counts.connections++
      let open = true
      const release = Effect.sync(() => {
        if (open) {
          open = false
          counts.connections--
        }
      })
      yield* Effect.addFinalizer(() => release)
      return { ...connection, close: Effect.andThen(connection.close, release) } satisfies Connection
    })
  return {
    listen: (address, port, options) =>
      Effect.gen(function* () {
        const listener = yield* inner.listen(address, port, options)
        counts.listeners++
        counts.ports.push(port)
        yield* Effect.addFinalizer(() => Effect.sync(() => counts.listeners--))
        return {
          ...listener,
          accept: (acceptOptions) => Effect.flatMap(listener.accept(acceptOptions), wrap)
        } satisfies Listener
      }),
    connect: (address, port, options) => Effect.flatMap(inner.connect(address, port, options), wrap)
  }
}

/** Fresh counters. */
export const makeCounts = (): Counts => ({ listeners: 0, connections: 0, ports: [] })
