/**
 * `gcsctl caps [--guest ADDRESS]`: what the guest said in the negotiation —
 * protocol version, OS and capabilities — as JSON.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode } from "../ExitStatus.js"
import { errorContext, openGuest } from "../GuestSession.js"
import * as CliOptions from "../options.js"
import { stopOnSignals } from "../Signals.js"
import { Stdio } from "../Stdio.js"

/**
 * The `caps` command.
 *
 * @since 0.1.0
 */
export const caps = Command.make(
  "caps",
  { guest: CliOptions.guest, acceptTimeout: CliOptions.acceptTimeout },
  (options) =>
    Effect.scoped(
      Effect.gen(function* () {
        const connection = yield* openGuest(options)
        const report = {
          protocol: connection.protocol,
          os: connection.os,
          capabilities: connection.gcsCapabilities
        }
        const stdio = yield* Stdio
        yield* stdio.out(`${JSON.stringify(report, null, 2)}\n`)
      })
    ).pipe(stopOnSignals, reportFailures("caps", ExitCode.Failure, errorContext(options)))
).pipe(
  Command.withDescription(
    "Connect to the guest and print the negotiated protocol version, the guest OS and its capabilities as JSON."
  )
)
