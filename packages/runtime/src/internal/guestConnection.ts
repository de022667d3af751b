/**
 * Establishing a guest connection (GCS-PROTOCOL §7) and its UVM-level calls.
 */
import {
  ContainerCreate,
  ContainerModifySettings,
  DefaultMaxFrameSize,
  FirstStdioPort,
  guestDefinedCapabilities,
  LinuxGcsVsockPort,
  NegotiateProtocolRequest,
  NullGuid,
  ProtocolError,
  ProtocolVersion,
  RequestBase,
  runtimeOs,
  ServiceModificationRequest,
  UpdateContainerRequest,
  UvmConfig
} from "@gcs-bridge/protocol"
import type { Connection } from "@gcs-bridge/transport"
import { Transport } from "@gcs-bridge/transport"
import { Duration, Effect, ExecutionStrategy, Exit, Option, Scope } from "effect"
import type { ConnectError } from "../CallError.js"
import { GuestError } from "../GuestError.js"
import type { GuestConnectionConfig, GuestConnectionService } from "../GuestConnection.js"
import * as Bridge from "./Bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as ContainerImpl from "./container.js"
import * as ProcessImpl from "./process.js"
import { Registry } from "./registry.js"
import * as Rpc from "./rpc.js"

const defaultConnectTimeout = Duration.minutes(2)
const defaultCloseTimeout = Duration.seconds(30)
const defaultWriteQueueCapacity = 1024
const maxAbandonedCalls = 4096

/** What the negotiation established. */
interface Negotiated {
  readonly os: string
  readonly service: Pick<GuestConnectionService, "capabilities" | "gcsCapabilities">
  readonly sendCreate: boolean
  readonly sendStart: boolean
}

const negotiate = (bridge: Bridge.Bridge): Effect.Effect<Negotiated, ConnectError> =>
  Rpc.call(
    bridge,
    "NegotiateProtocol",
    "",
    {},
    (base) =>
      // §7.3: the Go host sends this one request with an empty container id.
      new NegotiateProtocolRequest(
        { ...base, ContainerId: "", MinimumVersion: ProtocolVersion, MaximumVersion: ProtocolVersion },
        true
      )
  ).pipe(
    Effect.catchIf(
      (error): error is GuestError => error instanceof GuestError,
      (error) =>
        Effect.fail(
          new ProtocolError({
            reason: "NegotiationRefused",
            message: `the guest refused protocol version ${ProtocolVersion}: ${error.message}`
          })
        )
    ),
    Effect.flatMap((response) => {
      if (response.Version !== ProtocolVersion) {
        return Effect.fail(
          new ProtocolError({
            reason: "NegotiationRefused",
            message: `unexpected version ${response.Version} returned (only ${ProtocolVersion} is spoken)`
          })
        )
      }
      const caps = response.Capabilities
      return Effect.succeed({
        os: runtimeOs(caps),
        service: { capabilities: guestDefinedCapabilities(caps), gcsCapabilities: caps },
        sendCreate: caps.SendHostCreateMessage,
        sendStart: caps.SendHostStartMessage
      })
    })
  )

/** §7.6: what a Windows guest asks for on its first connection. */
const prelude = (
  bridge: Bridge.Bridge,
  negotiated: Negotiated,
  config: GuestConnectionConfig
): Effect.Effect<void, ConnectError> => {
  if (!(config.coldStart ?? true) || !negotiated.sendCreate) return Effect.void
  const uvmConfig = new UvmConfig({ TimeZoneInformation: config.initialGuestState?.timeZone ?? null }, true)
  const create = Rpc.call(
    bridge,
    "Create",
    NullGuid,
    {},
    (base) => new ContainerCreate({ ...base, ContainerConfig: uvmConfig }, true)
  )
  const start = Rpc.call(bridge, "Start", NullGuid, {}, (base) => new RequestBase(base, true))
  return Effect.asVoid(negotiated.sendStart ? Effect.zipRight(create, start) : create)
}

