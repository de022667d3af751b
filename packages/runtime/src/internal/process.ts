/** Exec (GCS-PROTOCOL §8.4, §11): stdio listeners, ExecuteProcess, then the WaitForProcess that gives the exit. */
import { Codec, Guid, Process as Wire, ProtocolError } from "@gcs-bridge/protocol"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Option, Result, Scope } from "effect"
import { type CallError, type ExecError, isNotFound, isSignalRefused, isTimeout } from "../Errors.js"
import { SavedProcess } from "../Migration.js"
import type { Process, ProcessParametersInput, WindowsSignalName } from "../Process.js"
import type { Bridge, Call } from "./bridge.js"
import type { ConnectionState } from "./guestConnection.js"
import * as Rpc from "./rpc.js"
import * as Stdio from "./stdio.js"

const decode = (input: unknown) =>
  Result.mapError(
    Codec.decodeProcessParameters(input),
    ({ message }) =>
      new ProtocolError.ProtocolError({ reason: "EncodeFailed", message: `invalid ${message}` })
  )

/** The WaitForProcess body (by default the infinite wait whose answer is the exit). */
export const waitBody = (
  fields: Rpc.BaseFields & { readonly ProcessId: number },
  TimeoutInMs = Wire.InfiniteTimeout
) => Codec.unchecked(Wire.ContainerWaitForProcess, { ...fields, TimeoutInMs })

/** Kills and waits for a process whose exec was interrupted after the request went out, so the guest forgets it. */
const reap = (bridge: Bridge, containerId: string, pid: number): Effect.Effect<void> => {
  const fields = { ...Rpc.base(containerId, undefined), ProcessId: pid }
  const log = Effect.logDebug("reaping a process whose exec was interrupted")
  const signal = bridge.call(
    "SignalProcess",
    containerId,
    Codec.unchecked(Wire.ContainerSignalProcess, fields)
  )
  const wait = bridge.call("WaitForProcess", containerId, waitBody(fields))
  const annotated = Effect.annotateLogs(log, { "container-id": containerId, pid })
  return bridge.background(Effect.all([signal, wait, annotated], { concurrency: "unbounded" }))
}

/** Starts a process in `containerId` (the null GUID: the UVM), in a child scope closed at once if the exec fails. */
export const exec = (
  state: ConnectionState,
  containerId: string,
  input: ProcessParametersInput
): Effect.Effect<Process, ExecError, Scope.Scope> =>
  // Plain `flatMap` steps here and in `start`: on a host that sleeps between execs, the two generators they were
  // written with cost about 10 µs of CPU per exec (churn against the responder, one exec at a time).
  Effect.suspend(() => {
    const params = input instanceof Wire.ProcessParameters ? Result.succeed(input) : decode(input)
    if (Result.isFailure(params)) return Exit.fail(params.failure)
    return Effect.flatMap(Effect.scope, (parent) => {
      const scope = Scope.forkUnsafe(parent)
      const started = Effect.uninterruptibleMask((restore) =>
        start(state, containerId, params.success, scope, restore)
      )
      return Effect.onError(Scope.provide(started, scope), (cause) =>
        Scope.close(scope, Exit.failCause(cause))
      )
    })
  })

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
type Channels = readonly [
  Stdio.StdioChannel | undefined,
  Stdio.StdioChannel | undefined,
  Stdio.StdioChannel | undefined
]
const noChannels: Channels = [undefined, undefined, undefined]

// §11.4/§11.5: ports in stdin, stdout, stderr order, each listener bound before the exec is sent.
const openChannels = (state: ConnectionState, params: Wire.ProcessParameters, restore: Restore) => {
  const { CreateStdInPipe: stdin, CreateStdOutPipe: stdout, CreateStdErrPipe: stderr } = params
  if (!stdin && !stdout && !stderr) return Effect.succeed(noChannels)
  const channel = (name: Stdio.StdioName, wanted: boolean) =>
    wanted ? restore(Stdio.open(state, name)) : Effect.succeed(undefined)
  return Effect.all([channel("stdin", stdin), channel("stdout", stdout), channel("stderr", stderr)])
}

