/**
 * The host side of a benchmark: a `ManagedRuntime` over a Transport layer and
 * a long-lived Scope, so that connections made once are reused by every timed
 * round (each round is one `runPromise` of a loop, never one per call); and
 * the choice of the Transport engine, shared with the stress runs.
 */
import { join } from "node:path"
import type { Container, GuestConnectionConfig, GuestConnectionService } from "@gcs-bridge/runtime"
import { GuestConnection } from "@gcs-bridge/runtime"
import type { TransportService } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import type { Layer } from "effect"
import { Effect, Exit, ManagedRuntime, References, Scope } from "effect"
import type { PeerConfig } from "./peer.js"
import { socketDir, startPeer, stopPeers, type PeerProcess } from "./peerProcess.js"
import { NullContainerId } from "./wire.js"

/** Which Transport layer carries the host side. */
export type Engine = "native" | "node"

/** The Transport layer of an engine. */
export const transportLayer = (engine: string): Layer.Layer<Transport> =>
  engine === "native" ? Transport.layer : Transport.layerNode

/** The engine's Transport, or why it cannot be used here (the addon may be missing): it must listen on AF_UNIX in `dir`. */
export const probeEngine = async (engine: string, dir: string): Promise<TransportService | string> => {
  const probe = Effect.gen(function* () {
    const transport = yield* Transport
    yield* Effect.scoped(transport.listen(new UnixAddress({ path: `${dir}/probe-${engine}` }), 1))
    return transport
  }).pipe(Effect.provide(transportLayer(engine)), Effect.result)
  const result = await Effect.runPromise(probe)
  return result._tag === "Success" ? result.success : result.failure.message
}

/**
 * The production engine (`native`) when its addon loads here, otherwise
 * `node`, with the reason — so a machine without the addon still gets figures.
 */
export const pickEngine = async (
  dir: string
): Promise<{ readonly engine: Engine; readonly why?: string }> => {
  const native = await probeEngine("native", dir)
  return typeof native === "string" ? { engine: "node", why: native } : { engine: "native" }
}

/** The sentence of a suite's notes that says which engine carried the host and the guest. */
export const engineNote = (picked: { readonly engine: Engine; readonly why?: string }): string =>
  `Host transport: Transport.${picked.engine === "native" ? "layer (native engine)" : "layerNode"}; guest the same.` +
  (picked.why === undefined ? "" : ` The native engine is not available here: ${picked.why}`)

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

/**
 * Starts a host session on `engine`. Only errors are logged, so that the tables
 * stay readable: the scale suite makes the runtime warn about every process it
 * cannot kill on close.
 */
export const hostSession = (engine: Engine): HostSession => {
  const runtime = ManagedRuntime.make(transportLayer(engine))
  const scope = Effect.runSync(Scope.make())
  const lateScope = Effect.runSync(Scope.make())
  const quiet = <A, E>(effect: Effect.Effect<A, E, Transport>) =>
    runtime.runPromise(Effect.provideService(effect, References.MinimumLogLevel, "Error"))
  const run = <A, E>(effect: Effect.Effect<A, E, Transport | Scope.Scope>): Promise<A> =>
    quiet(Scope.provide(scope)(effect))
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
    uvm: (connection) => quiet(Scope.provide(lateScope)(connection.openContainer(NullContainerId))),
    close
  }
}

/** What a suite's body gets from {@link withHost}. */
export interface Host {
  /** The private socket directory. */
  readonly dir: string
  readonly engine: Engine
  /** Why the native engine is not used, when it is not. */
  readonly why?: string
  readonly session: HostSession
  /** Starts our guest as a peer process for `session` (default: the host's) and connects it. */
  readonly guest: (name: string, session?: HostSession) => Promise<GuestConnectionService>
  /** Starts the minimal responder (waits answered at once) for `session` and connects it. */
  readonly responder: (name: string, session?: HostSession) => Promise<GuestConnectionService>
  /** Runs `close` when the suite ends, before the session closes. */
  readonly defer: (close: () => Promise<void>) => void
}

/**
 * Runs a suite's `body` on a host session over the engine picked here, in a
 * private socket directory; afterwards closes what was deferred, the session,
 * and the peers (failing when one of them failed).
 */
export const withHost = async <A>(prefix: string, body: (host: Host) => Promise<A>): Promise<A> => {
  const dir = socketDir(prefix)
  const picked = await pickEngine(dir.path)
  const session = hostSession(picked.engine)
  const peers: Array<PeerProcess> = []
  const deferred: Array<() => Promise<void>> = []
  const connect = (config: PeerConfig, path: string, on: HostSession) => {
    peers.push(startPeer(config))
    return on.connect(path)
  }
  try {
    return await body({
      dir: dir.path,
      ...picked,
      session,
      guest: (name, on = session) => {
        const path = join(dir.path, name)
        return connect({ kind: "guest", path, engine: picked.engine }, path, on)
      },
      responder: (name, on = session) => {
        const path = join(dir.path, name)
        return connect({ kind: "responder", paths: [bridgeSocketPath(path)], holdWaits: false }, path, on)
      },
      defer: (close) => deferred.push(close)
    })
  } finally {
    for (const close of deferred.reverse()) await close()
    await session.close()
    await stopPeers(peers, `${prefix} peer`)
    dir.dispose()
  }
}
