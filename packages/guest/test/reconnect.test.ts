/**
 * What survives a dropped bridge (GCS-PROTOCOL §12.9, §14.1, §14.4): requests
 * read on one connection are answered on the next, and a container init
 * process's output re-dials a host that went away.
 */
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import type { Frame } from "@gcs-bridge/protocol"
import { Envelope, MessageType, Process } from "@gcs-bridge/protocol"
import type { Connection } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Queue, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Fault, Guest } from "../src/index.js"
import type { Host } from "./host.js"
import { accept, countTimers, Hr, Null, PATH, readText, setup, untilTimerArmed, writeText } from "./host.js"

const base = (containerId: string) => new Envelope.RequestBase({ ContainerId: containerId })

const waitRequest = (pid: number, timeout = Process.InfiniteTimeout, containerId = Null) =>
  new Process.ContainerWaitForProcess({ ContainerId: containerId, ProcessId: pid, TimeoutInMs: timeout })

const exitCodeOf = (host: Host, frame: Frame.Frame) =>
  Option.getOrThrowWith(host.reply("WaitForProcess", frame).body, () => new Error("wait failed")).ExitCode

const stacks = (host: Host) => host.ok("DumpStacks", base(Null)).pipe(Effect.map((r) => r.GuestStacks))

/** Polls DumpStacks until it mentions `text`. */
const untilStacksSay = (host: Host, text: string) =>
  Effect.gen(function* () {
    while (!(yield* stacks(host)).includes(text)) yield* Effect.sleep(Duration.millis(20))
  })

/** A private directory, removed with the test's scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => realpathSync(mkdtempSync(join(tmpdir(), "guest-reconnect-")))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A guest (`Guest.run`, re-dialling) and its first host, over Unix sockets in a private directory. */
const unixGuest = Effect.gen(function* () {
  const dir = yield* tempDir
  const transport = yield* Transport
  const address = new UnixAddress({ path: join(dir, "vm") })
  const listener = yield* Effect.orDie(transport.listen(address, MessageType.LinuxGcsVsockPort))
  yield* Effect.forkScoped(Guest.run({ address }))
  const host = yield* accept(transport, address, listener)
  const next = () => accept(transport, address, listener)
  return { dir, transport, address, host, next }
})

/** A stdio listener and the connection it accepts, in a scope of their own: `close` is the host dying. */
const stdioListener = (transport: Transport["Service"], address: UnixAddress, port: number) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const listener = yield* Effect.orDie(transport.listen(address, port)).pipe(Scope.provide(scope))
    const accepted = yield* Effect.forkIn(Effect.orDie(listener.accept()).pipe(Scope.provide(scope)), scope)
    return { connection: Fiber.join(accepted), close: Scope.close(scope, Exit.void) }
  })

/** Reads until the text read so far contains `text`; the text read. */
const readUntil = (connection: Connection, text: string) =>
  connection.stream.pipe(
    Stream.map((chunk) => Buffer.from(chunk).toString("utf8")),
    Stream.scan(
      () => "",
      (sofar: string, more: string) => sofar + more
    ),
    Stream.takeUntil((sofar) => sofar.includes(text)),
    Stream.runLast,
    Effect.orDie,
    Effect.map(Option.getOrElse(() => ""))
  )

const StdoutPort = 0x50000001

/** A container whose init prints "before", waits for the file `go` in `dir`, prints "after", then runs `rest`. */
const startPrinter = (host: Host, dir: string, id: string, rest: string) =>
  Effect.gen(function* () {
    const script = `echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; ${rest}`
    expect(
      (yield* host.create(id, { args: ["/bin/sh", "-c", script], env: [`PATH=${PATH}`], cwd: dir })).result
    ).toBe(0)
    const stdout = yield* stdioListener(host.transport, host.address as UnixAddress, StdoutPort)
    const exec = yield* host.ok(
      "ExecuteProcess",
      new Process.ContainerExecuteProcess({
        ContainerId: id,
        Settings: new Process.ExecuteProcessSettings({
          ProcessParameters: new Process.ProcessParameters({ CreateStdOutPipe: true }),
          VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
            StdIn: 0,
            StdOut: StdoutPort,
            StdErr: 0
          })
        })
      })
    )
    const connection = yield* stdout.connection
    expect(yield* readUntil(connection, "before\n")).toBe("before\n")
    // The host dies: its stdout connection and listener are gone.
    yield* stdout.close
    writeFileSync(join(dir, "go"), "")
    return exec.ProcessId
  })

