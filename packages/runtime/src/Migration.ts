/**
 * Live migration (GCS-PROTOCOL §12.9): what one host process saves so that another can take its guest over —
 * the id and port counters, and per running process its stdio ports and the id of its outstanding wait.
 * @since 0.2.0
 */
import { GoSchema } from "@gcs-bridge/protocol"
import { Schema } from "effect"

const Port = GoSchema.Uint32.annotate({ description: "a vsock port; 0 when the stream was not requested" })

/** A process still running when the state was saved. @since 0.2.0 */
export class SavedProcess extends Schema.Class<SavedProcess>("@gcs-bridge/runtime/SavedProcess")({
  containerId: Schema.String,
  pid: GoSchema.Uint32,
  stdin: Port,
  stdout: Port,
  stderr: Port,
  /** The message id of its WaitForProcess; the guest answers it on whichever connection is current. */
  waitCallId: GoSchema.Uint32.check(Schema.isGreaterThan(0))
}) {}

/** A guest connection's migration state; `MigrationState.json` reads and writes it as JSON. @since 0.2.0 */
export class MigrationState extends Schema.Class<MigrationState>("@gcs-bridge/runtime/MigrationState")({
  version: Schema.Literal(1),
  /** The next stdio port: a restored connection never reuses one the guest may still dial. */
  nextPort: GoSchema.Uint32,
  /** The next message id: a restored connection never reuses one the guest may still answer. */
  nextMessageId: GoSchema.Uint32,
  processes: Schema.Array(SavedProcess)
}) {
  /** The state as a JSON string and back (`Schema.decodeUnknownEffect(MigrationState.json)(text)`). */
  static readonly json = Schema.fromJsonString(MigrationState)
}