const relaySettings = (os: ConnectionState["os"], [stdin, stdout, stderr]: Channels) =>
  os === "windows"
    ? {
        StdioRelaySettings: Codec.unchecked(Wire.ExecuteProcessStdioRelaySettings, {
          ...(stdin ? { StdIn: Guid.vsockServiceId(stdin.port) } : {}),
          ...(stdout ? { StdOut: Guid.vsockServiceId(stdout.port) } : {}),
          ...(stderr ? { StdErr: Guid.vsockServiceId(stderr.port) } : {})
        })
      }
    : {
        VsockStdioRelaySettings: Codec.unchecked(Wire.ExecuteProcessVsockStdioRelaySettings, {
          StdIn: stdin?.port ?? 0,
          StdOut: stdout?.port ?? 0,
          StdErr: stderr?.port ?? 0
        })
      }

const start = (
  state: ConnectionState,
  containerId: string,
  params: Wire.ProcessParameters,
  scope: Scope.Scope,
  restore: Restore
): Effect.Effect<Process, ExecError, Scope.Scope> => {
  const { bridge } = state
  return Effect.flatMap(openChannels(state, params, restore), (channels) => {
    const Settings = Codec.unchecked(Wire.ExecuteProcessSettings, {
      ProcessParameters: params,
      ...relaySettings(state.os, channels)
    })
    const body = (base: Rpc.BaseFields) =>
      Codec.unchecked(Wire.ContainerExecuteProcess, { ...base, Settings })
    const started = Rpc.send(bridge, "ExecuteProcess", containerId, body, (sent, span) => {
      const answer = restore(bridge.await(sent)).pipe(
        // Answered after its caller left: what it started is killed once the answer arrives.
        Effect.onInterrupt(() =>
          bridge.background(
            Effect.flatMap(Deferred.await(sent.result), (r) => reap(bridge, containerId, r.ProcessId))
          )
        )
      )
      return span === undefined
        ? answer
        : Effect.tap(answer, (answer) => Effect.sync(() => span.attribute("gcs.pid", answer.ProcessId)))
    })
    return Effect.flatMap(started, ({ ProcessId: pid }) => {
      // §8.5: sent right away, its answer is the exit; without it the Linux GCS never reports a container's exit.
      const wait = (base: Rpc.BaseFields) => waitBody({ ...base, ProcessId: pid })
      const waitCall = restore(
        Rpc.send(bridge, "WaitForProcess", containerId, wait, Effect.succeed, { "gcs.pid": pid })
      ).pipe(Effect.onInterrupt(() => reap(bridge, containerId, pid)))
      return Effect.flatMap(waitCall, (call) =>
        track(new Handle(pid, state, containerId, call, scope, channels))
      )
    })
  })
}

const track = (handle: Handle) =>
  Effect.suspend(() => {
    ;(handle.state.processes ??= new Set()).add(handle)
    const forget = Effect.sync(() => handle.state.processes?.delete(handle))
    return Effect.as(Scope.addFinalizer(handle.scope, Effect.ensuring(handle.onClose(), forget)), handle)
  })

/**
 * §12.9 restore: stdio re-bound on the saved ports, the saved wait (registered at connect) watched, and a 50 ms
 * probe: answered means the process exited while no host listened, "timeout" means it still runs.
 */
