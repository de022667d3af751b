import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Envelope, MessageType, Process } from "@gcs-bridge/protocol"
import { HybridAddress, MemoryAddress, Transport, UnixAddress } from "@gcs-bridge/transport"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { Guest } from "../src/index.js"
import { accept, countTimers, Null, PATH, readText, sleptSoFar, untilTimerArmed, writeText } from "./host.js"

/** A process is gone once signal 0 finds nothing (it was killed and reaped). */
const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  // A zombie still answers signal 0; its state says it is dead.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return /\) [ZX] /.test(stat)
  } catch {
    return true
  }
}

const untilGone = (pid: number) =>
  Effect.gen(function* () {
    while (!gone(pid)) yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
  })

describe("Guest", () => {
  it.effect("serve owns its state: when the host closes, it returns and its processes are killed", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "serve-owns" })
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      const guestSide = yield* transport.connect(address, MessageType.LinuxGcsVsockPort)
      const served = yield* Effect.forkChild(Guest.serve(guestSide, { address }))
      const host = yield* accept(transport, address, listener)
      yield* host.negotiate()
      const cat = yield* host.exec(
        Null,
        { CommandArgs: ["cat"], Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      expect(gone(cat.pid)).toBe(false)
      yield* host.connection.close
      expect(yield* Fiber.join(served)).toBe("PeerClosed")
      yield* untilGone(cat.pid)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("run keeps dialling every retryInterval when maxRetryInterval is no longer", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "late-host" })
      const guest = yield* Effect.forkChild(
        Guest.run({ address, once: true, maxRetryInterval: "100 millis" })
      )
      for (let i = 0; i < 3; i++) {
        yield* untilTimerArmed
        yield* TestClock.adjust(Duration.millis(100))
      }
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      yield* TestClock.adjust(Duration.millis(100))
      const host = yield* accept(transport, address, listener)
      expect((yield* host.negotiate()).result).toBe(0)
      yield* host.connection.close
      expect(Exit.isSuccess(yield* Fiber.await(guest))).toBe(true)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("run re-dials with a capped exponential backoff, well past 2 minutes, until a host listens", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "patient-guest" })
      // The defaults, as `gcsctl guest` runs it.
      const guest = yield* Effect.forkChild(Guest.run({ address, once: true }))
      for (let elapsed = 0; elapsed < 10 * 60_000; elapsed += 1000) {
        yield* untilTimerArmed
        yield* TestClock.adjust(Duration.seconds(1))
      }
      expect(guest.pollUnsafe()).toBeUndefined()
      const slept = yield* sleptSoFar
      expect(slept.slice(0, 6)).toEqual([100, 200, 400, 800, 1000, 1000])
      expect(slept.length).toBeGreaterThan(500)
      expect(Math.max(...slept)).toBe(1000)
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      yield* untilTimerArmed
      yield* TestClock.adjust(Duration.seconds(1))
      const host = yield* accept(transport, address, listener)
      expect((yield* host.negotiate()).result).toBe(0)
      yield* host.connection.close
      expect(Exit.isSuccess(yield* Fiber.await(guest))).toBe(true)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("run fails with ConnectTimeout when no host shows up in time", () =>
    Effect.gen(function* () {
      const address = new MemoryAddress({ name: "no-host" })
      const guest = yield* Effect.forkChild(Guest.run({ address, connectTimeout: "1 second" }))
      yield* untilTimerArmed
      yield* TestClock.adjust(Duration.seconds(1))
      const error = yield* Effect.flip(Fiber.join(guest))
      expect(error._tag).toBe("TransportError")
      expect(error._tag === "TransportError" && error.reason).toBe("ConnectTimeout")
      expect(error.message).toContain("within 1s")
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("a host shutting down the UVM gets no answer, and run stops instead of re-dialling", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "power-off" })
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      const guest = yield* Effect.forkChild(Guest.run({ address }))
      const host = yield* accept(transport, address, listener)
      yield* host.negotiate()
      yield* host.send("ShutdownGraceful", new Envelope.RequestBase({ ContainerId: Null }))
      expect(yield* Deferred.await(host.ended)).toBeUndefined()
      expect(Exit.isSuccess(yield* Fiber.await(guest))).toBe(true)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("layer runs the guest for as long as its scope", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "layered" })
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      yield* Layer.build(Guest.layer({ address }))
      const host = yield* accept(transport, address, listener)
      expect((yield* host.negotiate()).result).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it("maps a hybrid vsock host address to the Unix sockets a guest dials", () => {
    expect(Guest.addressForHost(new HybridAddress({ path: "/run/vm.sock" }))).toEqual(
      new UnixAddress({ path: "/run/vm.sock" })
    )
    const memory = new MemoryAddress({ name: "x" })
    expect(Guest.addressForHost(memory)).toBe(memory)
  })

  it.effect("works over real Unix sockets: host on hybrid vsock, guest on <path>_<port>", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "guest-hybrid-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const transport = yield* Transport
      const hostAddress = new HybridAddress({ path: join(dir, "vm.sock") })
      const listener = yield* transport.listen(hostAddress, MessageType.LinuxGcsVsockPort)
      yield* Effect.forkScoped(Guest.run({ address: Guest.addressForHost(hostAddress), once: true }))
      const host = yield* accept(transport, hostAddress, listener)
      yield* host.negotiate()
      const cat = yield* host.exec(
        Null,
        { CommandArgs: ["cat"], Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      yield* writeText(Option.getOrThrow(cat.stdin), "over unix sockets\n")
      expect(yield* readText(Option.getOrThrow(cat.stdout))).toBe("over unix sockets\n")
      const wait = yield* host.ok(
        "WaitForProcess",
        new Process.ContainerWaitForProcess({
          ContainerId: Null,
          ProcessId: cat.pid,
          TimeoutInMs: Process.InfiniteTimeout
        })
      )
      expect(wait.ExitCode).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerNode))
  )
})
