/** The connection to a guest's GCS: the service everything else hangs off. @since 0.1.0 */
import type { Container as Wire, Negotiate, Service, Uvm } from "@gcs-bridge/protocol"
import type { Address } from "@gcs-bridge/transport"
import type { Duration, Effect, Scope } from "effect"
import { Context, Layer } from "effect"
import type { Container, ModifySettings } from "./Container.js"
import type { BridgeClosed, CallError, ExecError } from "./Errors.js"
import * as internal from "./internal/guestConnection.js"
import type { MigrationState, SavedProcess } from "./Migration.js"
import type { Process, ProcessParametersInput } from "./Process.js"

/** Settings of a guest connection; only `address` is required (defaults: see the README). @since 0.1.0 */
export interface GuestConnectionConfig {
  /** Where the bridge listener (port `0x40000000`) and every stdio listener are bound. */
  readonly address: Address
  /** Deadline for the guest to connect and negotiate (default 2 minutes). */
  readonly connectTimeout?: Duration.Input | undefined
  /** Deadline for each stdio connection (default none: pending until the process's scope closes). */
  readonly stdioAcceptTimeout?: Duration.Input | undefined
  /** Go's `CopyAfterExitTimeout` (default 1 s): how long stdout / stderr wait in all for bytes after the exit. */
  readonly copyAfterExitTimeout?: Duration.Input | undefined
  /** Largest inbound frame, header included (default 64 KiB). */
  readonly maxFrameSize?: number | undefined
  /** Go's behaviour: unknown ids, containers or notification kinds and undecodable bodies kill the bridge. */
  readonly strict?: boolean | undefined
  /** Frames queued for the writer before callers wait for room (default 1024). */
  readonly writeQueueCapacity?: number | undefined
  /** Health policy (off by default): `Unresponsive` once a call waited this long with nothing inbound. */
  readonly stallTimeout?: Duration.Input | undefined
  /** Bound on the kill / terminate / wait a closing scope does in the guest (default 30 seconds). */
  readonly closeTimeout?: Duration.Input | undefined
  /** First connection since boot (default true): run the cold-start prelude if the guest asks for it (§7.6). */
  readonly coldStart?: boolean | undefined
  /** Settings for the cold-start prelude (Windows guests). */
  readonly initialGuestState?: { readonly timeZone?: Uvm.TimeZoneInformation | undefined } | undefined
  /**
   * Survive a dropped bridge (off by default): for this long after the bridge connection ends, the bridge port is
   * listened on again and the guest's re-dial accepted and renegotiated (no prelude); process waits are re-issued,
   * other calls in flight fail with `BridgeReconnected`, new calls wait. Past it, the bridge dies of the break.
   */
  readonly reconnect?: Duration.Input | undefined
  /**
   * Take over a guest from another host process (§12.9): the saved id and port counters are continued, the saved
   * waits registered before anything is sent, and no prelude runs. Then `restoreProcess` each saved process.
   */
  readonly resume?: MigrationState | undefined
}

/** A `modifyServiceSettings` change: `propertyType` names the service (`"LogForwardService"`). @since 0.1.0 */
export interface ServiceSettingsChange {
  readonly propertyType: string
  readonly settings?: Service.LogForwardServiceSettings | unknown
}

/** The operations of a negotiated guest connection. @since 0.1.0 */
export interface GuestConnectionService {
  /** Always 4. */
  readonly protocol: number
  /** `"linux"` or `"windows"` (the lower-cased `RuntimeOsType`; empty means Windows). */
  readonly os: string
  /** Always false: UVM processes take HCS `ProcessParameters`. */
  readonly isOci: boolean
  readonly capabilities: Negotiate.LinuxGuestDefinedCapabilities | Negotiate.WindowsGuestDefinedCapabilities
  /** The whole `Capabilities` object of the negotiate response. */
  readonly gcsCapabilities: Negotiate.GcsCapabilities
  /** Creates a container owned by the caller's scope (Linux: a `LinuxHostedSystem`; any JSON is sent as is). */
  readonly createContainer: (
    id: string,
    config: Wire.ContainerConfig
  ) => Effect.Effect<Container, CallError, Scope.Scope>
  /** A handle on a container that already exists in the guest; nothing is sent. */
  readonly openContainer: (id: string) => Effect.Effect<Container, never, Scope.Scope>
  /** Starts a process in the utility VM (the null container, §11.10), owned by the caller's scope. */
  readonly exec: (params: ProcessParametersInput) => Effect.Effect<Process, ExecError, Scope.Scope>
  /** ModifySettings on the utility VM. */
  readonly modify: (settings: ModifySettings) => Effect.Effect<void, CallError>
  /** The guest's goroutine stacks (`DumpStacksSupported`). */
  readonly dumpStacks: Effect.Effect<string, CallError>
  /** Removes an exited container's state (`DeleteContainerStateSupported`). */
  readonly deleteContainerState: (id: string) => Effect.Effect<void, CallError>
  /** The legacy UpdateContainer; current Linux guests answer E_NOTIMPL. */
  readonly updateContainer: (id: string, resources: unknown) => Effect.Effect<void, CallError>
  /** ModifyServiceSettings (`LogForwardingSupported`). */
  readonly modifyServiceSettings: (change: ServiceSettingsChange) => Effect.Effect<void, CallError>
  /** §12.9 save side: the counters and every running process, for `resume` in another host process. */
  readonly migrationState: Effect.Effect<MigrationState>
  /**
   * §12.9 restore side, for a process of `resume`: re-binds its stdio on the saved ports, watches its saved wait,
   * and probes it with a 50 ms WaitForProcess (answered: it had already exited). Owned by the caller's scope.
   */
  readonly restoreProcess: (saved: SavedProcess) => Effect.Effect<Process, ExecError, Scope.Scope>
  /** Completes once the bridge has died, with the reason. */
  readonly closed: Effect.Effect<BridgeClosed>
}

/** The guest connection service. @since 0.1.0 */
export class GuestConnection extends Context.Service<GuestConnection, GuestConnectionService>()(
  "@gcs-bridge/runtime/GuestConnection"
) {
  /** Accepts one guest on port `0x40000000` of `config.address`, negotiates, and lives as long as the scope. */
  static readonly make = internal.make
  /** Like `make`, over a connection the caller accepted; it is closed on failure. */
  static readonly fromConnection = internal.fromConnection
  /** `make` as a layer. */
  static readonly layer = (config: GuestConnectionConfig) =>
    Layer.effect(GuestConnection, internal.make(config))
}
