import {
  Container,
  Guid,
  HResult,
  MessageType,
  ModifySettings,
  Negotiate,
  Properties,
  ProtocolError
} from "@gcs-bridge/protocol"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Effect, Exit, Fiber, Metric, Option, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { GuestConnectionConfig } from "../src/index.js"
import { GuestConnection, Metrics, TransportError } from "../src/index.js"
import { type Counts } from "./CountingTransport.js"
import * as FakeGuest from "./FakeGuest.js"
import { makeTracker, memoryAddress, wire, type Wired } from "./harness.js"

const encoder = new TextEncoder()

/** A host made with `GuestConnection.make` and a simple guest that dials it. */
const start = (
  wired: Wired,
  config: Partial<GuestConnectionConfig> = {},
  options: FakeGuest.SimpleGuestOptions = {}
) =>
  Effect.gen(function* () {
    const host = yield* Effect.forkChild(
      GuestConnection.make({ address: wired.address, ...config }).pipe(
        Effect.provideService(Transport, wired.hostTransport)
      )
    )
    const guest = yield* FakeGuest.dial(wired.transport, wired.address)
    const state = yield* FakeGuest.serveSimple(guest, wired.transport, wired.address, options)
    const gc = yield* Effect.orDie(Fiber.join(host))
    return { gc, guest, state }
  })

const expectReleased = (counts: Counts) => {
  expect(counts.listeners).toBe(0)
  expect(counts.connections).toBe(0)
}

/** The lifecycle every transport must carry: create, start, exec with echo, wait, terminate, delete. */
const lifecycle = (wired: Wired) =>
  Effect.gen(function* () {
    const supervisor = makeTracker()
    const state = yield* Effect.scoped(
      Effect.gen(function* () {
        const { gc, state } = yield* start(wired)
        expect(gc.os).toBe("linux")
        const config = new Container.LinuxHostedSystem({
          OciBundlePath: "/run/gcs/c/c1",
          OciSpecification: {
            ociVersion: "1.1.0",
            process: { env: ["SECRET=1"] },
            root: { path: "rootfs" },
            linux: {}
          },
          ScratchDirPath: "/run/gcs/c/c1/scratch"
        })
        yield* Effect.scoped(
          Effect.gen(function* () {
            const container = yield* gc.createContainer("c1", config)
            yield* container.start
            const process = yield* container.exec({
              CreateStdInPipe: true,
              CreateStdOutPipe: true,
              CreateStdErrPipe: true
            })
            expect(process.pid).toBe(100)
            expect(yield* process.exitCode).toEqual(Option.none())
            // Read as the README says: the series of Metric.withAttributes(stdioBytes, { stream }).
            const bytes = (stream: string) =>
              Metric.value(Metric.withAttributes(Metrics.stdioBytes, { stream }))
            const [stdinBefore, stdoutBefore] = [
              (yield* bytes("stdin")).count,
              (yield* bytes("stdout")).count
            ]
            const output = yield* Effect.forkChild(Stream.runCollect(process.stdout))
            const errors = yield* Effect.forkChild(Stream.runCollect(process.stderr))
            yield* Stream.run(Stream.make(encoder.encode("hello "), encoder.encode("world")), process.stdin)
            yield* process.closeStdin
            yield* process.closeStdin
            expect(FakeGuest.text(yield* Fiber.join(output))).toBe("hello world")
            expect((yield* bytes("stdin")).count).toBe(stdinBefore + 11)
            expect((yield* bytes("stdout")).count).toBe(stdoutBefore + 11)
            expect(FakeGuest.text(yield* Fiber.join(errors))).toBe("")
            expect(yield* process.wait).toBe(0)
            expect(yield* process.exitCode).toEqual(Option.some(0))
            // The process is gone: a signal is "not delivered", not an error.
            expect(yield* process.kill).toBe(false)
            yield* container.terminate
            const exit = yield* container.wait
            expect(exit._tag).toBe("Exited")
            if (exit._tag === "Exited") expect(exit.notification.Type).toBe("ForcedExit")
          })
        )
        yield* gc.deleteContainerState("c1")
        return state
      })
    ).pipe(supervisor.track)
    expectReleased(wired.counts)
    expect(yield* supervisor.live).toBe(0)
    // §11.4: the bridge port, then stdio ports from 0x40000001 in stdin, stdout, stderr order.
    expect(wired.counts.ports).toEqual([
      MessageType.LinuxGcsVsockPort,
      MessageType.FirstStdioPort,
      MessageType.FirstStdioPort + 1,
      MessageType.FirstStdioPort + 2
    ])
    expect(state.requests.map((r) => r.name)).toEqual([
      "NegotiateProtocol",
      "Create",
      "Start",
      "ExecuteProcess",
      "WaitForProcess",
      "SignalProcess",
      "ShutdownForced",
      "DeleteContainerState"
    ])
    const exec = state.requests[3]
    if (exec?.name !== "ExecuteProcess") throw new Error("expected ExecuteProcess")
    expect(exec.body.Settings.VsockStdioRelaySettings?.StdIn).toBe(MessageType.FirstStdioPort)
    expect(exec.body.Settings.StdioRelaySettings).toBeUndefined()
    const wait = state.requests[4]
    if (wait?.name !== "WaitForProcess") throw new Error("expected WaitForProcess")
    expect(wait.body.ProcessId).toBe(100)
    expect(wait.body.TimeoutInMs).toBe(0xffffffff)
  })

