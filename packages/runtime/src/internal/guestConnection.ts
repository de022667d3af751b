/** Establishing a guest connection (GCS-PROTOCOL §7) and its UVM-level calls. */
import { Container as Wire, Frame, Guid, MessageType, Negotiate } from "@gcs-bridge/protocol"
import { ProtocolError, Service, Uvm } from "@gcs-bridge/protocol"
import type { Address, Connection, TransportService } from "@gcs-bridge/transport"
import { Transport } from "@gcs-bridge/transport"
import { Duration, Effect, Exit, Scope } from "effect"
import type { ConnectError } from "../Errors.js"
import { MigrationState, type SavedProcess } from "../Migration.js"
import type { GuestConnectionConfig, GuestConnectionService } from "../GuestConnection.js"
import * as Bridge from "./bridge.js"
import * as ContainerImpl from "./container.js"
import * as ProcessImpl from "./process.js"
import { Registry } from "./registry.js"
import * as Rpc from "./rpc.js"

/** What every container and process of one negotiated connection shares. */
export interface ConnectionState {
  readonly bridge: Bridge.Bridge
  readonly transport: TransportService
  /** Where stdio listeners are bound. */
  readonly address: Address
  readonly os: string
  readonly registry: Registry
  readonly stdioAcceptTimeout: Duration.Input | undefined
  readonly copyAfterExitTimeout: Duration.Duration
  readonly closeTimeout: Duration.Duration
  /** Next stdio port (§11.4): per connection, never reused. */
  readonly allocatePort: () => number
  /** Live processes, for a migration's save; made by the first exec. */
  processes: Set<{ readonly saved: () => SavedProcess | undefined }> | undefined
}

const defaultConnectTimeout = Duration.minutes(2)
const { ProtocolVersion } = Negotiate
const refused = (message: string) =>
  new ProtocolError.ProtocolError({ reason: "NegotiationRefused", message })

/** §7.3, then §7.6: what a Windows guest asks for on its first connection. */
const negotiate = (bridge: Bridge.Bridge, config: GuestConnectionConfig) =>
  Effect.gen(function* () {
    // §7.3: the Go host sends this one request with an empty container id.
    const versions = { MinimumVersion: ProtocolVersion, MaximumVersion: ProtocolVersion }
    const body = (base: Rpc.BaseFields) => new Negotiate.NegotiateProtocolRequest({ ...base, ...versions })
    const response = yield* Rpc.call(bridge, "NegotiateProtocol", "", body).pipe(
      Effect.catchTag("GuestError", (error) =>
        Effect.fail(refused(`the guest refused protocol version ${ProtocolVersion}: ${error.message}`))
      )
    )
    if (response.Version !== ProtocolVersion)
      return yield* refused(
        `unexpected version ${response.Version} returned (only ${ProtocolVersion} is spoken)`
      )
    const caps = response.Capabilities
    if ((config.coldStart ?? true) && caps.SendHostCreateMessage) {
      const ContainerConfig = new Uvm.UvmConfig({
        TimeZoneInformation: config.initialGuestState?.timeZone ?? null
      })
      const create = (base: Rpc.BaseFields) => new Wire.ContainerCreate({ ...base, ContainerConfig })
      yield* Rpc.call(bridge, "Create", Guid.NullGuid, create)
      if (caps.SendHostStartMessage) yield* Rpc.call(bridge, "Start", Guid.NullGuid, Rpc.request)
    }
    return caps
  })

/** Listens on the bridge port until one guest connects (living in the caller's scope), then stops listening. */
const acceptGuest = (transport: TransportService, config: GuestConnectionConfig, timeout?: Duration.Input) =>
  Effect.flatMap(Effect.scope, (outer) =>
    Effect.scoped(
      Effect.flatMap(transport.listen(config.address, MessageType.LinuxGcsVsockPort), (listener) =>
        Scope.provide(listener.accept(timeout === undefined ? undefined : { timeout }), outer)
      )
    )
  )

