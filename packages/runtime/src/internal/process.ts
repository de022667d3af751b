/**
 * Exec (GCS-PROTOCOL §8.4, §11): stdio listeners first, then ExecuteProcess,
 * then the automatic WaitForProcess whose answer is the process's exit.
 */
import type { ProtocolError, RpcResponse } from "@gcs-bridge/protocol"
import {
  ContainerExecuteProcess,
  ContainerResizeConsole,
  ContainerSignalProcess,
  ContainerWaitForProcess,
  ExecuteProcessSettings,
  ExecuteProcessStdioRelaySettings,
  ExecuteProcessVsockStdioRelaySettings,
  InfiniteTimeout,
  ProcessParameters,
  ProtocolError as ProtocolErrorClass,
  SignalProcessOptionsLinux,
  SignalProcessOptionsWindows,
  vsockServiceId
} from "@gcs-bridge/protocol"
import { TransportError, formatAddress } from "@gcs-bridge/transport"
import { Cause, Deferred, Effect, Either, ExecutionStrategy, Exit, Option, ParseResult, Scope } from "effect"
import type { CallError, ExecError } from "../CallError.js"
import { isNotFound } from "../GuestError.js"
import type { Process, ProcessParametersInput, WindowsSignalName } from "../Process.js"
import type { Bridge, Call } from "./Bridge.js"
import type { ConnectionState } from "./connectionState.js"
import * as Rpc from "./rpc.js"
import * as Stdio from "./stdio.js"

const decodeParameters = ParseResult.decodeUnknownEither(ProcessParameters)

/** The caller's parameters as a `ProcessParameters`, or `EncodeFailed` when they are not valid. */
export const normalizeParameters = (
  input: ProcessParametersInput
): Effect.Effect<ProcessParameters, ProtocolError> => {
  if (input instanceof ProcessParameters) return Effect.succeed(input)
  const decoded = decodeParameters(input)
  return Either.isRight(decoded)
    ? Effect.succeed(decoded.right)
    : Effect.fail(
        new ProtocolErrorClass({
          reason: "EncodeFailed",
          message: `invalid process parameters: ${ParseResult.TreeFormatter.formatIssueSync(decoded.left)}`
        })
      )
}

/**
 * Best effort for a process the caller no longer owns (its exec was
 * interrupted after the request went out): kill it, then wait for it so the
 * guest forgets it.
 */
const reapOrphan = (bridge: Bridge, containerId: string, pid: number): Effect.Effect<void> =>
  Effect.zipRight(
    bridge.call(
      "SignalProcess",
      containerId,
      new ContainerSignalProcess({ ContainerId: containerId, ProcessId: pid }, true)
    ),
    bridge.call(
      "WaitForProcess",
      containerId,
      new ContainerWaitForProcess(
        { ContainerId: containerId, ProcessId: pid, TimeoutInMs: InfiniteTimeout },
        true
      )
    ),
    { concurrent: true }
  ).pipe(Effect.ignore)

const reapWhenAnswered = (
  bridge: Bridge,
  containerId: string,
  sent: Call<"ExecuteProcess">
): Effect.Effect<void> =>
  bridge.background(
    Effect.flatMap(Deferred.await(sent.result), (response) =>
      Effect.zipRight(
        Effect.logDebug("reaping a process whose exec was interrupted").pipe(
          Effect.annotateLogs({ "container-id": containerId, pid: response.ProcessId })
        ),
        reapOrphan(bridge, containerId, response.ProcessId)
      )
    )
  )

const exitCodeOf = (
  exit: Exit.Exit<RpcResponse<"WaitForProcess">, CallError>
): Effect.Effect<number, CallError> => {
  if (Exit.isSuccess(exit)) return Effect.succeed(exit.value.ExitCode)
  const failure = Cause.failureOption(exit.cause)
  // §11.7: the guest already forgot the process; Go reports the zero exit code.
  if (Option.isSome(failure) && isNotFound(failure.value)) return Effect.succeed(0)
  return Effect.failCause(exit.cause)
}

