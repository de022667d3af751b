/**
 * A container in the guest.
 *
 * @since 0.1.0
 */
import type { Container as Wire, ModifySettings as Modify, Properties } from "@gcs-bridge/protocol"
import type { Effect, Scope } from "effect"
import { Data } from "effect"
import type { BridgeClosed } from "./BridgeClosed.js"
import type { CallError, ExecError } from "./CallError.js"
import type { Process, ProcessParametersInput } from "./Process.js"

/**
 * How `Container.wait` ended: the guest's exit notification arrived (`Exited`, with the notification as sent:
 * `Type` is `GracefulExit`, `ForcedExit` or `UnexpectedExit` from the Linux GCS), or the bridge died first
 * (`ConnectionLost`) — the Go host reports both as a plain return.
 *
 * @since 0.1.0
 */
export type ContainerExit = Data.TaggedEnum<{
  Exited: { readonly notification: Wire.ContainerNotification }
  ConnectionLost: { readonly error: BridgeClosed }
}>

/**
 * Constructors and matchers of {@link ContainerExit}.
 *
 * @since 0.1.0
 */
export const ContainerExit = Data.taggedEnum<ContainerExit>()

/**
 * The settings a `modify` sends: a `ModificationRequest` (LCOW, e.g. a `ContainerConstraints` update), an
 * `HcsModifySettingRequest` (WCOW), or any other JSON document, written as given.
 *
 * @since 0.1.0
 */
export type ModifySettings = typeof Modify.ModifySettingsRequest.Type

/**
 * A container created (or opened) on a guest connection, owned by the `Scope` it was obtained in. Closing
 * that scope terminates the container if it is still running and waits for its exit (both bounded by the
 * connection's `closeTimeout`), then stops listening for its notification. Nothing is sent for a container
 * that has already exited, nor for the null container (`00000000-0000-0000-0000-000000000000`, a handle on
 * the utility VM itself): shutting that one down powers the VM off.
 *
 * @since 0.1.0
 */
export interface Container {
  /** The container id. */
  readonly id: string
  /** Starts the container (a no-op on the Linux GCS, where the init process's exec starts it). */
  readonly start: Effect.Effect<void, CallError>
  /**
   * Asks the container to stop (SIGTERM to its init process on Linux). Only delivers the request: use `wait`
   * for the exit. A guest that no longer knows the container (`0xC037010E`) counts as success. No deadline of
   * its own (the Go host adds 30 s): use `Effect.timeout`.
   */
  readonly shutdown: Effect.Effect<void, CallError>
  /** Forcefully stops the container (SIGKILL on Linux); otherwise like `shutdown`. */
  readonly terminate: Effect.Effect<void, CallError>
  /**
   * Waits for the container's exit notification, or for the bridge to die. The Linux GCS sends the
   * notification only after a `wait` on the init process has completed, which the runtime does by itself
   * after every exec.
   */
  readonly wait: Effect.Effect<ContainerExit>
  /** GetProperties, read as the schema-1 document (`Statistics`, `ProcessList`, …). */
  readonly properties: (
    types: ReadonlyArray<string>
  ) => Effect.Effect<Properties.ContainerPropertiesV1, CallError>
  /** GetProperties, read as the schema-2 document (`LCOWMetrics`, `ProcessList`, …). */
  readonly propertiesV2: (types: ReadonlyArray<string>) => Effect.Effect<Properties.PropertiesV2, CallError>
  /** ModifySettings on this container. */
  readonly modify: (settings: ModifySettings) => Effect.Effect<void, CallError>
  /** Starts a process in this container; see `GuestConnection.exec`. */
  readonly exec: (params: ProcessParametersInput) => Effect.Effect<Process, ExecError, Scope.Scope>
}
