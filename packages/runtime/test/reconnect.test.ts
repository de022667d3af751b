/**
 * Surviving a dropped bridge (`reconnect`) and taking a guest over from another host (`resume`,
 * `migrationState`, `restoreProcess`), against a scripted guest that re-dials over the memory transport.
 */
import { describe, expect, it } from "@effect/vitest"
import { HResult, MessageType, Negotiate, Process as Wire, Uvm } from "@gcs-bridge/protocol"
import { Transport } from "@gcs-bridge/transport"
import { Effect, Exit, Fiber, Metric, Option, Schedule, Schema, Stream } from "effect"
import {
  BridgeClosed,
  BridgeReconnected,
  GuestConnection,
  type GuestConnectionConfig,
  type GuestConnectionService,
  MigrationState,
  Metrics,
  SavedProcess
} from "../src/index.js"
import * as FakeGuest from "./FakeGuest.js"
import { captureWarnings, memoryAddress } from "./harness.js"

const Null = "00000000-0000-0000-0000-000000000000"
const uvmProcess = { CommandLine: "sleep 100", CreateStdOutPipe: true }

/** A host on a fresh address and the first connection of a guest that will re-dial. */
const setUp = (config: Partial<GuestConnectionConfig> = {}) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const address = memoryAddress()
    const host = yield* Effect.forkChild(
      GuestConnection.make({ address, reconnect: "5 seconds", closeTimeout: "50 millis", ...config })
    )
    const guest = yield* FakeGuest.dial(transport, address)
    const negotiate = yield* FakeGuest.negotiate(guest)
    const gc = yield* Fiber.join(host)
    return { transport, address, gc, guest, negotiate }
  })

/** Runs an exec the guest answers with `pid` (dialling its stdout port); returns the process and the host's wait. */
const answerExec = (
  gc: GuestConnectionService,
  guest: FakeGuest.FakeGuest,
  transport: Transport["Service"],
  address: ReturnType<typeof memoryAddress>,
  pid: number
) =>
  Effect.gen(function* () {
    const started = yield* Effect.forkChild(gc.exec(uvmProcess))
    const exec = yield* guest.next
    expect(exec.name).toBe("ExecuteProcess")
    const port = (exec.body as Wire.ContainerExecuteProcess).Settings.VsockStdioRelaySettings?.StdOut ?? 0
    const stdout = yield* Effect.orDie(transport.connect(address, port))
    yield* guest.reply(
      { name: "ExecuteProcess", id: exec.id },
      new Wire.ContainerExecuteProcessResponse({ ProcessId: pid })
    )
    const wait = yield* guest.next
    expect(wait.name).toBe("WaitForProcess")
    return { process: yield* Fiber.join(started), wait, stdout, port }
  })

const waitResponse = (ExitCode: number) => new Wire.ContainerWaitForProcessResponse({ ExitCode })