/** A `cat` in the UVM with a wait in flight on it, then the host drops the bridge; the guest's next connection. */
const waitThenDrop = Effect.gen(function* () {
  const { host, next } = yield* unixGuest
  yield* host.negotiate()
  const cat = yield* host.exec(
    Null,
    { CommandArgs: ["cat"], Environment: { PATH } },
    { stdin: true, stdout: true }
  )
  const waiting = yield* host.send("WaitForProcess", waitRequest(cat.pid))
  // DumpStacks is read after the wait: the wait is being handled.
  expect(yield* stacks(host)).toContain("WaitForProcess")
  yield* host.connection.close
  const second = yield* next()
  second.nextId = 100
  return { cat, waiting, second }
})

describe("requests outlive their bridge connection", () => {
  it.live(
    "a WaitForProcess read on a dropped connection is answered on the next, after its negotiation",
    () =>
      Effect.gen(function* () {
        const { cat, waiting, second } = yield* waitThenDrop
        // cat ends before the new host negotiates; its stdout (the socket itself) says when.
        yield* writeText(Option.getOrThrow(cat.stdin), "")
        expect(yield* readText(Option.getOrThrow(cat.stdout))).toBe("")
        // Gives the answer time to be ready before the negotiation; the order asserted holds either way.
        yield* Effect.sleep(Duration.millis(200))
        expect((yield* second.negotiate()).result).toBe(0)
        expect(exitCodeOf(second, yield* second.response(waiting))).toBe(0)
        const frames = yield* Queue.takeAll(second.frames)
        expect(frames.map((f) => [f.type >>> 0, f.id])).toEqual([
          [MessageType.responseType(MessageType.Proc.NegotiateProtocol), 100],
          [MessageType.responseType(MessageType.Proc.WaitForProcess), waiting]
        ])
      }).pipe(Effect.provide(Transport.layerNode))
  )

  it.live(
    "after a re-dial a 50 ms probe times out with 0xC0370109, and the old and a new wait both get the exit code",
    () =>
      Effect.gen(function* () {
        const { cat, waiting: old, second } = yield* waitThenDrop
        yield* second.negotiate()
        const probe = yield* second.call("WaitForProcess", waitRequest(cat.pid, 50))
        expect(probe.result).toBe(Hr.Timeout)
        const again = yield* second.send("WaitForProcess", waitRequest(cat.pid))
        // Both infinite waits are in flight: the old connection's and the new one's.
        expect((yield* stacks(second)).match(/ComputeSystemWaitForProcessV1/g)).toHaveLength(2)
        yield* writeText(Option.getOrThrow(cat.stdin), "")
        expect(exitCodeOf(second, yield* second.response(old))).toBe(0)
        expect(exitCodeOf(second, yield* second.response(again))).toBe(0)
        // Once a wait obtained the exit code, the UVM process is forgotten, as in the Linux GCS.
        expect((yield* second.call("WaitForProcess", waitRequest(cat.pid))).result).toBe(Hr.NotFound)
      }).pipe(Effect.provide(Transport.layerNode))
  )

  it.live(
    "an init's exit while disconnected: its wait's answer and the exit notification reach the next host",
    () =>
      Effect.gen(function* () {
        const { host, next } = yield* unixGuest
        yield* host.negotiate()
        expect((yield* host.create("c", { args: ["cat"], env: [`PATH=${PATH}`] })).result).toBe(0)
        const init = yield* host.exec("c", {}, { stdin: true })
        const waiting = yield* host.send(
          "WaitForProcess",
          waitRequest(init.pid, Process.InfiniteTimeout, "c")
        )
        expect(yield* stacks(host)).toContain("WaitForProcess")
        yield* host.connection.close
        const second = yield* next()
        second.nextId = 100
        yield* writeText(Option.getOrThrow(init.stdin), "")
        yield* second.negotiate()
        expect(exitCodeOf(second, yield* second.response(waiting))).toBe(0)
        const notification = yield* second.notification()
        expect([notification.ContainerId, notification.Type]).toEqual(["c", "UnexpectedExit"])
        const first = yield* Queue.take(second.frames)
        expect([first.type >>> 0, first.id]).toEqual([
          MessageType.responseType(MessageType.Proc.NegotiateProtocol),
          100
        ])
      }).pipe(Effect.provide(Transport.layerNode))
  )

  it.effect(
    "an answer produced but not written when the bridge dropped goes out on the next connection",
    () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        // Each connection carries four messages, then drops.
        const { host, listener } = yield* setup({
          once: false,
          faults: [Fault.Fault.DropAfter({ messages: 4 })]
        })
        yield* host.negotiate()
        const cat = yield* host.exec(
          Null,
          { CommandArgs: ["cat"], Environment: { PATH } },
          { stdin: true, stdout: true }
        )
        const waits = [
          yield* host.send("WaitForProcess", waitRequest(cat.pid)),
          yield* host.send("WaitForProcess", waitRequest(cat.pid))
        ]
        // Message 3; both waits were read before it.
        yield* stacks(host)
        // Both waits are answered at once: one is message 4, the other is left when the bridge drops.
        yield* writeText(Option.getOrThrow(cat.stdin), "")
        expect(yield* Deferred.await(host.ended)).toBeUndefined()
        const written = (yield* Queue.takeAll(host.frames)).map((f) => f.id)
        expect(written).toHaveLength(4)
        const left = waits.filter((id) => !written.includes(id))
        expect(left).toHaveLength(1)
        yield* untilTimerArmed
        yield* TestClock.adjust(Duration.millis(100))
        const second = yield* accept(transport, host.address, listener)
        second.nextId = 100
        yield* second.negotiate()
        expect(exitCodeOf(second, yield* second.response(left[0]!))).toBe(0)
        yield* stacks(second)
        expect((yield* Queue.takeAll(second.frames)).map((f) => f.id)).toEqual([100, left[0], 101])
      }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )
})

