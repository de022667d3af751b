/**
 * `gcsctl run [OPTIONS] -- CMD [ARGS...]`: run a command in the utility VM
 * (or in a new container), relay its stdio, forward SIGINT/SIGTERM to it, and
 * exit with its exit status.
 *
 * @since 0.1.0
 */
import type { GuestConnectionService } from "@gcs-bridge/runtime"
import * as Capture from "../Capture.js"
import { Duration, Effect, Option, Ref } from "effect"
import { Argument, Command, Flag } from "effect/cli"
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
  ...CliOptions.session,
  container: Flag.String("container").pipe(
    Flag.withMetavar("[ID]"),
    Flag.withDescription(
      "Run in a new container (an LCOW OCI spec whose process is the command) rather than in the utility VM; " +
        "the id is optional (default: a random one)."
    ),
    Flag.optional
  ),
  interactive: CliOptions.boolean("interactive", "Relay stdin to the process.").pipe(Flag.withAlias("i")),
  tty: CliOptions.boolean(
    "tty",
    "Give the process a console (stderr joins stdout); raw mode on the local terminal."
  ).pipe(Flag.withAlias("t")),
  copyAfterExit: CliOptions.duration(
    "copy-after-exit",
    "How long the process's output may still come after it exited before its streams are closed " +
      "(default 1s, as the Go host); a guest that leaves them open cannot hold gcsctl longer."
  ).pipe(Flag.optional),
  reconnect: CliOptions.duration(
    "reconnect",
    "Survive a dropped bridge: listen again for up to DURATION (default 30s) for the guest to re-dial, " +
      "renegotiate, and keep the command running (its stdio connections are not the bridge)."
  ).pipe(Flag.withOptionalValue("30s"), Flag.optional),
  capture: Flag.String("capture").pipe(
    Flag.withMetavar("FILE"),
    Flag.withDescription(
      "Record both directions of the bridge to FILE, each chunk with its direction, time and port " +
        "(read it with `gcsctl decode FILE`, play it back with `gcsctl replay FILE`)."
    ),
    Flag.optional
  ),
  captureStdio: CliOptions.boolean(
    "capture-stdio",
    "With --capture: also record the process's stdin, stdout and stderr connections."
  ),
  env: CliOptions.env,
  cwd: Flag.String("cwd").pipe(
    Flag.withMetavar("DIR"),
    Flag.withDescription("Working directory of the process."),
    Flag.optional
  ),
  command: Argument.String("command").pipe(
    Argument.withDescription("The command and its arguments, after --."),
    Argument.variadic()
  )
}

const usage = "gcsctl run [OPTIONS] -- CMD [ARGS...]"

/**
 * The command the user wrote after `--`, or why there is none: no `--`, or
 * `stray` (the first word or unknown option before it), or nothing after it.
 */
const commandAfterDashes = (
  args: ReadonlyArray<string>,
  stray: string | undefined
): Effect.Effect<ReadonlyArray<string>, UsageError> => {
  const forced = afterDashes(args)
  const fail = (message: string) => Effect.fail(new UsageError({ message }))
  if (forced === undefined) return fail(`put the command after --: ${usage}`)
  if (stray !== undefined) {
    return fail(
      stray.startsWith("-")
        ? `unknown option '${stray}' for run`
        : `unexpected argument '${stray}' before --: ${usage}`
    )
  }
  return forced.length === 0 ? fail("no command after --") : Effect.succeed(forced)
}

/**
 * What `run` says when the parser met `option`, which it does not know: an
 * option it does not have, or part of a command not put after `--`.
 *
 * @since 0.1.0
 */
export const unknownRunOption = (args: ReadonlyArray<string>, option: string) =>
  commandAfterDashes(args, option).pipe(reportFailures("run", ExitCode.RunFailure))

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
          Effect.catch((error) =>
            Effect.logWarning(`could not delete the state of container ${id}: ${error.message}`)
          )
        )
    : Effect.void

/**
 * The genuine Linux GCS ignores `ConsoleSize` and refuses ResizeConsole for a
 * process in the utility VM, so its console stays 0x0 there.
 */
const uvmConsoleWarning =
  "a Linux guest does not apply the console size to a process in the utility VM " +
  "(the genuine GCS ignores it and refuses resizes; the console may be 0x0): use --container for a sized console"

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
        const { connection } = yield* openGuest(session)
        if (spec.tty && Option.isNone(containerId) && connection.os === "linux") {
          yield* Stdio.use((stdio) => stdio.err(`gcsctl run: warning: ${uvmConsoleWarning}\n`))
        }
        const stopped = Ref.set(started, Option.none())
        const copyAfterExit = Option.match(session.copyAfterExit ?? Option.none(), {
          onNone: () => "1s",
          onSome: Duration.format
        })
        // Once it exited there is nothing to forward to: a signal then stops gcsctl.
        const exited = Effect.andThen(
          stopped,
          Effect.logDebug(`the process exited; its output is relayed for at most ${copyAfterExit} more`)
        )
        const code = yield* Effect.scoped(
          Effect.gen(function* () {
            const process = yield* start(connection, containerId, spec)
            yield* Ref.set(started, Option.some({ process, os: connection.os }))
            return yield* relay(process, spec, exited)
          }).pipe(Effect.ensuring(stopped))
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
export const run = Command.make("run", options, (parsed) =>
  Effect.gen(function* () {
    const { args } = yield* CommandLine
    // The parser gives the words before `--` and after it as one list.
    const before = parsed.command.length - (afterDashes(args)?.length ?? 0)
    const argv = yield* commandAfterDashes(args, before > 0 ? parsed.command[0] : undefined)
    const containerId = yield* containerIdOf(parsed.container)
    if (parsed.captureStdio && Option.isNone(parsed.capture)) {
      return yield* new UsageError({ message: "--capture-stdio records into the --capture FILE: give both" })
    }
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
    const running = runIt(parsed, containerId, spec)
    const status = yield* Option.match(parsed.capture, {
      onNone: () => running,
      onSome: (path) => Effect.provide(running, Capture.layer(path, { stdio: parsed.captureStdio }))
    })
    yield* setExitStatus(status)
  }).pipe(reportFailures("run", ExitCode.RunFailure, errorContext(parsed)))
).pipe(
  Command.withDescription(
    "Run a command in the utility VM (or a new container with --container) and exit with its status. " +
      "Without --guest, the guest is embedded: our guest in this process, over Unix sockets."
  ),
  Command.withExamples([
    { command: "gcsctl run -- uname -a", description: "Run a command on the embedded guest" },
    {
      command: "gcsctl run --guest vsock://3 --container -it -- sh",
      description: "A shell in a new container, in the VM with guest CID 3"
    }
  ])
)