/** Builds the service over a bridge-ready connection. */
export const fromConnection = (
  connection: Connection,
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const outer = yield* Effect.scope
    const bridgeScope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const registry = new Registry()
    const bridge = yield* Bridge.make(
      connection,
      {
        maxFrameSize: config.maxFrameSize ?? DefaultMaxFrameSize,
        strict: config.strict ?? false,
        writeQueueCapacity: config.writeQueueCapacity ?? defaultWriteQueueCapacity,
        maxAbandonedCalls,
        stallTimeout: Option.map(Option.fromNullable(config.stallTimeout), Duration.decode),
        onNotification: (notification) => registry.route(notification),
        onClose: (error) => registry.closeAll(error)
      },
      bridgeScope
    )
    const connectTimeout = Duration.decode(config.connectTimeout ?? defaultConnectTimeout)

    // Nothing but the negotiation may be in flight until its answer is in (§7.3).
    const negotiated = yield* negotiate(bridge).pipe(
      Effect.tap((n) => prelude(bridge, n, config)),
      Effect.timeoutOption(connectTimeout),
      Effect.flatMap(
        Option.match({
          onNone: () => Effect.flatMap(bridge.kill("Unresponsive"), Exit.fail),
          onSome: Effect.succeed
        })
      ),
      Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(bridgeScope, exit)))
    )

    let nextPort = FirstStdioPort
    const state: ConnectionState = {
      bridge,
      transport,
      address: config.address,
      os: negotiated.os,
      registry,
      stdioAcceptTimeout: config.stdioAcceptTimeout,
      closeTimeout: Duration.decode(config.closeTimeout ?? defaultCloseTimeout),
      allocatePort: () => nextPort++
    }

    const service: GuestConnectionService = {
      protocol: ProtocolVersion,
      os: negotiated.os,
      isOci: false,
      ...negotiated.service,
      createContainer: (id, containerConfig) => ContainerImpl.create(state, id, containerConfig),
      openContainer: (id) => ContainerImpl.open(state, id),
      exec: (params) => ProcessImpl.exec(state, NullGuid, params),
      modify: (settings) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifySettings",
            NullGuid,
            {},
            (base) => new ContainerModifySettings({ ...base, Request: settings }, true)
          )
        ),
      dumpStacks: Effect.map(
        Rpc.call(bridge, "DumpStacks", NullGuid, {}, (base) => new RequestBase(base, true)),
        (response) => response.GuestStacks
      ),
      deleteContainerState: (id) =>
        Effect.asVoid(
          Rpc.call(bridge, "DeleteContainerState", id, {}, (base) => new RequestBase(base, true))
        ),
      updateContainer: (id, resources) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "UpdateContainer",
            id,
            {},
            (base) => new UpdateContainerRequest({ ...base, Resources: resources }, true)
          )
        ),
      modifyServiceSettings: (change) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifyServiceSettings",
            NullGuid,
            {},
            (base) =>
              new ServiceModificationRequest(
                {
                  ...base,
                  PropertyType: change.propertyType,
                  ...(change.settings === undefined ? {} : { Settings: change.settings })
                },
                true
              )
          )
        ),
      closed: bridge.closed
    }
    return service
  })

/** Listens on the bridge port, accepts the guest, and builds the service over its connection. */
export const make = (
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const outer = yield* Effect.scope
    const listenerScope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    // One guest per listener: it is closed as soon as the guest is in (or the accept failed).
    const connection = yield* Effect.gen(function* () {
      const listener = yield* Scope.extend(transport.listen(config.address, LinuxGcsVsockPort), listenerScope)
      return yield* listener.accept({ timeout: config.connectTimeout ?? defaultConnectTimeout })
    }).pipe(Effect.ensuring(Scope.close(listenerScope, Exit.void)))
    return yield* fromConnection(connection, config).pipe(Effect.onError(() => connection.close))
  })
