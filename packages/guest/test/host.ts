/**
 * A tiny scripted host for the guest's tests, written directly on the
 * protocol codec and the in-memory transport: it listens on the bridge port,
 * accepts the guest, and sends requests frame by frame, so every test sees
 * exactly what the guest puts on the wire.
 */
import type { Envelope, Rpc } from "@gcs-bridge/protocol"
import {
  Codec,
  Container,
  Frame,
  FrameDecoder,
  HResult,
  MessageType,
  Negotiate,
  Process,
  ProtocolError
} from "@gcs-bridge/protocol"
import type { Address, Connection, Listener } from "@gcs-bridge/transport"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import type { Scope } from "effect"
import { Clock, Deferred, Duration, Effect, Fiber, Option, Queue, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { GuestOptions } from "../src/index.js"
import { Guest } from "../src/index.js"

/** The container id of the UVM itself. */
export const Null = "00000000-0000-0000-0000-000000000000"
/** The well-known HRESULTs. */
export const Hr = HResult.HResult
/** The test's own search path, for the processes the guest starts. */
export const PATH = process.env["PATH"] ?? "/usr/bin:/bin"

/** The test clock, counting the finite sleeps in progress (`TestClock.sleeps` is gone in Effect 4). */
interface CountingClock extends TestClock.TestClock {
  readonly armed: () => number
  /** The duration of every finite sleep so far, in milliseconds. */
  readonly slept: Array<number>
}

/**
 * Runs `self` with a test clock that counts armed timers, so that
 * {@link untilTimerArmed} can wait for the guest to arm one before the test
 * adjusts the clock.
 */
export const countTimers = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  TestClock.testClockWith((clock) => {
    let armed = 0
    const slept: Array<number> = []
    const counting: CountingClock = {
      ...clock,
      sleep: (duration) =>
        Duration.isFinite(duration)
          ? Effect.suspend(() => {
              armed++
              slept.push(Duration.toMillis(duration))
              return Effect.ensuring(
                clock.sleep(duration),
                Effect.sync(() => armed--)
              )
            })
          : clock.sleep(duration),
      armed: () => armed,
      slept
    }
    return Effect.provideService(self, Clock.Clock, counting)
  })

/** The durations (ms) of every finite sleep so far (see {@link countTimers}). */
export const sleptSoFar: Effect.Effect<ReadonlyArray<number>> = Clock.clockWith((clock) => {
  const slept = (clock as Partial<CountingClock>).slept
  return slept === undefined
    ? Effect.die(new Error("sleptSoFar needs countTimers"))
    : Effect.succeed([...slept])
})

/** Yields to the event loop until the guest has armed a timer on the test clock (see {@link countTimers}). */
export const untilTimerArmed: Effect.Effect<void> = Clock.clockWith((clock) =>
  Effect.gen(function* () {
    const armed = (clock as Partial<CountingClock>).armed
    if (armed === undefined) return yield* Effect.die(new Error("untilTimerArmed needs countTimers"))
    while (armed() === 0) yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
  })
)

/** A response as the host sees it: the raw frame, its base, and the typed body on success. */
export interface Reply<N extends MessageType.ProcName> {
  readonly frame: Frame.Frame
  /** Unsigned HRESULT. */
  readonly result: number
  readonly message: string
  readonly base: Envelope.ResponseBase
  readonly body: Option.Option<Rpc.RpcResponse<N>>
  /** The payload as text. */
  readonly json: string
}

/** Streams a process asked for. */
export interface StdioWanted {
  readonly stdin?: boolean
  readonly stdout?: boolean
  readonly stderr?: boolean
}

/** What `exec` returns. */
export interface Exec {
  readonly reply: Reply<"ExecuteProcess">
  readonly pid: number
  readonly stdin: Option.Option<Connection>
  readonly stdout: Option.Option<Connection>
  readonly stderr: Option.Option<Connection>
}

const text = new TextDecoder()
const utf8 = new TextEncoder()
let names = 0

/** The host side of one bridge connection. */
export class Host {
  /** Id of the next request; a host carrying on another's numbering sets it. */
  nextId = 0
  private nextPort = MessageType.FirstStdioPort
  /** Responses by id, whichever comes first: the frame or the test asking for it. */
  private readonly responses = new Map<number, Deferred.Deferred<Frame.Frame>>()

  constructor(
    readonly transport: Transport["Service"],
    readonly address: Address,
    readonly connection: Connection,
    /** Every inbound frame, in order. */
    readonly frames: Queue.Queue<Frame.Frame>,
    /** Container notifications, in order. */
    readonly notifications: Queue.Queue<Frame.Frame>,
    /** Completed when the guest's side ends: `undefined` at a clean EOF, else the protocol error. */
    readonly ended: Deferred.Deferred<ProtocolError.ProtocolError | undefined>
  ) {}

  private slot(id: number): Deferred.Deferred<Frame.Frame> {
    let slot = this.responses.get(id)
    if (slot === undefined) this.responses.set(id, (slot = Deferred.makeUnsafe()))
    return slot
  }

  /** Routes an inbound frame. */
  route(frame: Frame.Frame): Effect.Effect<void> {
    return Effect.gen({ self: this }, function* () {
      yield* Queue.offer(this.frames, frame)
      if (MessageType.classOf(frame.type) === MessageType.MessageClass.Notification) {
        yield* Queue.offer(this.notifications, frame)
      } else yield* Deferred.succeed(this.slot(frame.id), frame)
    })
  }

  /** Sends a request; returns its id. */
  send<N extends MessageType.ProcName>(name: N, body: Rpc.RpcRequest<N>): Effect.Effect<number> {
    return Effect.suspend(() => {
      const id = this.nextId++
      const frame = Result.getOrThrow(Codec.encodeRequest(name, id, body))
      return this.connection.write(frame).pipe(Effect.orDie, Effect.as(id))
    })
  }

  /** Sends any type word with any payload; returns its id. */
  sendRaw(type: number, payload: string | Uint8Array): Effect.Effect<number> {
    return Effect.suspend(() => {
      const id = this.nextId++
      const bytes = typeof payload === "string" ? utf8.encode(payload) : payload
      return this.connection.write(Frame.encodeFrame(type, id, bytes)).pipe(Effect.orDie, Effect.as(id))
    })
  }

  /** The response to request `id`. */
  response(id: number): Effect.Effect<Frame.Frame> {
    return Effect.suspend(() =>
      Deferred.await(this.slot(id)).pipe(Effect.ensuring(Effect.sync(() => this.responses.delete(id))))
    )
  }

  /** Decodes a response frame to `name`. */
  reply<N extends MessageType.ProcName>(name: N, frame: Frame.Frame): Reply<N> {
    const base = Result.getOrThrow(Codec.decodeResponseBase(frame.payload))
    const body =
      base.Result === 0
        ? Option.some(Result.getOrThrow(Codec.decodeResponse(name, frame.payload)))
        : Option.none()
    return {
      frame,
      result: base.Result,
      message: base.ErrorMessage,
      base,
      body,
      json: text.decode(frame.payload)
    }
  }

  /** Sends a request and waits for its response. */
  call<N extends MessageType.ProcName>(name: N, body: Rpc.RpcRequest<N>): Effect.Effect<Reply<N>> {
    return this.send(name, body).pipe(
      Effect.flatMap((id) => this.response(id)),
      Effect.map((frame) => this.reply(name, frame))
    )
  }

  /** Like `call`, failing the test unless the guest answered with success. */
  ok<N extends MessageType.ProcName>(name: N, body: Rpc.RpcRequest<N>): Effect.Effect<Rpc.RpcResponse<N>> {
    return this.call(name, body).pipe(
      Effect.flatMap((r) =>
        Option.isSome(r.body)
          ? Effect.succeed(r.body.value)
          : Effect.die(new Error(`${name} failed: ${r.json}`))
      )
    )
  }

  /** NegotiateProtocol for version 4, as the Go host sends it. */
  negotiate(): Effect.Effect<Reply<"NegotiateProtocol">> {
    return this.call(
      "NegotiateProtocol",
      new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 4, MaximumVersion: 4 })
    )
  }

  /** The next container notification. */
  notification(): Effect.Effect<Container.ContainerNotification> {
    return Queue.take(this.notifications).pipe(
      Effect.map((f) => Result.getOrThrow(Codec.decodeNotification(f.payload)))
    )
  }

  /** Creates a container whose init process is `process`, with a spec the Linux GCS accepts. */
  create(containerId: string, process: Record<string, unknown>): Effect.Effect<Reply<"Create">> {
    return this.call("Create", createRequest(containerId, standardSpec(containerId, process)))
  }

  /**
   * ExecuteProcess with the requested stdio: binds a listener per stream
   * before sending (§11.5), accepts concurrently, and hands back the
   * connections once the guest answered.
   */
  exec(
    containerId: string,
    parameters: Partial<ConstructorParameters<typeof Process.ProcessParameters>[0]>,
    want: StdioWanted
  ): Effect.Effect<Exec, never, Scope.Scope> {
    return Effect.gen({ self: this }, function* () {
      const listen = Effect.fnUntraced({ self: this }, function* (wanted: boolean | undefined) {
        if (wanted !== true) return undefined
        const port = this.nextPort++
        const listener: Listener = yield* Effect.orDie(this.transport.listen(this.address, port))
        return { port, accepted: yield* Effect.forkScoped(Effect.option(listener.accept())) }
      })
      const stdin = yield* listen(want.stdin)
      const stdout = yield* listen(want.stdout)
      const stderr = yield* listen(want.stderr)
      const reply = yield* this.call(
        "ExecuteProcess",
        new Process.ContainerExecuteProcess({
          ContainerId: containerId,
          Settings: new Process.ExecuteProcessSettings({
            ProcessParameters: new Process.ProcessParameters({
              ...parameters,
              CreateStdInPipe: want.stdin === true,
              CreateStdOutPipe: want.stdout === true,
              CreateStdErrPipe: want.stderr === true
            }),
            VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
              StdIn: stdin?.port ?? 0,
              StdOut: stdout?.port ?? 0,
              StdErr: stderr?.port ?? 0
            })
          })
        })
      )
      const join = (s: typeof stdin): Effect.Effect<Option.Option<Connection>> =>
        reply.result === 0 && s !== undefined ? Fiber.join(s.accepted) : Effect.succeedNone
      return {
        reply,
        pid: Option.match(reply.body, { onNone: () => 0, onSome: (b) => b.ProcessId }),
        stdin: yield* join(stdin),
        stdout: yield* join(stdout),
        stderr: yield* join(stderr)
      }
    })
  }
}

