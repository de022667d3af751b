/**
 * A tiny scripted host for the guest's tests, written directly on the
 * protocol codec and the in-memory transport: it listens on the bridge port,
 * accepts the guest, and sends requests frame by frame, so every test sees
 * exactly what the guest puts on the wire.
 */
import type {
  ContainerNotification,
  Frame,
  ProcName,
  ProtocolError,
  RpcRequest,
  RpcResponse,
  ResponseBase
} from "@gcs-bridge/protocol"
import {
  ClassMask,
  ContainerCreate,
  ContainerExecuteProcess,
  decodeNotification,
  decodeResponse,
  decodeResponseBase,
  encodeFrame,
  encodeRequest,
  ExecuteProcessSettings,
  ExecuteProcessVsockStdioRelaySettings,
  FirstStdioPort,
  FrameReader,
  LinuxGcsVsockPort,
  LinuxHostedSystem,
  MessageClass,
  NegotiateProtocolRequest,
  ProcessParameters,
  SchemaVersion
} from "@gcs-bridge/protocol"
import type { Address, Connection, Listener, TransportService } from "@gcs-bridge/transport"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import type { Scope } from "effect"
import { Chunk, Deferred, Effect, Either, Fiber, FiberId, Option, Queue, Stream } from "effect"
import type { GuestOptions } from "../src/index.js"
import { Guest } from "../src/index.js"

/** A response as the host sees it: the raw frame, its base, and the typed body on success. */
export interface Reply<N extends ProcName> {
  readonly frame: Frame
  /** Unsigned HRESULT. */
  readonly result: number
  readonly message: string
  readonly base: ResponseBase
  readonly body: Option.Option<RpcResponse<N>>
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
  private nextId = 0
  private nextPort = FirstStdioPort
  private readonly waiting = new Map<number, Deferred.Deferred<Frame>>()
  private readonly early = new Map<number, Frame>()

  constructor(
    readonly transport: TransportService,
    readonly address: Address,
    readonly connection: Connection,
    /** Every inbound frame, in order. */
    readonly frames: Queue.Queue<Frame>,
    /** Container notifications, in order. */
    readonly notifications: Queue.Queue<Frame>,
    /** Completed when the guest's side ends: `undefined` at a clean EOF, else the protocol error. */
    readonly ended: Deferred.Deferred<ProtocolError | undefined>
  ) {}

  /** Routes an inbound frame. */
  route(frame: Frame): Effect.Effect<void> {
    return Effect.gen(this, function* () {
      yield* Queue.offer(this.frames, frame)
      if ((frame.type & ClassMask) >>> 0 === MessageClass.Notification) {
        yield* Queue.offer(this.notifications, frame)
        return
      }
      const waiter = this.waiting.get(frame.id)
      if (waiter !== undefined) {
        this.waiting.delete(frame.id)
        yield* Deferred.succeed(waiter, frame)
      } else this.early.set(frame.id, frame)
    })
  }

  /** Sends a request; returns its id. */
  send<N extends ProcName>(name: N, body: RpcRequest<N>): Effect.Effect<number> {
    return Effect.suspend(() => {
      const id = this.nextId++
      const frame = Either.getOrThrow(encodeRequest(name, id, body))
      return this.connection.write(frame).pipe(Effect.orDie, Effect.as(id))
    })
  }

  /** Sends any type word with any payload; returns its id. */
  sendRaw(type: number, payload: string | Uint8Array): Effect.Effect<number> {
    return Effect.suspend(() => {
      const id = this.nextId++
      const bytes = typeof payload === "string" ? utf8.encode(payload) : payload
      return this.connection.write(encodeFrame(type, id, bytes)).pipe(Effect.orDie, Effect.as(id))
    })
  }

  /** The response to request `id`. */
  response(id: number): Effect.Effect<Frame> {
    return Effect.suspend(() => {
      const frame = this.early.get(id)
      if (frame !== undefined) {
        this.early.delete(id)
        return Effect.succeed(frame)
      }
      const waiter = Deferred.unsafeMake<Frame>(FiberId.none)
      this.waiting.set(id, waiter)
      return Deferred.await(waiter)
    })
  }

