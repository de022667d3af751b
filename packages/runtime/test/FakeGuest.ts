/**
 * Scripted fake guests for the runtime's tests, on the protocol codec and a
 * transport: `FakeGuest.attach` gives a test step-by-step control of the
 * guest side of a bridge connection (read the next request, answer it, send
 * raw bytes, notify, hang up); `serveSimple` runs a small Linux-GCS-like
 * guest over it (processes that echo stdin to stdout, exit codes, exit
 * notifications), in the spirit of hcsshim's `simpleGcs` test helper.
 */
import type { Frame, Rpc } from "@gcs-bridge/protocol"
import {
  Codec,
  Container,
  Envelope,
  FrameDecoder,
  Guid,
  HResult,
  MessageType,
  Negotiate,
  Process,
  Uvm
} from "@gcs-bridge/protocol"
import type { Address, Connection, TransportService } from "@gcs-bridge/transport"
import { Deferred, Effect, Option, Queue, Schedule, Scope, Stream } from "effect"

/** A request as the fake guest received it. */
export type Received = Codec.DecodedRequest & { readonly id: number; readonly type: number }

/** Step-by-step control of the guest end of a bridge connection. */
export interface FakeGuest {
  readonly connection: Connection
  /** The next request (fails with "guest: end of stream" once the host hung up). */
  readonly next: Effect.Effect<Received>
  /** Requests received and not yet taken with `next`. */
  readonly backlog: Effect.Effect<number>
  /** Answers `request` with `body` (success by default). */
  readonly reply: <N extends MessageType.ProcName>(
    request: { readonly name: N; readonly id: number },
    body?: Rpc.RpcResponse<N> | Envelope.ResponseBase
  ) => Effect.Effect<void>
  /** Answers `request` with a failure HRESULT, the way the Linux GCS does. */
  readonly fail: (request: Received, hresult: number, message?: string) => Effect.Effect<void>
  /** Sends the exit notification of `containerId`. */
  readonly notify: (containerId: string, type?: string) => Effect.Effect<void>
  /** Writes raw bytes. */
  readonly send: (bytes: Uint8Array) => Effect.Effect<void>
  /** Hangs up. */
  readonly close: Effect.Effect<void>
}

const orDie = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A> => Effect.orDie(effect)

/** Takes over the guest end of `connection`; the reader lives in the current scope. */
export const attach = (connection: Connection): Effect.Effect<FakeGuest, never, Scope.Scope> =>
  Effect.gen(function* () {
    const inbox = yield* Queue.unbounded<Option.Option<Received>>()
    yield* FrameDecoder.frames(connection.stream, {
      acceptType: (type) => MessageType.classOf(type) === MessageType.MessageClass.Request
    }).pipe(
      Stream.runForEach((frame: Frame.Frame) =>
        Effect.flatMap(Effect.orDie(Effect.fromResult(Codec.decodeRequest(frame))), (request) =>
          Queue.offer(inbox, Option.some({ ...request, id: frame.id, type: frame.type } as Received))
        )
      ),
      Effect.ignore,
      Effect.andThen(Queue.offer(inbox, Option.none())),
      Effect.forkScoped
    )
    const write = (bytes: Uint8Array) => orDie(connection.write(bytes))
    return {
      connection,
      next: Effect.flatMap(Queue.take(inbox), (item) =>
        Option.isSome(item)
          ? Effect.succeed(item.value)
          : Effect.andThen(Queue.offer(inbox, item), Effect.die(new Error("guest: end of stream")))
      ),
      backlog: Queue.size(inbox),
      reply: (request, body) =>
        write(Codec.encodeResponse(request.name, request.id, body ?? new Envelope.ResponseBase({}))),
      fail: (request, hresult, message) => {
        const text = message ?? `HRESULT: 0x${hresult.toString(16)}`
        return write(
          Codec.encodeResponseTo(
            request.type,
            request.id,
            new Envelope.ResponseBase({
              Result: hresult,
              ActivityId: Guid.NullGuid,
              ErrorMessage: text,
              ErrorRecords: [
                new Envelope.ErrorRecord({
                  Result: hresult,
                  Message: text,
                  ModuleName: "gcs",
                  FileName: "",
                  Line: 0xffffffff
                })
              ]
            })
          )
        )
      },
      notify: (containerId, type = "UnexpectedExit") =>
        write(
          Codec.encodeNotification(
            new Container.ContainerNotification({
              ContainerId: containerId,
              Type: type,
              Operation: "None",
              Result: 0
            })
          )
        ),
      send: write,
      close: connection.close
    } satisfies FakeGuest
  })

/** Dials the host's bridge port, retrying until the host listens, like the Linux GCS. */
export const dial = (
  transport: TransportService,
  address: Address
): Effect.Effect<FakeGuest, never, Scope.Scope> =>
  transport
    .connect(address, MessageType.LinuxGcsVsockPort)
    .pipe(Effect.retry(Schedule.spaced("1 millis")), Effect.orDie, Effect.flatMap(attach))

