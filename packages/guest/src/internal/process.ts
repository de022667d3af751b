/**
 * A process the guest started on behalf of the host: the local process, its
 * stdio connections and relays, all in one scope, and the exit code as
 * WaitForProcess reports it — available only once the process has ended and
 * its output relays have finished (§8.5), so a host that has the exit code has
 * also been sent every byte of output.
 */
import type { Connection, TransportError } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Fiber, Option, Scope } from "effect"
import * as Failure from "./failure.js"
import type { GuestFailure } from "./failure.js"
import type { ExitStatus, LaunchSpec, LocalProcess } from "./localProcess.js"
import { launch, signalNumber } from "./localProcess.js"
import type { Redial } from "./stdio.js"
import { relayOutput, relayStdin } from "./stdio.js"

/** UVM ("external") process, container init process, or process exec'd in a container. */
export type ProcessKind = "external" | "init" | "exec"

/** The vsock ports the host listens on for this process; 0 = not requested. */
export interface StdioPorts {
  readonly stdin: number
  readonly stdout: number
  readonly stderr: number
}

/** Connects to one of the host's stdio listeners, in the given scope. */
export type Dial = (port: number) => Effect.Effect<Connection, TransportError, Scope.Scope>

/** A started process. */
export interface GuestProcess {
  readonly pid: number
  readonly kind: ProcessKind
  readonly argv: ReadonlyArray<string>
  readonly local: LocalProcess
  /** The exit code for WaitForProcess, set after the output relays finished. */
  readonly done: Deferred.Deferred<number>
  /** The same, without waiting: `undefined` until `done` completes. */
  exitCode: number | undefined
  /** Output streams whose host went away, being dialled again (§14.4). */
  redialling: number
  /** Owns the process, its connections and relays; closing it kills what is left. */
  readonly scope: Scope.Closeable
  readonly startedAt: number
}

/** Options of {@link startProcess}. */
export interface StartOptions {
  readonly kind: ProcessKind
  readonly spec: LaunchSpec
  readonly ports: StdioPorts
  readonly dial: Dial
  /** The pty helper's interpreter, when console processes can have a real terminal. */
  readonly python: Option.Option<string>
  /** Records the started process; runs before `startProcess` returns, in the same uninterruptible step as the launch. */
  readonly register: (process: GuestProcess) => Effect.Effect<void>
  /**
   * Container init processes: a stdout/stderr connection whose host went away
   * is dialled again until this completes (§14.4); others just end.
   */
  readonly redialUntil?: Effect.Effect<void>
}

/** Unsigned 32-bit -1: what a UVM process killed by a signal reports (Go's `ExitCode()`). */
export const SignalledExternalExitCode = 0xffffffff

/** The exit code WaitForProcess reports for a wait status (§8.5). */
export const exitCodeOf = (kind: ProcessKind, status: ExitStatus): number => {
  if (status.code !== null) return status.code >>> 0
  if (kind === "external") return SignalledExternalExitCode
  return 128 + (status.signal === null ? 0 : signalNumber(status.signal))
}

const dialStdio = (
  name: "stdin" | "stdout" | "stderr",
  port: number,
  wanted: boolean,
  dial: Dial
): Effect.Effect<Option.Option<Connection>, GuestFailure, Scope.Scope> =>
  wanted
    ? dial(port).pipe(
        Effect.map(Option.some),
        Effect.mapError((e) => Failure.fail(`failed creating ${name} Connection: ${e.message}`))
      )
    : Effect.succeedNone

/**
 * Dials the requested stdio ports (stdin, then stdout, then stderr — before
 * anything is started, §11.5), starts the process, and wires the relays. On
 * failure everything acquired so far is released again.
 */
export const startProcess = (
  parent: Scope.Scope,
  options: StartOptions
): Effect.Effect<GuestProcess, GuestFailure> =>
  // Dialling may be interrupted (the host hung up); from the launch on,
  // nothing is: a started process is always registered, so that its state
  // owns it and a later host can wait for it or kill it.
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const { spec, dial, ports } = options
      const scope = yield* Scope.fork(parent, "sequential")
      const { local, stdin, stdout, stderr } = yield* Effect.gen(function* () {
        const [stdin, stdout, stderr] = yield* restore(
          Effect.all([
            dialStdio("stdin", ports.stdin, spec.stdin, dial),
            dialStdio("stdout", ports.stdout, spec.stdout, dial),
            dialStdio("stderr", ports.stderr, spec.stderr, dial)
          ])
        )
        // A UVM process without a console gets the stdio sockets themselves as fds, as the Linux GCS
        // gives "external" processes their vsock connections: no relay through this thread. An engine
        // without descriptors (memory) leaves the slot to a pipe and a relay.
        const conns = [stdin, stdout, stderr]
        const direct = options.kind === "external" && !spec.console
        const sockets = conns.map((c) => (direct && Option.isSome(c) ? c.value.handoff?.() : undefined))
        const local = yield* launch(
          { ...spec, sockets: [sockets[0], sockets[1], sockets[2]] },
          options.python
        )
        // The child holds duplicates: ours go, so the host sees EOF once the child's end closes.
        for (const [i, c] of conns.entries())
          if (sockets[i] !== undefined && Option.isSome(c)) yield* c.value.close
        return { stdin, stdout, stderr, local }
      }).pipe(
        Scope.provide(scope),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void))
      )

      const process: GuestProcess = {
        pid: local.pid,
        kind: options.kind,
        argv: spec.argv,
        local,
        done: yield* Deferred.make<number>(),
        exitCode: undefined,
        redialling: 0,
        scope,
        startedAt: Date.now()
      }

      // With a console (pty or not) stderr is not separate: `local.stderr` then
      // is either none (pty) or folded into stdout's relay (no pty).
      const ending = options.kind === "external" ? "close" : "half-close-then-wait"
      const until = options.redialUntil
      const redial = (port: number): Redial | undefined =>
        until === undefined
          ? undefined
          : { dial: dial(port), stopped: until, onLost: (lost) => (process.redialling += lost ? 1 : -1) }
      const outputs: Array<Effect.Effect<void>> = []
      if (Option.isSome(stdout) && Option.isSome(local.stdout)) {
        const sources = [local.stdout.value]
        if (spec.console && Option.isSome(local.stderr)) sources.push(local.stderr.value)
        outputs.push(relayOutput(sources, stdout.value, ending, redial(ports.stdout)))
      }
      if (!spec.console && Option.isSome(stderr) && Option.isSome(local.stderr)) {
        outputs.push(relayOutput([local.stderr.value], stderr.value, ending, redial(ports.stderr)))
      }
      // Forked fibers are interruptible: closing the process's scope stops the relays.
      const relays = yield* Effect.forEach(outputs, (relay) => Effect.forkIn(relay, scope))
      if (Option.isSome(stdin) && Option.isSome(local.stdin)) {
        yield* Effect.forkIn(relayStdin(stdin.value, local.stdin.value), scope)
      }

      const finish = Effect.gen(function* () {
        const status = yield* Deferred.await(local.exited)
        yield* Fiber.joinAll(relays)
        // The process is over: the host's stdin writer and an unused stderr
        // (console) learn it from the connection closing.
        for (const conn of [stdin, stdout, stderr]) if (Option.isSome(conn)) yield* conn.value.close
        process.exitCode = exitCodeOf(options.kind, status)
        yield* Deferred.succeed(process.done, process.exitCode)
      })
      yield* Effect.forkIn(finish, scope)
      yield* options.register(process)
      return process
    })
  )
