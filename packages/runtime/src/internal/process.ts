/** Exec (GCS-PROTOCOL §8.4, §11): stdio listeners, ExecuteProcess, then the WaitForProcess that gives the exit. */
import { Guid, Process as Wire, ProtocolError } from "@gcs-bridge/protocol"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Option, Schema, Scope } from "effect"
import { type CallError, type ExecError, isNotFound, isSignalRefused } from "../Errors.js"
import type { Process, ProcessParametersInput, WindowsSignalName } from "../Process.js"
import type { Bridge, Call } from "./bridge.js"
import type { ConnectionState } from "./guestConnection.js"
import * as Rpc from "./rpc.js"
import * as Stdio from "./stdio.js"

const decodeParameters = Schema.decodeUnknownEffect(Wire.ProcessParameters)
const invalid = ({ message }: Schema.SchemaError) =>
  new ProtocolError.ProtocolError({
    reason: "EncodeFailed",
    message: `invalid process parameters: ${message}`
  })

type ProcessFields = Rpc.BaseFields & { readonly ProcessId: number }
const waitBody = (fields: ProcessFields) =>
  new Wire.ContainerWaitForProcess({ ...fields, TimeoutInMs: Wire.InfiniteTimeout })

/** Kills and waits for a process whose exec was interrupted after the request went out, so the guest forgets it. */
const reap = (bridge: Bridge, containerId: string, pid: number): Effect.Effect<void> => {
  const fields = { ...Rpc.base(containerId, undefined), ProcessId: pid }
  const log = Effect.logDebug("reaping a process whose exec was interrupted")
  return bridge.background(
    Effect.all(
      [
        bridge.call("SignalProcess", containerId, new Wire.ContainerSignalProcess(fields)),
        bridge.call("WaitForProcess", containerId, waitBody(fields)),
        Effect.annotateLogs(log, { "container-id": containerId, pid })
      ],
      { concurrency: "unbounded" }
    )
  )
}

/** §11.7: "not found" means the guest already forgot the process; Go reports the zero exit code. */
const exitCodeOf = (waitCall: Call<"WaitForProcess">): Effect.Effect<number, CallError> =>
  Deferred.await(waitCall.result).pipe(
    Effect.map((response) => response.ExitCode),
    Effect.catchIf(isNotFound, () => Effect.succeed(0))
  )

