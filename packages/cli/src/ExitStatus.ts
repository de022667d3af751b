/**
 * The exit status a command leaves behind. Command handlers return `void`,
 * so the status travels in a service: `run` sets the remote process's exit
 * code, `decode` sets 1 when it met damage, failures set theirs.
 *
 * @since 0.1.0
 */
import { Context, type Effect, Ref } from "effect"

/**
 * The conventional statuses of `gcsctl` itself.
 *
 * @since 0.1.0
 */
export const ExitCode = {
  /** Everything went as asked. */
  Success: 0,
  /** A command failed (guest never came, bridge closed, guest error, bad input data). */
  Failure: 1,
  /** The command line was wrong: unknown command, bad option value. */
  Usage: 2,
  /** `gcsctl run` failed itself, as `docker run` does, so it is not mistaken for the process's own status. */
  RunFailure: 125,
  /** Stdout was closed by its reader (EPIPE): 128 + SIGPIPE, what a shell reports for a process SIGPIPE killed. */
  ClosedStdout: 141
} as const

/**
 * The status of the current invocation.
 *
 * @since 0.1.0
 */
export class ExitStatus extends Context.Service<ExitStatus, Ref.Ref<number>>()(
  "@gcs-bridge/cli/ExitStatus"
) {}

/**
 * Sets the exit status of this invocation.
 *
 * @since 0.1.0
 */
export const setExitStatus = (code: number): Effect.Effect<void, never, ExitStatus> =>
  ExitStatus.use((ref) => Ref.set(ref, code))