/** A container document the Linux GCS accepts: its OCI spec has the `linux`, `root`, `process` it dereferences. */
export const lcow = (): Container.LinuxHostedSystem =>
  new Container.LinuxHostedSystem({
    OciSpecification: {
      ociVersion: "1.1.0",
      linux: {},
      root: { path: "rootfs" },
      process: { args: ["true"] }
    }
  })

/** The negotiate answer of a Linux GCS (§7.3). */
export const linuxNegotiateResponse = (): Negotiate.NegotiateProtocolResponse =>
  new Negotiate.NegotiateProtocolResponse({
    ActivityId: Guid.NullGuid,
    Version: 4,
    Capabilities: new Negotiate.GcsCapabilities({
      RuntimeOsType: "Linux",
      SupportedSchemaVersions: [],
      GuestDefinedCapabilities: new Negotiate.LinuxGuestDefinedCapabilities({
        NamespaceAddRequestSupported: true,
        SignalProcessSupported: true,
        DumpStacksSupported: true,
        DeleteContainerStateSupported: true
      })
    })
  })

/** Reads the negotiation request and answers it; returns the request. */
export const negotiate = (
  guest: FakeGuest,
  response: Negotiate.NegotiateProtocolResponse = linuxNegotiateResponse()
): Effect.Effect<Received> =>
  Effect.tap(guest.next, (request) =>
    request.name === "NegotiateProtocol"
      ? guest.reply(request as Received & { name: "NegotiateProtocol" }, response)
      : Effect.die(new Error(`guest: expected NegotiateProtocol first, got ${request.name}`))
  )

// ------------------------------------------------------------------ simple guest

/** A process of the simple guest. */
export interface SimpleProcess {
  readonly pid: number
  readonly containerId: string
  readonly exit: Deferred.Deferred<number>
  readonly stdio: {
    readonly stdin?: Connection | undefined
    readonly stdout?: Connection | undefined
    readonly stderr?: Connection | undefined
  }
}

/** What the simple guest saw and holds, for assertions. */
export interface SimpleGuestState {
  readonly requests: Array<Received>
  readonly processes: Map<number, SimpleProcess>
  readonly containers: Set<string>
}

/** Behaviour switches of the simple guest. */
export interface SimpleGuestOptions {
  /** Negotiate answer (default: a Linux GCS). */
  readonly negotiate?: Negotiate.NegotiateProtocolResponse
  /** Skip dialing stdio (a guest whose stdio is denied by policy). */
  readonly denyStdio?: boolean
  /** Exit code of a process whose stdin ends (default 0). */
  readonly exitCode?: number
  /** Per-request override: return true when handled. */
  readonly override?: (request: Received, guest: FakeGuest, state: SimpleGuestState) => Effect.Effect<boolean>
}

/**
 * Serves `guest` like a small Linux GCS until the host hangs up: every
 * request in its own fiber; ExecuteProcess dials the requested stdio ports
 * (stdin, stdout, stderr order) before answering, echoes stdin to stdout and
 * exits when stdin ends (or when killed: 137); WaitForProcess answers at exit;
 * ShutdownForced/Graceful kill every process of the container and send the
 * exit notification once its init process's wait has been answered.
 */