export const restore = (
  state: ConnectionState,
  saved: SavedProcess,
  waitCall: Call<"WaitForProcess">
): Effect.Effect<Process, ExecError, Scope.Scope> =>
  Effect.gen(function* () {
    const { bridge } = state
    const { containerId, pid } = saved
    const scope = yield* Scope.fork(yield* Effect.scope)
    const channel = (name: Stdio.StdioName, port: number) =>
      port === 0 ? Effect.succeed(undefined) : Scope.provide(Stdio.open(state, name, port), scope)
    const stdio = [
      yield* channel("stdin", saved.stdin),
      yield* channel("stdout", saved.stdout),
      yield* channel("stderr", saved.stderr)
    ]
    const probe = (base: Rpc.BaseFields) => waitBody({ ...base, ProcessId: pid }, 50)
    // An answer (or "not found": the guest forgot it) is the wait's result; the saved wait is then not needed.
    const settle = (exit: Exit.Exit<Wire.ContainerWaitForProcessResponse, CallError>) =>
      Effect.andThen(
        Deferred.done(waitCall.result, exit),
        Effect.sync(() => bridge.abandon(waitCall))
      )
    yield* Rpc.call(bridge, "WaitForProcess", containerId, probe, { "gcs.pid": pid }).pipe(
      Effect.matchEffect({
        onSuccess: (response) => settle(Exit.succeed(response)),
        onFailure: (e) => (isTimeout(e) ? Effect.void : isNotFound(e) ? settle(Exit.fail(e)) : Effect.fail(e))
      }),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
    return yield* track(new Handle(pid, state, containerId, waitCall, scope, stdio))
  })

/** A live process: per process only these fields (`stdinClosed` made by the first closeStdin or the close,
 * `exitEffects` by the first stream read before the exit); its effects, errors and log fields are built when used. */
class Handle implements Process {
  private stdinClosed: Deferred.Deferred<void, TransportError> | undefined
  constructor(
    readonly pid: number,
    readonly state: ConnectionState,
    private readonly containerId: string,
    private readonly waitCall: Call<"WaitForProcess">,
    readonly scope: Scope.Scope,
    private readonly stdio: ReadonlyArray<Stdio.StdioChannel | undefined>
  ) {}
  /** What a migration saves of it; `undefined` once it exited. */
  saved(): SavedProcess | undefined {
    if (this.exited()) return undefined
    const [stdin, stdout, stderr] = this.stdio.map((channel) => channel?.port ?? 0)
    const ports = { stdin: stdin!, stdout: stdout!, stderr: stderr! }
    return new SavedProcess({
      containerId: this.containerId,
      pid: this.pid,
      ...ports,
      waitCallId: this.waitCall.id
    })
  }
  private closed(message: string) {
    return new TransportError({ reason: "Closed", address: formatAddress(this.state.address), message })
  }
  private exited() {
    return Deferred.isDoneUnsafe(this.waitCall.result)
  }
  // What runs at the exit, and the one fiber per process that waits for it, made by the first stream that asks.
  private exitEffects: Array<Effect.Effect<void>> | undefined
  /** Runs `effect` once the process has exited, at once if it has. */
  private atExit(effect: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.exited()) return effect
      if (this.exitEffects !== undefined) return Effect.sync(() => void this.exitEffects?.push(effect))
      const queued = (this.exitEffects = [effect])
      const run = Effect.suspend(() => {
        this.exitEffects = undefined
        return Effect.forEach(queued, (effect) => effect, { discard: true })
      })
      const exited = Effect.exit(Deferred.await(this.waitCall.result))
      return Effect.asVoid(Effect.forkIn(Effect.andThen(exited, run), this.scope))
    })
  }
  /** The kill (unless exited), then the closeStdin waiters fail; the stdio channels close after, in their finalizers. */
  onClose() {
    return Effect.suspend(() => {
      // An exited process without stdin, the common case, has nothing to do: nothing is built for it.
      const kill = this.exited() ? Effect.void : this.killOnClose()
      if (this.stdio[0] === undefined) return kill
      const message = `stdin of process ${this.pid} was closed before it could be half-closed`
      // Built by a waiter, if one ever comes: a closed process's stdin is not half-closed any more.
      const closed = Effect.suspend(() => Exit.fail(this.closed(message)))
      return Effect.andThen(
        kill,
        Effect.sync(() => Deferred.doneUnsafe((this.stdinClosed ??= Deferred.makeUnsafe()), closed))
      )
    })
  }
  private killOnClose() {
    const annotations = { "container-id": this.containerId, pid: this.pid }
    const refused = `process ${this.pid} keeps running in the utility VM: the guest refuses to signal UVM processes (0xC037010E); run it in a container to bind its lifetime to the scope`
    const kill = Effect.catchIf(this.kill, isSignalRefused, () =>
      Effect.annotateLogs(Effect.logWarning(refused), annotations)
    )
    return Rpc.onClose(kill, this.state.closeTimeout, "could not kill process on close", annotations)
  }
  private missingStdin() {
    return this.closed(`stdin of process ${this.pid} was not requested (CreateStdInPipe is false)`)
  }
  get stdin() {
    return Stdio.writable(this.stdio[0], () => this.missingStdin())
  }
  stdinFrom(fd: number) {
    const sent = Stdio.pipeFrom(this.stdio[0], fd, () => this.missingStdin())
    return Effect.flatMap(sent, (moved) => Effect.as(this.closeStdin, moved))
  }
  get stdout() {
    return Stdio.readable(
      this.stdio[1],
      (effect) => this.atExit(effect),
      this.state.copyAfterExitTimeout,
      this.state.address
    )
  }
  get stderr() {
    return Stdio.readable(
      this.stdio[2],
      (effect) => this.atExit(effect),
      this.state.copyAfterExitTimeout,
      this.state.address
    )
  }
  stdoutTo(fd: number) {
    return Stdio.pipeInto(this.stdio[1], this.waitCall.result, this.state.copyAfterExitTimeout, fd)
  }
  stderrTo(fd: number) {
    return Stdio.pipeInto(this.stdio[2], this.waitCall.result, this.state.copyAfterExitTimeout, fd)
  }
  // Half-closes once, in a fiber of the process's scope, so an interrupted caller cannot leave it half done.
  get closeStdin(): Effect.Effect<void, TransportError> {
    const stdin = this.stdio[0]
    return stdin === undefined
      ? Effect.void
      : Effect.suspend(() => {
          if (this.stdinClosed) return Deferred.await(this.stdinClosed)
          const closed = (this.stdinClosed = Deferred.makeUnsafe<void, TransportError>())
          const half = Effect.forkIn(Deferred.into(Stdio.endWrite(stdin), closed), this.scope)
          return Effect.andThen(half, Deferred.await(closed))
        })
  }
  /** §11.7: "not found" means the guest already forgot the process; Go reports the zero exit code. */
  get wait(): Effect.Effect<number, CallError> {
    const code = Effect.map(Deferred.await(this.waitCall.result), (response) => response.ExitCode)
    return Effect.catchIf(code, isNotFound, () => Effect.succeed(0))
  }
  get exitCode() {
    return Effect.suspend(() => (this.exited() ? Effect.map(this.wait, Option.some) : Effect.succeedNone))
  }
  signal(n?: number | WindowsSignalName) {
    const Options =
      typeof n === "number"
        ? new Wire.SignalProcessOptionsLinux({ Signal: n })
        : n && new Wire.SignalProcessOptionsWindows({ Signal: n })
    const body = (base: Rpc.BaseFields) =>
      Codec.unchecked(Wire.ContainerSignalProcess, {
        ...base,
        ProcessId: this.pid,
        ...(Options ? { Options } : {})
      })
    const annotations = { "container-id": this.containerId, pid: this.pid }
    return Rpc.call(this.state.bridge, "SignalProcess", this.containerId, body, { "gcs.pid": this.pid }).pipe(
      Effect.as(true),
      // §11.8: the process is already gone.
      Rpc.whenGone(isNotFound, () => this.exited(), false, "process", annotations)
    )
  }
  get kill() {
    return this.signal()
  }
  resizeConsole(Width: number, Height: number) {
    const body = (base: Rpc.BaseFields) =>
      Codec.unchecked(Wire.ContainerResizeConsole, { ...base, ProcessId: this.pid, Height, Width })
    const attributes = { "gcs.pid": this.pid }
    return Effect.asVoid(Rpc.call(this.state.bridge, "ResizeConsole", this.containerId, body, attributes))
  }
}
