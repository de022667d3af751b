/**
 * Containers (GCS-PROTOCOL §8.1-8.3, §8.8-8.9, §9, §10): Create / open, the
 * lifecycle calls, and the scope that terminates a running container.
 */
import type { ContainerConfig } from "@gcs-bridge/protocol"
import {
  ContainerCreate,
  ContainerGetProperties,
  ContainerModifySettings,
  decodePropertiesV1,
  decodePropertiesV2,
  NullGuid,
  PropertyQuery,
  RequestBase
} from "@gcs-bridge/protocol"
import { Deferred, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import type { CallError } from "../CallError.js"
import type { Container } from "../Container.js"
import { isAlreadyStopped, isSystemNotFound } from "../GuestError.js"
import type { Bridge, Call } from "./Bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as ProcessImpl from "./process.js"
import type { Registration } from "./registry.js"
import * as Rpc from "./rpc.js"

/**
 * ShutdownGraceful / ShutdownForced with the Go post-processing of §8.3: a
 * guest that no longer knows the container has nothing left to stop.
 */
const stop = (
  bridge: Bridge,
  registration: Registration,
  proc: "ShutdownGraceful" | "ShutdownForced"
): Effect.Effect<"delivered" | "gone", CallError> =>
  Rpc.call(bridge, proc, registration.id, {}, (base) => new RequestBase(base, true)).pipe(
    Effect.as("delivered" as const),
    Effect.catchIf(isSystemNotFound, (error) =>
      Effect.flatMap(Deferred.isDone(registration.exit), (exited) =>
        exited
          ? Effect.succeed("gone" as const)
          : Effect.as(
              Effect.logWarning("ignoring missing container").pipe(
                Effect.annotateLogs({ "container-id": registration.id, error: error.message })
              ),
              "gone" as const
            )
      )
    )
  )

/** Builds the handle and ties its lifetime to `scope`. */
const attach = (
  state: ConnectionState,
  registration: Registration,
  scope: Scope.Scope,
  running: boolean
): Effect.Effect<Container> =>
  Effect.gen(function* () {
    const { bridge } = state
    const id = registration.id
    // Whether the container may have started: a Linux container runs from its
    // init's ExecuteProcess (one without OciProcess), a Windows one from Start.
    // One that never started sends no exit notification after ShutdownForced,
    // so closing it must not wait the whole closeTimeout for one.
    let started = running
    const isWindows = state.os === "windows"
    // Runs last: stop listening for the notification once the container is dealt with.
    yield* Scope.addFinalizer(scope, Effect.sync(registration.release))
    yield* Scope.addFinalizer(
      scope,
      Effect.flatMap(Deferred.isDone(registration.exit), (exited) =>
        // Never the null container: shutting it down powers the utility VM off (§8.3, §14.5).
        exited || id === NullGuid || bridge.deadError() !== undefined
          ? Effect.void
          : stop(bridge, registration, "ShutdownForced").pipe(
              // Its init already exited: the notification is on its way.
              Effect.catchIf(isAlreadyStopped, () => Effect.succeed("delivered" as const)),
              Effect.flatMap((outcome) =>
                outcome === "gone" || !started ? Effect.void : Deferred.await(registration.exit)
              ),
              Effect.timeout(state.closeTimeout),
              Effect.catchAllCause((cause) =>
                Effect.logWarning("container did not terminate on close", cause).pipe(
                  Effect.annotateLogs({ "container-id": id })
                )
              ),
              Effect.asVoid
            )
      )
    )

    const properties = (types: ReadonlyArray<string>) =>
      Rpc.call(
        bridge,
        "GetProperties",
        id,
        {},
        (base) =>
          new ContainerGetProperties(
            { ...base, Query: new PropertyQuery({ PropertyTypes: types }, true) },
            true
          )
      )

    const container: Container = {
      id,
      start: Effect.suspend(() => {
        if (isWindows) started = true
        return Effect.asVoid(Rpc.call(bridge, "Start", id, {}, (base) => new RequestBase(base, true)))
      }),
      shutdown: Effect.asVoid(stop(bridge, registration, "ShutdownGraceful")),
      terminate: Effect.asVoid(stop(bridge, registration, "ShutdownForced")),
      wait: Deferred.await(registration.exit),
      properties: (types) =>
        Effect.flatMap(properties(types), (response) => decodePropertiesV1(response.Properties)),
      propertiesV2: (types) =>
        Effect.flatMap(properties(types), (response) => decodePropertiesV2(response.Properties)),
      modify: (settings) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifySettings",
            id,
            {},
            (base) => new ContainerModifySettings({ ...base, Request: settings }, true)
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
 * Best effort for a container the caller no longer owns (its Create was
 * interrupted after the request went out): terminate it once created.
 */
const reapWhenCreated = (bridge: Bridge, id: string, sent: Call<"Create">): Effect.Effect<void> =>
  bridge.background(
    Effect.zipRight(
      Deferred.await(sent.result),
      Effect.zipRight(
        Effect.logDebug("terminating a container whose create was interrupted").pipe(
          Effect.annotateLogs({ "container-id": id })
        ),
        bridge.call("ShutdownForced", id, new RequestBase({ ContainerId: id }, true))
      )
    )
  )

/**
 * Create (§8.1). The exit registration is taken before the request is sent
 * (a fast guest may report the exit before the Create answer is processed)
 * and dropped again if the Create fails, so the id can be retried.
 */
export const create = (
  state: ConnectionState,
  id: string,
  config: ContainerConfig
): Effect.Effect<Container, CallError, Scope.Scope> =>
  Effect.gen(function* () {
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const registration = state.registry.acquire(id)
        yield* Scope.addFinalizer(scope, Effect.sync(registration.release))
        yield* Rpc.traced("Create", id, {}, (base, span) =>
          Effect.gen(function* () {
            const sent = yield* restore(
              state.bridge.send("Create", id, new ContainerCreate({ ...base, ContainerConfig: config }, true))
            )
            span?.attribute("gcs.message_id", sent.id)
            return yield* restore(state.bridge.await(sent)).pipe(
              Effect.onInterrupt(() => reapWhenCreated(state.bridge, id, sent))
            )
          })
        )
        return yield* attach(state, registration, scope, false)
      }).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit))))
    )
  })

/**
 * Attach to a container that already exists in the guest (§10.3): only the
 * exit registration, nothing is sent.
 */
export const open = (state: ConnectionState, id: string): Effect.Effect<Container, never, Scope.Scope> =>
  Effect.gen(function* () {
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    return yield* Effect.uninterruptible(attach(state, state.registry.acquire(id), scope, true))
  })
