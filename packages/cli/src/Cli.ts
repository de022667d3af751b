/**
 * The `gcsctl` command tree and the program that runs one invocation of it:
 * parse, run the command, and produce the exit status. Everything the program
 * touches outside itself (stdio, signals, and the platform services
 * `effect/cli` asks for) comes from services, so tests run it in-process.
 *
 * @since 0.1.0
 */
import type { Transport } from "@gcs-bridge/transport"
import { Effect, Logger, References, Ref } from "effect"
import { type CliError, CliOutput, Command } from "effect/cli"
import { UsageError } from "./CliError.js"
import { CommandLine, normalizeArgs } from "./CommandLine.js"
import { caps } from "./commands/caps.js"
import { decode } from "./commands/decode.js"
import { guest } from "./commands/guest.js"
import { replay } from "./commands/replay.js"
import { run, unknownRunOption } from "./commands/run.js"
import { stacks } from "./commands/stacks.js"
import { reportFailures } from "./ErrorLine.js"
import { ExitCode, ExitStatus } from "./ExitStatus.js"
import * as Logging from "./internal/logging.js"
import type { Signals } from "./Signals.js"
import { Stdio } from "./Stdio.js"

/**
 * The version `gcsctl --version` prints.
 *
 * @since 0.1.0
 */
export const version = "0.1.0"

/**
 * The root command and its subcommands.
 *
 * @since 0.1.0
 */
export const gcsctl = Command.make("gcsctl").pipe(
  Command.withDescription("Drive a Guest Compute Service (GCS) guest over the hcsshim bridge protocol."),
  Command.withSubcommands([run, guest, caps, stacks, decode, replay])
)

/**
 * What one invocation needs from its surroundings.
 *
 * @since 0.1.0
 */
export type CliEnvironment = Command.Environment | Stdio | Signals | Transport

/**
 * Help and version text go to our stdout, plainly (`--version` prints the
 * bare version, for scripts). A parse error is not shown with the help: it
 * becomes one line on stderr, as every other failure.
 */
const presenter = (stdio: Stdio["Service"]): CliOutput.Presenter => ({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.void
      : CliOutput.Formatter.use((formatter) =>
          stdio.out(`${event._tag === "Help" ? formatter.formatHelpDoc(event.helpDoc) : event.version}\n`)
        ).pipe(Effect.ignore)
})

const commandNames = gcsctl.subcommands.flatMap((group) => group.commands.map(({ name }) => `'${name}'`))

/**
 * What a command line the parser refused gets: nothing more after a help
 * it asked for, and otherwise its first error. `run` takes unknown options
 * and words before `--` for a misplaced command, and says so as `run`.
 */
const parseFailure = (
  help: CliError.ShowHelp,
  args: ReadonlyArray<string>
): Effect.Effect<void, UsageError | CliError.NonShowHelpErrors, Stdio | ExitStatus> => {
  const [first] = help.errors
  if (first === undefined) return Effect.void
  if (first._tag === "UnknownSubcommand") {
    return Effect.fail(
      new UsageError({
        message: `unknown command '${first.subcommand}': Invalid subcommand for gcsctl - use one of ${commandNames.join(", ")}`
      })
    )
  }
  if (first._tag === "UnrecognizedOption" && help.commandPath[1] === "run") {
    return unknownRunOption(args, first.option)
  }
  return Effect.fail(first)
}

/**
 * Runs one invocation with the given arguments (as typed, without `node` and
 * the script) and returns its exit status. Never fails: every failure has
 * already been written to stderr as one line when this completes.
 *
 * @since 0.1.0
 */
export const runCli = (args: ReadonlyArray<string>): Effect.Effect<number, never, CliEnvironment> =>
  Effect.scoped(
    Effect.gen(function* () {
      const stdio = yield* Stdio
      const status = yield* Ref.make<number>(ExitCode.Success)
      // Log lines on stderr, never on stdout (which carries the remote
      // process's output or the decoded frames): escaped, rate-limited,
      // bounded, and in order with everything else written to stderr.
      // Warnings and errors only, unless `--log-level` asks for more.
      const log = yield* Logging.make()
      yield* Command.runWith(gcsctl, { version })(normalizeArgs(args)).pipe(
        Effect.catchTag("ShowHelp", (help) => parseFailure(help, args)),
        reportFailures("", ExitCode.Usage),
        Effect.provideService(CliOutput.Presenter, presenter(stdio)),
        Effect.provideService(ExitStatus, status),
        Effect.provideService(CommandLine, { args }),
        Effect.provideService(Stdio, { ...stdio, err: log.err }),
        Effect.provide(Logger.layer([log.logger])),
        Effect.provideService(References.MinimumLogLevel, "Warn")
      )
      return yield* Ref.get(status)
    })
  )
