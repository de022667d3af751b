/** Containers (GCS-PROTOCOL §8.1-8.3, §8.8-8.9, §9, §10): Create / open, lifecycle calls, terminate on close. */
import { Codec, Container as Wire, Envelope, Guid, ModifySettings, Properties } from "@gcs-bridge/protocol"
import { ProtocolError } from "@gcs-bridge/protocol"
import { Deferred, Effect } from "effect"
import type { Result, Scope } from "effect"
import type { Container, ModifySettings as Settings } from "../Container.js"
import { type CallError, isAlreadyStopped, isSystemNotFound } from "../Errors.js"
import type { Bridge } from "./bridge.js"
import type { ConnectionState } from "./guestConnection.js"
import * as ProcessImpl from "./process.js"
import type { Registration } from "./registry.js"
import * as Rpc from "./rpc.js"

/** ModifySettings on container `id` (the null GUID: the utility VM). */
export const modify = (bridge: Bridge, id: string, settings: Settings): Effect.Effect<void, CallError> => {
  const body = (base: Rpc.BaseFields) =>
    new ModifySettings.ContainerModifySettings({ ...base, Request: settings })
  return Effect.asVoid(Rpc.call(bridge, "ModifySettings", id, body))
}

/** ShutdownGraceful / ShutdownForced; as in Go (§8.3), a guest that no longer knows the container has nothing to stop. */
const stop = (bridge: Bridge, registration: Registration, proc: "ShutdownGraceful" | "ShutdownForced") => {
  const exited = () => Deferred.isDoneUnsafe(registration.exit)
  return Rpc.call(bridge, proc, registration.id, Rpc.request).pipe(
    Effect.as("delivered" as const),
    Rpc.whenGone(isSystemNotFound, exited, "gone" as const, "container", { "container-id": registration.id })
  )
}

/** Builds the handle; closing the current scope terminates the container if it still runs. */
const attach = (state: ConnectionState, registration: Registration, running: boolean) =>
  Effect.gen(function* () {
    const { bridge } = state
    const id = registration.id
    const isWindows = state.os === "windows"
    // Never started (Linux: no init exec, Windows: no Start): ShutdownForced brings no exit notification to wait for.
    let started = running
    const annotations = { "container-id": id }
    const terminate = stop(bridge, registration, "ShutdownForced").pipe(
      // Its init already exited: the notification is on its way.
      Effect.catchIf(isAlreadyStopped, () => Effect.succeed("delivered" as const)),
      Effect.flatMap((outcome) =>
        outcome === "gone" || !started ? Effect.void : Deferred.await(registration.exit)
      ),
      (terminate) =>
        Rpc.onClose(terminate, state.closeTimeout, "container did not terminate on close", annotations)
    )
    // One finalizer, so that the registration outlives the wait whatever the scope's strategy.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() =>
        // Never the null container: shutting it down powers the utility VM off (§8.3, §14.5).
        Deferred.isDoneUnsafe(registration.exit) || id === Guid.NullGuid || bridge.dead() !== undefined
          ? Effect.void
          : terminate
      ).pipe(Effect.ensuring(Effect.sync(registration.release)))
    )

    const properties = <A>(
      types: ReadonlyArray<string>,
      decode: (u: unknown) => Result.Result<A, ProtocolError.ProtocolError>
    ) => {
      const Query = new Properties.PropertyQuery({ PropertyTypes: types })
      const body = (base: Rpc.BaseFields) => new Properties.ContainerGetProperties({ ...base, Query })
      return Effect.flatMap(Rpc.call(bridge, "GetProperties", id, body), (r) =>
        Effect.fromResult(decode(r.Properties))
      )
    }

    // An effect is a value: the Start call is built once per handle, not on every start.
    const startCall = Effect.asVoid(Rpc.call(bridge, "Start", id, Rpc.request))
    const container: Container = {
      id,
      start: Effect.andThen(
        Effect.sync(() => {
          if (isWindows) started = true
        }),
        startCall
      ),
      shutdown: Effect.asVoid(stop(bridge, registration, "ShutdownGraceful")),
      terminate: Effect.asVoid(stop(bridge, registration, "ShutdownForced")),
      wait: Deferred.await(registration.exit),
      properties: (types) => properties(types, Codec.decodePropertiesV1),
      propertiesV2: (types) => properties(types, Codec.decodePropertiesV2),
      modify: (settings) => modify(bridge, id, settings),
      exec: (params) =>
        Effect.suspend(() => {
          if (!isWindows && params.OciProcess === undefined) started = true
          return ProcessImpl.exec(state, id, params)
        })
    }
    return container
  })

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** What the Linux GCS dies without: it reads any object but a `UvmConfig` as a `LinuxHostedSystem` and
 * dereferences its `OciSpecification`'s `linux`, `root`, `process` unchecked (`setupStandaloneContainerSpec`). */
const crashesLinuxGuest = (config: Wire.ContainerConfig): string | undefined => {
  if (!isObject(config) || "SystemType" in config) return undefined
  const spec = config["OciSpecification"]
  if (!isObject(spec)) return "an OciSpecification"
  const missing = ["linux", "root", "process"].find((field) => !isObject(spec[field]))
  return missing === undefined ? undefined : `an OciSpecification with a "${missing}" object`
}

/**
 * Create (§8.1). The exit registration is taken before sending (a fast guest may report the exit first) and
 * dropped if the Create fails, so the id can be retried. An interrupted Create is terminated once answered.
 */
export const create = (
  state: ConnectionState,
  id: string,
  config: Wire.ContainerConfig
): Effect.Effect<Container, CallError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) => {
    const needed = state.os === "linux" ? crashesLinuxGuest(config) : undefined
    if (needed !== undefined) {
      const message = `container ${id} refused: a Linux guest needs ${needed} (its GCS crashes without one)`
      return Effect.fail(new ProtocolError.ProtocolError({ reason: "EncodeFailed", message }))
    }
    const { bridge } = state
    const registration = state.registry.acquire(id)
    const log = Effect.logDebug("terminating a container whose create was interrupted")
    const reap = <A>(result: Deferred.Deferred<A, CallError>) =>
      bridge.background(
        Deferred.await(result).pipe(
          Effect.andThen(Effect.annotateLogs(log, { "container-id": id })),
          Effect.andThen(bridge.call("ShutdownForced", id, new Envelope.RequestBase({ ContainerId: id })))
        )
      )
    const body = (base: Rpc.BaseFields) => new Wire.ContainerCreate({ ...base, ContainerConfig: config })
    return Rpc.send(bridge, "Create", id, body, (sent) =>
      restore(bridge.await(sent)).pipe(Effect.onInterrupt(() => reap(sent.result)))
    ).pipe(
      Effect.onError(() => Effect.sync(registration.release)),
      Effect.andThen(attach(state, registration, false))
    )
  })

/** Attaches to a container that already exists in the guest (§10.3); nothing is sent. */
export const open = (state: ConnectionState, id: string): Effect.Effect<Container, never, Scope.Scope> =>
  Effect.uninterruptible(Effect.suspend(() => attach(state, state.registry.acquire(id), true)))
