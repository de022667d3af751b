/**
 * The failures that belong to `gcsctl` itself rather than to the bridge: the
 * local terminal's streams, the input of `gcsctl decode`, a signal that ended a
 * command. Everything the runtime, transport and guest packages fail with keeps
 * its own type; `ErrorLine` renders all of them.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Reading the local stdin or writing the local stdout/stderr failed (for
 * example `EPIPE` when the reader of a pipe went away).
 *
 * @since 0.1.0
 */
export class StdioError extends Schema.TaggedError<StdioError>("@gcs-bridge/cli/StdioError")("StdioError", {
  stream: Schema.Literals(["stdin", "stdout", "stderr"]),
  message: Schema.String,
  code: Schema.optionalKey(Schema.String)
}) {}

/**
 * `gcsctl decode --hex` was given text that is not hex: `offset` is the
 * character offset in the input text.
 *
 * @since 0.1.0
 */
export class HexInputError extends Schema.TaggedError<HexInputError>("@gcs-bridge/cli/HexInputError")(
  "HexInputError",
  { offset: Schema.Number, message: Schema.String }
) {}

/**
 * A signal (SIGINT, SIGTERM) stopped a command: one that has nothing to
 * forward it to, or `run` when the guest would not take it (`undelivered`
 * says why: a Linux GCS cannot signal processes in the utility VM), or a
 * second signal that ended it at once (`forced`).
 *
 * @since 0.1.0
 */
export class Interrupted extends Schema.TaggedError<Interrupted>("@gcs-bridge/cli/Interrupted")(
  "Interrupted",
  {
    signal: Schema.Literals(["SIGINT", "SIGTERM", "SIGHUP"]),
    undelivered: Schema.optionalKey(Schema.String),
    /** A second signal ended gcsctl without waiting for what was still closing. */
    forced: Schema.optionalKey(Schema.Boolean)
  }
) {}

/**
 * A command line `gcsctl` cannot use: a value that parses but would be
 * refused (a container id, a command not after `--`), or what the parser
 * itself rejected.
 *
 * @since 0.1.0
 */
export class UsageError extends Schema.TaggedError<UsageError>("@gcs-bridge/cli/UsageError")("UsageError", {
  message: Schema.String
}) {}

/**
 * The embedded guest could not be set up or stopped before the host got its
 * connection. `message` says what happened.
 *
 * @since 0.1.0
 */
export class EmbeddedGuestError extends Schema.TaggedError<EmbeddedGuestError>(
  "@gcs-bridge/cli/EmbeddedGuestError"
)("EmbeddedGuestError", { message: Schema.String }) {}
