/**
 * `gcsctl stacks [--guest ADDRESS]`: the guest's stack dump (DumpStacks).
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
 * The `stacks` command.
 *
 * @since 0.1.0
 */
export const stacks = Command.make(
  "stacks",
  { guest: CliOptions.guest, acceptTimeout: CliOptions.acceptTimeout },
  (options) =>
    Effect.scoped(
      Effect.gen(function* () {
        const connection = yield* openGuest(options)
        const dump = yield* connection.dumpStacks
        const stdio = yield* Stdio
        yield* stdio.out(dump.endsWith("\n") || dump === "" ? dump : `${dump}\n`)
      })
    ).pipe(stopOnSignals, reportFailures("stacks", ExitCode.Failure, errorContext(options)))
).pipe(Command.withDescription("Connect to the guest and print its stack dump (DumpStacks)."))
