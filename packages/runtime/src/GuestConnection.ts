/**
 * The connection to a guest's GCS: the service everything else hangs off.
 *
 * @since 0.1.0
 */
import type { Container as Wire, Negotiate, Service, Uvm } from "@gcs-bridge/protocol"
import type { Address, Connection, Transport } from "@gcs-bridge/transport"
import type { Duration, Effect, Scope } from "effect"
import { Context, Layer } from "effect"
import type { BridgeClosed } from "./BridgeClosed.js"
import type { CallError, ConnectError, ExecError } from "./CallError.js"
import type { Container, ModifySettings } from "./Container.js"
import * as internal from "./internal/guestConnection.js"
import type { Process, ProcessParametersInput } from "./Process.js"

/**
 * Settings of a guest connection. Only `address` is required.
 *
 * @since 0.1.0
 */
export interface GuestConnectionConfig {
  /**
   * Where the guest dials the host: the bridge listener (port `0x40000000`) and every stdio listener (ports
   * from `0x40000001`) are bound on it.
   */
  readonly address: Address
  /**
   * Deadline for the guest to connect (`make` / `layer`) and for the negotiation to complete. Default 2
   * minutes, as the Go host.
   */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * Deadline for the guest to connect each stdio stream after an exec. By default there is none: a guest that
   * never connects (stdio denied by policy) leaves the stream pending until the process's scope closes.
   */
  readonly stdioAcceptTimeout?: Duration.Input | undefined
  /** Largest frame accepted from the guest, header included. Default 64 KiB (the Go host's limit). */
  readonly maxFrameSize?: number | undefined
  /**
   * The Go host's behaviour: a response with an unknown message id, a notification for an unknown container
   * or of an unknown kind, and a response body that fails its Schema kill the bridge. By default (false) they
   * are counted (see `Metrics`), logged and dropped — an undecodable response fails only its own call.
   */
  readonly strict?: boolean | undefined
  /** Frames queued for the writer before callers wait for room. Default 1024. */
  readonly writeQueueCapacity?: number | undefined
  /**
   * Health policy (off by default). When set, the bridge is declared dead (`BridgeClosed`, reason
   * `Unresponsive`) once a call other than `WaitForProcess` has waited this long while nothing at all arrived
   * from the guest. Per-call deadlines are the caller's (`Effect.timeout`); no slow call ever closes the
   * bridge otherwise.
   */
  readonly stallTimeout?: Duration.Input | undefined
  /**
   * Bound on what closing a scope does in the guest: killing a running process, terminating a running
   * container and waiting for its exit. Default 30 seconds (the Go host's shutdown timeout).
   */
  readonly closeTimeout?: Duration.Input | undefined
  /**
   * Whether this is the first connection since the guest booted (default true): then, if the guest asks for
   * it (`SendHostCreateMessage`, `SendHostStartMessage` — Windows guests), the null container is created and
   * started with `initialGuestState` (§7.6).
   */
  readonly coldStart?: boolean | undefined
  /** Settings for the cold-start prelude; only Windows guests use them. */
  readonly initialGuestState?: { readonly timeZone?: Uvm.TimeZoneInformation | undefined } | undefined
}

/**
 * A change sent with `modifyServiceSettings`: `propertyType` is the service (`"LogForwardService"`, the only
 * one defined), `settings` its settings.
 *
 * @since 0.1.0
 */
export interface ServiceSettingsChange {
  readonly propertyType: string
  readonly settings?: Service.LogForwardServiceSettings | unknown
}

/**
 * The operations of a negotiated guest connection.
 *
 * @since 0.1.0
 */
export interface GuestConnectionService {
  /** The protocol version in use: always 4. */
  readonly protocol: number
  /** The guest OS: `"linux"` or `"windows"` (the lower-cased `RuntimeOsType`; empty means Windows). */
  readonly os: string
  /** Whether `exec` takes OCI process specs: always false (UVM processes take HCS `ProcessParameters`). */
  readonly isOci: boolean
  /** The guest-defined capabilities, in the shape of the guest's OS (Windows adds three flags). */
  readonly capabilities: Negotiate.LinuxGuestDefinedCapabilities | Negotiate.WindowsGuestDefinedCapabilities
  /** The whole `Capabilities` object of the negotiate response. */
  readonly gcsCapabilities: Negotiate.GcsCapabilities
  /**
   * Creates a container with `config` (for Linux guests a `LinuxHostedSystem` with the OCI spec; any JSON
   * document is sent as given). The container belongs to the caller's scope.
   */
  readonly createContainer: (
    id: string,
    config: Wire.ContainerConfig
  ) => Effect.Effect<Container, CallError, Scope.Scope>
  /** A handle on a container that already exists in the guest; nothing is sent. */
  readonly openContainer: (id: string) => Effect.Effect<Container, never, Scope.Scope>
  /**
   * Starts a process in the utility VM itself (the null container, §11.10). Stdio listeners are bound before
   * the request is sent; the process belongs to the caller's scope.
   */
  readonly exec: (params: ProcessParametersInput) => Effect.Effect<Process, ExecError, Scope.Scope>
  /** ModifySettings on the utility VM (disks, layers, network, policy…). */
  readonly modify: (settings: ModifySettings) => Effect.Effect<void, CallError>
  /** The guest's goroutine stacks (check `capabilities.DumpStacksSupported`). */
  readonly dumpStacks: Effect.Effect<string, CallError>
  /** Removes an exited container's state from the guest (check `DeleteContainerStateSupported`). */
  readonly deleteContainerState: (id: string) => Effect.Effect<void, CallError>
  /** The legacy UpdateContainer (`Resources` as JSON in a string); current Linux guests answer E_NOTIMPL. */
  readonly updateContainer: (id: string, resources: unknown) => Effect.Effect<void, CallError>
  /** ModifyServiceSettings (Windows log forwarding; check `LogForwardingSupported`). */
  readonly modifyServiceSettings: (change: ServiceSettingsChange) => Effect.Effect<void, CallError>
  /** Completes once the bridge has died, with the reason. */
  readonly closed: Effect.Effect<BridgeClosed>
}

/**
 * The guest connection service.
 *
 * @since 0.1.0
 */
export class GuestConnection extends Context.Service<GuestConnection, GuestConnectionService>()(
  "@gcs-bridge/runtime/GuestConnection"
) {
  /**
   * Listens on `config.address` port `0x40000000`, accepts one guest within `connectTimeout`, closes the
   * listener, and negotiates protocol version 4 (waiting for the answer before anything else is sent), then
   * runs the cold-start prelude if the guest asks for it. The connection lives as long as the current scope;
   * closing it fails every pending call with `BridgeClosed`.
   */
  static readonly make: (
    config: GuestConnectionConfig
  ) => Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> = internal.make

  /**
   * Like `make`, over a connection the caller accepted itself. Stdio listeners are still bound on
   * `config.address`. On failure the connection is closed.
   */
  static readonly fromConnection: (
    connection: Connection,
    config: GuestConnectionConfig
  ) => Effect.Effect<GuestConnectionService, ConnectError, Transport | Scope.Scope> = internal.fromConnection

  /** `make` as a layer. */
  static readonly layer = (
    config: GuestConnectionConfig
  ): Layer.Layer<GuestConnection, ConnectError, Transport> =>
    Layer.effect(GuestConnection, internal.make(config))
}
