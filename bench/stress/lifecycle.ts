/**
 * One run of the standard lifecycle — accept, negotiate, create, start, exec
 * with all three stdio, stdio transfer, wait, signal, shutdown, scope close —
 * between the host (`GuestConnection.make`) and the real guest of
 * `@gcs-bridge/guest` carrying the faults under test, over Unix sockets in a
 * private directory. Every step runs under the caller's deadline
 * (`Effect.timeout`) and under a hard guard that cannot be wedged by an
 * interruption that never completes, and is recorded with its outcome and
 * duration. The run stops at the first step that does not succeed, then
 * closes the connection's scope (the last step) and waits for the guest to
 * stop.
 */
import type { Fault } from "@gcs-bridge/guest"
import { Guest } from "@gcs-bridge/guest"
import { Container as Wire } from "@gcs-bridge/protocol"
import type { Container, GuestConnectionService, Process } from "@gcs-bridge/runtime"
import { GuestConnection } from "@gcs-bridge/runtime"
import type { TransportService } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Cause, Data, Duration, Effect, Exit, Fiber, Option, Scope, Stream } from "effect"

/** The steps of the standard lifecycle, in order. */
// prettier-ignore
export const Steps = [
  "accept", "negotiate", "create", "start", "exec", "stdio", "wait", "signal", "shutdown", "close"
] as const

/** One step of the standard lifecycle. */
export type Step = (typeof Steps)[number]

/**
 * What a step came to: success (with a note when it succeeded with less than
 * the full result, e.g. a stream that ended early), a typed failure (the
 * error's `_tag` and its reason or code), the caller's deadline, a defect (a
 * bug: untyped failure), or a hang (the caller's deadline fired but the
 * interruption never completed).
 */
export type Outcome =
  | { readonly kind: "ok"; readonly note?: string }
  | { readonly kind: "error"; readonly tag: string; readonly detail: string }
  | { readonly kind: "deadline" }
  | { readonly kind: "defect"; readonly detail: string }
  | { readonly kind: "hang"; readonly detail: string }

/** A step's outcome and how long it took from its start. */
export interface StepRecord {
  readonly step: Step
  readonly outcome: Outcome
  readonly ms: number
}

/** Settings of one lifecycle run. */
export interface LifecycleOptions {
  /** Private directory for the Unix sockets. */
  readonly dir: string
  /** Transport used by both ends (the host's view is wrapped to time the accept). */
  readonly transport: TransportService
  readonly faults: ReadonlyArray<Fault.Fault>
  /** Run the steps up to and including this one, then close (default: all). */
  readonly stopAfter?: Step
  /** The caller's deadline on every step but `close`. */
  readonly deadlineMs: number
  /** `GuestConnectionConfig.closeTimeout`: the caller's bound on what closing a scope does in the guest. */
  readonly closeTimeoutMs: number
  /** Bytes sent through the process's stdin and expected back on its stdout. */
  readonly payload: Uint8Array
}

/** The result of a lifecycle run. */
export interface LifecycleResult {
  readonly records: ReadonlyArray<StepRecord>
  /** How the guest's `run` ended, or that it had to be interrupted. */
  readonly guest: string
}

/**
 * Wall-clock bound on the close: what closing does in the guest is bounded by
 * `closeTimeout` per object, and the objects are closed one after the other
 * (the exec'd process, the init process, the container), plus 2 s.
 */
export const closeBound = (closeTimeoutMs: number): number => 3 * closeTimeoutMs + 2000

/** Slack beyond a deadline after which an unfinished step counts as hung. */
const HangSlackMs = 2500

class CallerDeadline extends Data.TaggedError("CallerDeadline") {}
class Hang extends Data.TaggedError("Hang") {}

const describeError = (error: unknown): Outcome => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) {
    return { kind: "defect", detail: `untyped failure: ${String(error)}` }
  }
  const e = error as {
    readonly _tag: string
    readonly reason?: unknown
    readonly hresult?: unknown
    readonly message?: unknown
  }
  const detail =
    typeof e.reason === "string"
      ? e.reason
      : typeof e.hresult === "number"
        ? `0x${e.hresult.toString(16).toUpperCase()}`
        : ""
  return { kind: "error", tag: e._tag, detail }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0