  /** Decodes a response frame to `name`. */
  reply<N extends ProcName>(name: N, frame: Frame): Reply<N> {
    const base = Either.getOrThrow(decodeResponseBase(frame.payload))
    const body =
      base.Result === 0 ? Option.some(Either.getOrThrow(decodeResponse(name, frame.payload))) : Option.none()
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
  call<N extends ProcName>(name: N, body: RpcRequest<N>): Effect.Effect<Reply<N>> {
    return this.send(name, body).pipe(
      Effect.flatMap((id) => this.response(id)),
      Effect.map((frame) => this.reply(name, frame))
    )
  }

  /** Like `call`, failing the test unless the guest answered with success. */
  ok<N extends ProcName>(name: N, body: RpcRequest<N>): Effect.Effect<RpcResponse<N>> {
    return this.call(name, body).pipe(
      Effect.flatMap((r) =>
        Option.isSome(r.body) ? Effect.succeed(r.body.value) : Effect.dieMessage(`${name} failed: ${r.json}`)
      )
    )
  }

  /** NegotiateProtocol for version 4, as the Go host sends it. */
  negotiate(): Effect.Effect<Reply<"NegotiateProtocol">> {
    return this.call(
      "NegotiateProtocol",
      new NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 4, MaximumVersion: 4 })
    )
  }

  /** The next container notification. */
  notification(): Effect.Effect<ContainerNotification> {
    return Queue.take(this.notifications).pipe(
      Effect.map((f) => Either.getOrThrow(decodeNotification(f.payload)))
    )
  }

  /** Creates a container whose init process is `args`. */
  create(containerId: string, process: Record<string, unknown>): Effect.Effect<Reply<"Create">> {
    return this.call(
      "Create",
      new ContainerCreate({
        ContainerId: containerId,
        ContainerConfig: new LinuxHostedSystem({
          SchemaVersion: new SchemaVersion({ Major: 2, Minor: 1 }),
          OciBundlePath: `/run/gcs/c/${containerId}`,
          OciSpecification: {
            ociVersion: "1.1.0",
            process,
            root: { path: `/run/gcs/c/${containerId}/rootfs` }
          },
          ScratchDirPath: ""
        })
      })
    )
  }

  /**
   * ExecuteProcess with the requested stdio: binds a listener per stream
   * before sending (§11.5), accepts concurrently, and hands back the
   * connections once the guest answered.
   */
  exec(
    containerId: string,
    parameters: Partial<ConstructorParameters<typeof ProcessParameters>[0]>,
    want: StdioWanted
  ): Effect.Effect<Exec, never, Scope.Scope> {
    return Effect.gen(this, function* () {
      const listen = (wanted: boolean | undefined) =>
        wanted === true
          ? Effect.gen(this, function* () {
              const port = this.nextPort++
              const listener: Listener = yield* Effect.orDie(this.transport.listen(this.address, port))
              const accepted = yield* Effect.forkScoped(Effect.option(listener.accept()))
              return Option.some({ port, accepted })
            })
          : Effect.succeed(Option.none<{ port: number; accepted: Fiber.Fiber<Option.Option<Connection>> }>())
      const stdin = yield* listen(want.stdin)
      const stdout = yield* listen(want.stdout)
      const stderr = yield* listen(want.stderr)
      const portOf = (s: typeof stdin) => Option.match(s, { onNone: () => 0, onSome: (x) => x.port })
      const reply = yield* this.call(
        "ExecuteProcess",
        new ContainerExecuteProcess({
          ContainerId: containerId,
          Settings: new ExecuteProcessSettings({
            ProcessParameters: new ProcessParameters({
              ...parameters,
              CreateStdInPipe: want.stdin === true,
              CreateStdOutPipe: want.stdout === true,
              CreateStdErrPipe: want.stderr === true
            }),
            VsockStdioRelaySettings: new ExecuteProcessVsockStdioRelaySettings({
              StdIn: portOf(stdin),
              StdOut: portOf(stdout),
              StdErr: portOf(stderr)
            })
          })
        })
      )
      const join = (s: typeof stdin): Effect.Effect<Option.Option<Connection>> =>
        reply.result === 0 && Option.isSome(s) ? Fiber.join(s.value.accepted) : Effect.succeedNone
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

/** Reads a connection to EOF as text. */
export const readText = (connection: Connection): Effect.Effect<string> =>
  Stream.runCollect(connection.stream).pipe(
    Effect.orDie,
    Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks)).toString("utf8"))
  )

/** Writes text and half-closes. */
export const writeText = (connection: Connection, data: string): Effect.Effect<void> =>
  connection.write(utf8.encode(data)).pipe(Effect.zipRight(connection.endWrite), Effect.orDie)

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
  { readonly host: Host; readonly listener: Listener; readonly guest: Fiber.RuntimeFiber<void, unknown> },
  never,
  Transport | Scope.Scope
> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = new MemoryAddress({ name: `guest-test-${++names}` })
    const listener = yield* Effect.orDie(transport.listen(address, LinuxGcsVsockPort))
    const guest = yield* Effect.forkScoped(Guest.run({ once: true, ...options, address }))
    const host = yield* accept(transport, address, listener, options.hostMaxFrameSize)
    return { host, listener, guest }
  })

/** Accepts the guest's next bridge connection and starts reading it. */
export const accept = (
  transport: TransportService,
  address: Address,
  listener: Listener,
  maxFrameSize?: number
): Effect.Effect<Host, never, Scope.Scope> =>
  Effect.gen(function* () {
    const connection = yield* Effect.orDie(listener.accept())
    const frames = yield* Queue.unbounded<Frame>()
    const notifications = yield* Queue.unbounded<Frame>()
    const ended = yield* Deferred.make<ProtocolError | undefined>()
    const host = new Host(transport, address, connection, frames, notifications, ended)
    const reader = new FrameReader({ maxFrameSize: maxFrameSize ?? 0x10000 })
    yield* connection.stream.pipe(
      Stream.runForEach((chunk) =>
        Effect.suspend(() => {
          const frames = reader.push(chunk)
          const error = reader.error
          return Effect.forEach(frames, (f) => host.route(f), { discard: true }).pipe(
            Effect.zipRight(error === undefined ? Effect.void : Effect.fail(error))
          )
        })
      ),
      Effect.matchEffect({
        onSuccess: () => Deferred.succeed(ended, reader.end()),
        onFailure: (e) => Deferred.succeed(ended, e._tag === "ProtocolError" ? e : undefined)
      }),
      Effect.forkScoped
    )
    return host
  })