/** Starts a process in `containerId` (the null GUID: the UVM), in a child scope closed at once if the exec fails. */
export const exec = (
  state: ConnectionState,
  containerId: string,
  input: ProcessParametersInput
): Effect.Effect<Process, ExecError, Scope.Scope> =>
  Effect.gen(function* () {
    const params =
      input instanceof Wire.ProcessParameters
        ? input
        : yield* Effect.mapError(decodeParameters(input), invalid)
    const scope = yield* Scope.fork(yield* Effect.scope)
    return yield* Effect.uninterruptibleMask((restore) =>
      start(state, containerId, params, scope, restore)
    ).pipe(
      Scope.provide(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
  })

const start = Effect.fnUntraced(function* (
  state: ConnectionState,
  containerId: string,
  params: Wire.ProcessParameters,
  scope: Scope.Scope,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
) {
  const { bridge } = state
  // §11.4/§11.5: ports in stdin, stdout, stderr order, each listener bound before the exec is sent.
  const channel = (name: Stdio.StdioName, wanted: boolean) =>
    wanted ? restore(Stdio.open(state, name)) : Effect.succeed(undefined)
  const stdin = yield* channel("stdin", params.CreateStdInPipe)
  const stdout = yield* channel("stdout", params.CreateStdOutPipe)
  const stderr = yield* channel("stderr", params.CreateStdErrPipe)
  const relay =
    state.os === "windows"
      ? {
          StdioRelaySettings: new Wire.ExecuteProcessStdioRelaySettings({
            ...(stdin ? { StdIn: Guid.vsockServiceId(stdin.port) } : {}),
            ...(stdout ? { StdOut: Guid.vsockServiceId(stdout.port) } : {}),
            ...(stderr ? { StdErr: Guid.vsockServiceId(stderr.port) } : {})
          })
        }
      : {
          VsockStdioRelaySettings: new Wire.ExecuteProcessVsockStdioRelaySettings({
            StdIn: stdin?.port ?? 0,
            StdOut: stdout?.port ?? 0,
            StdErr: stderr?.port ?? 0
          })
        }

  const Settings = new Wire.ExecuteProcessSettings({ ProcessParameters: params, ...relay })
  const body = (base: Rpc.BaseFields) => new Wire.ContainerExecuteProcess({ ...base, Settings })
  const { ProcessId: pid } = yield* Rpc.send(bridge, "ExecuteProcess", containerId, body, (sent, span) =>
    restore(bridge.await(sent)).pipe(
      // Answered after its caller left: what it started is killed once the answer arrives.
      Effect.onInterrupt(() =>
        bridge.background(
          Effect.flatMap(Deferred.await(sent.result), (r) => reap(bridge, containerId, r.ProcessId))
        )
      ),
      Effect.tap((answer) => Effect.sync(() => span?.attribute("gcs.pid", answer.ProcessId)))
    )
  )

  // §8.5: sent right away, its answer is the exit; without it the Linux GCS never reports a container's exit.
  const attributes = { "gcs.pid": pid }
  const wait = (base: Rpc.BaseFields) => waitBody({ ...base, ProcessId: pid })
  const waitCall = yield* restore(
    Rpc.send(bridge, "WaitForProcess", containerId, wait, Effect.succeed, attributes)
  ).pipe(Effect.onInterrupt(() => reap(bridge, containerId, pid)))

  const annotations = { "container-id": containerId, pid }
  const exited = () => Deferred.isDoneUnsafe(waitCall.result)
  const signal = (options?: Wire.SignalProcessOptionsLinux | Wire.SignalProcessOptionsWindows) => {
    const fields = { ProcessId: pid, ...(options ? { Options: options } : {}) }
    const body = (base: Rpc.BaseFields) => new Wire.ContainerSignalProcess({ ...base, ...fields })
    return Rpc.call(bridge, "SignalProcess", containerId, body, attributes).pipe(
      Effect.as(true),
      // §11.8: the process is already gone.
      Rpc.whenGone(isNotFound, exited, false, "process", annotations)
    )
  }
  const kill = signal()

  const closed = (message: string) =>
    new TransportError({ reason: "Closed", address: formatAddress(state.address), message })
  const stdinClosed = Deferred.makeUnsafe<void, TransportError>()
  // Finalizers run in reverse: the kill first, then the stdio channels, then the closeStdin waiters.
  yield* Effect.addFinalizer(() =>
    Deferred.fail(stdinClosed, closed(`stdin of process ${pid} was closed before it could be half-closed`))
  )
  const refused = `process ${pid} keeps running in the utility VM: the guest refuses to signal UVM processes (0xC037010E); run it in a container to bind its lifetime to the scope`
  const killOnClose = Effect.catchIf(kill, isSignalRefused, () =>
    Effect.annotateLogs(Effect.logWarning(refused), annotations)
  )
  yield* Effect.addFinalizer(() =>
    exited()
      ? Effect.void
      : Rpc.onClose(killOnClose, state.closeTimeout, "could not kill process on close", annotations)
  )

  // Half-closes once, in a fiber of the process's scope, so an interrupted caller cannot leave it half done.
  let closing = false
  const closeStdin =
    stdin === undefined
      ? Effect.void
      : Effect.suspend(() => {
          if (closing) return Deferred.await(stdinClosed)
          closing = true
          return Effect.andThen(
            Effect.forkIn(Deferred.into(Stdio.endWrite(stdin), stdinClosed), scope),
            Deferred.await(stdinClosed)
          )
        })

  const exitKnown = Effect.exit(Deferred.await(waitCall.result))
  const notRequested = closed(`stdin of process ${pid} was not requested (CreateStdInPipe is false)`)
  const process: Process = {
    pid,
    stdin: Stdio.writable(stdin, notRequested),
    stdout: Stdio.readable(stdout, exitKnown, state.copyAfterExitTimeout),
    stderr: Stdio.readable(stderr, exitKnown, state.copyAfterExitTimeout),
    closeStdin,
    wait: exitCodeOf(waitCall),
    exitCode: Effect.suspend(() =>
      exited() ? Effect.map(exitCodeOf(waitCall), Option.some) : Effect.succeedNone
    ),
    signal: (n: number | WindowsSignalName) =>
      signal(
        typeof n === "number"
          ? new Wire.SignalProcessOptionsLinux({ Signal: n })
          : new Wire.SignalProcessOptionsWindows({ Signal: n })
      ),
    kill,
    resizeConsole: (Width: number, Height: number) => {
      const body = (base: Rpc.BaseFields) =>
        new Wire.ContainerResizeConsole({ ...base, ProcessId: pid, Height, Width })
      return Effect.asVoid(Rpc.call(bridge, "ResizeConsole", containerId, body, attributes))
    }
  }
  return process
})
