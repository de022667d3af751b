/**
 * A real process on this machine, started without a shell: argv goes to
 * `spawn` as is. Every process is started in a session and process group of
 * its own (`detached`), so that a terminal's Ctrl-C aimed at whoever runs the
 * guest does not reach it (the host forwards signals explicitly), and so that
 * the whole group can be killed when the owning scope closes.
 *
 * Console processes run under the Python pty helper when one is available
 * (see `ptyHelper.ts`); the reported pid is then the helper's, and signals and
 * resizes are delivered through its control pipe, which cannot hit a recycled
 * pid because the helper reaps the child itself.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import { accessSync, constants as fsConstants, statSync } from "node:fs"
import type { Socket } from "node:net"
import { constants as osConstants } from "node:os"
import { resolve as resolvePath } from "node:path"
import type { Readable, Writable } from "node:stream"
import type { Scope } from "effect"
import { Deferred, Duration, Effect, Exit, Option } from "effect"
import * as Failure from "./failure.js"
import type { GuestFailure } from "./failure.js"
import { helperSource } from "./ptyHelper.js"
import { holdPaused } from "./stdio.js"

/** What to run. */
export interface LaunchSpec {
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** Allocate a terminal (EmulateConsole / OCI `terminal`). */
  readonly console: boolean
  readonly stdin: boolean
  readonly stdout: boolean
  readonly stderr: boolean
  /**
   * Start the process with fd 0, 1 or 2 closed when its stream is not wanted,
   * as the Linux GCS starts a UVM process (otherwise, and with a console,
   * such an fd is `/dev/null`, as runc gives container processes).
   */
  readonly closeUnrequested: boolean
  /**
   * Kill what is left of the process group the moment the process exits (a
   * container's init: its end is the container's end). Done synchronously in
   * the exit callback, while the group id cannot have been recycled yet.
   */
  readonly killGroupOnExit: boolean
  /**
   * Sockets that become fd 0, 1, 2 themselves (no pipe, no relay; see
   * `Connection.handoff`), by slot; the stream's flag must be set too.
   * Without a pty only.
   */
  readonly sockets?: readonly [Handoff | undefined, Handoff | undefined, Handoff | undefined]
}

/** A socket as `spawn` takes it in `stdio`. */
export type Handoff = Socket | number

/** How the process ended: Node's view of the wait status. */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A started process and its raw stdio. */
export interface LocalProcess {
  readonly pid: number
  /** A real pty sits between the process and its stdio. */
  readonly tty: boolean
  /** Bytes written by the process (with a console: everything the terminal shows). */
  readonly stdout: Option.Option<Readable>
  /** Separate error output; none with a console (a console without pty folds stderr into `stdout` itself). */
  readonly stderr: Option.Option<Readable>
  readonly stdin: Option.Option<Writable>
  /** Completed once the process has ended (its output may still be in the pipes). */
  readonly exited: Deferred.Deferred<ExitStatus>
  /** `exited` is complete, without waiting. */
  readonly hasExited: () => boolean
  /** Delivers a signal; `0x80070490` once the process is gone. */
  readonly signal: (signo: number) => Effect.Effect<void, GuestFailure>
  /** Resizes the terminal; E_FAIL when there is none. */
  readonly resize: (rows: number, cols: number) => Effect.Effect<void, GuestFailure>
  /**
   * SIGKILL to the process and everything in its process group (with a pty:
   * the child's group, through the helper) — only while the process is alive,
   * because an exited leader's group id may already belong to someone else.
   */
  readonly killGroup: Effect.Effect<void>
}

/** The number of a signal name (`SIGTERM` → 15). */
export const signalNumber = (name: NodeJS.Signals): number =>
  (osConstants.signals as Record<string, number | undefined>)[name] ?? 0

const describeSpawnError = (spec: LaunchSpec, err: NodeJS.ErrnoException): string => {
  if (err.code === "ENOENT") {
    let cwdOk = false
    try {
      cwdOk = statSync(spec.cwd).isDirectory()
    } catch {
      cwdOk = false
    }
    return cwdOk
      ? `exec: ${JSON.stringify(spec.argv[0])}: executable file not found`
      : `chdir ${spec.cwd}: no such file or directory`
  }
  return `exec ${JSON.stringify(spec.argv[0])}: ${err.message}`
}

const quietStream = (stream: NodeJS.EventEmitter | null | undefined): void => {
  // An EPIPE on a pipe whose process is gone must not become an uncaught
  // exception; the relays notice the end by themselves.
  stream?.on("error", () => {})
}

const awaitSpawn = (child: ChildProcess, spec: LaunchSpec): Effect.Effect<void, GuestFailure> =>
  Effect.callback<void, GuestFailure>((resume) => {
    const onSpawn = () => {
      child.off("error", onError)
      resume(Effect.void)
    }
    const onError = (err: NodeJS.ErrnoException) => {
      child.off("spawn", onSpawn)
      resume(Effect.fail(Failure.fail(`failed to start process: ${describeSpawnError(spec, err)}`)))
    }
    child.once("spawn", onSpawn)
    child.once("error", onError)
  })