/** An OCI spec as hcsshim sends it (trimmed): `linux`, `root` and the init `process`. */
export const standardSpec = (
  containerId: string,
  process: Record<string, unknown>
): Container.LinuxHostedSystem["OciSpecification"] => ({
  ociVersion: "1.1.0",
  process,
  root: { path: `/run/gcs/c/${containerId}/rootfs` },
  linux: {}
})

/** A Create of `containerId` with the given OCI spec (`null`: none). */
export const createRequest = (
  containerId: string,
  spec: Container.LinuxHostedSystem["OciSpecification"]
): Container.ContainerCreate =>
  new Container.ContainerCreate({
    ContainerId: containerId,
    ContainerConfig: new Container.LinuxHostedSystem({
      SchemaVersion: new Negotiate.SchemaVersion({ Major: 2, Minor: 1 }),
      OciBundlePath: `/run/gcs/c/${containerId}`,
      OciSpecification: spec,
      ScratchDirPath: ""
    })
  })

/** Reads a connection to EOF as text. */
export const readText = (connection: Connection): Effect.Effect<string> =>
  Stream.runCollect(connection.stream).pipe(
    Effect.orDie,
    Effect.map((chunks) => Buffer.concat(chunks).toString("utf8"))
  )

/** Writes text and half-closes. */
export const writeText = (connection: Connection, data: string): Effect.Effect<void> =>
  connection.write(utf8.encode(data)).pipe(Effect.andThen(connection.endWrite), Effect.orDie)

