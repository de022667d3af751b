/**
 * Exec (GCS-PROTOCOL §8.4, §11): stdio listeners first, then ExecuteProcess, then the automatic
 * WaitForProcess whose answer is the process's exit.
 */
import { Guid, Process as Wire, ProtocolError } from "@gcs-bridge/protocol"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Option, Schema, Scope } from "effect"
import type { CallError, ExecError } from "../CallError.js"
import { isNotFound } from "../GuestError.js"
import type { Process, ProcessParametersInput, WindowsSignalName } from "../Process.js"
import type { Bridge, Call } from "./bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as Rpc from "./rpc.js"
import * as Stdio from "./stdio.js"

const decodeParameters = Schema.decodeUnknownEffect(Wire.ProcessParameters)

/** The caller's parameters as a `ProcessParameters`, or `EncodeFailed` when they are not valid. */
const normalize = (input: ProcessParametersInput) =>
  input instanceof Wire.ProcessParameters
    ? Effect.succeed(input)
    : Effect.mapError(
        decodeParameters(input),
        (error) =>
          new ProtocolError.ProtocolError({
            reason: "EncodeFailed",
            message: `invalid process parameters: ${error.message}`
          })
      )

const waitBody = (base: Rpc.BaseFields, pid: number) =>
  new Wire.ContainerWaitForProcess({ ...base, ProcessId: pid, TimeoutInMs: Wire.InfiniteTimeout })

/**
 * Best effort for a process the caller no longer owns (its exec was interrupted after the request went out):
 * kill it, then wait for it so the guest forgets it.
 */
const reap = (bridge: Bridge, containerId: string, pid: number): Effect.Effect<void> => {
  const base = Rpc.base(containerId, undefined)
  return bridge.background(
    Effect.all(
      [
        bridge.call(
          "SignalProcess",
          containerId,
          new Wire.ContainerSignalProcess({ ...base, ProcessId: pid })
        ),
        bridge.call("WaitForProcess", containerId, waitBody(base, pid)),
        Effect.annotateLogs(Effect.logDebug("reaping a process whose exec was interrupted"), {
          "container-id": containerId,
          pid
        })
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

/**
 * Starts a process in `containerId` (the null GUID for the UVM itself). The process, its stdio and its
 * kill-on-close live in a child of the caller's scope, closed at once if the exec fails.
 */
export const exec = (
  state: ConnectionState,
  containerId: string,
  input: ProcessParametersInput
): Effect.Effect<Process, ExecError, Scope.Scope> =>
  Effect.gen(function* () {
    const params = yield* normalize(input)
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
    wanted
      ? restore(
          Stdio.open(state.transport, state.address, name, state.allocatePort(), state.stdioAcceptTimeout)
        )
      : Effect.succeed(undefined)
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

  const { ProcessId: pid } = yield* Rpc.send(
    bridge,
    "ExecuteProcess",
    containerId,
    (base) =>
      new Wire.ContainerExecuteProcess({
        ...base,
        Settings: new Wire.ExecuteProcessSettings({ ProcessParameters: params, ...relay })
      }),
    (sent, span) =>
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

  // §8.5: the wait is sent right away; its answer is the exit. Without it the Linux GCS never reports a
  // container's exit.
  const waitCall = yield* restore(
    Rpc.send(bridge, "WaitForProcess", containerId, (base) => waitBody(base, pid), Effect.succeed, {
      "gcs.pid": pid
    })
  ).pipe(Effect.onInterrupt(() => reap(bridge, containerId, pid)))

  const attributes = { "gcs.pid": pid }
  const annotations = { "container-id": containerId, pid }
  const exited = () => Deferred.isDoneUnsafe(waitCall.result)
  const signal = (options?: Wire.SignalProcessOptionsLinux | Wire.SignalProcessOptionsWindows) =>
    Rpc.call(
      bridge,
      "SignalProcess",
      containerId,
      (base) =>
        new Wire.ContainerSignalProcess({
          ...base,
          ProcessId: pid,
          ...(options ? { Options: options } : {})
        }),
      attributes
    ).pipe(
      Effect.as(true),
      // §11.8: the process is already gone.
      Rpc.whenGone(isNotFound, exited, false, "process", annotations)
    )
  const kill = signal()

  const closed = (message: string) =>
    new TransportError({ reason: "Closed", address: formatAddress(state.address), message })
  const stdinClosed = Deferred.makeUnsafe<void, TransportError>()
  // Finalizers run in reverse: the kill first, then the stdio channels, then the closeStdin waiters.
  yield* Effect.addFinalizer(() =>
    Deferred.fail(stdinClosed, closed(`stdin of process ${pid} was closed before it could be half-closed`))
  )
  yield* Effect.addFinalizer(() =>
    exited()
      ? Effect.void
      : Rpc.onClose(kill, state.closeTimeout, "could not kill process on close", annotations)
  )

  // Runs its half-close once, in a fiber of the process's scope, so an interrupted caller cannot leave it
  // half done.
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

  const process: Process = {
    pid,
    stdin: Stdio.writable(
      stdin,
      closed(`stdin of process ${pid} was not requested (CreateStdInPipe is false)`)
    ),
    stdout: Stdio.readable(stdout),
    stderr: Stdio.readable(stderr),
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
    resizeConsole: (width: number, height: number) =>
      Effect.asVoid(
        Rpc.call(
          bridge,
          "ResizeConsole",
          containerId,
          (base) =>
            new Wire.ContainerResizeConsole({ ...base, ProcessId: pid, Height: height, Width: width }),
          attributes
        )
      )
  }
  return process
})
