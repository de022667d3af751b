/**
 * The failures that belong to `gcsctl` itself rather than to the bridge: the
 * local terminal's streams, the input of `gcsctl decode`, a signal that ended a
 * command. Everything the runtime, transport and guest packages fail with keeps
 * its own type; `ErrorLine` renders all of them.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * Reading the local stdin or writing the local stdout/stderr failed (for
 * example `EPIPE` when the reader of a pipe went away).
 *
 * @since 0.1.0
 */
export class StdioError extends Data.TaggedError("StdioError")<{
  readonly stream: "stdin" | "stdout" | "stderr"
  readonly message: string
  readonly code?: string
}> {}

/**
 * `gcsctl decode --hex` was given text that is not hex: `offset` is the
 * character offset in the input text.
 *
 * @since 0.1.0
 */
export class HexInputError extends Data.TaggedError("HexInputError")<{
  readonly offset: number
  readonly message: string
}> {}

/**
 * A signal (SIGINT, SIGTERM) stopped a command: one that has nothing to
 * forward it to, or `run` when the guest would not take it (`undelivered`
 * says why: a Linux GCS cannot signal processes in the utility VM).
 *
 * @since 0.1.0
 */
export class Interrupted extends Data.TaggedError("Interrupted")<{
  readonly signal: NodeJS.Signals
  readonly undelivered?: string
}> {}

/**
 * A value on the command line that parses but cannot be used (a container id
 * the guest would reject, a console requested without a local terminal, …).
 *
 * @since 0.1.0
 */
export class UsageError extends Data.TaggedError("UsageError")<{
  readonly message: string
}> {}

/**
 * The embedded guest could not be set up or stopped before the host got its
 * connection. `message` says what happened.
 *
 * @since 0.1.0
 */
export class EmbeddedGuestError extends Data.TaggedError("EmbeddedGuestError")<{
  readonly message: string
}> {}