/** A deferred completed with the wait status when `child` exits. */
const watchExit = (child: ChildProcess, killGroup: boolean): Deferred.Deferred<ExitStatus> => {
  const exited = Deferred.makeUnsafe<ExitStatus>()
  child.on("error", () => {})
  child.once("exit", (code, signal) => {
    if (killGroup && child.pid !== undefined) killGroupOf(child.pid)
    Deferred.doneUnsafe(exited, Exit.succeed({ code, signal }))
  })
  return exited
}

const killGroupOf = (pid: number): void => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // ESRCH: the group is already gone.
  }
}

const signalPid = (pid: number, signo: number): Effect.Effect<void, GuestFailure> =>
  Effect.suspend(() => {
    try {
      process.kill(pid, signo)
      return Effect.void
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === "ESRCH") return Effect.fail(Failure.bare(Failure.Hr.NotFound))
      if (code === "EINVAL" || code === "ERR_UNKNOWN_SIGNAL") {
        return Effect.fail(Failure.fail(`invalid signal ${signo}`))
      }
      return Effect.fail(Failure.fail(`kill pid ${pid} with signal ${signo}: ${(e as Error).message}`))
    }
  })

const badSize = (rows: number, cols: number): GuestFailure | undefined =>
  [rows, cols].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff)
    ? undefined
    : Failure.fail(`invalid console size ${rows}x${cols}`)

type Stdio = "pipe" | "ignore" | Handoff
const pipeIf = (wanted: boolean): Stdio => (wanted ? "pipe" : "ignore")

/**
 * Spawns `argv` detached, waiting until it runs; `spec` words the error of a
 * failed spawn. `direct`: `spec` itself, not the pty helper running it.
 */
const spawnDetached = Effect.fnUntraced(function* (
  argv: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly stdio: Array<Stdio> },
  spec: LaunchSpec,
  direct: boolean
) {
  const child = spawn(argv[0]!, argv.slice(1), { ...options, detached: true, windowsHide: true })
  // The helper itself kills the child's group when asked to (kill_group).
  const exited = watchExit(child, direct && spec.killGroupOnExit)
  for (const s of child.stdio) quietStream(s)
  // Before the child can exit: the pipes the relays will read (the helper's
  // own stderr is its diagnostics, read by `readStatusLine`).
  holdPaused(child.stdout)
  if (direct) holdPaused(child.stderr)
  yield* awaitSpawn(child, spec)
  return { child, exited, pid: child.pid!, hasExited: () => Deferred.isDoneUnsafe(exited) }
})

const isExecutableFile = (path: string): boolean => {
  try {
    accessSync(path, fsConstants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** Where `execvp` would find `file` with `env`'s PATH (libuv's default when unset), if anywhere. */
const findExecutable = (
  file: string,
  env: Readonly<Record<string, string>>,
  cwd: string
): string | undefined => {
  const candidates = file.includes("/")
    ? [resolvePath(cwd, file)]
    : (env["PATH"] ?? "/usr/bin:/bin").split(":").map((dir) => resolvePath(cwd, dir, file))
  return candidates.find(isExecutableFile)
}

/**
 * The argv starting `spec` with the standard fds it does not want closed, or
 * `spec.argv` itself. libuv gives an ignored fd 0-2 `/dev/null`, never a closed
 * fd, so a POSIX shell closes them and `exec`s the program in its place: the
 * same pid, the argv passed as words (never as shell code). The program is
 * looked up first, so that a missing one still fails the spawn; a name starting
 * with `-` (an option to some shells' `exec`) is replaced by its path.
 */
const closingArgv = (spec: LaunchSpec): ReadonlyArray<string> | GuestFailure => {
  const closed = [spec.stdin, spec.stdout, spec.stderr].flatMap((wanted, fd) => (wanted ? [] : [`${fd}<&-`]))
  if (!spec.closeUnrequested || spec.console || closed.length === 0) return spec.argv
  const [file, ...args] = spec.argv as [string, ...Array<string>]
  const path = findExecutable(file, spec.env, spec.cwd)
  if (path === undefined) {
    const error: NodeJS.ErrnoException = Object.assign(new Error("not found"), { code: "ENOENT" })
    return Failure.fail(`failed to start process: ${describeSpawnError(spec, error)}`)
  }
  return ["/bin/sh", "-c", `exec "$@" ${closed.join(" ")}`, "sh", file.startsWith("-") ? path : file, ...args]
}

const launchDirect = (spec: LaunchSpec): Effect.Effect<LocalProcess, GuestFailure, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const argv = closingArgv(spec)
      return argv instanceof Failure.GuestFailure
        ? Effect.fail(argv)
        : spawnDetached(
            argv,
            // Without a pty a console still means "stderr is not separate": both go to stdout.
            {
              cwd: spec.cwd,
              env: spec.env,
              stdio: [
                spec.sockets?.[0] ?? pipeIf(spec.stdin),
                spec.sockets?.[1] ?? pipeIf(spec.stdout),
                spec.sockets?.[2] ?? pipeIf(spec.console ? spec.stdout : spec.stderr)
              ]
            },
            spec,
            true
          )
    }).pipe(
      Effect.map(({ child, exited, hasExited, pid }): LocalProcess => ({
        pid,
        tty: false,
        stdout: Option.fromNullishOr(child.stdout),
        stderr: Option.fromNullishOr(child.stderr),
        stdin: Option.fromNullishOr(child.stdin),
        exited,
        hasExited,
        signal: (signo) =>
          hasExited() ? Effect.fail(Failure.bare(Failure.Hr.NotFound)) : signalPid(pid, signo),
        resize: (rows, cols) =>
          Effect.fail(badSize(rows, cols) ?? Failure.fail(`pid: ${pid}, is not a tty and cannot be resized`)),
        killGroup: Effect.sync(() => {
          if (!hasExited()) killGroupOf(pid)
        })
      }))
    ),
    (local) => local.killGroup
  )