describe("reconnect", () => {
  it.live(
    "a dropped bridge is re-established: waits re-issued, other written calls fail, new calls wait",
    () => {
      const warnings = captureWarnings()
      return Effect.gen(function* () {
        const { transport, address, gc, guest } = yield* setUp()
        const reconnects = (yield* Metric.value(Metrics.bridgeReconnects)).count
        const { process, wait, stdout } = yield* answerExec(gc, guest, transport, address, 77)
        const inFlight = yield* Effect.forkChild(gc.dumpStacks)
        expect((yield* guest.next).name).toBe("DumpStacks")

        yield* guest.close
        // Once the host has seen the end (a call written before that fails with BridgeReconnected, as `inFlight`):
        yield* Effect.repeat(
          Effect.sync(() => warnings.lines.some((line) => line.includes("bridge connection lost"))),
          { until: (seen) => seen, schedule: Schedule.spaced("1 millis") }
        )
        // Made while the bridge is down: it waits for the new connection.
        const during = yield* Effect.forkChild(gc.dumpStacks)
        // The stdio connection is not the bridge: it keeps flowing.
        yield* Effect.orDie(stdout.writeAll([new TextEncoder().encode("still here")]))
        const first = yield* Effect.orDie(Stream.runHead(process.stdout))
        expect(new TextDecoder().decode(first._tag === "Some" ? first.value : new Uint8Array())).toBe(
          "still here"
        )

        const again = yield* FakeGuest.dial(transport, address)
        // Only the negotiation, no prelude, before anything else.
        const renegotiate = yield* FakeGuest.negotiate(again)
        expect(renegotiate.name).toBe("NegotiateProtocol")
        const reissued = yield* again.next
        expect(reissued.name).toBe("WaitForProcess")
        expect((reissued.body as Wire.ContainerWaitForProcess).ProcessId).toBe(77)
        expect(reissued.id).not.toBe(wait.id)
        const error = yield* Fiber.join(inFlight).pipe(Effect.flip)
        expect(error).toBeInstanceOf(BridgeReconnected)
        expect(error.message).toContain("re-established")

        const queued = yield* again.next
        expect(queued.name).toBe("DumpStacks")
        yield* again.reply(
          { name: "DumpStacks", id: queued.id },
          new Uvm.DumpStacksResponse({ GuestStacks: "stacks" })
        )
        expect(yield* Fiber.join(during)).toBe("stacks")

        yield* again.reply({ name: "WaitForProcess", id: reissued.id }, waitResponse(3))
        expect(yield* process.wait).toBe(3)
        expect((yield* Metric.value(Metrics.bridgeReconnects)).count).toBe(reconnects + 1)
      }).pipe(Effect.scoped, Effect.provide([Transport.layerMemory, warnings.layer]))
    }
  )

  it.live(
    "the guest's answer to the old wait on the new connection counts, and the twin's is dropped as late",
    () =>
      Effect.gen(function* () {
        const { transport, address, gc, guest } = yield* setUp()
        const { process, wait } = yield* answerExec(gc, guest, transport, address, 5)
        yield* guest.close
        const again = yield* FakeGuest.dial(transport, address)
        yield* FakeGuest.negotiate(again)
        const reissued = yield* again.next
        const unknown = (yield* Metric.value(Metrics.unknownResponses)).count
        const late = (yield* Metric.value(Metrics.lateResponses)).count
        yield* again.reply({ name: "WaitForProcess", id: wait.id }, waitResponse(9))
        expect(yield* process.wait).toBe(9)
        yield* again.reply({ name: "WaitForProcess", id: reissued.id }, waitResponse(9))
        yield* Effect.sleep("20 millis")
        expect((yield* Metric.value(Metrics.lateResponses)).count).toBe(late + 1)
        expect((yield* Metric.value(Metrics.unknownResponses)).count).toBe(unknown)
      }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.live("a guest that does not come back within the window: the bridge dies of the break", () =>
    Effect.gen(function* () {
      const { transport, address, gc, guest } = yield* setUp({ reconnect: "200 millis" })
      const { process } = yield* answerExec(gc, guest, transport, address, 6)
      yield* guest.close
      const during = yield* Effect.forkChild(gc.dumpStacks)
      const closed = yield* gc.closed
      expect(closed.reason).toBe("EndOfStream")
      expect(closed.message).toContain("did not re-establish the bridge within")
      expect(yield* Fiber.join(during).pipe(Effect.flip)).toBe(closed)
      expect(yield* process.wait.pipe(Effect.flip)).toBe(closed)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.live("a failed renegotiation is retried with the guest's next re-dial", () =>
    Effect.gen(function* () {
      const { transport, address, gc, guest } = yield* setUp()
      yield* guest.close
      const refused = yield* FakeGuest.dial(transport, address)
      const negotiate = yield* refused.next
      yield* refused.fail(negotiate, HResult.HResult.UnsupportedProtocolVersion)
      yield* refused.close
      const again = yield* FakeGuest.dial(transport, address)
      yield* FakeGuest.negotiate(again)
      const call = yield* Effect.forkChild(gc.dumpStacks)
      const request = yield* again.next
      yield* again.reply(
        { name: "DumpStacks", id: request.id },
        new Uvm.DumpStacksResponse({ GuestStacks: "ok" })
      )
      expect(yield* Fiber.join(call)).toBe("ok")
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.live("without the policy a dropped bridge is the end, as in Go", () =>
    Effect.gen(function* () {
      const { gc, guest } = yield* setUp({ reconnect: undefined })
      yield* guest.close
      expect((yield* gc.closed).reason).toBe("EndOfStream")
      expect(yield* gc.dumpStacks.pipe(Effect.flip)).toBeInstanceOf(BridgeClosed)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )
})

describe("migration (§12.9)", () => {
  it.live("the save side: counters, and each running process with its ports and outstanding wait id", () =>
    Effect.gen(function* () {
      const { transport, address, gc, guest } = yield* setUp({ reconnect: undefined })
      const { wait, port } = yield* answerExec(gc, guest, transport, address, 41)
      const exiting = yield* Effect.forkChild(gc.exec({ CommandLine: "true" }))
      const exec = yield* guest.next
      yield* guest.reply(
        { name: "ExecuteProcess", id: exec.id },
        new Wire.ContainerExecuteProcessResponse({ ProcessId: 2 })
      )
      const exitedWait = yield* guest.next
      yield* guest.reply({ name: "WaitForProcess", id: exitedWait.id }, waitResponse(0))
      yield* Effect.flatMap(Fiber.join(exiting), (p) => p.wait)
      const state = yield* gc.migrationState
      expect(state.processes).toEqual([
        new SavedProcess({
          containerId: Null,
          pid: 41,
          stdin: 0,
          stdout: port,
          stderr: 0,
          waitCallId: wait.id
        })
      ])
      expect(state.nextPort).toBe(port + 1)
      expect(state.nextMessageId).toBe(exitedWait.id + 1)
      const json = Schema.encodeSync(MigrationState.json)(state)
      expect(Schema.decodeUnknownSync(MigrationState.json)(json)).toEqual(state)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.live("a saved state with a wait id 0 or a negative port is refused with a schema error", () =>
    Effect.gen(function* () {
      const bad = [
        {
          version: 1,
          nextPort: 5,
          nextMessageId: 9,
          processes: [{ containerId: Null, pid: 1, stdin: 0, stdout: 0, stderr: 0, waitCallId: 0 }]
        },
        { version: 1, nextPort: -1, nextMessageId: 9, processes: [] },
        { version: 2, nextPort: 1, nextMessageId: 9, processes: [] }
      ]
      for (const state of bad) {
        const exit = yield* Effect.exit(
          Schema.decodeUnknownEffect(MigrationState.json)(JSON.stringify(state))
        )
        expect(Exit.isFailure(exit)).toBe(true)
      }
    })
  )

  const resume = (processes: ReadonlyArray<SavedProcess>) =>
    new MigrationState({ version: 1, nextPort: 0x40000010, nextMessageId: 500, processes })

  it.live(
    "restore: ids continue, no prelude, the saved wait is watched after a 50 ms probe, stdout re-dialled",
    () =>
      Effect.gen(function* () {
        const transport = yield* Transport
        const address = memoryAddress()
        const saved = new SavedProcess({
          containerId: "c1",
          pid: 12,
          stdin: 0,
          stdout: 0x40000004,
          stderr: 0,
          waitCallId: 42
        })
        const host = yield* Effect.forkChild(
          GuestConnection.make({ address, resume: resume([saved]), closeTimeout: "50 millis" })
        )
        const guest = yield* FakeGuest.dial(transport, address)
        // The guest asks for the prelude; a resumed host does not run it.
        const linux = FakeGuest.linuxNegotiateResponse()
        const Capabilities = new Negotiate.GcsCapabilities({
          ...linux.Capabilities,
          SendHostCreateMessage: true
        })
        const prelude = new Negotiate.NegotiateProtocolResponse({ ...linux, Capabilities })
        const negotiate = yield* guest.next
        expect(negotiate.id).toBe(500)
        yield* guest.reply({ name: "NegotiateProtocol", id: negotiate.id }, prelude)
        const gc = yield* Fiber.join(host)
        const restoring = yield* Effect.forkChild(gc.restoreProcess(saved))
        const probe = yield* guest.next
        expect(probe.name).toBe("WaitForProcess")
        expect((probe.body as Wire.ContainerWaitForProcess).TimeoutInMs).toBe(50)
        expect(probe.id).toBe(501)
        const stdout = yield* Effect.orDie(transport.connect(address, 0x40000004))
        yield* guest.fail(probe, HResult.HResult.Timeout)
        const process = yield* Fiber.join(restoring)
        expect(process.pid).toBe(12)
        expect(Option.isNone(yield* process.exitCode)).toBe(true)
        yield* Effect.orDie(stdout.writeAll([new TextEncoder().encode("the rest")]))
        yield* stdout.close
        yield* guest.reply({ name: "WaitForProcess", id: 42 }, waitResponse(7))
        expect(yield* process.wait).toBe(7)
        const out = yield* Effect.orDie(Stream.runCollect(process.stdout))
        expect(FakeGuest.text(out)).toBe("the rest")
        expect(MessageType.FirstStdioPort).toBeLessThan(0x40000010)
      }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  /** A host resumed with one saved UVM process without stdio, negotiated; `early` runs before it restores it. */
  const resumed = (
    pid: number,
    waitCallId: number,
    early: (guest: FakeGuest.FakeGuest) => Effect.Effect<void>
  ) =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = memoryAddress()
      const saved = new SavedProcess({ containerId: Null, pid, stdin: 0, stdout: 0, stderr: 0, waitCallId })
      const host = yield* Effect.forkChild(
        GuestConnection.make({ address, resume: resume([saved]), closeTimeout: "50 millis" })
      )
      const guest = yield* FakeGuest.dial(transport, address)
      yield* FakeGuest.negotiate(guest)
      yield* early(guest)
      const gc = yield* Fiber.join(host)
      const restoring = yield* Effect.forkChild(gc.restoreProcess(saved))
      return { gc, guest, restoring, probe: yield* guest.next }
    })

  it.live("restore: a probe that is answered means the process exited while no host listened", () =>
    Effect.gen(function* () {
      const { gc, guest, restoring, probe } = yield* resumed(13, 43, () => Effect.void)
      yield* guest.reply({ name: "WaitForProcess", id: probe.id }, waitResponse(4))
      const process = yield* Fiber.join(restoring)
      expect(yield* process.wait).toBe(4)
      // A late answer to the saved wait is recognised, not an unknown id.
      const unknown = (yield* Metric.value(Metrics.unknownResponses)).count
      yield* guest.reply({ name: "WaitForProcess", id: 43 }, waitResponse(4))
      const call = yield* Effect.forkChild(gc.dumpStacks)
      const request = yield* guest.next
      yield* guest.reply(
        { name: "DumpStacks", id: request.id },
        new Uvm.DumpStacksResponse({ GuestStacks: "" })
      )
      yield* Fiber.join(call)
      expect((yield* Metric.value(Metrics.unknownResponses)).count).toBe(unknown)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )

  it.live("restore: the guest answering the saved wait right after negotiating is not lost", () =>
    Effect.gen(function* () {
      const { guest, restoring, probe } = yield* resumed(14, 44, (guest) =>
        guest.reply({ name: "WaitForProcess", id: 44 }, waitResponse(8))
      )
      yield* guest.fail(probe, HResult.HResult.Timeout)
      expect(yield* Effect.flatMap(Fiber.join(restoring), (p) => p.wait)).toBe(8)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )
})
