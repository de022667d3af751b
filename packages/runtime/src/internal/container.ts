/**
 * Containers (GCS-PROTOCOL §8.1-8.3, §8.8-8.9, §9, §10): Create / open, the lifecycle calls, and the
 * finalizer that terminates a running container.
 */
import { Codec, Container as Wire, Envelope, Guid, ModifySettings, Properties } from "@gcs-bridge/protocol"
import { Deferred, Effect } from "effect"
import type { Scope } from "effect"
import type { CallError } from "../CallError.js"
import type { Container } from "../Container.js"
import { isAlreadyStopped, isSystemNotFound } from "../GuestError.js"
import type { Bridge } from "./bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as ProcessImpl from "./process.js"
import type { Registration } from "./registry.js"
import * as Rpc from "./rpc.js"

const request = (base: Rpc.BaseFields) => new Envelope.RequestBase(base)

/**
 * ShutdownGraceful / ShutdownForced with the Go post-processing of §8.3: a guest that no longer knows the
 * container has nothing left to stop.
 */
const stop = (bridge: Bridge, registration: Registration, proc: "ShutdownGraceful" | "ShutdownForced") =>
  Rpc.call(bridge, proc, registration.id, request).pipe(
    Effect.as("delivered" as const),
    Rpc.whenGone(
      isSystemNotFound,
      () => Deferred.isDoneUnsafe(registration.exit),
      "gone" as const,
      "container",
      {
        "container-id": registration.id
      }
    )
  )

/** Builds the handle; closing the current scope terminates the container if it still runs. */
const attach = (state: ConnectionState, registration: Registration, running: boolean) =>
  Effect.gen(function* () {
    const { bridge } = state
    const id = registration.id
    const isWindows = state.os === "windows"
    // Whether the container may have started: a Linux container runs from its init's ExecuteProcess (one
    // without OciProcess), a Windows one from Start. One that never started sends no exit notification after
    // ShutdownForced, so closing it must not wait the whole closeTimeout for one.
    let started = running
    const terminate = stop(bridge, registration, "ShutdownForced").pipe(
      // Its init already exited: the notification is on its way.
      Effect.catchIf(isAlreadyStopped, () => Effect.succeed("delivered" as const)),
      Effect.flatMap((outcome) =>
        outcome === "gone" || !started ? Effect.void : Deferred.await(registration.exit)
      ),
      (terminate) =>
        Rpc.onClose(terminate, state.closeTimeout, "container did not terminate on close", {
          "container-id": id
        })
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

    const properties = (types: ReadonlyArray<string>) =>
      Effect.map(
        Rpc.call(
          bridge,
          "GetProperties",
          id,
          (base) =>
            new Properties.ContainerGetProperties({
              ...base,
              Query: new Properties.PropertyQuery({ PropertyTypes: types })
            })
        ),
        (response) => response.Properties
      )

    const container: Container = {
      id,
      start: Effect.suspend(() => {
        if (isWindows) started = true
        return Effect.asVoid(Rpc.call(bridge, "Start", id, request))
      }),
      shutdown: Effect.asVoid(stop(bridge, registration, "ShutdownGraceful")),
      terminate: Effect.asVoid(stop(bridge, registration, "ShutdownForced")),
      wait: Deferred.await(registration.exit),
      properties: (types) =>
        Effect.flatMap(properties(types), (p) => Effect.fromResult(Codec.decodePropertiesV1(p))),
      propertiesV2: (types) =>
        Effect.flatMap(properties(types), (p) => Effect.fromResult(Codec.decodePropertiesV2(p))),
      modify: (settings) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifySettings",
            id,
            (base) => new ModifySettings.ContainerModifySettings({ ...base, Request: settings })
          )
        ),
      exec: (params) =>
        Effect.suspend(() => {
          if (!isWindows && params.OciProcess === undefined) started = true
          return ProcessImpl.exec(state, id, params)
        })
    }
    return container
  })

/**
 * Create (§8.1). The exit registration is taken before the request is sent (a fast guest may report the exit
 * before the Create answer is processed) and dropped again if the Create fails, so the id can be retried. A
 * Create whose caller left after it was sent is terminated once it is answered.
 */
export const create = (
  state: ConnectionState,
  id: string,
  config: Wire.ContainerConfig
): Effect.Effect<Container, CallError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) => {
    const { bridge } = state
    const registration = state.registry.acquire(id)
    const reap = <A>(result: Deferred.Deferred<A, CallError>) =>
      bridge.background(
        Deferred.await(result).pipe(
          Effect.andThen(
            Effect.annotateLogs(Effect.logDebug("terminating a container whose create was interrupted"), {
              "container-id": id
            })
          ),
          Effect.andThen(bridge.call("ShutdownForced", id, new Envelope.RequestBase({ ContainerId: id })))
        )
      )
    return Rpc.send(
      bridge,
      "Create",
      id,
      (base) => new Wire.ContainerCreate({ ...base, ContainerConfig: config }),
      (sent) => restore(bridge.await(sent)).pipe(Effect.onInterrupt(() => reap(sent.result)))
    ).pipe(
      Effect.onError(() => Effect.sync(registration.release)),
      Effect.andThen(attach(state, registration, false))
    )
  })

/** Attach to a container that already exists in the guest (§10.3): only the exit registration, nothing is sent. */
export const open = (state: ConnectionState, id: string): Effect.Effect<Container, never, Scope.Scope> =>
  Effect.uninterruptible(Effect.suspend(() => attach(state, state.registry.acquire(id), true)))
