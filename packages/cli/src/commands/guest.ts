/**
 * `gcsctl guest --connect ADDRESS [--fault SPEC]...`: our guest as a process
 * of its own, dialling a host — for tests, demos, a second terminal, or inside
 * a VM (`--connect vsock://2`).
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Fault, Guest } from "@gcs-bridge/guest"
import { formatAddress } from "@gcs-bridge/transport"
import { Effect, Stream } from "effect"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode } from "../ExitStatus.js"
import { parseCliAddress } from "../options.js"
import { Signals } from "../Signals.js"

const connect = Options.text("connect").pipe(
  Options.withDescription(
    "The host as the guest reaches it: vsock://2 inside a VM, unix:///path for a host listening on hybrid:///path."
  ),
  Options.mapEffect((text) => parseCliAddress("--connect", text))
)

const faults = Options.text("fault").pipe(
  Options.withDescription(
    "Misbehave on purpose (repeatable, comma-separated): drop-after=N, delay=DURATION, malformed-after=N, " +
      "oversize-after=N, unknown-id-after=N, flood=N, silent-after=N."
  ),
  Options.repeated,
  Options.mapEffect((specs) =>
    Effect.forEach(specs, (spec) =>
      Fault.parse(spec).pipe(
        Effect.mapError((error) =>
          ValidationError.invalidValue(HelpDoc.p(`bad --fault '${spec}': ${error.message}`))
        )
      )
    )
  )
)

const once = Options.boolean("once").pipe(
  Options.withDescription("Serve one bridge connection and exit, instead of re-dialling like the Linux GCS.")
)

/**
 * The `guest` command. It runs until SIGINT or SIGTERM (a clean stop: every
 * process it started is killed), or with `--once` until the host goes.
 *
 * @since 0.1.0
 */
export const guest = Command.make("guest", { connect, faults, once }, (options) =>
  Effect.flatMap(Signals, (signals) =>
    Effect.raceFirst(
      Guest.run({ address: options.connect, faults: options.faults.flat(), once: options.once }),
      // Being told to stop is how a guest's life normally ends: status 0.
      Stream.runHead(signals.receive(["SIGINT", "SIGTERM"]))
    )
  ).pipe(reportFailures("guest", ExitCode.Failure, { guest: `host at ${formatAddress(options.connect)}` }))
).pipe(
  Command.withDescription(
    "Run our GCS guest standalone: dial the host's bridge port, serve it, run real local processes (no isolation)."
  )
)