/** Builds the service over a bridge-ready connection; on failure the connection is closed. */
export const fromConnection = (
  connection: Connection,
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const registry = new Registry()
    const { resume } = config
    // A renegotiation never runs the prelude: the guest is not fresh (§12.9).
    const warm = { ...config, coldStart: false }
    const bridge = yield* Bridge.make(connection, {
      firstId: resume?.nextMessageId,
      reconnect:
        config.reconnect === undefined
          ? undefined
          : {
              window: Duration.fromInputUnsafe(config.reconnect),
              accept: acceptGuest(transport, config),
              handshake: (bridge) => negotiate(bridge, warm)
            },
      maxFrameSize: config.maxFrameSize ?? Frame.DefaultMaxFrameSize,
      strict: config.strict ?? false,
      writeQueueCapacity: config.writeQueueCapacity ?? 1024,
      maxAbandonedCalls: 4096,
      stallTimeout: config.stallTimeout,
      onNotification: (notification) => registry.route(notification),
      onClose: (error) => registry.closeAll(error)
    })

    // Registered before anything is read: the guest may answer a saved wait right after negotiating.
    const preregister = ({ containerId, pid, waitCallId }: SavedProcess) =>
      bridge.preregister(
        waitCallId,
        containerId,
        ProcessImpl.waitBody({ ...Rpc.base(containerId, undefined), ProcessId: pid })
      )
    let restored: Map<number, Bridge.Call<"WaitForProcess">> | undefined
    for (const saved of resume?.processes ?? [])
      (restored ??= new Map()).set(saved.waitCallId, yield* preregister(saved))

    // Nothing but the negotiation may be in flight until its answer is in (§7.3).
    const caps = yield* negotiate(bridge, resume === undefined ? config : warm).pipe(
      Effect.timeoutOrElse({
        duration: config.connectTimeout ?? defaultConnectTimeout,
        orElse: () => Effect.flatMap(bridge.kill("Unresponsive"), Exit.fail)
      }),
      Effect.onError(() => bridge.close)
    )

    let nextPort = resume?.nextPort ?? MessageType.FirstStdioPort
    const os = Negotiate.runtimeOs(caps)
    const state: ConnectionState = {
      bridge,
      transport,
      address: config.address,
      os,
      registry,
      stdioAcceptTimeout: config.stdioAcceptTimeout,
      copyAfterExitTimeout: Duration.fromInputUnsafe(config.copyAfterExitTimeout ?? "1 second"),
      closeTimeout: Duration.fromInputUnsafe(config.closeTimeout ?? "30 seconds"),
      allocatePort: () => nextPort++,
      processes: undefined
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
      modify: (settings) => ContainerImpl.modify(bridge, Guid.NullGuid, settings),
      dumpStacks: Effect.map(
        Rpc.call(bridge, "DumpStacks", Guid.NullGuid, Rpc.request),
        (r) => r.GuestStacks
      ),
      deleteContainerState: (id) => Effect.asVoid(Rpc.call(bridge, "DeleteContainerState", id, Rpc.request)),
      updateContainer: (id, Resources) => {
        const body = (base: Rpc.BaseFields) => new Wire.UpdateContainerRequest({ ...base, Resources })
        return Effect.asVoid(Rpc.call(bridge, "UpdateContainer", id, body))
      },
      modifyServiceSettings: ({ propertyType, settings }) => {
        const change = {
          PropertyType: propertyType,
          ...(settings === undefined ? {} : { Settings: settings })
        }
        const body = (base: Rpc.BaseFields) => new Service.ServiceModificationRequest({ ...base, ...change })
        return Effect.asVoid(Rpc.call(bridge, "ModifyServiceSettings", Guid.NullGuid, body))
      },
      migrationState: Effect.sync(() => {
        const processes = Array.from(state.processes ?? [], (p) => p.saved()).filter((p) => p !== undefined)
        return new MigrationState({ version: 1, nextPort, nextMessageId: bridge.nextId(), processes })
      }),
      restoreProcess: (saved) =>
        Effect.flatMap(
          Effect.suspend(() => {
            const call = restored?.get(saved.waitCallId)
            return call === undefined ? preregister(saved) : Effect.succeed(call)
          }),
          (call) => ProcessImpl.restore(state, saved, call)
        ),
      closed: bridge.closed
    }
    return service
  })

/** Accepts one guest on the bridge port, stops listening, and builds the service over its connection. */
export const make = (
  config: GuestConnectionConfig
): Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const connection = yield* acceptGuest(transport, config, config.connectTimeout ?? defaultConnectTimeout)
    return yield* fromConnection(connection, config)
  })
