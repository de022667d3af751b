/**
 * `gcsctl guest --connect ADDRESS [--fault SPEC]...`: our guest as a process
 * of its own, dialling a host — for tests, demos, a second terminal, or inside
 * a VM (`--connect vsock://2`).
 *
 * @since 0.1.0
 */
import { Fault, Guest } from "@gcs-bridge/guest"
import { formatAddress } from "@gcs-bridge/transport"
import { Duration, Effect, Stream } from "effect"
import { CliError, Command, Flag } from "effect/cli"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode } from "../ExitStatus.js"
import * as CliOptions from "../options.js"
import { Signals } from "../Signals.js"

const connect = Flag.String("connect").pipe(
  Flag.withMetavar("ADDRESS"),
  Flag.withDescription(
    "The host as the guest reaches it: vsock://2 inside a VM, unix:///path for a host listening on hybrid:///path."
  ),
  Flag.mapEffect((text) => CliOptions.parseCliAddress("--connect", text))
)

const faults = Flag.String("fault").pipe(
  Flag.withMetavar("SPEC"),
  Flag.withDescription(
    "Misbehave on purpose (repeatable, comma-separated): drop-after=N, delay=DURATION, malformed-after=N, " +
      "oversize-after=N, unknown-id-after=N, flood=N, silent-after=N."
  ),
  Flag.atLeast(0),
  Flag.mapEffect((specs) =>
    Effect.forEach(specs, (spec) =>
      Fault.parse(spec).pipe(
        Effect.mapError(
          (error) => new CliError.ValidationError({ message: `bad --fault '${spec}': ${error.message}` })
        )
      )
    )
  )
)

const once = CliOptions.boolean(
  "once",
  "Serve one bridge connection and exit, instead of re-dialling like the Linux GCS."
)

/**
 * The `guest` command. It dials the host until one accepts, however long that
 * takes (pausing 100 ms after a failed dial, doubling up to 1 s, as
 * `Guest.run` does), and re-dials whenever the connection ends; it runs until
 * SIGINT or SIGTERM (a clean stop: every process it started is killed), or
 * with `--once` until the host goes.
 *
 * @since 0.1.0
 */
export const guest = Command.make("guest", { connect, faults, once }, (options) =>
  Signals.use((signals) =>
    Effect.raceFirst(
      Guest.run({
        address: options.connect,
        faults: options.faults.flat(),
        once: options.once,
        // The README's promise: only a signal ends the wait for a host.
        connectTimeout: Duration.infinity
      }),
      // Being told to stop is how a guest's life normally ends: status 0.
      Stream.runHead(signals.receive(["SIGINT", "SIGTERM"]))
    )
  ).pipe(reportFailures("guest", ExitCode.Failure, { guest: `host at ${formatAddress(options.connect)}` }))
).pipe(
  Command.withDescription(
    "Run our GCS guest standalone: dial the host's bridge port, serve it, run real local processes (no isolation)."
  )
)