export const serveSimple = (
  guest: FakeGuest,
  transport: TransportService,
  address: Address,
  options: SimpleGuestOptions = {}
): Effect.Effect<SimpleGuestState, never, Scope.Scope> =>
  Effect.gen(function* () {
    const state: SimpleGuestState = { requests: [], processes: new Map(), containers: new Set() }
    // A scope of its own: forking into a scope that is already closing interrupts at once, and the
    // guest must keep answering while the host's finalizers (earlier in the same scope) run.
    const scope = yield* Scope.fork(yield* Effect.scope)
    const initWaited = new Map<string, Deferred.Deferred<void>>()
    let nextPid = 100

    const containerInitWaited = (id: string) => {
      let d = initWaited.get(id)
      if (d === undefined) {
        d = Deferred.makeUnsafe<void>()
        initWaited.set(id, d)
      }
      return d
    }

    const dialStdio = (port: number) => Scope.provide(transport.connect(address, port), scope)

    const handle = (request: Received): Effect.Effect<void> =>
      Effect.gen(function* () {
        state.requests.push(request)
        if (options.override && (yield* options.override(request, guest, state))) return
        switch (request.name) {
          case "NegotiateProtocol":
            return yield* guest.reply(request, options.negotiate ?? linuxNegotiateResponse())
          case "Create":
            state.containers.add(request.body.ContainerId)
            return yield* guest.reply(request)
          case "ExecuteProcess": {
            const containerId = request.body.ContainerId
            const relay = request.body.Settings.VsockStdioRelaySettings
            const windows = request.body.Settings.StdioRelaySettings
            const portOf = (vsock: number | undefined, guid: string | undefined) =>
              vsock !== undefined && vsock !== 0
                ? vsock
                : guid !== undefined
                  ? Guid.vsockPortOf(guid as never)
                  : undefined
            const params = request.body.Settings.ProcessParameters
            const ports = {
              stdin: params.CreateStdInPipe ? portOf(relay?.StdIn, windows?.StdIn) : undefined,
              stdout: params.CreateStdOutPipe ? portOf(relay?.StdOut, windows?.StdOut) : undefined,
              stderr: params.CreateStdErrPipe ? portOf(relay?.StdErr, windows?.StdErr) : undefined
            }
            const stdio: {
              stdin?: Connection | undefined
              stdout?: Connection | undefined
              stderr?: Connection | undefined
            } = {}
            if (!options.denyStdio) {
              // As the Linux GCS: a stdio dial that fails fails the exec.
              const dialed = yield* Effect.result(
                Effect.gen(function* () {
                  if (ports.stdin !== undefined) stdio.stdin = yield* dialStdio(ports.stdin)
                  if (ports.stdout !== undefined) stdio.stdout = yield* dialStdio(ports.stdout)
                  if (ports.stderr !== undefined) stdio.stderr = yield* dialStdio(ports.stderr)
                })
              )
              if (dialed._tag === "Failure")
                return yield* guest.fail(request, HResult.HResult.Fail, dialed.failure.message)
            }
            const pid = nextPid++
            const exit = yield* Deferred.make<number>()
            state.processes.set(pid, { pid, containerId, exit, stdio })
            yield* guest.reply(request, new Process.ContainerExecuteProcessResponse({ ProcessId: pid }))
            // The echo relay: stdin → stdout; the process exits when stdin ends.
            const relayFiber = Effect.gen(function* () {
              if (stdio.stdin !== undefined) {
                const out = stdio.stdout
                yield* stdio.stdin.stream.pipe(
                  Stream.runForEach((chunk) => (out === undefined ? Effect.void : out.write(chunk))),
                  Effect.ignore
                )
                yield* Deferred.succeed(exit, options.exitCode ?? 0)
              }
              yield* Deferred.await(exit)
              if (stdio.stdout !== undefined) yield* Effect.ignore(stdio.stdout.endWrite)
              if (stdio.stderr !== undefined) yield* Effect.ignore(stdio.stderr.endWrite)
            })
            yield* Effect.forkIn(relayFiber, scope)
            return
          }
          case "WaitForProcess": {
            const process = state.processes.get(request.body.ProcessId)
            if (process === undefined) return yield* guest.fail(request, HResult.HResult.NotFound)
            const code = yield* Deferred.await(process.exit)
            yield* guest.reply(request, new Process.ContainerWaitForProcessResponse({ ExitCode: code }))
            // The first process of a container stands in for its init process.
            const first = [...state.processes.values()].find((p) => p.containerId === process.containerId)
            if (first?.pid === process.pid)
              yield* Deferred.succeed(containerInitWaited(process.containerId), undefined)
            return
          }
          case "SignalProcess": {
            const process = state.processes.get(request.body.ProcessId)
            if (process === undefined || (yield* Deferred.isDone(process.exit))) {
              return yield* guest.fail(request, HResult.HResult.NotFound)
            }
            yield* Deferred.succeed(process.exit, 137)
            return yield* guest.reply(request)
          }
          case "ShutdownGraceful":
          case "ShutdownForced": {
            const id = request.body.ContainerId
            if (!state.containers.has(id)) return yield* guest.fail(request, HResult.HResult.SystemNotFound)
            state.containers.delete(id)
            let any = false
            for (const process of state.processes.values()) {
              if (process.containerId === id) {
                any = true
                yield* Deferred.succeed(process.exit, request.name === "ShutdownForced" ? 137 : 143)
              }
            }
            yield* guest.reply(request)
            const notify = Effect.andThen(
              any ? Deferred.await(containerInitWaited(id)) : Effect.void,
              guest.notify(id, request.name === "ShutdownForced" ? "ForcedExit" : "GracefulExit")
            )
            yield* Effect.forkIn(notify, scope)
            return
          }
          case "DumpStacks":
            return yield* guest.reply(
              request,
              new Uvm.DumpStacksResponse({ GuestStacks: "goroutine 1 [running]:" })
            )
          default:
            return yield* guest.reply(request)
        }
      })

    const loop = Effect.forever(
      Effect.flatMap(guest.next, (request) => Effect.forkIn(handle(request), scope))
    )
    yield* Effect.forkIn(
      Effect.catchDefect(loop, () => Effect.void),
      scope
    )
    return state
  })

/** Bytes as text. */
export const text = (chunks: ReadonlyArray<Uint8Array>): string =>
  Buffer.concat(chunks.map((c) => Buffer.from(c))).toString("utf8")