const readStatusLine = (status: Readable, stderr: Readable): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    let line = ""
    let diagnostics = ""
    const onErr = (chunk: Buffer) => {
      if (diagnostics.length < 4096) diagnostics += chunk.toString("utf8")
    }
    const finish = (text: string) => {
      status.off("data", onData)
      status.off("end", onEnd)
      status.off("close", onEnd)
      stderr.off("data", onErr)
      resume(Effect.succeed(text))
    }
    const onData = (chunk: Buffer) => {
      line += chunk.toString("utf8")
      const nl = line.indexOf("\n")
      if (nl >= 0) finish(line.slice(0, nl))
      else if (line.length > 4096) finish(line)
    }
    const onEnd = () =>
      finish(line.length > 0 ? line : `error the pty helper exited: ${diagnostics.trim() || "no output"}`)
    status.on("data", onData)
    status.once("end", onEnd)
    status.once("close", onEnd)
    stderr.on("data", onErr)
  })

const launchWithHelper = Effect.fnUntraced(function* (spec: LaunchSpec, python: string) {
  const helper = yield* Effect.acquireRelease(
    spawnDetached(
      [python, "-I", "-c", helperSource],
      {
        cwd: "/",
        env: process.env,
        stdio: [pipeIf(spec.stdin), pipeIf(spec.stdout), "pipe", "pipe", "pipe"]
      },
      { ...spec, argv: [python], cwd: "/" },
      false
    ),
    (helper) =>
      Effect.gen(function* () {
        if (helper.hasExited()) return
        // Closing the control pipe makes the helper kill the child's group
        // and exit; SIGKILL to the helper covers a helper that is stuck.
        ;(helper.child.stdio[3] as Writable | null)?.end()
        yield* Deferred.await(helper.exited).pipe(Effect.timeoutOption(Duration.seconds(2)))
        if (!helper.hasExited()) killGroupOf(helper.pid)
      })
  )
  const { child, hasExited } = helper
  const ctl = child.stdio[3] as Writable
  const request = {
    argv: spec.argv,
    env: spec.env,
    cwd: spec.cwd,
    stdin: spec.stdin,
    kill_group: spec.killGroupOnExit
  }
  ctl.write(JSON.stringify(request) + "\n")
  const status = yield* readStatusLine(child.stdio[4] as Readable, child.stderr!)
  if (!status.startsWith("ok ")) {
    const text = status.replace(/^error (\d+ )?/, "")
    return yield* Failure.fail(`failed to start process: exec ${JSON.stringify(spec.argv[0])}: ${text}`)
  }
  const control = (line: string): Effect.Effect<void, GuestFailure> =>
    Effect.suspend(() => {
      if (hasExited() || ctl.destroyed || ctl.writableEnded)
        return Effect.fail(Failure.bare(Failure.Hr.NotFound))
      ctl.write(line + "\n")
      return Effect.void
    })
  const local: LocalProcess = {
    pid: helper.pid,
    tty: true,
    stdout: Option.fromNullishOr(child.stdout),
    stderr: Option.none(),
    stdin: Option.fromNullishOr(child.stdin),
    exited: helper.exited,
    hasExited,
    signal: (signo) =>
      Number.isInteger(signo) && signo > 0 && signo < 65
        ? control(`signal ${signo}`)
        : Effect.fail(Failure.fail(`invalid signal ${signo}`)),
    resize: (rows, cols) => {
      const bad = badSize(rows, cols)
      return bad === undefined ? control(`resize ${rows} ${cols}`) : Effect.fail(bad)
    },
    killGroup: Effect.sync(() => {
      if (!hasExited()) ctl.end()
    })
  }
  return local
})

/**
 * Starts `spec` in the current scope; closing the scope kills the process
 * group. A console uses the pty helper at `python` when given.
 */
export const launch = (
  spec: LaunchSpec,
  python: Option.Option<string>
): Effect.Effect<LocalProcess, GuestFailure, Scope.Scope> => {
  if (spec.argv.length === 0 || spec.argv[0] === "") {
    return Effect.fail(Failure.fail("failed to start process: the command is empty"))
  }
  return spec.console && Option.isSome(python) ? launchWithHelper(spec, python.value) : launchDirect(spec)
}