describe("a container init's output survives its host (§14.4)", () => {
  it.live("re-dials the same port and replays the tail, then goes on", () =>
    Effect.gen(function* () {
      const { dir, transport, address, host } = yield* unixGuest
      yield* host.negotiate()
      const pid = yield* startPrinter(host, dir, "c", "exit 3")
      // "after" found the host gone; the guest re-dials while nothing listens.
      yield* untilStacksSay(host, "re-dialling 1 lost output connection(s)")
      const revived = yield* stdioListener(transport, address, StdoutPort)
      const connection = yield* revived.connection
      expect(yield* readText(connection)).toBe("before\nafter\n")
      yield* connection.close
      const wait = waitRequest(pid, Process.InfiniteTimeout, "c")
      expect((yield* host.ok("WaitForProcess", wait)).ExitCode).toBe(3)
      expect(yield* stacks(host)).not.toContain("re-dialling")
    }).pipe(Effect.provide(Transport.layerNode))
  )

  it.live("stops re-dialling when the container is shut down", () =>
    Effect.gen(function* () {
      const { dir, host } = yield* unixGuest
      yield* host.negotiate()
      const pid = yield* startPrinter(host, dir, "c", "exec sleep 60")
      yield* untilStacksSay(host, "re-dialling 1 lost output connection(s)")
      expect((yield* host.call("ShutdownForced", base("c"))).result).toBe(0)
      // The exit code is reported once the output relay has ended: it no longer dials.
      const wait = waitRequest(pid, Process.InfiniteTimeout, "c")
      expect((yield* host.ok("WaitForProcess", wait)).ExitCode).toBe(137)
      expect((yield* host.notification()).Type).toBe("ForcedExit")
      expect(yield* stacks(host)).not.toContain("re-dialling")
    }).pipe(Effect.provide(Transport.layerNode))
  )
})