/** Options of {@link setup}. */
export interface SetupOptions extends Omit<GuestOptions, "address"> {
  /** Inbound frame limit of the scripted host (default 64 KiB, like the Go host). */
  readonly hostMaxFrameSize?: number
}

/**
 * A host listening on a fresh `memory://` address and a guest (`Guest.run`)
 * dialling it, in the test's scope; returns once the guest is connected.
 */
export const setup = (
  options: SetupOptions = {}
): Effect.Effect<
  { readonly host: Host; readonly listener: Listener; readonly guest: Fiber.Fiber<void, unknown> },
  never,
  Transport | Scope.Scope
> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = new MemoryAddress({ name: `guest-test-${++names}` })
    const listener = yield* Effect.orDie(transport.listen(address, MessageType.LinuxGcsVsockPort))
    const guest = yield* Effect.forkScoped(Guest.run({ once: true, ...options, address }))
    const host = yield* accept(transport, address, listener, options.hostMaxFrameSize)
    return { host, listener, guest }
  })

/** Accepts the guest's next bridge connection and starts reading it. */
export const accept = (
  transport: Transport["Service"],
  address: Address,
  listener: Listener,
  maxFrameSize?: number
): Effect.Effect<Host, never, Scope.Scope> =>
  Effect.gen(function* () {
    const connection = yield* Effect.orDie(listener.accept())
    const frames = yield* Queue.unbounded<Frame.Frame>()
    const notifications = yield* Queue.unbounded<Frame.Frame>()
    const ended = yield* Deferred.make<ProtocolError.ProtocolError | undefined>()
    const host = new Host(transport, address, connection, frames, notifications, ended)
    const reader = new FrameDecoder.FrameReader({ maxFrameSize: maxFrameSize ?? 0x10000 })
    yield* connection.stream.pipe(
      Stream.runForEach((chunk) =>
        Effect.suspend(() => {
          const frames = reader.push(chunk)
          const error = reader.error
          return Effect.forEach(frames, (f) => host.route(f), { discard: true }).pipe(
            Effect.andThen(error === undefined ? Effect.void : Effect.fail(error))
          )
        })
      ),
      Effect.matchEffect({
        onSuccess: () => Deferred.succeed(ended, reader.end()),
        onFailure: (e) => Deferred.succeed(ended, e instanceof ProtocolError.ProtocolError ? e : undefined)
      }),
      Effect.forkScoped
    )
    return host
  })