/**
 * Starts a process in `containerId` (the null GUID for the UVM itself). The
 * process belongs to the caller's scope.
 */
export const exec = (
  state: ConnectionState,
  containerId: string,
  input: ProcessParametersInput
): Effect.Effect<Process, ExecError, Scope.Scope> =>
  Effect.gen(function* () {
    const params = yield* normalizeParameters(input)
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    return yield* Effect.uninterruptibleMask((restore) =>
      start(state, containerId, params, scope, restore).pipe(
        Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit)))
      )
    )
  })

const start = (
  state: ConnectionState,
  containerId: string,
  params: ProcessParameters,
  scope: Scope.CloseableScope,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<Process, ExecError> =>
  Effect.gen(function* () {
    const { bridge } = state
    // §11.4/§11.5: ports in stdin, stdout, stderr order, each listener bound before the exec is sent.
    const openChannel = (name: Stdio.StdioName, wanted: boolean) =>
      wanted
        ? Effect.map(
            restore(
              Stdio.open(
                state.transport,
                state.address,
                name,
                state.allocatePort(),
                state.stdioAcceptTimeout,
                scope
              )
            ),
            (channel): Stdio.StdioChannel | undefined => channel
          )
        : Effect.succeed(undefined)
    const stdin = yield* openChannel("stdin", params.CreateStdInPipe)
    const stdout = yield* openChannel("stdout", params.CreateStdOutPipe)
    const stderr = yield* openChannel("stderr", params.CreateStdErrPipe)

    const relay =
      state.os === "windows"
        ? {
            StdioRelaySettings: new ExecuteProcessStdioRelaySettings(
              {
                ...(stdin ? { StdIn: vsockServiceId(stdin.port) } : {}),
                ...(stdout ? { StdOut: vsockServiceId(stdout.port) } : {}),
                ...(stderr ? { StdErr: vsockServiceId(stderr.port) } : {})
              },
              true
            )
          }
        : {
            VsockStdioRelaySettings: new ExecuteProcessVsockStdioRelaySettings(
              { StdIn: stdin?.port ?? 0, StdOut: stdout?.port ?? 0, StdErr: stderr?.port ?? 0 },
              true
            )
          }

    const response = yield* Rpc.traced("ExecuteProcess", containerId, {}, (base, span) =>
      Effect.gen(function* () {
        const request = new ContainerExecuteProcess(
          { ...base, Settings: new ExecuteProcessSettings({ ProcessParameters: params, ...relay }, true) },
          true
        )
        const sent = yield* restore(bridge.send("ExecuteProcess", containerId, request))
        span?.attribute("gcs.message_id", sent.id)
        const answer = yield* restore(bridge.await(sent)).pipe(
          Effect.onInterrupt(() => reapWhenAnswered(bridge, containerId, sent))
        )
        span?.attribute("gcs.pid", answer.ProcessId)
        return answer
      })
    )
    const pid = response.ProcessId

    // §8.5: the wait is sent right away; its answer is the exit. Without it the
    // Linux GCS never reports a container's exit.
    const waitCall = yield* restore(
      Rpc.send(
        bridge,
        "WaitForProcess",
        containerId,
        { "gcs.pid": pid },
        (base) => new ContainerWaitForProcess({ ...base, ProcessId: pid, TimeoutInMs: InfiniteTimeout }, true)
      )
    ).pipe(Effect.onInterrupt(() => bridge.background(reapOrphan(bridge, containerId, pid))))

    const stdinClosed = yield* Deferred.make<void, TransportError>()
    const process = makeProcess(
      state,
      containerId,
      pid,
      waitCall,
      { stdin, stdout, stderr },
      stdinClosed,
      scope
    )

    // Added before anything forked for closeStdin, so it runs after it: releases closeStdin waiters.
    yield* Scope.addFinalizer(
      scope,
      Deferred.fail(
        stdinClosed,
        new TransportError({
          reason: "Closed",
          address: formatAddress(state.address),
          message: `stdin of process ${pid} was closed before it could be half-closed`
        })
      )
    )
    // Runs before the stdio channels close (finalizers run in reverse order).
    yield* Scope.addFinalizer(
      scope,
      Effect.flatMap(Deferred.isDone(waitCall.result), (exited) =>
        exited
          ? Effect.void
          : process.kill.pipe(
              Effect.timeout(state.closeTimeout),
              Effect.catchAllCause((cause) =>
                Effect.logDebug("could not kill process on close", cause).pipe(
                  Effect.annotateLogs({ "container-id": containerId, pid })
                )
              ),
              Effect.asVoid
            )
      )
    )
    return process
  })

const makeProcess = (
  state: ConnectionState,
  containerId: string,
  pid: number,
  waitCall: Call<"WaitForProcess">,
  channels: {
    readonly stdin: Stdio.StdioChannel | undefined
    readonly stdout: Stdio.StdioChannel | undefined
    readonly stderr: Stdio.StdioChannel | undefined
  },
  stdinClosed: Deferred.Deferred<void, TransportError>,
  scope: Scope.Scope
): Process => {
  const { bridge } = state
  const attributes = { "gcs.pid": pid }
  const missingStdin = new TransportError({
    reason: "Closed",
    address: formatAddress(state.address),
    message: `stdin of process ${pid} was not requested (CreateStdInPipe is false)`
  })

  const wait = Effect.flatMap(Effect.exit(Deferred.await(waitCall.result)), exitCodeOf)

  const signalWith = (options: SignalProcessOptionsLinux | SignalProcessOptionsWindows | undefined) =>
    Rpc.call(
      bridge,
      "SignalProcess",
      containerId,
      attributes,
      (base) =>
        new ContainerSignalProcess(
          { ...base, ProcessId: pid, ...(options ? { Options: options } : {}) },
          true
        )
    ).pipe(
      Effect.as(true),
      // §11.8: the process is already gone; say so unless its exit was already seen.
      Effect.catchIf(isNotFound, (error) =>
        Effect.flatMap(Deferred.isDone(waitCall.result), (exited) =>
          exited
            ? Effect.succeed(false)
            : Effect.as(
                Effect.logWarning("ignoring missing process").pipe(
                  Effect.annotateLogs({ "container-id": containerId, pid, error: error.message })
                ),
                false
              )
        )
      )
    )

  const closeStdin = makeCloseStdin(channels.stdin, stdinClosed, scope)

  return {
    pid,
    stdin: Stdio.writable(channels.stdin, missingStdin),
    stdout: Stdio.readable(channels.stdout),
    stderr: Stdio.readable(channels.stderr),
    closeStdin,
    wait,
    exitCode: Effect.flatMap(Deferred.poll(waitCall.result), (polled) =>
      Option.isNone(polled)
        ? Effect.succeed(Option.none())
        : Effect.map(Effect.flatMap(Effect.exit(polled.value), exitCodeOf), Option.some)
    ),
    signal: (signal: number | WindowsSignalName) =>
      signalWith(
        typeof signal === "number"
          ? new SignalProcessOptionsLinux({ Signal: signal }, true)
          : new SignalProcessOptionsWindows({ Signal: signal }, true)
      ),
    kill: signalWith(undefined),
    resizeConsole: (width: number, height: number) =>
      Rpc.call(
        bridge,
        "ResizeConsole",
        containerId,
        attributes,
        (base) => new ContainerResizeConsole({ ...base, ProcessId: pid, Height: height, Width: width }, true)
      ).pipe(Effect.asVoid)
  }
}

/**
 * closeStdin runs its half-close once, in a fiber of the process's scope, so
 * an interrupted caller cannot leave it half done; every caller awaits the
 * same result.
 */
const makeCloseStdin = (
  channel: Stdio.StdioChannel | undefined,
  done: Deferred.Deferred<void, TransportError>,
  scope: Scope.Scope
): Effect.Effect<void, TransportError> => {
  if (channel === undefined) return Effect.void
  let started = false
  return Effect.suspend(() => {
    if (started) return Deferred.await(done)
    started = true
    return Effect.zipRight(
      Effect.forkIn(Deferred.complete(done, Stdio.endWrite(channel)), scope),
      Deferred.await(done)
    )
  })
}
