/** Establishing a guest connection (GCS-PROTOCOL §7) and its UVM-level calls. */
import {
  Container as Wire,
  Envelope,
  Frame,
  Guid,
  MessageType,
  ModifySettings,
  Negotiate,
  ProtocolError,
  Service,
  Uvm
} from "@gcs-bridge/protocol"
import type { Connection } from "@gcs-bridge/transport"
import { Transport } from "@gcs-bridge/transport"
import { Duration, Effect, Exit, Option, Scope } from "effect"
import type { ConnectError } from "../CallError.js"
import { GuestError } from "../GuestError.js"
import type { GuestConnectionConfig, GuestConnectionService } from "../GuestConnection.js"
import * as Bridge from "./bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as ContainerImpl from "./container.js"
import * as ProcessImpl from "./process.js"
import { Registry } from "./registry.js"
import * as Rpc from "./rpc.js"

const defaultConnectTimeout = Duration.minutes(2)
const { ProtocolVersion } = Negotiate
const request = (base: Rpc.BaseFields) => new Envelope.RequestBase(base)
const refused = (message: string) =>
  new ProtocolError.ProtocolError({ reason: "NegotiationRefused", message })

/** §7.3, then §7.6: what a Windows guest asks for on its first connection. */
const negotiate = (bridge: Bridge.Bridge, config: GuestConnectionConfig) =>
  Effect.gen(function* () {
    // §7.3: the Go host sends this one request with an empty container id.
    const response = yield* Rpc.call(
      bridge,
      "NegotiateProtocol",
      "",
      (base) =>
        new Negotiate.NegotiateProtocolRequest({
          ...base,
          ContainerId: "",
          MinimumVersion: ProtocolVersion,
          MaximumVersion: ProtocolVersion
        })
    ).pipe(
      Effect.catchIf(
        (error) => error instanceof GuestError,
        (error) =>
          Effect.fail(refused(`the guest refused protocol version ${ProtocolVersion}: ${error.message}`))
      )
    )
    if (response.Version !== ProtocolVersion) {
      return yield* refused(
        `unexpected version ${response.Version} returned (only ${ProtocolVersion} is spoken)`
      )
    }
    const caps = response.Capabilities
    if ((config.coldStart ?? true) && caps.SendHostCreateMessage) {
      const uvm = new Uvm.UvmConfig({ TimeZoneInformation: config.initialGuestState?.timeZone ?? null })
      yield* Rpc.call(
        bridge,
        "Create",
        Guid.NullGuid,
        (base) => new Wire.ContainerCreate({ ...base, ContainerConfig: uvm })
      )
      if (caps.SendHostStartMessage) yield* Rpc.call(bridge, "Start", Guid.NullGuid, request)
    }
    return caps
  })

/** Builds the service over a bridge-ready connection; on failure the connection is closed. */
export const fromConnection = (
  connection: Connection,
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const registry = new Registry()
    const bridge = yield* Bridge.make(connection, {
      maxFrameSize: config.maxFrameSize ?? Frame.DefaultMaxFrameSize,
      strict: config.strict ?? false,
      writeQueueCapacity: config.writeQueueCapacity ?? 1024,
      maxAbandonedCalls: 4096,
      stallTimeout:
        config.stallTimeout === undefined ? undefined : Duration.fromInputUnsafe(config.stallTimeout),
      onNotification: (notification) => registry.route(notification),
      onClose: (error) => registry.closeAll(error)
    })

    // Nothing but the negotiation may be in flight until its answer is in (§7.3).
    const caps = yield* negotiate(bridge, config).pipe(
      Effect.timeoutOption(config.connectTimeout ?? defaultConnectTimeout),
      Effect.flatMap(
        Option.match({
          onNone: () => Effect.flatMap(bridge.kill("Unresponsive"), Exit.fail),
          onSome: Effect.succeed
        })
      ),
      Effect.onError(() => bridge.close)
    )

    let nextPort = MessageType.FirstStdioPort
    const os = Negotiate.runtimeOs(caps)
    const state: ConnectionState = {
      bridge,
      transport,
      address: config.address,
      os,
      registry,
      stdioAcceptTimeout: config.stdioAcceptTimeout,
      closeTimeout: Duration.fromInputUnsafe(config.closeTimeout ?? "30 seconds"),
      allocatePort: () => nextPort++
    }
    const service: GuestConnectionService = {
      protocol: ProtocolVersion,
      os,
      isOci: false,
      capabilities: Negotiate.guestDefinedCapabilities(caps),
      gcsCapabilities: caps,
      createContainer: (id, containerConfig) => ContainerImpl.create(state, id, containerConfig),
      openContainer: (id) => ContainerImpl.open(state, id),
      exec: (params) => ProcessImpl.exec(state, Guid.NullGuid, params),
      modify: (settings) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifySettings",
            Guid.NullGuid,
            (base) => new ModifySettings.ContainerModifySettings({ ...base, Request: settings })
          )
        ),
      dumpStacks: Effect.map(
        Rpc.call(bridge, "DumpStacks", Guid.NullGuid, request),
        (response) => response.GuestStacks
      ),
      deleteContainerState: (id) => Effect.asVoid(Rpc.call(bridge, "DeleteContainerState", id, request)),
      updateContainer: (id, resources) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "UpdateContainer",
            id,
            (base) => new Wire.UpdateContainerRequest({ ...base, Resources: resources })
          )
        ),
      modifyServiceSettings: (change) =>
        Effect.asVoid(
          Rpc.call(
            bridge,
            "ModifyServiceSettings",
            Guid.NullGuid,
            (base) =>
              new Service.ServiceModificationRequest({
                ...base,
                PropertyType: change.propertyType,
                ...(change.settings === undefined ? {} : { Settings: change.settings })
              })
          )
        ),
      closed: bridge.closed
    }
    return service
  })

/** Listens on the bridge port, accepts one guest, stops listening, and builds the service over its connection. */
export const make = (
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const outer = yield* Effect.scope
    // The listener lives in a scope of its own, closed once the guest is in (or the accept failed).
    const connection = yield* Effect.scoped(
      Effect.flatMap(transport.listen(config.address, MessageType.LinuxGcsVsockPort), (listener) =>
        Scope.provide(listener.accept({ timeout: config.connectTimeout ?? defaultConnectTimeout }), outer)
      )
    )
    return yield* fromConnection(connection, config)
  })