describe("lifecycle", () => {
  it.live("runs the full lifecycle over the in-memory transport", () =>
    Effect.flatMap(wire(), lifecycle).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("runs the full lifecycle over Unix sockets (layerNode)", () =>
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "gcs-runtime-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ).pipe(
      Effect.flatMap((dir) => wire(new UnixAddress({ path: join(dir, "vm.sock") }))),
      Effect.flatMap(lifecycle),
      Effect.provide(Transport.layerNode)
    )
  )

  it.live("UVM processes target the null container and exit codes come from the wait", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(wired, {}, { exitCode: 3 })
      const code = yield* Effect.scoped(
        Effect.gen(function* () {
          const process = yield* gc.exec({ CommandArgs: ["cat"], CreateStdInPipe: true })
          yield* process.closeStdin
          return yield* process.wait
        })
      )
      expect(code).toBe(3)
      const exec = state.requests.find((r) => r.name === "ExecuteProcess")
      expect(exec?.body.ContainerId).toBe(Guid.NullGuid)
      if (exec?.name === "ExecuteProcess") {
        expect(exec.body.Settings.ProcessParameters.CommandArgs).toEqual(["cat"])
        expect(exec.body.Settings.VsockStdioRelaySettings?.StdOut).toBe(0)
      }
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("process parameters that are not a ProcessParameters document fail typed and send nothing", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(wired, {})
      const sent = state.requests.length
      const input = { CommandArgs: "not an array", CreateStdOutPipe: true } as unknown as { CommandArgs: [] }
      const error = yield* Effect.flip(Effect.scoped(gc.exec(input)))
      expect(error).toBeInstanceOf(ProtocolError.ProtocolError)
      expect((error as ProtocolError.ProtocolError).reason).toBe("EncodeFailed")
      expect(error.message).toContain("invalid process parameters")
      expect(error.message).toContain("CommandArgs")
      expect(state.requests.length).toBe(sent)
      expect(wired.counts.listeners).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("Windows guests get the cold-start prelude and hvsock service ids for stdio", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const negotiate = new Negotiate.NegotiateProtocolResponse({
        Version: 4,
        Capabilities: new Negotiate.GcsCapabilities({
          SendHostCreateMessage: true,
          SendHostStartMessage: true,
          GuestDefinedCapabilities: new Negotiate.WindowsGuestDefinedCapabilities({
            LogForwardingSupported: true
          })
        })
      })
      const { gc, state } = yield* start(wired, {}, { negotiate })
      expect(gc.os).toBe("windows")
      expect(gc.capabilities).toBeInstanceOf(Negotiate.WindowsGuestDefinedCapabilities)
      expect(state.requests.map((r) => r.name)).toEqual(["NegotiateProtocol", "Create", "Start"])
      const create = state.requests[1]
      expect(create?.body.ContainerId).toBe(Guid.NullGuid)
      if (create?.name === "Create")
        expect(create.body.ContainerConfig).toMatchObject({ SystemType: "Container" })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const process = yield* gc.exec({ CommandLine: "cmd /c dir", CreateStdOutPipe: true })
          yield* process.kill
          yield* Stream.runDrain(process.stdout)
        })
      )
      const exec = state.requests.find((r) => r.name === "ExecuteProcess")
      if (exec?.name !== "ExecuteProcess") throw new Error("expected ExecuteProcess")
      expect(exec.body.Settings.VsockStdioRelaySettings).toBeUndefined()
      expect(exec.body.Settings.StdioRelaySettings?.StdOut).toBe(
        Guid.vsockServiceId(MessageType.FirstStdioPort)
      )
      expect(exec.body.Settings.StdioRelaySettings?.StdIn).toBeUndefined()
      yield* gc.modifyServiceSettings({
        propertyType: "LogForwardService",
        settings: { RPCType: "StartLogForwarding" }
      })
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live(
    "follows Go on 'already gone' answers: shutdown succeeds, signal says not delivered, wait gives 0",
    () =>
      Effect.gen(function* () {
        const wired = yield* wire()
        const { gc } = yield* start(
          wired,
          {},
          {
            override: (request, guest) =>
              request.name === "WaitForProcess"
                ? Effect.as(guest.fail(request, HResult.HResult.NotFound), true)
                : Effect.succeed(false)
          }
        )
        const ghost = yield* gc.openContainer("ghost")
        // The guest answers 0xC037010E: nothing left to stop.
        yield* ghost.shutdown
        yield* ghost.terminate
        const process = yield* gc.exec({ CommandArgs: ["true"] })
        expect(yield* process.wait).toBe(0)
        expect(yield* process.signal(15)).toBe(true)
        expect(yield* process.signal(15)).toBe(false)
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("closing a process's scope kills it and closes its stdio", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(wired)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const process = yield* gc.exec({
            CommandArgs: ["cat"],
            CreateStdInPipe: true,
            CreateStdOutPipe: true
          })
          yield* Stream.run(Stream.make(encoder.encode("x")), process.stdin)
        })
      )
      const signal = state.requests.find((r) => r.name === "SignalProcess")
      expect(signal?.name).toBe("SignalProcess")
      if (signal?.name === "SignalProcess") expect(signal.body.Options).toBeUndefined()
      // Only the bridge connection is left.
      expect(wired.counts.listeners).toBe(0)
      expect(wired.counts.connections).toBe(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("closing a container's scope terminates it and waits for its exit", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(wired)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const container = yield* gc.createContainer("c2", FakeGuest.lcow())
          yield* container.exec({})
        })
      )
      expect(state.requests.map((r) => r.name)).toContain("ShutdownForced")
      expect(state.containers.has("c2")).toBe(false)
      // Closing an exited container sends nothing.
      const before = state.requests.length
      yield* Effect.scoped(
        Effect.gen(function* () {
          const container = yield* gc.createContainer("c3", FakeGuest.lcow())
          yield* container.exec({})
          yield* container.terminate
          yield* container.wait
        })
      )
      expect(state.requests.slice(before).map((r) => r.name)).toEqual([
        "Create",
        "ExecuteProcess",
        "WaitForProcess",
        "ShutdownForced"
      ])
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("closing the null container's handle sends nothing (it would power the VM off)", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(wired)
      yield* Effect.scoped(Effect.flatMap(gc.openContainer(Guid.NullGuid), (uvm) => uvm.start))
      expect(state.requests.map((r) => r.name)).toEqual(["NegotiateProtocol", "Start"])
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("tolerates a guest that never connects stdio: readers are released when the scope closes", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc } = yield* start(wired, {}, { denyStdio: true })
      const scope = yield* Scope.make()
      const process = yield* Scope.provide(
        gc.exec({
          CommandArgs: ["sh"],
          CreateStdInPipe: true,
          CreateStdOutPipe: true,
          CreateStdErrPipe: true
        }),
        scope
      )
      const reader = yield* Effect.forkChild(Effect.flip(Stream.runCollect(process.stdout)))
      const closer = yield* Effect.forkChild(Effect.flip(process.closeStdin))
      const writer = yield* Effect.forkChild(
        Effect.flip(Stream.run(Stream.make(encoder.encode("x")), process.stdin))
      )
      yield* Scope.close(scope, Exit.void)
      const errors = [yield* Fiber.join(reader), yield* Fiber.join(closer), yield* Fiber.join(writer)]
      for (const error of errors) {
        expect(error).toBeInstanceOf(TransportError)
        expect(error.reason).toBe("Closed")
      }
      // Asked only after the close, too.
      const late = yield* Effect.flip(process.closeStdin)
      expect(late).toBeInstanceOf(TransportError)
      expect(late.message).toContain("was closed before it could be half-closed")
      expect(wired.counts.listeners).toBe(0)
      expect(wired.counts.connections).toBe(1)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.live("properties, modify, dump stacks and the legacy calls reach the guest", () =>
    Effect.gen(function* () {
      const wired = yield* wire()
      const { gc, state } = yield* start(
        wired,
        {},
        {
          override: (request, guest) =>
            request.name === "GetProperties"
              ? Effect.as(
                  guest.reply(
                    request,
                    new Properties.ContainerGetPropertiesResponse({
                      Properties: { ProcessList: [{ ProcessId: 41 }], LCOWMetrics: { pids: { current: 2 } } }
                    })
                  ),
                  true
                )
              : Effect.succeed(false)
        }
      )
      const container = yield* gc.openContainer("c1")
      const v1 = yield* container.properties([Properties.PropertyType.ProcessList])
      expect(v1.ProcessList.map((p) => p.ProcessId)).toEqual([41])
      const v2 = yield* container.propertiesV2([Properties.PropertyType.Statistics])
      expect(v2.LCOWMetrics).toEqual({ pids: { current: 2 } })
      const query = state.requests.filter((r) => r.name === "GetProperties")
      expect(query.map((r) => (r.name === "GetProperties" ? r.body.Query.PropertyTypes : []))).toEqual([
        ["ProcessList"],
        ["Statistics"]
      ])
      yield* container.modify(
        new ModifySettings.ModificationRequest({
          RequestType: "Update",
          ResourceType: "ContainerConstraints",
          Settings: { Linux: {} }
        })
      )
      yield* gc.modify(
        new ModifySettings.ModificationRequest({ RequestType: "Add", ResourceType: "MappedDirectory" })
      )
      expect(yield* gc.dumpStacks).toBe("goroutine 1 [running]:")
      yield* gc.updateContainer("c1", { cpu: { shares: 512 } })
      const modifies = state.requests.filter((r) => r.name === "ModifySettings")
      expect(modifies.map((r) => r.body.ContainerId)).toEqual(["c1", Guid.NullGuid])
      const update = state.requests.find((r) => r.name === "UpdateContainer")
      if (update?.name === "UpdateContainer") expect(update.body.Resources).toEqual({ cpu: { shares: 512 } })
      else throw new Error("expected UpdateContainer")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("make fails with AcceptTimeout when no guest connects in time", () =>
    Effect.gen(function* () {
      const wired = yield* wire(memoryAddress())
      const fiber = yield* Effect.forkChild(
        Effect.flip(
          GuestConnection.make({ address: wired.address, connectTimeout: "5 seconds" }).pipe(
            Effect.provideService(Transport, wired.hostTransport)
          )
        )
      )
      yield* TestClock.adjust("6 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(TransportError)
      expect((error as TransportError).reason).toBe("AcceptTimeout")
      expectReleased(wired.counts)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
