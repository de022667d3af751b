/**
 * `gcsctl stacks [--guest ADDRESS]`: the guest's stack dump (DumpStacks).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { withGuest } from "../GuestSession.js"
import { escapeControls } from "../internal/terminalText.js"
import * as CliOptions from "../options.js"

/**
 * The `stacks` command.
 *
 * @since 0.1.0
 */
export const stacks = Command.make("stacks", CliOptions.session, (options) =>
  withGuest("stacks", options, ({ connection }) =>
    // The dump is the guest's text: its lines are kept, its control characters escaped.
    Effect.map(connection.dumpStacks, (stacks) => escapeControls(stacks, true))
  )
).pipe(Command.withDescription("Connect to the guest and print its stack dump (DumpStacks)."))
