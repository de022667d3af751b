/**
 * `gcsctl run [OPTIONS] -- CMD [ARGS...]`: run a command in the utility VM
 * (or in a new container), relay its stdio, forward SIGINT/SIGTERM to it, and
 * exit with its exit status.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import type { GuestConnectionService } from "@gcs-bridge/runtime"
import { Effect, Option, Ref } from "effect"
import { randomBytes } from "node:crypto"
import { UsageError } from "../CliError.js"
import { afterDashes, CommandLine } from "../CommandLine.js"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode, setExitStatus } from "../ExitStatus.js"
import { errorContext, openGuest, type SessionOptions } from "../GuestSession.js"
import { exitStatusOf, forwardSignals, relay, type Started } from "../internal/relay.js"
import {
  initProcess,
  isValidContainerId,
  lcowContainer,
  type RunSpec,
  uvmProcess
} from "../internal/processSpec.js"
import * as CliOptions from "../options.js"
import { Stdio } from "../Stdio.js"

const options = {
  guest: CliOptions.guest,
  container: Options.text("container").pipe(
    Options.withDescription(
      "Run in a new container (an LCOW OCI spec whose process is the command) rather than in the utility VM; " +
        "the id is optional (default: a random one)."
    ),
    Options.optional
  ),
  interactive: Options.boolean("interactive").pipe(
    Options.withAlias("i"),
    Options.withDescription("Relay stdin to the process.")
  ),
  tty: Options.boolean("tty").pipe(
    Options.withAlias("t"),
    Options.withDescription(
      "Give the process a console (stderr joins stdout); raw mode on the local terminal."
    )
  ),
  env: CliOptions.env,
  cwd: Options.text("cwd").pipe(
    Options.withDescription("Working directory of the process."),
    Options.optional
  ),
  acceptTimeout: CliOptions.acceptTimeout,
  command: Args.text({ name: "command" }).pipe(
    Args.withDescription("The command and its arguments, after --."),
    Args.atLeast(1)
  )
}

/**
 * The command the user wrote after `--`. `@effect/cli` hands unknown options
 * and stray words before `--` to the arguments too; they are refused here
 * rather than run as part of the command.
 */
const commandOf = (
  parsed: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, UsageError, CommandLine> =>
  Effect.flatMap(CommandLine, ({ args }) => {
    const forced = afterDashes(args)
    if (forced === undefined) {
      return Effect.fail(
        new UsageError({ message: "put the command after --: gcsctl run [OPTIONS] -- CMD [ARGS...]" })
      )
    }
    const stray = parsed.slice(0, parsed.length - forced.length)
    const first = stray[0]
    if (first !== undefined) {
      return Effect.fail(
        new UsageError({
          message: first.startsWith("-")
            ? `unknown option '${first}' for run`
            : `unexpected argument '${first}' before --: gcsctl run [OPTIONS] -- CMD [ARGS...]`
        })
      )
    }
    return forced.length === 0
      ? Effect.fail(new UsageError({ message: "no command after --" }))
      : Effect.succeed(forced)
  })

/** `--container` absent: the UVM; bare (empty value): a random id; otherwise the id, checked. */
const containerIdOf = (option: Option.Option<string>): Effect.Effect<Option.Option<string>, UsageError> =>
  Option.match(option, {
    onNone: () => Effect.succeedNone,
    onSome: (id) =>
      id === ""
        ? Effect.succeed(Option.some(randomContainerId()))
        : isValidContainerId(id)
          ? Effect.succeed(Option.some(id))
          : Effect.fail(
              new UsageError({
                message: `bad --container '${id}': a container id is 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit`
              })
            )
  })

/** 64 hex digits, as container runtimes name containers. */
const randomContainerId = (): string => randomBytes(32).toString("hex")

/**
 * Starts the process, in the UVM or as the init process of a new container
 * (created and started first; the container belongs to the scope).
 */
const start = (connection: GuestConnectionService, containerId: Option.Option<string>, spec: RunSpec) =>
  Option.match(containerId, {
    onNone: () => connection.exec(uvmProcess(spec)),
    onSome: (id) =>
      Effect.gen(function* () {
        const container = yield* connection.createContainer(id, lcowContainer(id, spec))
        yield* container.start
        return yield* container.exec(initProcess(spec))
      })
  })

/**
 * After a container has gone, its state is deleted in the guest as a
 * container runtime would; failing to do so does not change the status.
 */
const deleteState = (connection: GuestConnectionService, id: string) =>
  connection.capabilities.DeleteContainerStateSupported
    ? connection
        .deleteContainerState(id)
        .pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(`could not delete the state of container ${id}: ${error.message}`)
          )
        )
    : Effect.void

/**
 * Connects, starts, relays and waits, with SIGINT/SIGTERM forwarded while the
 * process runs (and stopping everything before and after), and gives the exit
 * status. The process's scope closes before the container's state is deleted.
 */
const runIt = (session: SessionOptions, containerId: Option.Option<string>, spec: RunSpec) =>
  Effect.gen(function* () {
    const started = yield* Ref.make(Option.none<Started>())
    const forwarded = yield* Ref.make(Option.none<number>())
    const program = Effect.scoped(
      Effect.gen(function* () {
        const connection = yield* openGuest(session)
        const code = yield* Effect.scoped(
          Effect.gen(function* () {
            const process = yield* start(connection, containerId, spec)
            yield* Ref.set(started, Option.some({ process, os: connection.os }))
            return yield* relay(process, spec)
          }).pipe(Effect.ensuring(Ref.set(started, Option.none())))
        )
        if (Option.isSome(containerId)) yield* deleteState(connection, containerId.value)
        return exitStatusOf(code, yield* Ref.get(forwarded))
      })
    )
    return yield* forwardSignals(program, started, forwarded)
  })

/**
 * The `run` command.
 *
 * @since 0.1.0
 */
export const run = Command.make("run", options, (parsed) => {
  const session: SessionOptions = { guest: parsed.guest, acceptTimeout: parsed.acceptTimeout }
  return Effect.gen(function* () {
    const argv = yield* commandOf(parsed.command)
    const containerId = yield* containerIdOf(parsed.container)
    const stdio = yield* Stdio
    const consoleSize = parsed.tty
      ? yield* Option.match(stdio.terminal, {
          onNone: () => Effect.succeed(undefined),
          onSome: (t) => t.size
        })
      : undefined
    const spec: RunSpec = {
      argv,
      env: parsed.env,
      cwd: Option.getOrElse(parsed.cwd, () => ""),
      interactive: parsed.interactive,
      tty: parsed.tty,
      consoleSize
    }
    yield* setExitStatus(yield* runIt(session, containerId, spec))
  }).pipe(reportFailures("run", ExitCode.RunFailure, errorContext(session)))
}).pipe(
  Command.withDescription(
    "Run a command in the utility VM (or a new container with --container) and exit with its status. " +
      "Without --guest, the guest is embedded: our guest in this process, over Unix sockets."
  )
)
