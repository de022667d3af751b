/**
 * The `gcsctl` command tree and the program that runs one invocation of it:
 * parse, run the command, and produce the exit status. Everything the program
 * touches outside itself (stdio, signals, the file system through
 * `@effect/cli`) comes from services, so tests run it in-process.
 *
 * @since 0.1.0
 */
import { Command, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Cause, Console, Effect, Layer, Logger, LogLevel, Ref } from "effect"
import { CommandLine, normalizeArgs } from "./CommandLine.js"
import { caps } from "./commands/caps.js"
import { decode } from "./commands/decode.js"
import { guest } from "./commands/guest.js"
import { run } from "./commands/run.js"
import { stacks } from "./commands/stacks.js"
import { UsageError } from "./CliError.js"
import { helpDocText, reportFailures } from "./ErrorLine.js"
import { ExitCode, ExitStatus } from "./ExitStatus.js"
import type { Signals } from "./Signals.js"
import type { Transport } from "@gcs-bridge/transport"
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
  Command.withSubcommands([run, guest, caps, stacks, decode])
)

const app = Command.run(gcsctl, { name: "gcsctl", version })

/**
 * What one invocation needs from its surroundings.
 *
 * @since 0.1.0
 */
export type CliEnvironment = CliApp.CliApp.Environment | Stdio | Signals | Transport

const logText = (message: unknown): string =>
  (Array.isArray(message) ? message : [message])
    .map((part) =>
      Cause.isCause(part)
        ? Cause.pretty(part)
        : part instanceof Error
          ? part.message
          : typeof part === "string"
            ? part
            : JSON.stringify(part)
    )
    .join(" ")
    .replace(/\s+/g, " ")
    .trim()

/**
 * Log lines on stderr, one line each, never on stdout (which carries the
 * remote process's output or the decoded frames). Warnings and errors only,
 * unless `--log-level` asks for more.
 */
const logging = Layer.mergeAll(
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      process.stderr.write(`gcsctl: ${logLevel.label.toLowerCase()}: ${logText(message)}\n`)
    })
  ),
  Logger.minimumLogLevel(LogLevel.Warning)
)

/**
 * `@effect/cli` prints a parse error as a multi-line, coloured help document
 * through `Console.error` before failing with it; the failure itself is
 * rendered as one line by `reportFailures`, so that print is dropped. Help and
 * version text (`Console.log`) goes to our stdout.
 */
const cliConsole = (stdio: Stdio["Type"]) =>
  Console.consoleWith((console) =>
    Effect.succeed<Console.Console>({
      ...console,
      error: () => Effect.void,
      log: (...args: ReadonlyArray<unknown>) => stdio.out(`${args.join(" ")}\n`).pipe(Effect.ignore)
    })
  )

/**
 * Runs one invocation with the given arguments (as typed, without `node` and
 * the script) and returns its exit status. Never fails: every failure has
 * already been written to stderr as one line when this completes.
 *
 * @since 0.1.0
 */
export const runCli = (args: ReadonlyArray<string>): Effect.Effect<number, never, CliEnvironment> =>
  Effect.gen(function* () {
    const stdio = yield* Stdio
    const status = yield* Ref.make<number>(ExitCode.Success)
    const console = yield* cliConsole(stdio)
    yield* app(["node", "gcsctl", ...normalizeArgs(args)]).pipe(
      Effect.mapError((error) =>
        ValidationError.isValidationError(error) && ValidationError.isCommandMismatch(error)
          ? new UsageError({
              message: `unknown command '${args.find((a) => !a.startsWith("-")) ?? ""}': ${helpDocText(error.error)}`
            })
          : error
      ),
      reportFailures("", ExitCode.Usage),
      Effect.withConsole(console),
      Effect.provideService(ExitStatus, status),
      Effect.provideService(CommandLine, { args }),
      Effect.provide(logging)
    )
    return yield* Ref.get(status)
  })
