/**
 * The host side of a benchmark: a `ManagedRuntime` over a Transport layer and
 * a long-lived Scope, so that connections made once are reused by every timed
 * round (each round is one `runPromise` of a loop, never one per call).
 */
import type { Container, GuestConnectionConfig, GuestConnectionService } from "@gcs-bridge/runtime"
import { GuestConnection } from "@gcs-bridge/runtime"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import type { Layer } from "effect"
import { Effect, Exit, Logger, LogLevel, ManagedRuntime, Scope } from "effect"
import { NullContainerId } from "./frames.js"

/** Which Transport layer carries the host side. */
export type Engine = "native" | "node"

/** The Transport layer of an engine. */
export const transportLayer = (engine: Engine): Layer.Layer<Transport> =>
  engine === "native" ? Transport.layer : Transport.layerNode

/**
 * The production engine (`native`) when its addon loads here, otherwise
 * `node`, with the reason — so a machine without the addon still gets figures.
 */
export const pickEngine = async (
  dir: string
): Promise<{ readonly engine: Engine; readonly why?: string }> => {
  const probe = Effect.scoped(
    Effect.flatMap(Transport, (transport) => transport.listen(new UnixAddress({ path: `${dir}/probe` }), 1))
  ).pipe(Effect.provide(Transport.layer), Effect.either)
  const result = await Effect.runPromise(probe)
  return result._tag === "Right" ? { engine: "native" } : { engine: "node", why: result.left.message }
}

/** The bridge listener of a host whose address is the Unix socket base `path` (GCS port 0x40000000). */
export const bridgeSocketPath = (path: string): string => `${path}_${0x40000000}`

/** A host runtime with a scope that outlives the timed rounds. */
export interface HostSession {
  /** Runs `effect` (which may use the Transport and the session's scope) to completion. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Transport | Scope.Scope>) => Promise<A>
  /**
   * Makes a guest connection listening on the Unix socket base `path`, owned
   * by the session. The peer must dial it (start the peer before awaiting).
   */
  readonly connect: (
    path: string,
    config?: Omit<GuestConnectionConfig, "address">
  ) => Promise<GuestConnectionService>
  /**
   * A handle on the UVM itself (the null container) for `Start`. The public
   * API has no UVM-level Start, and `openContainer` ties the handle to a scope
   * whose close sends ShutdownForced to the container — for the null container
   * that powers the UVM off. So the handle lives in a scope of its own that
   * is closed only after the connections are gone, when that finalizer finds
   * the bridge dead and sends nothing.
   */
  readonly uvm: (connection: GuestConnectionService) => Promise<Container>
  /** Closes every connection (and with them every process), then the runtime. Idempotent. */
  readonly close: () => Promise<void>
}

/** Starts a host session on `engine`; log output below Warning is dropped so the tables stay readable. */
export const hostSession = (engine: Engine): HostSession => {
  const runtime = ManagedRuntime.make(transportLayer(engine))
  const scope = Effect.runSync(Scope.make())
  const lateScope = Effect.runSync(Scope.make())
  const quiet = <A, E>(effect: Effect.Effect<A, E, Transport>) =>
    runtime.runPromise(Logger.withMinimumLogLevel(effect, LogLevel.Warning))
  const run = <A, E>(effect: Effect.Effect<A, E, Transport | Scope.Scope>): Promise<A> =>
    quiet(Scope.extend(effect, scope))
  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      try {
        await quiet(Scope.close(scope, Exit.void))
        await quiet(Scope.close(lateScope, Exit.void))
      } finally {
        await runtime.dispose()
      }
    })())
  return {
    run,
    connect: (path, config) =>
      run(
        GuestConnection.make({ connectTimeout: "60 seconds", ...config, address: new UnixAddress({ path }) })
      ),
    uvm: (connection) => quiet(Scope.extend(connection.openContainer(NullContainerId), lateScope)),
    close
  }
}
