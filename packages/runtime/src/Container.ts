/** A container in the guest. @since 0.1.0 */
import type { Container as Wire, ModifySettings as Modify, Properties } from "@gcs-bridge/protocol"
import type { Effect, Scope } from "effect"
import { Data } from "effect"
import type { BridgeClosed, CallError, ExecError } from "./Errors.js"
import type { Process, ProcessParametersInput } from "./Process.js"

/** How `Container.wait` ended: the exit notification (`Exited`), or the bridge's death (`ConnectionLost`). @since 0.1.0 */
export type ContainerExit = Data.TaggedEnum<{
  Exited: { readonly notification: Wire.ContainerNotification }
  ConnectionLost: { readonly error: BridgeClosed }
}>

/** Constructors and matchers of {@link ContainerExit}. @since 0.1.0 */
export const ContainerExit = Data.taggedEnum<ContainerExit>()

/** What `modify` sends: a `ModificationRequest` (LCOW), an `HcsModifySettingRequest` (WCOW), or any JSON. @since 0.1.0 */
export type ModifySettings = typeof Modify.ModifySettingsRequest.Type

/** A container in a `Scope`, terminated (and waited for) when the scope closes if it still runs. @since 0.1.0 */
export interface Container {
  readonly id: string
  /** A no-op on the Linux GCS, where the init process's exec starts the container. */
  readonly start: Effect.Effect<void, CallError>
  /** Asks the container to stop (SIGTERM to its init on Linux) without waiting; `0xC037010E` counts as success. */
  readonly shutdown: Effect.Effect<void, CallError>
  /** Forcefully stops the container (SIGKILL on Linux); otherwise like `shutdown`. */
  readonly terminate: Effect.Effect<void, CallError>
  /** The exit notification (sent by the Linux GCS once its init has been waited for), or the bridge's death. */
  readonly wait: Effect.Effect<ContainerExit>
  /** GetProperties, read as the schema-1 document (`Statistics`, `ProcessList`, …). */
  readonly properties: (
    types: ReadonlyArray<string>
  ) => Effect.Effect<Properties.ContainerPropertiesV1, CallError>
  /** GetProperties, read as the schema-2 document (`LCOWMetrics`, `ProcessList`, …). */
  readonly propertiesV2: (types: ReadonlyArray<string>) => Effect.Effect<Properties.PropertiesV2, CallError>
  readonly modify: (settings: ModifySettings) => Effect.Effect<void, CallError>
  /** Starts a process in this container; see `GuestConnection.exec`. */
  readonly exec: (params: ProcessParametersInput) => Effect.Effect<Process, ExecError, Scope.Scope>
}