/** The container: its init sleeps until signalled (and ignores SIGWINCH, the signal step's signal). */
const containerConfig = (id: string) =>
  new Wire.LinuxHostedSystem({
    OciBundlePath: `/run/gcs/c/${id}`,
    OciSpecification: {
      ociVersion: "1.1.0",
      process: { args: ["sleep", "3600"], cwd: "/", env: ["PATH=/usr/bin:/bin"] },
      root: { path: `/run/gcs/c/${id}/rootfs` },
      // The Linux GCS dies of a spec without `linux` (and our guest drops the bridge as it would).
      linux: { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] }
    },
    ScratchDirPath: `/run/gcs/c/${id}/scratch`
  })

const SIGWINCH = 28

/** Runs the standard lifecycle once; never fails (every outcome is recorded). */
export const runLifecycle = (options: LifecycleOptions): Effect.Effect<LifecycleResult> =>
  Effect.gen(function* () {
    const address = new UnixAddress({ path: `${options.dir}/vm` })
    const records: Array<StepRecord> = []
    const last = Steps.indexOf(options.stopAfter ?? "close")
    let acceptedAt: number | undefined

    // The host's transport, with the moment the bridge connection is accepted recorded.
    const hostTransport: TransportService = {
      connect: options.transport.connect,
      listen: (a, port, o) =>
        Effect.map(options.transport.listen(a, port, o), (listener) => ({
          address: listener.address,
          port: listener.port,
          description: listener.description,
          accept: (ao) =>
            Effect.tap(listener.accept(ao), () =>
              Effect.sync(() => {
                acceptedAt ??= performance.now()
              })
            )
        }))
    }

    const guest = yield* Guest.run({
      address,
      once: true,
      faults: options.faults,
      retryInterval: "5 millis",
      connectTimeout: "10 seconds",
      console: "none"
    }).pipe(Effect.provideService(Transport, options.transport), Effect.result, Effect.forkChild)

    const connScope = yield* Scope.make()

    /**
     * Runs `body` as step `step` under the caller's deadline and the hang
     * guard; `check` turns a success into a note (or nothing when complete).
     * Returns the value, or None once the lifecycle has to stop.
     */
    const step = <A, E>(
      name: Step,
      body: Effect.Effect<A, E>,
      check: (a: A) => string | undefined = () => undefined
    ): Effect.Effect<Option.Option<A>> =>
      Effect.gen(function* () {
        const t0 = performance.now()
        // The hard guard waits for the deadline's interruption only so long: the body runs detached, so an
        // interruption that never completes cannot wedge the run.
        const fiber = yield* Effect.forkDetach(
          Effect.timeoutOrElse(body, {
            duration: Duration.millis(options.deadlineMs),
            orElse: () => Effect.fail(new CallerDeadline())
          })
        )
        const awaited = yield* Effect.timeoutOption(
          Fiber.await(fiber),
          Duration.millis(options.deadlineMs + HangSlackMs)
        )
        if (Option.isNone(awaited)) yield* Effect.forkDetach(Fiber.interrupt(fiber))
        const exit: Exit.Exit<A, E | CallerDeadline | Hang> = Option.isSome(awaited)
          ? awaited.value
          : Exit.fail(new Hang())
        const ms = performance.now() - t0
        if (Exit.isSuccess(exit)) {
          const note = check(exit.value)
          records.push({
            step: name,
            outcome: note === undefined ? { kind: "ok" } : { kind: "ok", note },
            ms
          })
          return Option.some(exit.value)
        }
        const failure = Cause.findErrorOption(exit.cause)
        const outcome: Outcome = Option.isNone(failure)
          ? { kind: "defect", detail: Cause.pretty(exit.cause).split("\n")[0] ?? "defect" }
          : failure.value instanceof CallerDeadline
            ? { kind: "deadline" }
            : failure.value instanceof Hang
              ? {
                  kind: "hang",
                  detail: `the caller's deadline fired but ${name} was still not interrupted after ${HangSlackMs} ms`
                }
              : describeError(failure.value)
        records.push({ step: name, outcome, ms })
        return Option.none()
      })

    const inConn = Scope.provide(connScope)

    yield* Effect.gen(function* () {
      // accept + negotiate: the production path, GuestConnection.make; the accept is timed through the wrapped transport.
      const t0 = performance.now()
      const made = yield* step(
        "negotiate",
        inConn(
          GuestConnection.make({
            address,
            connectTimeout: "10 seconds",
            closeTimeout: Duration.millis(options.closeTimeoutMs)
          }).pipe(Effect.provideService(Transport, hostTransport))
        )
      )
      const negotiated = records.pop()!
      if (acceptedAt === undefined) {
        records.push({ ...negotiated, step: "accept" })
        return
      }
      records.push({ step: "accept", outcome: { kind: "ok" }, ms: acceptedAt - t0 })
      records.push({ ...negotiated, ms: negotiated.ms - (acceptedAt - t0) })
      if (Option.isNone(made) || last <= Steps.indexOf("negotiate")) return
      const gc: GuestConnectionService = made.value

      const created = yield* step("create", inConn(gc.createContainer("c1", containerConfig("c1"))))
      if (Option.isNone(created) || last <= Steps.indexOf("create")) return
      const container: Container = created.value

      // On Linux, Start is a no-op and the container runs from its init's ExecuteProcess: both are the start.
      const started = yield* step("start", Effect.andThen(container.start, inConn(container.exec({}))))
      if (Option.isNone(started) || last <= Steps.indexOf("start")) return
      const init: Process = started.value

      const execed = yield* step(
        "exec",
        inConn(
          container.exec({
            OciProcess: { args: ["sh", "-c", "cat; echo err >&2"], cwd: "/", env: ["PATH=/usr/bin:/bin"] },
            CreateStdInPipe: true,
            CreateStdOutPipe: true,
            CreateStdErrPipe: true
          })
        )
      )
      if (Option.isNone(execed) || last <= Steps.indexOf("exec")) return
      const p: Process = execed.value

      const transferred = yield* step(
        "stdio",
        Effect.all(
          [
            Stream.runCollect(p.stdout),
            Stream.runCollect(p.stderr),
            Effect.andThen(
              Stream.run(Stream.fromIterable(chunksOf(options.payload, 60_000)), p.stdin),
              p.closeStdin
            )
          ],
          { concurrency: 3 }
        ),
        ([out, err]) => {
          const stdout = Buffer.concat(out)
          const stderr = Buffer.concat(err).toString("utf8")
          if (sameBytes(stdout, options.payload) && stderr === "err\n") return undefined
          return `stdout ${stdout.length} of ${options.payload.length} B, stderr ${JSON.stringify(stderr)}`
        }
      )
      if (Option.isNone(transferred) || last <= Steps.indexOf("stdio")) return

      const waited = yield* step("wait", p.wait, (code) => (code === 0 ? undefined : `exit code ${code}`))
      if (Option.isNone(waited) || last <= Steps.indexOf("wait")) return

      const signalled = yield* step("signal", init.signal(SIGWINCH), (delivered) =>
        delivered ? undefined : "not delivered (process gone)"
      )
      if (Option.isNone(signalled) || last <= Steps.indexOf("signal")) return

      yield* step("shutdown", container.shutdown)
    })

    // Scope close: always, bounded by the guard; a close that never ends is a hang.
    const t0 = performance.now()
    const closing = yield* Effect.forkChild(Scope.close(connScope, Exit.void))
    const closed = yield* Fiber.await(closing).pipe(
      Effect.timeoutOption(Duration.millis(closeBound(options.closeTimeoutMs) + HangSlackMs))
    )
    const closeMs = performance.now() - t0
    records.push({
      step: "close",
      ms: closeMs,
      outcome: Option.isNone(closed)
        ? {
            kind: "hang",
            detail: `closing the connection's scope did not finish within ${Math.round(closeMs)} ms`
          }
        : Exit.isSuccess(closed.value)
          ? { kind: "ok" }
          : { kind: "defect", detail: Cause.pretty(closed.value.cause).split("\n")[0] ?? "defect" }
    })
    if (Option.isNone(closed)) yield* Fiber.interrupt(closing).pipe(Effect.timeoutOption("1 second"))

    // The host is gone: the guest sees end of stream and stops by itself (once).
    const guestEnd = yield* Fiber.join(guest).pipe(Effect.timeoutOption("3 seconds"))
    let guestText: string
    if (Option.isNone(guestEnd)) {
      yield* Fiber.interrupt(guest).pipe(Effect.timeoutOption("2 seconds"))
      guestText = "did not stop within 3 s of the host's close (interrupted)"
    } else {
      const end = guestEnd.value
      const e =
        end._tag === "Success"
          ? undefined
          : (end.failure as { _tag: string; reason?: string; message: string })
      guestText = e === undefined ? "stopped" : `stopped: ${e._tag} ${e.reason ?? e.message}`
    }
    return { records, guest: guestText }
  })

const chunksOf = (bytes: Uint8Array, size: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size))
  return out
}
